#!/usr/bin/env bash
# Integration test of the systemd units: the configured renewd.service (with
# ExecStart pointed at the binary just built) and renewd.socket must pass
# `systemd-analyze verify`, and `systemd-analyze security --offline=yes` must
# rate the service's exposure at 2.0 or below (the figure is printed).
#
# Usage: test-systemd-units.sh BUILT_SERVICE_FILE SOCKET_FILE RENEWD_BINARY
# Exit status: 0 pass, 1 fail, 77 skipped (no systemd-analyze).
set -euo pipefail

service=${1:?usage: test-systemd-units.sh SERVICE SOCKET RENEWD}
socket=${2:?usage: test-systemd-units.sh SERVICE SOCKET RENEWD}
renewd=${3:?usage: test-systemd-units.sh SERVICE SOCKET RENEWD}
max_exposure=2.0

if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze not found"
  exit 77
fi
[[ -f $service ]] || { echo "FAIL: $service does not exist (configure the build first)"; exit 1; }
[[ -x $renewd ]] || { echo "FAIL: $renewd is not an executable"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The configured unit starts the installed binary (@CMAKE_INSTALL_FULL_SBINDIR@);
# point ExecStart at the built one so that verify can check it exists.
sed -E "s|^ExecStart=[^ ]*/renewd( \|$)|ExecStart=$renewd\1|" "$service" >"$tmp/renewd.service"
cp "$socket" "$tmp/renewd.socket"
if ! grep -q "^ExecStart=$renewd" "$tmp/renewd.service"; then
  echo "FAIL: could not rewrite ExecStart= in $service:"
  grep -n '^ExecStart=' "$service" || true
  exit 1
fi
if grep -q '@[A-Z_]*@' "$tmp/renewd.service"; then
  echo "FAIL: unsubstituted @VARIABLE@ left in the configured $service:"
  grep -n '@[A-Z_]*@' "$tmp/renewd.service"
  exit 1
fi

status=0
echo "== systemd-analyze verify --man=no renewd.service renewd.socket"
if ! out=$(cd "$tmp" && systemd-analyze verify --man=no ./renewd.service ./renewd.socket 2>&1); then
  echo "FAIL: systemd-analyze verify exited non-zero"
  status=1
fi
[[ -n $out ]] && printf '%s\n' "$out"
# verify exits 0 for many warnings; any line it prints about our units is a finding.
if grep -E 'renewd\.(service|socket)' <<<"$out" >/dev/null; then
  echo "FAIL: systemd-analyze verify reported problems in the units (above)"
  status=1
fi

echo "== systemd-analyze security --offline=yes renewd.service"
sec=$(cd "$tmp" && systemd-analyze security --offline=yes ./renewd.service 2>&1) || true
# The line: "→ Overall exposure level for renewd.service: 1.2 OK 🙂"
exposure=$(sed -nE 's/.*Overall exposure level for renewd\.service: ([0-9]+(\.[0-9]+)?).*/\1/p' <<<"$sec")
if [[ -z $exposure ]]; then
  printf '%s\n' "$sec"
  echo "FAIL: no exposure level in the output of systemd-analyze security"
  exit 1
fi
# Show the items that cost points (✗ lines with a non-zero weight).
grep -E '^✗' <<<"$sec" | sed -E 's/ {2,}/  /g' || true
echo "exposure level: $exposure (limit $max_exposure)"
if awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e > m) }'; then
  echo "FAIL: exposure $exposure is above $max_exposure"
  status=1
fi

[[ $status -eq 0 ]] && echo "PASS"
exit $status
