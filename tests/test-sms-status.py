#!/usr/bin/env python3
"""Twilio delivery receipts through the real renewd and its HTTP listener:

  1. an SMS sent through the Twilio preset (to tests/http_receiver.py) carries
     StatusCallback = PublicURL + /sms/status
  2. POST /sms/status signed the way Twilio signs (base64 HMAC-SHA1 over the
     URL and the sorted parameters): "delivered" is recorded on the row whose
     provider id is the MessageSid
  3. a later "sent" (out of order) does not regress it; "undelivered" with an
     ErrorCode (same rank) replaces it
  4. a bad signature is 403 and records nothing
  5. an unknown MessageSid is 200 and changes nothing (Twilio retries otherwise)
  6. renewctl history and GET /api/v1/contracts/ID show the receipt

Usage: test-sms-status.py RENEWD RENEWCTL
"""
import json
import os
import subprocess
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import httptestlib  # noqa: E402
from http_receiver import Receiver  # noqa: E402
from httptestlib import SMS_TOKEN, Daemon, day, twilio_signature  # noqa: E402
from itestlib import check, main_wrapper, wait_for  # noqa: E402

CONTRACTS = [
    dict(contract_id="C-1", customer_id="K-1", customer_name="Ada Example", email="ada@example.com",
         phone="+4930100001", timezone="UTC", locale="en", segment="smb", owner="O-1",
         product="Support Plan", expires_on=day(20), value="100.00", currency="EUR"),
]
OWNERS = [dict(id="O-1", name="Olivia Owner", email="olivia@example.com", timezone="UTC")]


def callback(d, params, token=SMS_TOKEN):
    sig = twilio_signature(token, d.base + "/sms/status", params)
    return d.request("POST", "/sms/status", urllib.parse.urlencode(params),
                     {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig})


def receipt(sid, status, code=None):
    p = [("MessageSid", sid), ("SmsSid", sid), ("AccountSid", "AC0"), ("From", "+15005550006"),
         ("To", "+4930100001"), ("MessageStatus", status), ("SmsStatus", status), ("ApiVersion", "2010-04-01")]
    if code:
        p.append(("ErrorCode", code))
    return p


def row(d):
    out = d.sql("SELECT provider_id, status, coalesce(delivery_status,''), coalesce(delivery_error,''), "
                "coalesce(delivery_at,0) FROM reminders WHERE channel = 'sms';")
    pid, st, ds, de, da = out.split("|")
    return {"provider_id": pid, "status": st, "delivery": ds, "error": de, "at": int(da)}


def body(wd):
    renewd, renewctl = sys.argv[1], sys.argv[2]
    rcv = Receiver(twilio=True).start()
    # the fixture's configuration, with the first tier by SMS to the receiver
    httptestlib.CONFIG = (httptestlib.CONFIG
                          .replace("URL=http://127.0.0.1:9/2010-04-01", "URL=" + rcv.url("/2010-04-01"))
                          .replace("Offset=-P60D\nChannels=email", "Offset=-P60D\nChannels=sms"))
    d = Daemon(wd, renewd, renewctl, CONTRACTS, OWNERS)
    try:
        d.quiesce()
        wait_for(lambda: len(rcv.records()) >= 1, 30 * d.slow, 0.1, "the SMS at the receiver")
        recs = [r for r in rcv.records() if r["method"] == "POST"]
        check(len(recs) == 1, f"one SMS sent (got {len(recs)})")
        form = recs[0]["form"]
        check(form.get("StatusCallback") == d.base + "/sms/status",
              f"StatusCallback = PublicURL/sms/status (got {form.get('StatusCallback')!r})")
        r0 = row(d)
        check(r0["status"] == "sent" and r0["provider_id"].startswith("SM") and r0["delivery"] == "",
              f"row sent with the provider's sid, no receipt yet: {r0}")
        sid = r0["provider_id"]

        # 4. bad signature first: nothing recorded
        bad = callback(d, receipt(sid, "delivered"), token="not-the-token")
        check(bad.status == 403, f"bad signature: 403 (got {bad.status})")
        params = receipt(sid, "delivered")
        sig = twilio_signature(SMS_TOKEN, d.base + "/sms/status", params)
        tampered = [(k, "failed" if k == "MessageStatus" else v) for k, v in params]
        r = d.request("POST", "/sms/status", urllib.parse.urlencode(tampered),
                      {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig})
        check(r.status == 403, f"tampered parameters: 403 (got {r.status})")
        r = d.request("POST", "/sms/status", urllib.parse.urlencode(params),
                      {"Content-Type": "application/x-www-form-urlencoded"})
        check(r.status == 403, f"no signature: 403 (got {r.status})")
        check(row(d)["delivery"] == "", "refused callbacks recorded nothing")

        # 2. delivered
        r = callback(d, receipt(sid, "queued"))
        check(r.status == 200 and row(d)["delivery"] == "queued", f"queued recorded ({r.status}, {row(d)})")
        r = callback(d, receipt(sid, "delivered"))
        got = row(d)
        check(r.status == 200 and got["delivery"] == "delivered" and got["at"] > 0,
              f"delivered recorded ({r.status}, {got})")
        check(got["status"] == "sent", "the outbox status stays sent")

        # 3. out of order
        r = callback(d, receipt(sid, "sent"))
        check(r.status == 200 and row(d)["delivery"] == "delivered", f"a late 'sent' does not regress: {row(d)}")
        r = callback(d, receipt(sid, "queued"))
        check(r.status == 200 and row(d)["delivery"] == "delivered", "a late 'queued' does not regress")
        r = callback(d, receipt(sid, "read"))
        check(r.status == 200 and row(d)["delivery"] == "delivered", "an unranked status is ignored (200)")

        # 5. unknown MessageSid
        before = d.sql("SELECT * FROM reminders ORDER BY id;")
        r = callback(d, receipt("SM" + "f" * 32, "undelivered", "30003"))
        check(r.status == 200, f"unknown MessageSid: 200 (got {r.status})")
        check(d.sql("SELECT * FROM reminders ORDER BY id;") == before, "unknown MessageSid changed nothing")

        # same rank: the later final status is kept, with its error code
        r = callback(d, receipt(sid, "undelivered", "30003"))
        got = row(d)
        check(r.status == 200 and got["delivery"] == "undelivered" and got["error"] == "30003",
              f"undelivered with ErrorCode recorded: {got}")

        # 6. history
        p = subprocess.run([renewctl, "--db", d.db, "--config", d.conf, "history", "C-1"],
                           capture_output=True, text=True)
        check(p.returncode == 0 and "provider reports undelivered error 30003" in p.stdout,
              f"renewctl history shows the receipt:\n{p.stdout}{p.stderr}")
        p = subprocess.run([renewctl, "--db", d.db, "--config", d.conf, "history", "C-1", "--json"],
                           capture_output=True, text=True)
        items = [i for i in json.loads(p.stdout)["items"] if i.get("type") == "delivery"]
        check(any(i.get("delivery_status") == "undelivered" and i.get("delivery_error") == "30003"
                  and i.get("delivery_at") for i in items), f"history --json: {items}")
        r = d.api("GET", "/contracts/C-1")
        rems = r.json()["history"]["reminders"]
        check(r.status == 200 and any(m.get("delivery_status") == "undelivered"
                                      and m.get("delivery_error") == "30003" and m.get("delivery_at")
                                      for m in rems), f"API history shows the receipt: {rems}")
    finally:
        d.stop()
        rcv.stop()


if __name__ == "__main__":
    sys.exit(main_wrapper("test-sms-status", body))
