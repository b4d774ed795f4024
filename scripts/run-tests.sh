#!/usr/bin/env bash
# Sets up and runs the whole test suite: installs the Debian packages, builds
#   build/       gcc, the normal tree,
#   build-asan/  gcc, AddressSanitizer + UndefinedBehaviorSanitizer,
#   build-fuzz/  clang, the whole tree with ASan + UBSan and the libFuzzer
#                targets of fuzz/ (so clang's warnings are checked too),
# all three with -Werror (RENEWD_WERROR=ON), runs ctest in the first two and
# each fuzz target for RENEWD_FUZZ_SECONDS (20 s) in the third.
# Safe to run again: packages and builds are incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRENEWD_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRENEWD_SANITIZE=ON -DRENEWD_BENCH=OFF -DRENEWD_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRENEWD_FUZZ=ON -DRENEWD_WERROR=ON >/dev/null
cmake --build build-fuzz -j"$jobs"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
echo "== ctest (normal build) =="
(cd build && ctest --output-on-failure -j"$jobs" --timeout 600) || status=1
echo "== ctest (AddressSanitizer + UndefinedBehaviorSanitizer build) =="
(cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 900) || status=1
echo "== fuzz targets (clang, libFuzzer; docs/fuzzing.md) =="
(cd build-fuzz && ctest -L fuzz --output-on-failure -j"$jobs") || status=1
exit $status
