#!/usr/bin/env python3
"""The crash matrix, at a size that fits CI: renewd delivers N contracts'
reminders over three channels at once (SMTP to tests/smtp_server.py, signed
webhooks to tests/http_receiver.py, the Maildir sink) and is killed with
SIGKILL at random instants (during start-up, claims, transfers and commits),
restarted, killed again, ROUNDS times; then it runs to the end and stops
with SIGTERM. Afterwards:

  * PRAGMA integrity_check is "ok";
  * every row is 'sent' and every expected message (contract x channel)
    was delivered at least once;
  * a message delivered more than once always carries the same key
    (Message-ID, webhook-id) as its row: no delivery under a key that is
    not a row's, so a receiver that drops repeats sees each message once.

RENEWD_CRASH_SEED=n repeats a run; RENEWD_CRASH_N / _ROUNDS change its size.

Usage: test-dispatch-crash-matrix.py BUILD_DIR
"""
import datetime
import email
import email.policy
import glob
import os
import random
import signal
import sqlite3
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dispatch_harness import Env, SECRET, check, webhook_channel  # noqa: E402
from smtp_server import SmtpServer  # noqa: E402

BUILD = sys.argv[1]
N = int(os.environ.get("RENEWD_CRASH_N", "150"))
ROUNDS = int(os.environ.get("RENEWD_CRASH_ROUNDS", "12"))
SEED = int(os.environ.get("RENEWD_CRASH_SEED", str(int(time.time()))))
rng = random.Random(SEED)
print(f"seed {SEED}: {N} contracts x 3 channels, {ROUNDS} kills")

env = Env("crash-matrix", BUILD)
rcv = env.receiver(secrets=[SECRET], default={"hang": 0.02, "status": 204})
smtp = SmtpServer(os.path.join(env.dir, "smtp"), delay_data=0.03).start()
channels = webhook_channel("hook", rcv.url("/hook"), "MaxConcurrent=4\nRetryBase=1s\nRetryMax=2s\n")
channels = channels.replace("{secret}", env.secret_file) + f"""
[Channel mail]
Type=smtp
URL=smtp://127.0.0.1:{smtp.port}
From=Renewals <renewals@example.com>
MaxConcurrent=4
RetryBase=1s
RetryMax=2s

[Channel fb]
Type=sink
Maildir={env.maildir}
MaxConcurrent=2
"""
env.write_config(channels, channels_list="hook mail fb")
env.import_contracts(N, expires_on=(datetime.date.today() + datetime.timedelta(days=10)).isoformat())

kills = 0
t_start = time.monotonic()
for rnd in range(ROUNDS):
    p = env.start_daemon()
    time.sleep(rng.uniform(0.05, 2.0))
    p.send_signal(signal.SIGKILL)
    p.wait()
    kills += 1
    rows = env.rows()
    print(f"round {rnd + 1}: killed; rows {Counter(r['status'] for r in rows)}")

ready_before = env.log_text().count("ready: horizon loaded")
p = env.start_daemon()
t_end = time.monotonic() + 60
while env.log_text().count("ready: horizon loaded") == ready_before and time.monotonic() < t_end:
    time.sleep(0.05)
rows = env.wait_rows(lambda rs: len(rs) == 3 * N and all(r["status"] == "sent" for r in rs),
                     timeout=90, what="every row sent after the last restart")
p.send_signal(signal.SIGTERM)
check(p.wait(30) == 0, "the last run stops with exit status 0")

con = sqlite3.connect(env.db)
check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "PRAGMA integrity_check: ok")
con.close()

keys = {ch: {r["idem_key"] for r in rows if r["channel"] == ch} for ch in ("hook", "mail", "fb")}
check(all(len(k) == N for k in keys.values()), f"{N} rows per channel, all 'sent'")


def msgid_key(raw_headers):
    mid = raw_headers.get("Message-ID", "").strip()
    return mid[1:mid.index("@")] if mid.startswith("<") and "@" in mid else None


delivered = {
    "hook": [r["headers"].get("webhook-id") for r in rcv.records() if r["answered"] == 204],
    "mail": [],
    "fb": [],
}
for path in sorted(glob.glob(os.path.join(env.dir, "smtp", "msg-*.eml"))):
    with open(path, "rb") as f:
        delivered["mail"].append(msgid_key(email.message_from_binary_file(f, policy=email.policy.compat32)))
for path in sorted(glob.glob(os.path.join(env.maildir, "new", "*"))):
    with open(path, "rb") as f:
        delivered["fb"].append(msgid_key(email.message_from_binary_file(f, policy=email.policy.compat32)))

for ch, got in delivered.items():
    c = Counter(got)
    check(set(c) == keys[ch], f"{ch}: every expected message delivered at least once, and only "
          f"under its row's key ({len(got)} deliveries of {N} messages, "
          f"{sum(v - 1 for v in c.values())} repeats)")
elapsed = time.monotonic() - t_start
print(f"{kills} kills in {elapsed:.1f} s")
smtp.stop()
env.cleanup()
print("PASS")
