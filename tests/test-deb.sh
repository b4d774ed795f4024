#!/usr/bin/env bash
# Test of the Debian package: builds the .deb from a build tree with
# `cpack -G DEB` (into a temporary directory) and checks it:
#   * lintian reports no error (E:) and no warning (W:); its overrides, each
#     with a reason, are scripts/deb/lintian-overrides;
#   * the binaries are stripped, the man pages gzip-compressed, the copyright
#     file is machine-readable (DEP-5), changelog.Debian.gz names the package's
#     version, the conffiles are the files in /etc/renewd, and the
#     maintainer scripts are valid sh;
#   * the unit's ExecStart= names /usr/sbin/renewd.
# Nothing is installed on this machine.
#
# Usage: test-deb.sh BUILD_DIR
# Exit status: 0 pass, 1 fail, 77 skipped (lintian or dpkg-deb is missing).
set -euo pipefail

build=${1:?usage: test-deb.sh BUILD_DIR}
for tool in lintian dpkg-deb cpack; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool is not installed (scripts/install-deps.sh installs it)"
    exit 77
  fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
fail() { echo "FAIL: $*"; status=1; }

echo "== cpack -G DEB --config $build/CPackConfig.cmake"
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/out" >"$tmp/cpack.log" 2>&1 || {
  cat "$tmp/cpack.log"
  echo "FAIL: cpack failed"
  exit 1
}
debs=("$tmp"/out/renewd_*.deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || {
  cat "$tmp/cpack.log"
  echo "FAIL: cpack made no renewd_*.deb"
  exit 1
}
deb=${debs[0]}
echo "built $(basename "$deb")"

echo "== lintian"
# lintian says "running with root privileges is not recommended" as root.
lintian --info --show-overrides "$deb" 2>&1 | grep -v 'root privileges' | tee "$tmp/lintian.log" || true
if grep -qE '^[EW]: ' "$tmp/lintian.log"; then
  fail "lintian reports errors or warnings"
fi

echo "== contents"
mkdir "$tmp/root" "$tmp/control"
dpkg-deb -x "$deb" "$tmp/root"
dpkg-deb -e "$deb" "$tmp/control"
version=$(dpkg-deb -f "$deb" Version)

for bin in usr/sbin/renewd usr/bin/renewctl; do
  [[ -x $tmp/root/$bin ]] || {
    fail "$bin is missing"
    continue
  }
  if readelf -S "$tmp/root/$bin" | grep -qE '\.(symtab|debug_info)\b'; then
    fail "$bin is not stripped"
  fi
done

for page in man8/renewd.8 man1/renewctl.1 man5/renewd.conf.5; do
  gz=$tmp/root/usr/share/man/$page.gz
  if [[ ! -f $gz ]]; then
    fail "/usr/share/man/$page.gz is missing"
  elif ! gzip -t "$gz" || ! zcat "$gz" | grep -q '^\.TH'; then
    fail "/usr/share/man/$page.gz is not a gzip-compressed man page"
  fi
done
[[ -z $(find "$tmp/root/usr/share/man" -type f ! -name '*.gz') ]] || fail "uncompressed files in /usr/share/man"

doc=$tmp/root/usr/share/doc/renewd
grep -qx 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' "$doc/copyright" ||
  fail "copyright is not in the machine-readable format"
grep -q '^License: ' "$doc/copyright" || fail "copyright names no License:"
top=$(zcat "$doc/changelog.Debian.gz" | head -1)
[[ $top == "renewd ($version) "* ]] || fail "changelog.Debian.gz's newest entry is not for $version: $top"

conffiles=$(sort "$tmp/control/conffiles")
etc_files=$(cd "$tmp/root" && find etc -type f | sed 's|^|/|' | sort)
[[ $conffiles == "$etc_files" ]] || fail "conffiles ($conffiles) are not the files in /etc ($etc_files)"
for script in postinst prerm postrm; do
  [[ -x $tmp/control/$script ]] || fail "maintainer script $script is missing or not executable"
  sh -n "$tmp/control/$script" || fail "maintainer script $script is not valid sh"
done

unit=$(find "$tmp/root" -name renewd.service -path '*/systemd/system/*')
grep -qx 'ExecStart=/usr/sbin/renewd --config /etc/renewd/renewd.conf' "$unit" ||
  fail "renewd.service: ExecStart= does not name /usr/sbin/renewd"

[[ $status -eq 0 ]] && echo "PASS"
exit $status
