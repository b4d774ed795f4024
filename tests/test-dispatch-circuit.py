#!/usr/bin/env python3
"""Circuit breaker, real time: the webhook receiver is down when renewd starts.
After FailureThreshold= transient failures the channel pauses (circuit open)
and is probed every ProbeInterval= (doubling); once the receiver is up a probe
succeeds, the circuit closes and every reminder is delivered: nothing lost,
nothing dead, and no attempts burned while the channel was paused.

Usage: test-dispatch-circuit.py BUILD_DIR
"""
import datetime
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dispatch_harness import Env, SECRET, check, free_port, webhook_channel  # noqa: E402

BUILD = sys.argv[1]
N = 6
THRESHOLD = 3
CONCURRENT = 2

env = Env("circuit", BUILD)
port = free_port()
url = f"http://127.0.0.1:{port}/hook"
env.write_config(webhook_channel("hook", url, f"""FailureThreshold={THRESHOLD}
ProbeInterval=1s
RetryBase=1s
RetryMax=1s
MaxAttempts=100
MaxConcurrent={CONCURRENT}
ConnectTimeout=2s""").replace("{secret}", env.secret_file))
# expiring in 10 days: the notice (-P30D) was due 20 days ago -> catch-up now
env.import_contracts(N, expires_on=(datetime.date.today() + datetime.timedelta(days=10)).isoformat())
env.start_daemon()
env.wait_log("circuit open", timeout=120)  # generous: CI runs sanitizer builds in parallel
rcv = env.receiver(port=port, secrets=[SECRET])
rows = env.wait_rows(lambda rs: len(rs) == N and all(r["status"] == "sent" for r in rs),
                     timeout=120, what="all rows sent")
env.wait_log("circuit closed", timeout=30)
log = env.log_text()
recs = [r for r in rcv.records() if r["answered"] == 204]
keys = {r["idem_key"] for r in rows}
check({r["headers"]["webhook-id"] for r in recs} == keys, f"all {N} reminders delivered")
check(len(recs) == N, "each exactly once")
check(all(r["sig_ok"] for r in recs), "all signed")
failed = len(re.findall(r"send failed", log))
probes_failed = len(re.findall(r"probe failed", log))
total = sum(r["attempts"] for r in rows)
check(total == N + failed, f"attempts = deliveries + logged failures ({total} = {N} + {failed})")
check(failed <= THRESHOLD + CONCURRENT + probes_failed,
      f"no attempts burned while paused: {failed} failures <= threshold {THRESHOLD} + "
      f"in flight {CONCURRENT} + failed probes {probes_failed}")
check(not env.rows("status = 'dead'"), "no dead letters")
env.cleanup()
print("PASS")
