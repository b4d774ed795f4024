#!/usr/bin/env bash
# Test of the man pages built from docs/man/*.scd:
#  - each renders with `man -l` at MANWIDTH=80 without a single groff warning
#    (man --warnings prints them on stderr; any line there fails the test),
#    and has the sections a man page needs;
#  - they are complete: every option of `renewd --help` is in renewd(8); every
#    command of `renewctl --help` and every option of `renewctl CMD --help` is
#    in renewctl(1); every key in the tables of docs/configuration.md is in
#    renewd.conf(5). A command, option or key added without its man page entry
#    fails here.
#
# Usage: test-man.sh MAN_BUILD_DIR RENEWD RENEWCTL SOURCE_DIR
# Exit status: 0 pass, 1 fail.
set -euo pipefail

mandir=${1:?usage: test-man.sh MAN_BUILD_DIR RENEWD RENEWCTL SOURCE_DIR}
renewd=${2:?}
renewctl=${3:?}
src=${4:?}
export MANWIDTH=80 LC_ALL=C.UTF-8
status=0
fail() { echo "FAIL: $*"; status=1; }

command -v man >/dev/null || { echo "FAIL: man is not installed"; exit 1; }

declare -A text
for page in renewd.8 renewctl.1 renewd.conf.5; do
  f=$mandir/$page
  if [[ ! -s $f ]]; then
    fail "$f was not built"
    continue
  fi
  warnings=$(man --warnings -l "$f" 2>&1 >/dev/null) || fail "$page: man exited non-zero"
  if [[ -n $warnings ]]; then
    printf '%s\n' "$warnings"
    fail "$page: groff warnings (above)"
  fi
  text[$page]=$(man -l "$f" 2>/dev/null | col -bx)
  for section in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
    grep -q "^$section\$" <<<"${text[$page]}" || fail "$page: no $section section"
  done
  # no line of the rendering is wider than MANWIDTH (code examples included)
  wide=$(while IFS= read -r line; do ((${#line} <= 80)) || printf '%s\n' "$line"; done <<<"${text[$page]}")
  [[ -z $wide ]] || { printf '%s\n' "$wide"; fail "$page: lines wider than 80 columns (above)"; }
  echo "$page: $(wc -l <<<"${text[$page]}") lines, no warnings"
done
[[ $status -eq 0 ]] || exit 1

has() { # PAGE WORD: the rendered page mentions WORD (as a whole word)
  grep -qF -- "$2" <<<"${text[$1]}"
}

# renewd(8): every option of --help
opts=$("$renewd" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u)
for o in $opts; do has renewd.8 "$o" || fail "renewd.8 lacks the option $o (renewd --help)"; done
for s in SIGHUP SIGTERM CREDENTIALS_DIRECTORY "EXIT STATUS" FILES EXAMPLES; do
  has renewd.8 "$s" || fail "renewd.8 lacks $s"
done

# renewctl(1): every command and every option of every command
cmds=$("$renewctl" --help | sed -n '/^Commands:/,/^$/p' | grep -E '^  [a-z]' | awk '{ print $1 }')
[[ -n $cmds ]] || fail "could not read the command list of renewctl --help"
n=0
for c in $cmds; do
  n=$((n + 1))
  grep -qE "^ +$c( |\$)" <<<"${text[renewctl.1]}" || fail "renewctl.1 lacks the command '$c'"
  copts=$("$renewctl" "$c" --help 2>/dev/null | grep -oE -- '--[a-z][a-z-]*' | sort -u || true)
  for o in $copts; do
    has renewctl.1 "$o" || fail "renewctl.1 lacks '$c $o' (renewctl $c --help)"
  done
done
for o in $("$renewctl" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
  has renewctl.1 "$o" || fail "renewctl.1 lacks $o (renewctl --help)"
done
for s in "EXIT STATUS" REPORT CREDENTIALS_DIRECTORY FILES EXAMPLES; do
  has renewctl.1 "$s" || fail "renewctl.1 lacks $s"
done
echo "renewctl.1: $n commands checked"

# renewd.conf(5): every key of docs/configuration.md's tables, every section
keys=$(grep -E '^\| `' "$src/docs/configuration.md" | grep -oE '`[A-Z][A-Za-z]*=`' | tr -d '`' | sort -u)
[[ -n $keys ]] || fail "no keys found in docs/configuration.md"
n=0
for k in $keys; do
  n=$((n + 1))
  has renewd.conf.5 "$k" || fail "renewd.conf.5 lacks the key $k (docs/configuration.md)"
done
for s in "[Daemon]" "[SendWindow]" "[Policy NAME]" "[Tier NAME]" "[Channel NAME]" "[Ops]" \
  Type=sink Type=smtp Type=sms Type=webhook; do
  has renewd.conf.5 "$s" || fail "renewd.conf.5 lacks $s"
done
echo "renewd.conf.5: $n keys checked"

[[ $status -eq 0 ]] && echo "PASS"
exit $status
