#!/usr/bin/env bash
# What the package check (scripts/test-package.sh) needs, when missing:
# cargo-deb (from crates.io) and lintian (Debian).
set -euo pipefail
if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb (cargo install --locked)"
  cargo install --locked --quiet cargo-deb
fi
if ! command -v lintian >/dev/null 2>&1; then
  echo "installing lintian from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian
fi
echo "package test dependencies ready"
