#!/usr/bin/env bash
# What the installer page's browser test (tests/web_page.rs) needs, when
# missing: Debian's Chromium and its ChromeDriver.
set -euo pipefail
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "installing chromium and chromium-driver from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi
echo "web test dependencies ready"
