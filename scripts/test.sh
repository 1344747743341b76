#!/usr/bin/env bash
# lockhub's test command: installs what the tests need when missing, then runs
# every test of the workspace (unit, property, scenario, black-box against a real Mosquitto,
# Z-Wave against the zwave-js mock, BLE through btleplug and a fake BlueZ),
# then the Debian package (built, lintian, installed into a fresh root).
# Benchmarks are separate (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
cargo test --locked --workspace --all-targets -- --test-threads=2
bash scripts/test-package.sh
