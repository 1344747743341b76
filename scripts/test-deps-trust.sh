#!/usr/bin/env bash
# The trust tests' needs (idempotent; Debian): Mosquitto's own client (to
# publish packets larger than rumqttc builds), sqlite3 (to edit a row as an
# attacker would), systemd-analyze (the unit's exposure), python3 with the
# `cryptography` package (docs/signing.md's example is run by a test).
set -euo pipefail
need=()
command -v mosquitto_pub >/dev/null || need+=(mosquitto-clients)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import cryptography' 2>/dev/null || need+=(python3-cryptography)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
