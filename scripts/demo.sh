#!/usr/bin/env bash
# The demo: a store with a few thousand generated contracts, the example
# reminder ladder, and every channel replaced by the sink: email into a
# Maildir (the bytes SMTP would send), SMS into sms/*.txt, webhooks into
# webhooks/*.http.
# renewd first runs on the simulated clock through the last 90 days (so you
# see three months of reminders in seconds), then carries on in real time from
# now until Ctrl-C. Everything lives in ./demo/ (delete it to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
demo=$top/demo
build=${RENEWD_BUILD_DIR:-$top/build}
mkdir -p "$demo/maildir" "$demo/renewd.conf.d"

# The config: the example ladder, pointed at the demo directory, sink only.
sed -e "s#^Database=.*#Database=$demo/renewd.db#" \
    -e "s#^Templates=.*#Templates=$top/notifiers/templates#" \
    -e "s#^Holidays=.*#Holidays=$top/config/holidays.example.ics#" \
    config/renewd.conf.example > "$demo/renewd.conf"
cat > "$demo/renewd.conf.d/50-demo.conf" <<CONF
# Demo overrides: every channel is a sink writing into $demo (maildir/, sms/, webhooks/).
CONF
# Demo secrets: a link-signing key and an API token, made once, readable by root only.
mkdir -p -m 0700 "$demo/secrets"
[ -s "$demo/secrets/link-key" ] || (umask 077; openssl rand -base64 32 > "$demo/secrets/link-key")
[ -s "$demo/secrets/api-token" ] || (umask 077; openssl rand -hex 24 > "$demo/secrets/api-token")
python3 scripts/demo-config.py "$demo/renewd.conf" "$demo/maildir" "$demo/secrets" >> "$demo/renewd.conf.d/50-demo.conf"

if [ ! -f "$demo/renewd.db" ]; then
  start=$(date -u -d '-60 days' +%F)
  python3 scripts/gen-contracts.py 3000 --start "$start" --days 240 --seed 7 > "$demo/contracts.csv"
  python3 scripts/gen-owners.py > "$demo/owners.csv"
  "$build/cli/renewctl" --config "$demo/renewd.conf" owners import "$demo/owners.csv"
  "$build/cli/renewctl" --config "$demo/renewd.conf" import "$demo/contracts.csv"
fi

from=$(date -u -d '-90 days' +%F)
until=$(date -u +%FT%TZ)
echo "== renewd on the simulated clock, $from .. $until =="
"$build/daemon/renewd" --config "$demo/renewd.conf" --log-target=console --log-level=notice \
  --simulate "$from..$until"
echo
echo "== what was sent =="
"$build/cli/renewctl" --config "$demo/renewd.conf" report --from "$from" --to "$(date -u +%F)" || true
# what the sink wrote, with a file of each kind to read (cat and more are on every machine)
written() {
  local n first
  n=$(find "$2" -maxdepth 1 -type f ! -name '.*' 2>/dev/null | wc -l)
  first=$(find "$2" -maxdepth 1 -type f ! -name '.*' 2>/dev/null | sort | sed -n 1p)
  echo "  $1 $n files in $2/${first:+   read one: cat $first}"
}
echo "What was written:"
written "email:   " "$demo/maildir/new"
written "SMS:     " "$demo/sms"
written "webhooks:" "$demo/webhooks"
echo
c=$("$build/cli/renewctl" --config "$demo/renewd.conf" list --expiring-within 30d --json | python3 -c 'import json,sys; l=json.load(sys.stdin); print(l[0]["id"] if l else "")')
echo
echo "== renewd in real time (Ctrl-C to stop) =="
if [ -n "$c" ]; then
  echo "Answer as customer $c would, in a browser: $("$build/cli/renewctl" --config "$demo/renewd.conf" link "$c" renew)"
fi
echo "The funnel, live: curl -H \"Authorization: Bearer \$(cat $demo/secrets/api-token)\" http://127.0.0.1:8787/report > report.html"
exec "$build/daemon/renewd" --config "$demo/renewd.conf" --log-target=console
