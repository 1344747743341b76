#!/usr/bin/env bash
# What the Home Assistant discovery test (tests/homeassistant.rs) needs, when
# missing: python3 with Jinja2, the template engine Home Assistant renders
# value_template with, so the test renders lockhub's templates against the
# hub's real payloads.
set -euo pipefail
need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import jinja2' 2>/dev/null || need+=(python3-jinja2)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
echo "Home Assistant test dependencies ready"
