#!/usr/bin/env bash
# Checks that every C source and header follows the root .clang-format
# (STYLE.md: "Formatting is whatever the root .clang-format says; CI checks it").
# Usage: test-format.sh SOURCE_DIR
set -u
src=${1:?usage: test-format.sh SOURCE_DIR}
cd "$src" || exit 1
command -v clang-format >/dev/null || { echo "clang-format not installed"; exit 77; }
bad=0
while IFS= read -r f; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f (run: clang-format -i $f)"
    bad=$((bad + 1))
  fi
done < <(git ls-files '*.c' '*.h' 2>/dev/null || find core config notifiers daemon cli tests bench fuzz -name '*.[ch]')
echo "$bad file(s) not formatted"
[ "$bad" -eq 0 ]
