#!/usr/bin/env bash
# The Debian package, checked as an integrator meets it: built with cargo-deb,
# lintian-clean of errors, installed with dpkg into a fresh root (its maintainer
# scripts run there, chrootless, with DPKG_ROOT), and then: the unit, the
# sysusers entry and the user with its groups are there, the service user can
# read /etc/lockhub and `lockhub check-config` passes on the shipped config,
# `remove` keeps the state and `purge` deletes it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/package.sh --quiet >/dev/null
deb=$(ls -t target/debian/lockhub_*.deb | head -n1)

passed=0
failed=0
check() { # check "what" command...
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $what"
  else failed=$((failed + 1)); echo "FAIL $what"; fi
}

check "lintian finds no errors" lintian --fail-on error --suppress-tags no-manual-page "$deb"

root=$(mktemp -d /tmp/lockhub-root.XXXXXX)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
: >"$root/var/lib/dpkg/status"
dpkg_root() { dpkg --root="$root" --force-script-chrootless --force-depends \
  --force-not-root --log=/dev/null "$@"; }

check "dpkg installs it into a fresh root (postinst ran)" dpkg_root -i "$deb"
for f in usr/bin/lockhub usr/lib/systemd/system/lockhub.service \
         usr/lib/sysusers.d/lockhub.conf usr/lib/tmpfiles.d/lockhub.conf \
         etc/lockhub/lockhub.toml usr/share/doc/lockhub/copyright; do
  check "/$f is installed" test -e "$root/$f"
done
check "the config is a conffile" grep -qx /etc/lockhub/lockhub.toml "$root/var/lib/dpkg/info/lockhub.conffiles"
check "the unit is enabled" test -L "$root/etc/systemd/system/multi-user.target.wants/lockhub.service"
check "the unit runs /usr/bin/lockhub as user lockhub" \
  grep -q '^ExecStart=/usr/bin/lockhub run --config /etc/lockhub/lockhub.toml' "$root/usr/lib/systemd/system/lockhub.service"
check "sysusers made the user lockhub" grep -q '^lockhub:' "$root/etc/passwd"
uid=$(awk -F: '$1 == "lockhub" { print $3 }' "$root/etc/passwd")
gid=$(awk -F: '$1 == "lockhub" { print $4 }' "$root/etc/passwd")
for g in dialout bluetooth; do
  check "lockhub is in group $g" grep -Eq "^$g:[^:]*:[0-9]+:(.*,)?lockhub(,|$)" "$root/etc/group"
done
check "/etc/lockhub is root:lockhub 0750" \
  test "$(stat -c '%u:%g %a' "$root/etc/lockhub")" = "0:$gid 750"
check "the config is root:lockhub 0640" \
  test "$(stat -c '%u:%g %a' "$root/etc/lockhub/lockhub.toml")" = "0:$gid 640"
as_service() { setpriv --reuid="$uid" --regid="$gid" --clear-groups "$@"; }
check "the service user can read its config" as_service cat "$root/etc/lockhub/lockhub.toml" >/dev/null
check "another user cannot" bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups cat '$root/etc/lockhub/lockhub.toml' 2>/dev/null"
check "check-config passes on the shipped config, as the service user" \
  as_service "$root/usr/bin/lockhub" check-config "$root/etc/lockhub/lockhub.toml"

mkdir -p "$root/var/lib/lockhub" && echo keep >"$root/var/lib/lockhub/lockhub.db"
check "dpkg removes it" dpkg_root -r lockhub
check "remove keeps the state and the config" test -e "$root/var/lib/lockhub/lockhub.db" -a -e "$root/etc/lockhub/lockhub.toml"
check "dpkg purges it" dpkg_root -P lockhub
check "purge deletes the state" test ! -e "$root/var/lib/lockhub"
check "purge deletes the config" test ! -e "$root/etc/lockhub/lockhub.toml"

echo "package: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
