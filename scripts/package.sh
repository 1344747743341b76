#!/usr/bin/env bash
# Builds lockhub's Debian package with cargo-deb (installed when missing):
# target/debian/lockhub_<version>_<arch>.deb. Install it with
#   sudo apt install ./target/debian/lockhub_*.deb
# Extra arguments go to cargo-deb (e.g. --target aarch64-unknown-linux-gnu).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb (cargo install --locked)"
  cargo install --locked --quiet cargo-deb
fi
cargo deb --locked "$@"
