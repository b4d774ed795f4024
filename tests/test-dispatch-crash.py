#!/usr/bin/env python3
"""Crash safety, real time: renewd is killed with SIGKILL while webhook
transfers are in flight (the receiver holds them open). After a restart
every reminder is delivered; the requests that may have been duplicated by
the crash carry the same webhook-id as the first attempt, so the receiver can
drop them (docs/delivery.md).

Usage: test-dispatch-crash.py BUILD_DIR
"""
import datetime
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dispatch_harness import Env, SECRET, check, webhook_channel  # noqa: E402

BUILD = sys.argv[1]
N = 6
CONCURRENT = 4

env = Env("crash", BUILD)
rcv = env.receiver(secrets=[SECRET], default={"hang": 15, "status": 204})
env.write_config(webhook_channel("hook", rcv.url("/hook"), f"""MaxConcurrent={CONCURRENT}
Timeout=60s
RetryBase=1s
RetryMax=1s""").replace("{secret}", env.secret_file))
env.import_contracts(N, expires_on=(datetime.date.today() + datetime.timedelta(days=10)).isoformat())
p = env.start_daemon()
# wait until CONCURRENT requests are held open by the receiver ...
t_end = time.monotonic() + 30
while time.monotonic() < t_end:
    rows = env.rows()
    if (len(rows) == N and sum(r["status"] == "sending" for r in rows) == CONCURRENT
            and len(rcv.records()) == CONCURRENT):
        break
    time.sleep(0.05)
rows = env.rows()
sending = {r["idem_key"] for r in rows if r["status"] == "sending"}
check(len(sending) == CONCURRENT, f"{CONCURRENT} rows in 'sending' (in flight) before the kill")
check({r["headers"]["webhook-id"] for r in rcv.records()} == sending,
      "... and their requests are held open by the receiver")
check(not any(r["status"] == "sent" for r in rows), "nothing committed as sent yet")
# ... and kill renewd without a chance to clean up
p.send_signal(signal.SIGKILL)
p.wait()
rcv.set_script([], default={"status": 204})
env.start_daemon()
rows = env.wait_rows(lambda rs: len(rs) == N and all(r["status"] == "sent" for r in rs),
                     timeout=30, what="all rows sent after the restart")
env.wait_log("were being sent when renewd stopped", timeout=5)
recs = rcv.records()
keys = {r["idem_key"] for r in rows}
ids = [r["headers"]["webhook-id"] for r in recs]
check(set(ids) == keys, f"every one of the {N} reminders reached the receiver")
check(sum(1 for r in recs if r["answered"] == 204) >= N, "each was answered 2xx at least once")
dups = {i for i in ids if ids.count(i) > 1}
check(dups == sending, "exactly the rows in flight at the crash were sent twice (at-least-once)")
check(all(ids.count(i) == 2 for i in dups), "... twice, under the same webhook-id")
check(all(r["sig_ok"] for r in recs), "every request (duplicates included) validly signed")
check(all(r["attempts"] == (2 if r["idem_key"] in sending else 1) for r in rows),
      "attempts: 2 for the interrupted rows, 1 for the others")
env.cleanup()
print("PASS")
