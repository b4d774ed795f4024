#!/usr/bin/env bash
# Integration test of `renewctl report --html FILE`: the page for the known
# fixture store (test-report --make-fixture) and for an empty period must
#  - pass HTML Tidy with neither errors nor warnings (tidy -e -q),
#  - be self-contained: no scripts, no external resources (src=, href=, url(),
#    @import), inline CSS and SVG only,
#  - carry the text alternatives (every <svg> has role="img", a <title> and a
#    <desc>; the figures are also in tables),
#  - render in headless Chromium; the screenshots are kept as test artifacts:
#    ARTIFACT_DIR/report.png and ARTIFACT_DIR/report-empty.png (1200x1600).
#
# Usage: test-report-html.sh RENEWCTL TEST_REPORT_BINARY ARTIFACT_DIR
# Exit status: 0 pass, 1 fail.
set -euo pipefail

renewctl=${1:?usage: test-report-html.sh RENEWCTL TEST_REPORT ARTIFACT_DIR}
fixture=${2:?usage: test-report-html.sh RENEWCTL TEST_REPORT ARTIFACT_DIR}
artifacts=${3:?usage: test-report-html.sh RENEWCTL TEST_REPORT ARTIFACT_DIR}
chromium=${CHROMIUM:-/usr/bin/chromium}

fail() { echo "FAIL: $*"; exit 1; }
command -v tidy >/dev/null || fail "tidy is not installed (scripts/install-deps.sh installs it)"
[[ -x $chromium ]] || fail "$chromium is not installed (scripts/install-deps.sh installs it)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$artifacts"
"$fixture" --make-fixture "$tmp/renewd.db"

# A PNG's width and height from its IHDR chunk.
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%dx%d", $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8 }'; }

check_page() { # NAME FROM TO
  local name=$1 page="$tmp/$1.html" png="$artifacts/$1.png"
  "$renewctl" --db "$tmp/renewd.db" report --from "$2" --to "$3" --html "$page"
  [[ -s $page ]] || fail "$name: renewctl wrote no page"

  echo "== tidy -e -q $name.html"
  local out rc=0
  out=$(tidy -e -q "$page" 2>&1) || rc=$?
  [[ $rc -eq 0 && -z $out ]] || { printf '%s\n' "$out"; fail "$name: tidy reported problems (exit $rc)"; }

  echo "== self-contained, accessible"
  if grep -nE '<script|<link|<img|<iframe| src=| href=|url\(|@import' "$page"; then
    fail "$name: the page refers to something outside itself"
  fi
  local svgs titles descs
  svgs=$(grep -c '<svg ' "$page" || true)
  titles=$(grep -cE '<svg role="img"[^>]*>$' "$page" || true)
  descs=$(grep -c '<desc>' "$page" || true)
  [[ $svgs -eq $titles ]] || fail "$name: $svgs <svg> but $titles with role=img"
  awk '/<svg /{ s = 1; next } s { if ($0 !~ /^<title>[^<]+<\/title>$/) bad++; s = 0 } END { exit bad > 0 }' \
    "$page" || fail "$name: an <svg> whose first child is not a <title>"
  [[ $svgs -eq $descs ]] || fail "$name: $svgs <svg> but $descs <desc>"
  grep -q '<html lang="en">' "$page" || fail "$name: no lang attribute"

  echo "== chromium screenshot -> $png"
  rm -f "$png"
  timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$tmp/chromium-$name" --screenshot="$png" --window-size=1200,1600 \
    "file://$page" >"$tmp/chromium-$name.log" 2>&1 || {
    cat "$tmp/chromium-$name.log"
    fail "$name: chromium failed"
  }
  [[ -s $png ]] || { cat "$tmp/chromium-$name.log"; fail "$name: no screenshot"; }
  local size
  size=$(png_size "$png")
  [[ $size == 1200x1600 ]] || fail "$name: screenshot is $size, expected 1200x1600"
  echo "$name: $(wc -c <"$page") bytes of HTML, $svgs charts, screenshot $png ($size)"
}

check_page report 2027-03-01 2027-03-31
# the page must say which figures it shows
grep -q '<div class="v">40.00%</div>' "$tmp/report.html" || fail "report: renewal rate card missing"
grep -q 'Renewal rate by tier' "$tmp/report.html" || fail "report: tier chart missing"
grep -q 'Weekly trend' "$tmp/report.html" || fail "report: trend chart missing"
check_page report-empty 2030-01-01 2030-01-31
grep -q 'No terms expired in this period' "$tmp/report-empty.html" || fail "empty: no empty-state text"
echo "PASS"
