#!/usr/bin/env bash
# The long kill campaign: the real lockhub binary, a real Mosquitto, simulated
# locks on disk, and SIGKILLs at random seeded moments of mixed creates,
# updates and deletes (tests/fault_kill.rs; CI runs 30 kills).
#   scripts/chaos.sh [KILLS (default 200)] [SEED (default random, printed)]
set -euo pipefail
cd "$(dirname "$0")/.."
export LOCKHUB_KILLS="${1:-200}"
if [ -n "${2:-}" ]; then export LOCKHUB_SEED="$2"; fi
cargo test --locked --test fault_kill -- --nocapture
