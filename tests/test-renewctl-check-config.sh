#!/usr/bin/env bash
# Integration test of `renewctl check-config` against the real binaries:
#   1. the shipped example config (config/renewd.conf.example) with a drop-in
#      pointing Holidays= at config/holidays.example.ics and Templates= at the
#      shipped templates: exit 0, the policies table on stdout (both policies,
#      every tier of the standard ladder), nothing on stderr, and stdout
#      byte-for-byte what `renewd --check-config` prints;
#   2. a drop-in with an unknown key: exit 78, stderr is exactly
#      "<drop-in>:3: unknown key Foo= in [Daemon]" plus the summary line,
#      stdout empty; renewd --check-config names the same file:line;
#   3. errors found by the channel checks (dispatcher_check_config) and by the
#      holiday reader (the calendar) are reported with their file:line too;
#   4. the link key: LinkKeyFile= missing while customer tiers send email
#      (reported at the channel's section), unreadable, too short, a
#      credential name without $CREDENTIALS_DIRECTORY, a pasted secret (never
#      quoted): exit 78 from both checks with file:line;
#   5. a --config file that does not exist: exit 78, "PATH: No such file or
#      directory"; --json: usage error 64; an extra argument: 64.
#
# The example's LinkKeyFile=link-key is a systemd credential: the test hands
# it over as LoadCredential= would, through $CREDENTIALS_DIRECTORY.
#
#   test-renewctl-check-config.sh RENEWCTL RENEWD SOURCE_DIR
set -u

RENEWCTL=$(realpath "$1")
RENEWD=$(realpath "$2")
SRC=$(realpath "$3")
T=$(mktemp -d /tmp/renewctl-check-config-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# run NAME EXPECTED_EXIT ARGS...: renewctl ARGS, stdout in NAME.out, stderr in NAME.err.
run() {
  local name=$1 want=$2
  shift 2
  "$RENEWCTL" "$@" >"$name.out" 2>"$name.err"
  local got=$?
  if [ "$got" != "$want" ]; then
    fail "$name: exit $got, expected $want"
    sed 's/^/    stderr: /' "$name.err" >&2
  fi
}

# expect_file NAME FILE: FILE must equal the text on stdin.
expect_file() {
  local name=$1 file=$2
  if ! diff -u - "$file" >"$name.diff"; then
    fail "$name: $file differs:"
    cat "$name.diff" >&2
  fi
}

conf=$T/etc/renewd.conf
mkdir -p "$T/etc/renewd.conf.d" "$T/creds"
# the example names the link key as a systemd credential: what LoadCredential= hands the service
head -c 32 /dev/urandom | base64 >"$T/creds/link-key"
export CREDENTIALS_DIRECTORY=$T/creds
cp "$SRC/config/renewd.conf.example" "$conf"
cat >"$T/etc/renewd.conf.d/10-test.conf" <<EOF
[Daemon]
Templates=$SRC/notifiers/templates

[SendWindow]
Holidays=$SRC/config/holidays.example.ics

[SendWindow owners]
Holidays=$SRC/config/holidays.example.ics
EOF

# ---- 1. valid ----------------------------------------------------------------
run valid 0 check-config --config "$conf"
expect_file valid valid.err </dev/null
head -n 1 valid.out | grep -qE '^POLICY +SEGMENTS +CATCH-UP +TIER +OFFSET ' ||
  fail "valid: no table header on stdout: $(head -n 1 valid.out)"
grep -qE '^standard +smb \* +latest +notice +-P60D ' valid.out || fail "valid: no 'standard' policy row"
grep -qE '^enterprise +enterprise high-value +all +early +-P90D ' valid.out ||
  fail "valid: no 'enterprise' policy row"
for tier in reminder final escalation lapsed; do
  grep -qE "^ +$tier " valid.out || fail "valid: tier $tier missing from the table"
done
[ "$(tail -n 1 valid.out)" = "$conf: configuration is valid" ] || fail "valid: last line $(tail -n 1 valid.out)"
# the global option before the command works the same
run valid_global 0 --config "$conf" check-config
cmp -s valid.out valid_global.out || fail "valid: --config before the command prints something else"
"$RENEWD" --check-config --config "$conf" >renewd.out 2>renewd.err
rc=$?
[ $rc = 0 ] || fail "renewd --check-config on the valid config: exit $rc"
cmp -s valid.out renewd.out || { fail "renewctl and renewd print different tables:"; diff -u renewd.out valid.out >&2; }

# ---- 2. unknown key in a drop-in -----------------------------------------------
bad=$T/etc/renewd.conf.d/60-bad.conf
printf '# a local change\n[Daemon]\nFoo=1\n' >"$bad"
run unknown 78 check-config --config "$conf"
expect_file unknown unknown.err <<EOF
$bad:3: unknown key Foo= in [Daemon]
renewctl: $conf: configuration is invalid
EOF
expect_file unknown unknown.out </dev/null
"$RENEWD" --check-config --config "$conf" >renewd.out 2>renewd.err
rc=$?
[ $rc = 78 ] || fail "renewd --check-config with the unknown key: exit $rc"
grep -qF "$bad:3: unknown key Foo= in [Daemon]" renewd.err || fail "renewd names another place: $(cat renewd.err)"
rm "$bad"

# ---- 3. channel checks and the holiday reader ------------------------------------
printf '[Channel email]\nBogus=1\n' >"$bad"
run channel 78 check-config --config "$conf"
grep -qE "^$bad:2: .*Bogus" channel.err || fail "channel: the dispatcher's check is not reported at $bad:2: $(cat channel.err)"
rm "$bad"
printf 'BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:notadate\nEND:VEVENT\nEND:VCALENDAR\n' >"$T/broken.ics"
printf '[SendWindow]\nHolidays=%s\n' "$T/broken.ics" >"$bad"
run holidays 78 check-config --config "$conf"
grep -qE "^$bad:2: Holidays=$T/broken.ics: " holidays.err ||
  fail "holidays: the .ics error is not reported at $bad:2: $(cat holidays.err)"
rm "$bad"

# ---- 4. the link key ----------------------------------------------------------------
# expect_both NAME PATTERN: renewctl and renewd --check-config both exit 78 and print PATTERN
expect_both() {
  local name=$1 pattern=$2
  run "$name" 78 check-config --config "$conf"
  grep -qE "$pattern" "$name.err" || fail "$name: renewctl did not report '$pattern': $(cat "$name.err")"
  "$RENEWD" --check-config --config "$conf" >"$name.renewd.out" 2>"$name.renewd.err"
  local rc=$?
  [ $rc = 78 ] || fail "$name: renewd --check-config exit $rc"
  grep -qE "^renewd\[error\]: ${pattern#^}" "$name.renewd.err" || fail "$name: renewd did not report '$pattern': $(cat "$name.renewd.err")"
}
# no LinkKeyFile= while customer tiers send email: at the channel's section
printf '[Daemon]\nLinkKeyFile=\n' >"$bad"
line=$(grep -n '^\[Channel email\]' "$conf" | cut -d: -f1)
expect_both nokey "^$conf:$line: \[Channel email\]: customer tier '[a-z]+' sends email through this channel, but \[Daemon\] LinkKeyFile= is not set"
# a file that cannot be read, at the LinkKeyFile= line
printf '[Daemon]\nLinkKeyFile=%s/missing-key\n' "$T" >"$bad"
expect_both unreadable "^$bad:2: LinkKeyFile=$T/missing-key: cannot read the key file: No such file or directory"
# a key too short to sign with
printf 'short\n' >"$T/short-key"
printf '[Daemon]\nLinkKeyFile=%s/short-key\n' "$T" >"$bad"
expect_both short "^$bad:2: LinkKeyFile=$T/short-key: line 1: a link key needs at least"
# the credential outside the service (the example's own LinkKeyFile=link-key)
rm "$bad"
unset CREDENTIALS_DIRECTORY
expect_both nocreds "^$conf:[0-9]+: LinkKeyFile=link-key: a credential name, but \\\$CREDENTIALS_DIRECTORY is not set"
export CREDENTIALS_DIRECTORY=$T/creds
# a pasted secret: refused, and never quoted
printf '[Daemon]\nLinkKeyFile=Zm9vYmFyIHNlY3JldCBrZXkgdGhhdCB3YXMgcGFzdGVk\n' >"$bad"
expect_both pasted "^$bad:2: LinkKeyFile=: looks like a secret, not a file or credential name"
grep -q 'Zm9vYmFy' pasted.err pasted.renewd.err && fail "pasted: the secret is quoted in an error"
rm "$bad"

# ---- 5. missing file, usage --------------------------------------------------------
run missing 78 check-config --config "$T/nope.conf"
expect_file missing missing.err <<EOF
$T/nope.conf: No such file or directory
renewctl: $T/nope.conf: configuration is invalid
EOF
run json 64 check-config --config "$conf" --json
run extra 64 check-config --config "$conf" extra

if [ $failures -ne 0 ]; then
  echo "test-renewctl-check-config: $failures failure(s)" >&2
  exit 1
fi
echo "test-renewctl-check-config: PASS"
