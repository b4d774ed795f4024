#!/usr/bin/env bash
# Test of `cmake --install`: installs the build into a DESTDIR with prefix
# /usr and checks that every file lands where the system expects it:
#   /usr/sbin/renewd, /usr/bin/renewctl                   (GNUInstallDirs)
#   <systemd unit dir>/renewd.service (ExecStart=/usr/sbin/renewd), renewd.socket
#   <tmpfiles.d>/renewd.conf
#   /etc/renewd/renewd.conf.example, holidays.example.ics (always)
#   /etc/renewd/renewd.conf, holidays.ics (copied from the examples only when absent)
#   /usr/share/renewd/templates/en/*.mustache
#   /usr/share/man/man{1,5,8}/...
# then installs again over a changed renewd.conf, which must be kept, and
# checks that the installed example configuration is valid for the installed
# renewd (renewd --check-config).
#
# Usage: test-install.sh BUILD_DIR
# Exit status: 0 pass, 1 fail.
set -euo pipefail

build=${1:?usage: test-install.sh BUILD_DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
status=0
fail() { echo "FAIL: $*"; status=1; }

echo "== DESTDIR=$dest cmake --install $build --prefix /usr"
DESTDIR=$dest cmake --install "$build" --prefix /usr >"$tmp/install.log" 2>&1 || {
  cat "$tmp/install.log"
  echo "FAIL: cmake --install failed"
  exit 1
}
echo "$(grep -c 'Installing:' "$tmp/install.log") files installed"

# The unit and tmpfiles directories: as configured (absolute, or under /usr).
cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
under_prefix() { [[ $1 == /* ]] && echo "$1" || echo "/usr/$1"; }
unitdir=$(under_prefix "$(cache_get RENEWD_SYSTEMD_UNIT_DIR)")
tmpfilesdir=$(under_prefix "$(cache_get RENEWD_TMPFILES_DIR)")
confdir=$(cache_get RENEWD_CONF_DIR)
echo "unit dir $unitdir, tmpfiles dir $tmpfilesdir, config dir $confdir"

expect_exec() { [[ -x $dest$1 && -f $dest$1 ]] || fail "$1 is missing or not executable"; }
expect_file() { [[ -s $dest$1 ]] || fail "$1 is missing or empty"; }

expect_exec /usr/sbin/renewd
expect_exec /usr/bin/renewctl
expect_file "$unitdir/renewd.service"
expect_file "$unitdir/renewd.socket"
expect_file "$tmpfilesdir/renewd.conf"
expect_file "$confdir/renewd.conf.example"
expect_file "$confdir/holidays.example.ics"
expect_file "$confdir/renewd.conf"
expect_file "$confdir/holidays.ics"
expect_file /usr/share/renewd/templates/en/reminder.text.mustache
expect_file /usr/share/renewd/templates/en/escalation.subject.mustache
expect_file /usr/share/man/man8/renewd.8
expect_file /usr/share/man/man1/renewctl.1
expect_file /usr/share/man/man5/renewd.conf.5
[[ $status -eq 0 ]] || exit 1

grep -qx 'ExecStart=/usr/sbin/renewd --config /etc/renewd/renewd.conf' "$dest$unitdir/renewd.service" ||
  fail "renewd.service: ExecStart= does not name /usr/sbin/renewd: $(grep ExecStart= "$dest$unitdir/renewd.service")"
! grep -n '@[A-Z_]*@' "$dest$unitdir/renewd.service" || fail "renewd.service: unsubstituted @VARIABLE@"
cmp -s "$dest$confdir/renewd.conf" "$dest$confdir/renewd.conf.example" ||
  fail "renewd.conf is not a copy of renewd.conf.example on a first install"
nothing_else=$(find "$dest" -type f | sed "s|^$dest||" |
  grep -vE "^(/usr/(s?bin|share/(renewd|man))/|$unitdir/|$tmpfilesdir/|$confdir/)" || true)
[[ -z $nothing_else ]] || fail "unexpected files installed: $nothing_else"

echo "== the installed renewd and renewctl run"
"$dest/usr/sbin/renewd" --version | grep -q '^renewd ' || fail "installed renewd --version"
"$dest/usr/bin/renewctl" --version | grep -q '^renewctl ' || fail "installed renewctl --version"
# the example configuration is valid (its absolute paths pointed into DESTDIR)
sed "s|$confdir/|$dest$confdir/|g" "$dest$confdir/renewd.conf" >"$tmp/check.conf"
# its link key is a credential: what LoadCredential= would hand the service
mkdir -p "$tmp/creds"
head -c 32 /dev/urandom | base64 >"$tmp/creds/link-key"
CREDENTIALS_DIRECTORY=$tmp/creds "$dest/usr/sbin/renewd" --check-config -c "$tmp/check.conf" >"$tmp/check.log" 2>&1 || {
  cat "$tmp/check.log"
  fail "renewd --check-config rejects the installed example configuration"
}

echo "== install again over an administrator's renewd.conf"
echo "# local change $$" >>"$dest$confdir/renewd.conf"
echo "BEGIN:VCALENDAR" >"$dest$confdir/holidays.ics"
DESTDIR=$dest cmake --install "$build" --prefix /usr >"$tmp/install2.log" 2>&1 || {
  cat "$tmp/install2.log"
  fail "the second cmake --install failed"
}
grep -q "^# local change $$\$" "$dest$confdir/renewd.conf" || fail "a second install overwrote renewd.conf"
[[ $(cat "$dest$confdir/holidays.ics") == BEGIN:VCALENDAR ]] || fail "a second install overwrote holidays.ics"
grep -q "Keeping: .*renewd.conf" "$tmp/install2.log" || fail "the second install did not say it kept renewd.conf"

[[ $status -eq 0 ]] && echo "PASS"
exit $status
