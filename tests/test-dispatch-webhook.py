#!/usr/bin/env python3
"""Webhook delivery through the real renewd on the simulated clock, against
tests/http_receiver.py (which checks the Standard Webhooks signature itself):

  1. 500 then 2xx: one delivery, two attempts, same webhook-id, both signed
  2. 429 with Retry-After: 2: the second attempt waits exactly 2 s (the
     backoff alone would be at most 1 s: RetryBase=RetryMax=1s)
  3. the receiver hangs longer than Timeout=: the attempt times out and is
     retried
  4. 400: dead at once, the tier's Fallback= channel (the Maildir sink) gets
     the message, and an ops alert goes to [Ops] AlertChannel=
  5. BodyTemplate= renders the body, Headers= are added, and with two
     secrets in SecretFile= (rotation) a receiver knowing only the new one
     accepts the signature

Usage: test-dispatch-webhook.py BUILD_DIR
"""
import email
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dispatch_harness import Env, SECRET, check, webhook_channel  # noqa: E402

BUILD = sys.argv[1]


def run(name, script, extra="", channels_extra="", tier_extra="", ops="", n=1):
    env = Env(name, BUILD)
    rcv = env.receiver(secrets=[SECRET], script=script)
    chans = webhook_channel("hook", rcv.url("/hook"), extra).replace("{secret}", env.secret_file)
    chans += channels_extra.replace("{maildir}", env.maildir).replace("{ops_url}", rcv.url("/ops"))
    env.write_config(chans, tier_extra=tier_extra, ops=ops)
    env.import_contracts(n)
    env.simulate()
    return env, rcv


def hook_records(rcv):
    return [r for r in rcv.records() if r["path"] == "/hook"]


# 1. 500 then 200 -----------------------------------------------------------
env, rcv = run("wh-500", [{"status": 500}], "RetryBase=1s\nRetryMax=2s")
recs = hook_records(rcv)
rows = env.rows()
check(len(recs) == 2, f"500 then 204: two requests (got {len(recs)})")
check([r["answered"] for r in recs] == [500, 204], "answers were 500 then 204")
check(all(r["sig_ok"] is True for r in recs), "both requests carry a valid webhook-signature")
ids = {r["headers"]["webhook-id"] for r in recs}
check(ids == {rows[0]["idem_key"]}, "webhook-id is the outbox idempotency key on both attempts")
check(len(rows) == 1 and rows[0]["status"] == "sent" and rows[0]["attempts"] == 2,
      "one row, sent, after two attempts")
body = json.loads(recs[1]["body"])
check(body["type"] == "reminder.due" and body["data"]["contract"]["id"] == "C-0001",
      "body is a reminder.due event for the contract")
check(body["data"]["links"]["renew"].startswith("https://renew.test/r/"), "renew link uses PublicURL")
check(recs[0]["headers"]["content-type"] == "application/json", "Content-Type: application/json")
env.cleanup()

# 2. 429 with Retry-After --------------------------------------------------
env, rcv = run("wh-429", [{"status": 429, "retry_after": "2"}], "RetryBase=1s\nRetryMax=1s")
recs = hook_records(rcv)
check(len(recs) == 2 and recs[1]["answered"] == 204, "429 then 204")
t0, t1 = (int(r["headers"]["webhook-timestamp"]) for r in recs)
check(t1 - t0 == 2, f"second attempt 2 s after the first (Retry-After honoured; got {t1 - t0})")
check(env.rows()[0]["status"] == "sent", "row sent")
env.cleanup()

# 3. hang -> timeout -> retry ----------------------------------------------
env, rcv = run("wh-hang", [{"hang": 2.5, "status": 200}], "Timeout=1s\nRetryBase=1s\nRetryMax=1s")
rcv.wait_for(lambda rs: len(rs) >= 2, timeout=10)
rows = env.rows()
check(len(hook_records(rcv)) == 2, "two requests: the hung one and the retry")
check(rows[0]["status"] == "sent" and rows[0]["attempts"] == 2, "sent on the second attempt")
check("Timeout was reached" in env.last_log or "timed out" in env.last_log.lower(),
      "the first attempt failed with a timeout")
env.cleanup()

# 4. 400 -> dead + fallback + ops alert -------------------------------------
sink = """[Channel fb]
Type=sink
Maildir={maildir}

[Channel ops]
Type=webhook
URL={ops_url}
AllowPrivate=yes
"""
env, rcv = run("wh-400", [{"status": 400, "body": "{\"error\":\"bad\"}"}], channels_extra=sink,
               tier_extra="Fallback=fb", ops="[Ops]\nAlertChannel=ops\n")
rows = env.rows()
hook = [r for r in rows if r["channel"] == "hook"]
fb = [r for r in rows if r["channel"] == "fb"]
alert = [r for r in rows if r["tier"] == "ops-alert"]
check(len(hook) == 1 and hook[0]["status"] == "dead" and hook[0]["attempts"] == 1,
      "400 is permanent: dead after one attempt")
check("HTTP 400" in (hook[0]["last_error"] or ""), "last_error names the status")
check(len(fb) == 1 and fb[0]["status"] == "sent" and fb[0]["tier"] == "notice"
      and fb[0]["recipient"] == "customer1@example.com", "fallback row on the sink, sent to the customer's email")
files = glob.glob(os.path.join(env.maildir, "new", "*"))
check(len(files) == 1, "one message in the Maildir")
with open(files[0], "rb") as f:
    msg = email.message_from_binary_file(f)
check(msg["X-Renewd-Channel"] == "fb" and msg["X-Renewd-Tier"] == "notice", "it is the fallback message")
check(len(alert) == 1 and alert[0]["status"] == "sent" and alert[0]["step"] == hook[0]["id"],
      "one ops alert row, sent, referring to the dead row")
ops_recs = [r for r in rcv.records() if r["path"] == "/ops"]
check(len(ops_recs) == 1, "the ops webhook got one request")
ev = json.loads(ops_recs[0]["body"])
check(ev["type"] == "delivery.failed" and ev["data"]["alert"]["reminder_id"] == hook[0]["id"]
      and ev["data"]["alert"]["channel"] == "hook", "ops alert names the dead row and channel")
check("falling back" in env.last_log, "the fallback is logged")
env.cleanup()

# 5. BodyTemplate=, Headers=, secret rotation ----------------------------------------
NEW_SECRET = "whsec_" + __import__("base64").b64encode(b"0123456789abcdef0123456789abcdef").decode()
env = Env("wh-body", BUILD)
rcv = env.receiver(secrets=[NEW_SECRET])
os.makedirs(os.path.join(env.dir, "templates", "en"))
with open(os.path.join(env.dir, "templates", "en", "chat.body.mustache"), "w") as f:
    f.write('{"who": {{{json.customer_name}}}, "contract": {{{json.contract_id}}}, "renew": "{{links.renew}}"}\n')
with open(env.secret_file, "w") as f:
    f.write(SECRET + " " + NEW_SECRET + "\n")
env.write_config(webhook_channel("hook", rcv.url("/hook"), "BodyTemplate=chat\nHeaders=X-Extra: 1\n"
                                 "ContentType=application/vnd.chat+json")
                 .replace("{secret}", env.secret_file))
env.import_contracts(1, customize=lambda i, row: row.__setitem__(2, 'Ada "The Countess" Lovelace'))
env.simulate()
recs = hook_records(rcv)
check(len(recs) == 1 and recs[0]["answered"] == 204, "one request, accepted")
body = json.loads(recs[0]["body"])
check(body["who"] == 'Ada "The Countess" Lovelace' and body["contract"] == "C-0001"
      and body["renew"].startswith("https://renew.test/r/"), "BodyTemplate= rendered valid JSON (quotes escaped)")
check(recs[0]["headers"]["content-type"] == "application/vnd.chat+json", "ContentType=")
check(recs[0]["headers"].get("x-extra") == "1", "Headers=")
check(len(recs[0]["headers"]["webhook-signature"].split(" ")) == 2, "two signatures (rotation)")
check(recs[0]["sig_ok"] is True, "the receiver knowing only the new secret accepts it")
env.cleanup()
print("PASS")
