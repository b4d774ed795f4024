#!/usr/bin/env python3
"""Suppressions by address, through the real renewd in real time, with a real
HTTP receiver standing in for Twilio and a Maildir for email:

  1. two customers share a phone number; STOP from it, signed as Twilio signs,
     suppresses the number: neither customer's SMS goes out (both rows end
     `skipped` with the reason), a third customer's does; `renewctl show`
     lists the suppression for both customers; STOP from a number nobody has
     is recorded too;
  2. the RFC 8058 one-click unsubscribe of one customer's email suppresses
     the address for the other customer who has it;
  3. START lifts the number's suppression: the next reminders reach both
     customers by SMS; the email address stays suppressed; the API and
     `renewctl suppressions list` show what is left; `renewctl suppressions
     remove` lifts it with a reason kept in the event log;
  4. a reload whose link key cannot be read is rejected, and the running
     configuration keeps working (links verify, /healthz answers); without
     LinkKeyFile= renewd does not start (exit 78, file:line).

Usage: test-suppress.py RENEWD RENEWCTL
"""
import csv
import datetime
import email
import email.policy
import glob
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_receiver import Receiver  # noqa: E402
from httptestlib import twilio_signature  # noqa: E402
from itestlib import (TestFailure, check, free_port, main_wrapper, run, sanitized_slowdown,  # noqa: E402
                      sql, wait_for, write, write_link_key)

SMS_TOKEN = "twilio-auth-token-suppress-0123456789"
API_TOKEN = "api-token-suppress-0123456789abcdef"
SHARED_PHONE = "+4915112340001"
OTHER_PHONE = "+4915112340002"
SHARED_EMAIL = "shared@example.com"

CONFIG = """\
[Daemon]
Database={db}
Listen=127.0.0.1:{port}
PublicURL=http://127.0.0.1:{port}
TimeZone=UTC
ChangePollInterval=1s
LinkKeyFile={link_key}
ApiTokenFile={wd}/api.tokens

[SendWindow]
Hours=00:00-24:00
Days=Mon..Sun

[Policy all]
Segments=*
CatchUp=latest
Tiers=notice

[Tier notice]
Offset=-P60D
Channels=sms email

[Channel sms]
Type=sms
Provider=twilio
URL={sms_url}
From=+15005550006
AccountSID=AC0
AuthTokenFile={wd}/sms.token

[Channel email]
Type=sink
Maildir={wd}/maildir
From=Renewals <renewals@example.com>
"""

COLS = ["contract_id", "customer_id", "customer_name", "email", "phone", "timezone", "locale",
        "segment", "owner", "product", "starts_on", "expires_on", "value", "currency"]
CUSTOMERS = [  # contract, customer, email, phone
    ("C-A", "K-A", SHARED_EMAIL, SHARED_PHONE),
    ("C-B", "K-B", "b@example.com", SHARED_PHONE),
    ("C-C", "K-C", SHARED_EMAIL.upper(), OTHER_PHONE),
]


class Loop:
    def __init__(self, wd, renewd, renewctl):
        self.wd, self.renewctl = wd, renewctl
        self.slow = sanitized_slowdown()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db, self.conf = wd("renewd.db"), wd("renewd.conf")
        self.link_key = write_link_key(wd)
        write(wd("sms.token"), SMS_TOKEN + "\n")
        write(wd("api.tokens"), API_TOKEN + "\n")
        self.rcv = Receiver(basic=f"AC0:{SMS_TOKEN}", twilio=True).start()
        write(self.conf, CONFIG.format(db=self.db, port=self.port, wd=wd.path, link_key=self.link_key,
                                       sms_url=self.rcv.url("/2010-04-01/Accounts/AC0/Messages.json")))
        self.imports = 0
        self.import_all(200)  # nothing due yet
        self.log = open(wd("renewd.log"), "w+", encoding="utf-8")
        self.proc = subprocess.Popen([renewd, "--config", self.conf, "--log-target", "console",
                                      "--log-level", "debug"], stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: "ready: horizon loaded" in self.log_text(), 30 * self.slow, 0.1,
                     "renewd's readiness")
        except TestFailure:
            raise TestFailure(f"renewd did not come up:\n{self.log_text()}")

    def import_all(self, days):
        """(Re)imports the three contracts expiring in `days` days: a moved
        expiry starts a new term, whose notice (60 days before) is then due."""
        self.imports += 1
        path = self.wd(f"contracts-{self.imports}.csv")
        expires = (datetime.date.today() + datetime.timedelta(days=days)).isoformat()
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(COLS)
            for cid, kid, mail, phone in CUSTOMERS:
                w.writerow([cid, kid, f"Customer {kid}", mail, phone, "UTC", "en", "smb", "",
                            "Cloud Backup", "", expires, "100.00", "EUR"])
        run([self.renewctl, "--db", self.db, "--config", self.conf, "import", path])

    def log_text(self):
        self.log.flush()
        with open(self.wd("renewd.log"), encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30 * self.slow)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.rcv.stop()

    def request(self, method, path, body=None, headers=None):
        if path.startswith("http://"):
            u = urllib.parse.urlsplit(path)
            path = u.path + (("?" + u.query) if u.query else "")
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30 * self.slow)
        try:
            c.request(method, path, body=body.encode() if isinstance(body, str) else body,
                      headers=headers or {})
            r = c.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            c.close()

    def sms(self, sender, text, sid):
        params = [("From", sender), ("To", "+15005550006"), ("Body", text), ("MessageSid", sid),
                  ("AccountSid", "AC0"), ("NumMedia", "0")]
        sig = twilio_signature(SMS_TOKEN, self.base + "/sms/inbound", params)
        return self.request("POST", "/sms/inbound", urllib.parse.urlencode(params),
                            {"Content-Type": "application/x-www-form-urlencoded",
                             "X-Twilio-Signature": sig})

    def sql(self, q):
        return sql(self.db, q).strip()

    def rows(self, term):
        """{(contract, channel): (status, last_error)} of a term's outbox rows."""
        out = self.sql(f"SELECT contract_id, channel, status, coalesce(last_error, '') FROM reminders "
                       f"WHERE term = {term} AND audience = 'customer';")
        return {(c, ch): (st, err) for c, ch, st, err in (line.split("|", 3) for line in out.splitlines())}

    def settled(self, term, n):
        rows = self.rows(term)
        return len(rows) == n and all(st in ("sent", "skipped", "dead") for st, _ in rows.values())

    def mails(self):
        out = []
        for p in sorted(glob.glob(self.wd("maildir", "new", "*"))):
            with open(p, "rb") as f:
                out.append(email.message_from_binary_file(f, policy=email.policy.default))
        return out

    def renewctl_json(self, *args):
        p = run([self.renewctl, "--db", self.db, "--config", self.conf, "--json", *args])
        return json.loads(p.stdout)


def stop_shared_number(L):
    status, text = L.sms(SHARED_PHONE, "STOP", "SM00000000000000000000000000000001")
    check(status == 200 and "unsubscribed" in text, f"STOP: {status} {text}")
    check(L.sql(f"SELECT reason || ' ' || source FROM suppressions WHERE kind = 'sms' "
                f"AND address = '{SHARED_PHONE}';") == "stop sms-inbound", "the shared number is suppressed")
    # a number nobody has: carriers block it all the same
    status, text = L.sms("+4915199999999", "stop", "SM00000000000000000000000000000002")
    check(status == 200 and "unsubscribed" in text, f"STOP from an unknown number: {status} {text}")

    L.import_all(30)  # term 2: the notice is due now, for all three
    wait_for(lambda: L.settled(2, 6), 60 * L.slow, 0.2, "term 2's six rows to settle")
    rows = L.rows(2)
    for cid in ("C-A", "C-B"):
        st, err = rows[(cid, "sms")]
        check(st == "skipped" and f"{SHARED_PHONE} is suppressed (stop, source sms-inbound" in err,
              f"{cid}'s SMS to the shared number: {st} {err}")
    check(rows[("C-C", "sms")][0] == "sent", f"C-C's SMS: {rows[('C-C', 'sms')]}")
    check(all(rows[(c, "email")][0] == "sent" for c in ("C-A", "C-B", "C-C")), f"term 2 emails: {rows}")
    to = sorted(r["form"]["To"] for r in L.rcv.records())
    check(to == [OTHER_PHONE], f"SMS requests reached {to}")
    for cid in ("C-A", "C-B"):
        j = L.renewctl_json("show", cid)
        cu = j["customer"]
        check(cu["optout"] == ["sms"] and [(s["kind"], s["address"], s["reason"]) for s in cu["suppressions"]]
              == [("sms", SHARED_PHONE, "stop")], f"renewctl show {cid}: {cu}")
    text = run([L.renewctl, "--db", L.db, "--config", L.conf, "show", "C-B"]).stdout
    check(re.search(rf"Suppressed +sms \{SHARED_PHONE}: stop \(sms-inbound, ", text),
          f"renewctl show C-B (text) lists no suppression:\n{text}")


def unsubscribe_shared_email(L):
    mail = [m for m in L.mails() if m["X-Renewd-Contract"] == "C-A"]
    check(len(mail) == 1, f"one email for C-A, got {len(mail)}")
    unsub = re.search(r"<(http[^>]+)>", str(mail[0]["List-Unsubscribe"])).group(1)
    check("/u/v1." in unsub, f"a signed unsubscribe link: {unsub}")
    status, _ = L.request("POST", unsub, "List-Unsubscribe=One-Click",
                          {"Content-Type": "application/x-www-form-urlencoded"})
    check(status == 200, f"one-click unsubscribe: {status}")
    check(L.sql(f"SELECT reason || ' ' || source FROM suppressions WHERE kind = 'email';")
          == "unsubscribe link", "the shared email address is suppressed")
    j = L.renewctl_json("show", "C-C")  # the other customer with that address
    check("email" in j["customer"]["optout"], f"C-C (same address) not shown as opted out: {j['customer']}")


def start_again(L):
    status, text = L.sms(SHARED_PHONE, "START", "SM00000000000000000000000000000003")
    check(status == 200 and "STOP" in text, f"START: {status} {text}")
    check(L.sql(f"SELECT count(*) FROM suppressions WHERE address = '{SHARED_PHONE}';") == "0",
          "START did not lift the number's suppression")
    n_before = len(L.rcv.records())
    L.import_all(31)  # term 3
    wait_for(lambda: L.settled(3, 6), 60 * L.slow, 0.2, "term 3's six rows to settle")
    rows = L.rows(3)
    check(all(rows[(c, "sms")][0] == "sent" for c in ("C-A", "C-B", "C-C")), f"term 3 SMS: {rows}")
    to = sorted(r["form"]["To"] for r in L.rcv.records()[n_before:])
    check(to == [SHARED_PHONE, SHARED_PHONE, OTHER_PHONE], f"term 3 SMS reached {to}")
    for cid in ("C-A", "C-C"):
        st, err = rows[(cid, "email")]
        check(st == "skipped" and f"{SHARED_EMAIL} is suppressed (unsubscribe, source link" in err,
              f"{cid}'s email to the unsubscribed address: {st} {err}")
    check(rows[("C-B", "email")][0] == "sent", f"C-B's email: {rows[('C-B', 'email')]}")

    status, body = L.request("GET", "/api/v1/contracts/C-C", headers={"Authorization": f"Bearer {API_TOKEN}"})
    check(status == 200, f"API GET C-C: {status} {body}")
    cu = json.loads(body)["customer"]
    check("email" in cu["optout"] and [s["address"] for s in cu["suppressions"]] == [SHARED_EMAIL],
          f"API customer of C-C: {cu}")
    listed = L.renewctl_json("suppressions", "list")
    check(sorted(s["address"] for s in listed) == ["+4915199999999", SHARED_EMAIL],
          f"renewctl suppressions list: {listed}")
    p = run([L.renewctl, "--db", L.db, "--config", L.conf, "suppressions", "remove", SHARED_EMAIL,
             "--reason", "customer asked by phone"])
    check("removed" in p.stdout, f"suppressions remove: {p.stdout} {p.stderr}")
    check(L.sql("SELECT detail FROM events WHERE kind = 'suppression.removed' ORDER BY id DESC LIMIT 1;")
          == f"kind=email address={SHARED_EMAIL} reason=unsubscribe source=renewctl "
             "why=customer asked by phone", "the removal's reason is not recorded")
    p = run([L.renewctl, "--db", L.db, "--config", L.conf, "suppressions", "remove", SHARED_EMAIL],
            check_rc=False)
    check(p.returncode == 64, f"remove without --reason: exit {p.returncode}")


def reload_without_key(L):
    link = run([L.renewctl, "--db", L.db, "--config", L.conf, "link", "C-B", "renew"]).stdout.strip()
    os.rename(L.link_key, L.link_key + ".gone")
    L.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload rejected" in L.log_text(), 30 * L.slow, 0.1, "the reload to be rejected")
    log = L.log_text()
    check(f"{L.conf}:7: LinkKeyFile={L.link_key}: cannot read the key file" in log,
          f"the reason of the rejected reload (file:line) is not logged:\n{log[-2000:]}")
    check(L.proc.poll() is None, "renewd exited after a bad reload")
    status, _ = L.request("GET", "/healthz")
    check(status == 200, f"/healthz after the rejected reload: {status}")
    status, page = L.request("GET", link)
    check(status == 200 and 'data-page="form"' in page,
          f"a link signed with the running key after the rejected reload: {status}")


def start_without_key(L, renewd):
    """renewd does not start when customer email/SMS tiers have no link key."""
    text = open(L.conf, encoding="utf-8").read().replace(f"LinkKeyFile={L.link_key}\n", "")
    write(L.conf, text)
    p = run([renewd, "--config", L.conf, "--log-target", "console"], check_rc=False, timeout=60)
    line = text.splitlines().index("[Channel sms]") + 1
    check(p.returncode == 78 and f"{L.conf}:{line}: [Channel sms]: customer tier 'notice' sends SMS "
          "through this channel, but [Daemon] LinkKeyFile= is not set" in p.stderr,
          f"renewd without a link key: exit {p.returncode}\n{p.stderr}")


def body(wd):
    renewd, renewctl = sys.argv[1], sys.argv[2]
    L = Loop(wd, renewd, renewctl)
    try:
        stop_shared_number(L)
        unsubscribe_shared_email(L)
        start_again(L)
        reload_without_key(L)
    except TestFailure:
        print(L.log_text()[-3000:], file=sys.stderr)
        raise
    finally:
        L.stop()
    start_without_key(L, renewd)


if __name__ == "__main__":
    sys.exit(main_wrapper("test-suppress", body))
