#!/bin/sh
# Installs what the BLE end-to-end tests (fake BlueZ on a private D-Bus bus)
# need, only when missing. Safe to run again. Debian/Ubuntu, as root.
set -eu
need=""
command -v dbus-daemon >/dev/null 2>&1 || need="$need dbus"
/usr/bin/python3 -c 'import dbusmock' >/dev/null 2>&1 || need="$need python3-dbusmock"
command -v pdftotext >/dev/null 2>&1 || need="$need poppler-utils"
if [ -n "$need" ]; then
    apt-get update
    # shellcheck disable=SC2086
    apt-get install -y --no-install-recommends $need
fi
echo "BLE test dependencies present."
