#!/usr/bin/env bash
# Installs what lockhub's tests need, when it is missing (idempotent; Debian):
# Mosquitto (the real broker the black-box tests start), and the Z-Wave mock's
# needs (node, npm, socat, the pinned zwave-js packages).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/sbin/mosquitto ] || [ -x /usr/bin/mosquitto ] || need+=(mosquitto)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
bash scripts/test-deps-zwave.sh
for extra in scripts/test-deps-*.sh; do
  case "$extra" in *-zwave.sh) ;; *) bash "$extra" ;; esac
done
echo "test dependencies ready"
