#!/usr/bin/env bash
# What the fault tests (tests/fault_*.rs) need, when missing (idempotent; Debian):
# libfaketime for the clock tests (the `faketime` package brings it).
set -euo pipefail
need=()
compgen -G "/usr/lib/*/faketime/libfaketimeMT.so.1" >/dev/null || need+=(faketime)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
