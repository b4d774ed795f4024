#!/usr/bin/env python3
"""renewctl outbox / outbox retry / send-test against a real store, renewd and
tests/http_receiver.py:

  1. a webhook answered 400 leaves a dead row: `outbox --state dead --json`
     shows it with its error; the table lists it
  2. `outbox retry --all-dead` makes it due again; the next renewd run sends
     it (same idempotency key, attempts 2)
  3. `send-test` sends a signed sample webhook (exit 0), reports a 503 as
     transient (exit 69), writes a sample into a sink's Maildir, and refuses
     an unknown channel (exit 78)

Usage: test-dispatch-outbox.py BUILD_DIR
"""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dispatch_harness import Env, SECRET, check, webhook_channel  # noqa: E402

BUILD = sys.argv[1]
env = Env("outbox", BUILD)
rcv = env.receiver(secrets=[SECRET], script=[{"status": 400}])
env.write_config(webhook_channel("hook", rcv.url("/hook")).replace("{secret}", env.secret_file)
                 + f"\n[Channel mail]\nType=sink\nMaildir={env.maildir}\n")
env.import_contracts(1)
env.simulate()

# 1. listing ------------------------------------------------------------------
p = env.renewctl_run("outbox", "--state", "dead", "--json")
check(p.returncode == 0, f"outbox --json exits 0 ({p.stderr})")
rows = json.loads(p.stdout)
check(len(rows) == 1 and rows[0]["status"] == "dead" and rows[0]["channel"] == "hook"
      and "HTTP 400" in rows[0]["last_error"] and rows[0]["contract_id"] == "C-0001",
      "the dead row with its error")
dead_id, key = rows[0]["id"], rows[0]["idem_key"]
p = env.renewctl_run("outbox")
check(p.returncode == 0 and "dead" in p.stdout and "C-0001" in p.stdout and "HTTP 400" in p.stdout,
      "table lists it")
p = env.renewctl_run("outbox", "--channel", "nosuch", "--json")
check(p.returncode == 0 and json.loads(p.stdout) == [], "channel filter")
p = env.renewctl_run("outbox", "retry", "12345")
check(p.returncode == 65, "retry of an unknown row: exit 65")

# 2. retry --------------------------------------------------------------------
p = env.renewctl_run("outbox", "retry", "--all-dead")
check(p.returncode == 0 and "1 row due again" in p.stdout, "retry --all-dead")
check(env.rows()[0]["status"] == "retry", "row is 'retry'")
env.simulate()
row = env.rows("id = ?", (dead_id,))[0]
check(row["status"] == "sent" and row["attempts"] == 2, "sent on the next run, second attempt")
hook = [r for r in rcv.records() if r["path"] == "/hook"]
check([r["headers"]["webhook-id"] for r in hook] == [key, key], "same webhook-id both times")

# 3. send-test ------------------------------------------------------------------
n0 = len(rcv.records())
p = env.renewctl_run("send-test", "--channel", "hook", "--to", rcv.url("/test"))
check(p.returncode == 0 and "sent" in p.stdout, f"send-test webhook: exit 0 ({p.stdout}{p.stderr})")
recs = rcv.records()[n0:]
check(len(recs) == 1 and recs[0]["path"] == "/test" and recs[0]["sig_ok"] is True,
      "one signed request reached the receiver")
check(json.loads(recs[0]["body"])["type"] == "reminder.due", "sample event body")
check(len(env.rows()) == 1, "nothing written to the outbox")
rcv.set_script([{"status": 503}])
p = env.renewctl_run("send-test", "--channel", "hook", "--to", rcv.url("/test"), "--json")
res = json.loads(p.stdout)
check(p.returncode == 69 and res["result"] == "transient" and res["status_code"] == 503,
      "503 reported as transient, exit 69")
p = env.renewctl_run("send-test", "--channel", "mail", "--to", "ops@example.com")
files = glob.glob(os.path.join(env.maildir, "new", "*"))
check(p.returncode == 0 and len(files) == 1, "send-test through the sink writes one file")
with open(files[0], encoding="utf-8") as f:
    check("<ops@example.com>" in f.read(), "... to the given address")
p = env.renewctl_run("send-test", "--channel", "nosuch", "--to", "x@example.com")
check(p.returncode == 78 and "nosuch" in p.stderr, "unknown channel: exit 78")
env.cleanup()
print("PASS")
