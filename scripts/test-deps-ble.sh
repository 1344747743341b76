#!/bin/sh
# Installs what the BLE end-to-end tests need (a fake BlueZ on a private D-Bus
# bus: dbus-daemon and dbus-send from Debian's dbus, and python-dbusmock for
# Debian's /usr/bin/python3), only when missing. Safe to run again. As root.
set -eu
need=""
command -v dbus-daemon >/dev/null 2>&1 || need="$need dbus"
command -v dbus-send >/dev/null 2>&1 || need="$need dbus"
/usr/bin/python3 -c 'import dbusmock' >/dev/null 2>&1 || need="$need python3-dbusmock"
if [ -n "$need" ]; then
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
fi
echo "BLE test dependencies present."
