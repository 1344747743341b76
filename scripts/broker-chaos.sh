#!/usr/bin/env bash
# The long broker campaign: Mosquitto restarted again and again in the middle
# of a stream of creates and deletes, with and without broker persistence
# (tests/fault_broker.rs; CI runs 3 restarts of each).
#   scripts/broker-chaos.sh [RESTARTS (default 30)]
set -euo pipefail
cd "$(dirname "$0")/.."
export LOCKHUB_BROKER_RESTARTS="${1:-30}"
cargo test --locked --test fault_broker -- --nocapture --test-threads=1
