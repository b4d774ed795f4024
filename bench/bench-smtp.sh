#!/bin/sh
# bench-smtp.sh: runs bench-smtp (see bench/bench-smtp.c) from a build directory.
#
#   bench/bench-smtp.sh [BUILD_DIR] [bench-smtp options: -n 2000 -c 10 -r 3]
#
# Needs Postfix's smtp-sink and smtp-source (package postfix; installed by
# scripts/install-deps.sh). Run as root: smtp-sink is started with -u nobody.
# Prints messages/s of the dispatcher's full path, of a minimal libcurl loop
# and of smtp-source, their ratios and the share of reused connections.
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
bin="$build/bench/bench-smtp"
if [ ! -x "$bin" ]; then
    echo "bench-smtp.sh: $bin not built (cmake --build $build --target bench-smtp)" >&2
    exit 1
fi
for tool in /usr/sbin/smtp-sink /usr/sbin/smtp-source; do
    if [ ! -x "$tool" ]; then
        echo "bench-smtp.sh: $tool missing (apt-get install postfix)" >&2
        exit 77
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    echo "bench-smtp.sh: note: not root, smtp-sink runs without -u" >&2
fi
exec "$bin" "$@"
