#!/usr/bin/env bash
# Installs what the Z-Wave tests and benchmark need, when missing (idempotent):
# node + npm (Debian packages), the pinned zwave-js mock in tests/zwave-mock
# (`npm ci`), and socat for the serial (pseudo-terminal) test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v socat >/dev/null 2>&1 || need_apt+=(socat)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
  || { echo "the zwave-js mock needs node >= 20 (found $(node --version))" >&2; exit 1; }

if [ ! -d tests/zwave-mock/node_modules/zwave-js ]; then
  echo "installing the pinned zwave-js mock (npm ci)"
  (cd tests/zwave-mock && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
fi
echo "z-wave test dependencies ready"
