#!/usr/bin/env python3
"""SMS delivery through the real renewd on the simulated clock:

  1. Provider=twilio: form POST To/From/Body with HTTP basic auth
     (AccountSID:token read from AuthTokenFile=, checked by the receiver),
     I-Twilio-Idempotency-Token = the outbox key, OptOutFooter= appended,
     provider id = the answer's "sid"
  2. Provider=generic: BodyTemplate= renders the JSON body, Headers= added,
     SuccessStatus=202 and MessageIdPath=result.id
  3. a tier whose SMS text exceeds MaxSegments= is a config error
     (renewd --check-config exits 78 naming the tier)

Usage: test-dispatch-sms.py BUILD_DIR
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dispatch_harness import Env, check  # noqa: E402

BUILD = sys.argv[1]

# 1. Twilio ----------------------------------------------------------------
env = Env("sms-twilio", BUILD)
rcv = env.receiver(basic="AC123:tw-token-123", twilio=True)
env.write_config(f"""[Channel sms]
Type=sms
Provider=twilio
URL={rcv.url('/2010-04-01/Accounts/AC123/Messages.json')}
From=+15005550006
AccountSID=AC123
AuthTokenFile={env.token_file}
OptOutFooter=Reply STOP to opt out
""", channels_list="sms")
env.import_contracts(2)
env.simulate()
recs = rcv.records()
rows = env.rows()
check(len(recs) == 2 and all(r["answered"] == 201 for r in recs), "two SMS accepted (201)")
check(all(r["auth_ok"] is True for r in recs), "basic auth AccountSID:token correct")
by_to = {r["form"]["To"]: r for r in recs}
check(set(by_to) == {"+4915112345001", "+4915112345002"}, "To = the customers' numbers")
r1 = by_to["+4915112345001"]
check(r1["form"]["From"] == "+15005550006", "From = From=")
check(r1["form"]["Body"].endswith("\nReply STOP to opt out"), "OptOutFooter= appended")
check("Cloud Backup" in r1["form"]["Body"] and "https://renew.test/r/" in r1["form"]["Body"],
      "body is the rendered SMS text with the renew link")
keys = {r["idem_key"] for r in rows}
check({r["headers"]["i-twilio-idempotency-token"] for r in recs} == keys,
      "I-Twilio-Idempotency-Token = outbox key")
check(all(r["status"] == "sent" and r["provider_id"].startswith("SM") for r in rows),
      "rows sent with Twilio's sid as provider id")
check("tw-token-123" not in env.log_text(), "the token is never logged")
env.cleanup()

# 2. generic ----------------------------------------------------------------
env = Env("sms-generic", BUILD)
rcv = env.receiver(default={"status": 202, "body": json.dumps({"result": {"id": "gen-1"}})})
os.makedirs(os.path.join(env.dir, "templates", "en"))
with open(os.path.join(env.dir, "templates", "en", "gensms.body.mustache"), "w") as f:
    f.write('{"msisdn": {{{to_json}}}, "text": {{{body_json}}}, "sender": {{{from_json}}}}\n')
env.write_config(f"""[Channel sms]
Type=sms
Provider=generic
URL={rcv.url('/send')}
From=Renewals
BodyTemplate=gensms
Headers=Authorization: Bearer abc
Headers=X-Test: 1
SuccessStatus=202
MessageIdPath=result.id
""", channels_list="sms")
env.import_contracts(1)
env.simulate()
recs = rcv.records()
rows = env.rows()
check(len(recs) == 1, "one request")
body = json.loads(recs[0]["body"])
check(body["msisdn"] == "+4915112345001" and body["sender"] == "Renewals" and "Cloud Backup" in body["text"],
      "BodyTemplate= rendered the JSON body")
check(recs[0]["headers"].get("authorization") == "Bearer abc" and recs[0]["headers"].get("x-test") == "1",
      "Headers= sent (repeatable key)")
check(rows[0]["status"] == "sent" and rows[0]["provider_id"] == "gen-1",
      "202 accepted; provider id from MessageIdPath=")
env.cleanup()

# 3. MaxSegments at check time ---------------------------------------------------
env = Env("sms-segments", BUILD)
os.makedirs(os.path.join(env.dir, "templates", "en"))
with open(os.path.join(env.dir, "templates", "en", "notice.sms.mustache"), "w") as f:
    f.write("Dear {{customer.name}}, " + "your contract is about to expire and we would love to keep you. " * 4
            + "Renew: {{links.renew}}\n")
env.write_config(f"""[Channel sms]
Type=sms
URL=http://127.0.0.1:9/x
From=+15005550006
AccountSID=AC123
AuthTokenFile={env.token_file}
MaxSegments=2
""", channels_list="sms")
p = subprocess.run([env.renewd, "--config", env.conf, "--check-config"], capture_output=True, text=True)
check(p.returncode == 78, f"--check-config exits 78 (got {p.returncode})")
check("tier 'notice'" in p.stderr and "segments" in p.stderr and "MaxSegments=2" in p.stderr,
      "the error names the tier and the segment count")
check(f"{env.conf}:" in p.stderr, "reported as file:line")
env.cleanup()
print("PASS")
