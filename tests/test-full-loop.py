#!/usr/bin/python3
"""Integration test: the whole renewal loop, end to end, on the simulated clock.

Real servers on 127.0.0.1 only: an SMTP server (tests/smtp_server.py,
aiosmtpd), an SMS provider (tests/http_receiver.py answering like Twilio;
the [Channel sms] is the Twilio preset with its URL pointed at it) and the
owners' webhook endpoint (another http_receiver, checking the Standard
Webhooks signatures); the real renewd with its HTTP listener (Listen= a free
port, PublicURL= the same, LinkKeyFile=, ApiTokenFile=) and the real
renewctl. Four customers, one contract each, all valid through 2031-03-31:

  A (Anna)  follows the "Renew now" link of the reminder email (found in the
            text/html part of the message as the SMTP server stored it):
            GET shows the confirmation page, which states the new end date
            (another term of the same length: 2030-04-01..2031-03-31 is a
            year, so through 2032-03-31), and changes nothing; the POSTed
            form renews -> `renewctl show --json`: term 2, valid through
            2032-03-31, state active; the sales owner gets the
            customer-renewed alert (email and signed webhook) to send the
            invoice; the used link says "already recorded", another link of
            the old term is 410; simulating on, A gets no further message
            (the old term's reminders are cancelled, the new term's ladder
            starts in 2032). (The owner's own "Renewed" link is covered by
            test-http.)
  B (Ben)   declines through the "Not renewing" link with a reason and a
            note -> declined, reason and note recorded, no further message.
  C (Cleo)  answers STOP by SMS: POST /sms/inbound signed exactly the way
            Twilio signs (base64 HMAC-SHA1 over PublicURL + path + the
            sorted parameters, keyed with the auth token; computed here, not
            by renewd code) -> opted out of SMS; later reminders still come
            by email, none by SMS.
  D (Dora)  stays silent -> her sales owner (Oscar) gets the escalation by
            email over SMTP and as a signed webhook to his own URL; then D
            asks for a call through the "Please call me" link with a
            preferred local time -> Oscar's call-back email carries a
            text/calendar METHOD:REQUEST invitation whose DTSTART is that
            time in UTC; D's reminders pause.
Finally GET /report (bearer token) serves the funnel page of the period
(saved as an artifact), and `renewctl report --json` counts 4 terms:
1 renewed, 1 declined, 2 open, 3 answered, 2 escalated (A's
customer-renewed alert belongs to her new term, which ends in 2032).

How the clock is driven, and why this is deterministic
------------------------------------------------------
`renewd --simulate FROM..UNTIL` (no --speed) jumps from one due instant to
the next and exits at UNTIL: fast, and every send completes before the
clock moves. Answers must reach a running daemon, so the test alternates
two kinds of runs on the same store:

  * "fast-forward" runs (--simulate, as fast as possible) that cover the
    ladder: 03-01..03-12 (notice, first reminder), 03-12..03-23 (second
    reminder, escalation), 03-23..03-29 (final);
  * "answer windows": renewd started with --simulate T..T+1h --speed 1, i.e.
    the simulated clock starts at T and runs at real-time pace, with the
    listener up. Each window starts at a simulated instant where nothing of
    the ladder is due for hours, so in the seconds the test spends there
    only the answers (and the owner alerts they cause, due "now") happen.
    The test stops the daemon with SIGTERM.

No assertion depends on how long anything takes: the test waits for
conditions (messages arrived, outbox idle), and each phase is checked by
exactly which messages it produced. Restarting renewd between phases is
what a service restart does in production; the store carries everything.

Artifacts (ARTIFACT_DIR/full-loop/): every email as received (smtp/*.eml with
the server's JSON sidecar), the SMS and webhook requests (*.jsonl), the
report page, and the daemon logs.

Usage: test-full-loop.py RENEWD RENEWCTL ARTIFACT_DIR
"""
import base64
import csv
import datetime
import email
import email.policy
import hashlib
import hmac
import html.parser
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itestlib import (SKIP, TestFailure, check, free_port, import_owners, main_wrapper,  # noqa: E402
                      run, sanitized_slowdown, wait_for, write)

try:
    from smtp_server import SmtpServer  # noqa: E402
except ImportError as e:  # python3-aiosmtpd missing
    print(f"test-full-loop: SKIP: {e}")
    sys.exit(SKIP)
from http_receiver import Receiver  # noqa: E402

RENEWD, RENEWCTL, ARTIFACT_DIR = sys.argv[1], sys.argv[2], sys.argv[3]
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SLOW = sanitized_slowdown()

LINK_KEY = "full-loop-link-key-0123456789abcdef"
API_TOKEN = "full-loop-api-token-5c1d9e7a3b"
SMS_TOKEN = "full-loop-twilio-auth-token-42"
ACCOUNT = "AC0123456789abcdef0123456789abcdef"
SMS_FROM = "+15005550006"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks example key

VALID_THROUGH = "2031-03-31"
PHASE1 = ("2031-03-01T00:00:00Z", "2031-03-12T00:00:00Z")  # notice, reminder #1
WINDOW1 = "2031-03-12T12:00:00Z"                             # A, B, C answer
PHASE3 = ("2031-03-12T13:00:00Z", "2031-03-23T00:00:00Z")  # reminder #2, escalation
WINDOW2 = "2031-03-23T12:00:00Z"                             # D asks for a call
PHASE5 = ("2031-03-23T13:00:00Z", "2031-03-29T12:00:00Z")  # final (C); D paused
CALL_AT_LOCAL = "2031-03-25T14:30"                          # D's preferred time, Berlin (CET)
CALL_AT_UTC = "20310325T133000Z"

CONFIG = """\
[Daemon]
Database={db}
Listen=127.0.0.1:{port}
PublicURL=http://127.0.0.1:{port}
TimeZone=UTC
Templates={templates}
LinkKeyFile={wd}/link.key
ApiTokenFile={wd}/api.tokens
Horizon=48h
ChangePollInterval=1s

[SendWindow]
Hours=00:00-24:00
Days=Mon..Sun

[Policy standard]
Segments=*
Tiers=notice reminder escalation final
FallbackOwner=O-1
CallbackPause=7d

[Tier notice]
Offset=-P30D
Channels=email

[Tier reminder]
Offset=-P21D
Repeat=FREQ=WEEKLY;COUNT=2
Channels=email sms

[Tier escalation]
Offset=-P10D
Audience=owner
Channels=email owner-hook

[Tier final]
Offset=-P3D
Channels=email sms

[Channel email]
Type=smtp
URL=smtp://127.0.0.1:{smtp_port}
From=Example Renewals <renewals@example.com>
RetryBase=1s
RetryMax=2s

[Channel sms]
Type=sms
Provider=twilio
URL=http://127.0.0.1:{sms_port}/2010-04-01/Accounts/{account}/Messages.json
From={sms_from}
AccountSID={account}
AuthTokenFile={wd}/sms.token
OptOutFooter=Reply STOP to opt out
RetryBase=1s
RetryMax=2s

[Channel owner-hook]
Type=webhook
URL=http://127.0.0.1:{hook_port}/hook
SecretFile={wd}/webhook.secret
AllowPrivate=yes
RetryBase=1s
RetryMax=2s
"""

CONTRACTS = [
    # id, customer, name, email, phone, zone, owner
    ("C-A", "K-A", "Anna Renew", "anna@example.com", "+4915110000001", "Europe/Berlin", "O-1"),
    ("C-B", "K-B", "Ben Decline", "ben@example.com", "+4915110000002", "UTC", "O-1"),
    ("C-C", "K-C", "Cleo Stop", "cleo@example.com", "+4915110000003", "UTC", "O-1"),
    ("C-D", "K-D", "Dora Silent", "dora@example.com", "+4915110000004", "Europe/Berlin", "O-2"),
]
PHONE = {c[0]: c[4] for c in CONTRACTS}
MAIL = {c[0]: c[3] for c in CONTRACTS}


# ---- small parsers ------------------------------------------------------------------------------

class Anchors(html.parser.HTMLParser):
    """(href, text) of every <a> of an HTML document."""

    def __init__(self):
        super().__init__()
        self.found, self._href, self._text = [], None, []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href, self._text = dict(attrs).get("href"), []

    def handle_data(self, data):
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._href is not None:
            self.found.append((self._href, " ".join("".join(self._text).split())))
            self._href = None


class Form(html.parser.HTMLParser):
    """What a browser would submit from the page's <form method="post"> without
    the user touching it: hidden inputs, checked radios, inputs with a value,
    empty textareas; plus the form's method and the names of its radios."""

    def __init__(self):
        super().__init__()
        self.method, self.fields, self.radios, self._in_form = None, {}, {}, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._in_form, self.method = True, (a.get("method") or "get").lower()
        elif self._in_form and tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind == "radio":
                self.radios.setdefault(a["name"], []).append(a.get("value"))
                if "checked" in a:
                    self.fields[a["name"]] = a.get("value", "on")
            elif a.get("value") is not None:
                self.fields[a["name"]] = a["value"]
        elif self._in_form and tag == "textarea" and a.get("name"):
            self.fields.setdefault(a["name"], "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def html_part(msg):
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            return part.get_content()
    raise TestFailure(f"message {msg['Subject']!r} has no text/html part")


def link(msg, label):
    """The href of the anchor whose text is label, in the text/html part."""
    p = Anchors()
    p.feed(html_part(msg))
    hrefs = [h for h, t in p.found if t == label]
    check(len(hrefs) >= 1, f"no link {label!r} in {msg['Subject']!r}: {p.found}")
    return hrefs[0]


def twilio_signature(token, url, params):
    """Twilio's X-Twilio-Signature, written from Twilio's documentation: the
    full URL, then each POST parameter's name and value, sorted by name,
    concatenated; HMAC-SHA1 keyed with the auth token; base64."""
    data = url + "".join(name + value for name, value in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def unfold_ics(text):
    """Logical lines of an iCalendar text (RFC 5545 3.1 unfolding)."""
    return re.sub(r"\r?\n[ \t]", "", text).splitlines()


# ---- the test's world ---------------------------------------------------------------------------

class Loop:
    def __init__(self, wd):
        self.wd = wd
        self.art = os.path.join(ARTIFACT_DIR, "full-loop")
        shutil.rmtree(self.art, ignore_errors=True)
        os.makedirs(self.art)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db = wd("renewd.db")
        self.conf = wd("renewd.conf")
        self.daemon = None
        self.logs = []
        self.smtp = self.sms = self.hooks = None
        self.seen_mail = self.seen_sms = self.seen_hooks = 0

    def start(self):
        """Starts the SMTP server and the two HTTP receivers, writes the config."""
        wd = self.wd
        self.smtp = SmtpServer(os.path.join(self.art, "smtp")).start()
        self.sms = Receiver(log_path=os.path.join(self.art, "sms.jsonl"), twilio=True,
                            basic=f"{ACCOUNT}:{SMS_TOKEN}").start()
        self.hooks = Receiver(log_path=os.path.join(self.art, "webhooks.jsonl"),
                              secrets=[WEBHOOK_SECRET]).start()
        write(wd("link.key"), LINK_KEY + "\n")
        write(wd("api.tokens"), API_TOKEN + "\n")
        write(wd("sms.token"), SMS_TOKEN + "\n")
        write(wd("webhook.secret"), WEBHOOK_SECRET + "\n")
        write(self.conf, CONFIG.format(db=self.db, port=self.port, wd=wd.path,
                                       templates=os.path.join(SRC, "notifiers", "templates"),
                                       smtp_port=self.smtp.port, sms_port=self.sms.port,
                                       hook_port=self.hooks.port, account=ACCOUNT, sms_from=SMS_FROM))

    def stop(self):
        """Stops whatever runs (after a failure too), keeps the logs as artifacts."""
        if self.daemon:  # a failure inside an answer window
            if self.daemon.poll() is None:
                self.daemon.kill()
                self.daemon.wait()
            self.daemon_log.close()
            self.daemon = None
        for srv in (self.smtp, self.sms, self.hooks):
            if srv:
                srv.stop()
        for name in self.logs:
            if os.path.exists(self.wd(name)):
                shutil.copy(self.wd(name), os.path.join(self.art, name))

    # -- renewd and renewctl --

    def renewctl(self, *args, check_rc=True):
        return run([RENEWCTL, "--db", self.db, "--config", self.conf, *args], check_rc=check_rc)

    def show(self, cid):
        return json.loads(self.renewctl("show", cid, "--json").stdout)

    def store_counts(self):
        """Responses and events: what an answer would add to."""
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return (con.execute("SELECT count(*) FROM responses").fetchone()[0],
                    con.execute("SELECT count(*) FROM events").fetchone()[0])
        finally:
            con.close()

    def outbox_idle(self):
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute("SELECT count(*) FROM reminders WHERE status IN "
                               "('pending','sending','retry')").fetchone()[0] == 0
        finally:
            con.close()

    def simulate(self, span, name):
        log = f"renewd-{name}.log"
        self.logs.append(log)
        p = run([RENEWD, "--config", self.conf, "--log-target", "console", "--log-level", "debug",
                 "--simulate", f"{span[0]}..{span[1]}"], timeout=120 * SLOW, check_rc=False)
        write(self.wd(log), p.stderr + p.stdout)
        check(p.returncode == 0, f"renewd --simulate {span[0]}..{span[1]} exited {p.returncode}:\n"
                                 f"{p.stderr[-3000:]}")
        check(self.outbox_idle(), f"{name}: the simulation ended with messages still queued")

    def window_start(self, start, name):
        """renewd on the simulated clock from start at real-time pace: the
        listener is up, the ladder has nothing due for hours."""
        log = f"renewd-{name}.log"
        self.logs.append(log)
        t = datetime.datetime.fromisoformat(start.replace("Z", "+00:00"))
        until = (t + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.daemon_log = open(self.wd(log), "w+", encoding="utf-8")
        self.daemon_log_name = log
        self.daemon = subprocess.Popen([RENEWD, "--config", self.conf, "--log-target", "console",
                                        "--log-level", "debug", "--simulate", f"{start}..{until}",
                                        "--speed", "1"],
                                       stdout=self.daemon_log, stderr=subprocess.STDOUT)

        def ready():
            if self.daemon.poll() is not None:
                raise TestFailure(f"renewd exited {self.daemon.returncode}:\n{self.log_text()}")
            return "ready: horizon loaded" in self.log_text() and self._healthz()
        wait_for(ready, 30 * SLOW, 0.1, f"renewd ({name}) to be ready")

    def window_end(self):
        """SIGTERM; renewd must exit 0. (On a failure stop() kills it instead.)"""
        self.daemon.send_signal(signal.SIGTERM)
        try:
            rc = self.daemon.wait(timeout=30 * SLOW)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"renewd did not stop after SIGTERM:\n{self.log_text()[-3000:]}")
        self.daemon_log.close()
        self.daemon = None
        check(rc == 0, f"renewd exited {rc} after SIGTERM")

    def log_text(self):
        self.daemon_log.flush()
        with open(self.wd(self.daemon_log_name), encoding="utf-8", errors="replace") as f:
            return f.read()

    def _healthz(self):
        try:
            return self.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    # -- HTTP --

    def request(self, method, url, body=None, headers=None):
        """(status, headers, text) of one request to the daemon; url may be a full URL."""
        if url.startswith("http"):
            u = urllib.parse.urlsplit(url)
            check(f"{u.scheme}://{u.netloc}" == self.base, f"{url} does not point at PublicURL {self.base}")
            url = u.path + (("?" + u.query) if u.query else "")
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30 * SLOW)
        try:
            c.request(method, url, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode("utf-8", "replace")
        finally:
            c.close()

    def open_form(self, url):
        """GET the link like a browser: the confirmation page and its form."""
        status, _, text = self.request("GET", url)
        check(status == 200 and 'data-page="form"' in text, f"GET {url}: {status}\n{text[-800:]}")
        f = Form()
        f.feed(text)
        check(f.method == "post" and f.fields.get("confirm") == "yes", f"GET {url}: no confirmation form")
        return f, text

    def submit(self, url, form, **choices):
        fields = dict(form.fields, **choices)
        status, _, text = self.request("POST", url, urllib.parse.urlencode(fields),
                                       {"Content-Type": "application/x-www-form-urlencoded"})
        check(status == 200 and 'data-page="done"' in text, f"POST {url} {fields}: {status}\n{text[-800:]}")
        return text

    # -- what arrived --

    def new_mail(self):
        """Messages the SMTP server accepted since the last call: [(msg, meta)]."""
        all_ = self.smtp.messages()
        out = [(parse(raw), meta) for raw, meta in all_[self.seen_mail:]]
        self.seen_mail = len(all_)
        return out

    def new_sms(self):
        recs = self.sms.records()
        out, self.seen_sms = recs[self.seen_sms:], len(recs)
        return out

    def new_hooks(self):
        recs = self.hooks.records()
        out, self.seen_hooks = recs[self.seen_hooks:], len(recs)
        return out


def key(msg):
    """(contract, tier, audience) of a message renewd sent."""
    return (str(msg["X-Renewd-Contract"]), str(msg["X-Renewd-Tier"]), str(msg["X-Renewd-Audience"]))


def mail_keys(mails):
    return sorted(key(m) for m, _ in mails)


def sms_to(recs):
    return sorted(r["form"]["To"] for r in recs)


# ---- the test -----------------------------------------------------------------------------------

def body(wd):
    t0 = time.monotonic()
    L = Loop(wd)
    try:
        L.start()
        scenario(L)
    finally:
        L.stop()
    print(f"artifacts in {L.art}; {time.monotonic() - t0:.1f} s")
    return 0


def scenario(L):
    # ---- inventory: contracts and owners ----------------------------------------------------
    path = L.wd("contracts.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["contract_id", "customer_id", "customer_name", "email", "phone", "timezone", "locale",
                    "segment", "owner", "product", "starts_on", "expires_on", "value", "currency"])
        for cid, kid, name, mail, phone, zone, owner in CONTRACTS:
            w.writerow([cid, kid, name, mail, phone, zone, "en", "smb", owner, "Cloud Backup",
                        "2030-04-01", VALID_THROUGH, "1200.00", "EUR"])
    L.renewctl("import", path)
    import_owners(RENEWCTL, L.db, L.conf, [
        dict(id="O-1", name="Olivia Owner", email="olivia@sales.example.com", timezone="UTC",
             webhook=f"http://127.0.0.1:{L.hooks.port}/owners/olivia"),
        dict(id="O-2", name="Oscar Owner", email="oscar@sales.example.com", timezone="Europe/Berlin",
             webhook=f"http://127.0.0.1:{L.hooks.port}/owners/oscar"),
    ], L.wd)
    p = run([RENEWD, "--check-config", "--config", L.conf], check_rc=False)
    check(p.returncode == 0, f"the test's config is invalid:\n{p.stderr}")

    # ---- phase 1: notice and the first reminder go out over SMTP and SMS ----------------------
    L.simulate(PHASE1, "phase1")
    mails, sms = L.new_mail(), L.new_sms()
    want = sorted((c[0], t, "customer") for c in CONTRACTS for t in ("notice", "reminder"))
    check(mail_keys(mails) == want, f"phase 1 emails: {mail_keys(mails)}, expected {want}")
    for m, meta in mails:
        cid = key(m)[0]
        check(meta["rcpt_tos"] == [MAIL[cid]] and MAIL[cid] in str(m["To"]),
              f"{key(m)} went to {meta['rcpt_tos']}")
    check(sms_to(sms) == sorted(PHONE.values()), f"phase 1 SMS to {sms_to(sms)}")
    for r in sms:
        check(r["auth_ok"] is True and r["form"]["From"] == SMS_FROM and
              r["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json" and
              f"{L.base}/r/" in r["form"]["Body"] and r["form"]["Body"].endswith("\nReply STOP to opt out"),
              f"SMS request as Twilio expects it: {r}")
    check(L.new_hooks() == [], "no webhook before any escalation")
    reminder1 = {key(m)[0]: m for m, _ in mails if key(m)[1] == "reminder"}
    for cid in PHONE:
        check(L.show(cid)["contract"]["state"] == "reminding", f"{cid} is not reminding after phase 1")
    print(f"phase 1: {len(mails)} emails, {len(sms)} SMS")

    # ---- window 1: A renews by link (her owner is told), B declines, C says STOP -------------
    L.window_start(WINDOW1, "window1")
    answers_window1(L, reminder1)
    L.window_end()

    # ---- phase 3: second reminder, escalation ----------------------------------------------------
    L.simulate(PHASE3, "phase3")
    mails, sms, hooks = L.new_mail(), L.new_sms(), L.new_hooks()
    want = sorted([("C-C", "reminder", "customer"), ("C-D", "reminder", "customer"),
                   ("C-C", "escalation", "owner"), ("C-D", "escalation", "owner")])
    check(mail_keys(mails) == want,
          f"phase 3 emails: {mail_keys(mails)}, expected {want} (nothing for A and B; C by email only)")
    check(sms_to(sms) == [PHONE["C-D"]], f"phase 3 SMS to {sms_to(sms)}: only D (C said STOP)")
    esc = {key(m)[0]: (m, meta) for m, meta in mails if key(m)[1] == "escalation"}
    m, meta = esc["C-D"]
    check(meta["rcpt_tos"] == ["oscar@sales.example.com"] and "Dora Silent" in str(m["Subject"]) and
          str(m["Subject"]).startswith("Renewal at risk") and str(m["Auto-Submitted"]) == "auto-generated",
          f"D's escalation to her owner: {meta['rcpt_tos']} {m['Subject']!r}")
    check(esc["C-C"][1]["rcpt_tos"] == ["olivia@sales.example.com"], "C's escalation goes to C's owner")
    by_path = {}
    for h in hooks:
        by_path.setdefault(h["path"], []).append(h)
    check(sorted(by_path) == ["/owners/olivia", "/owners/oscar"] and all(len(v) == 1 for v in by_path.values()),
          f"phase 3 webhooks: {[(h['path'], h['body'][:80]) for h in hooks]}")
    ev = json.loads(by_path["/owners/oscar"][0]["body"])
    check(by_path["/owners/oscar"][0]["sig_ok"] is True and ev["type"] == "escalation.raised" and
          ev["data"]["contract"]["id"] == "C-D", f"D's escalation webhook: sig_ok="
          f"{by_path['/owners/oscar'][0]['sig_ok']} {json.dumps(ev)[:400]}")
    check(L.show("C-A")["contract"]["term"] == 2 and L.show("C-B")["contract"]["state"] == "declined",
          "A and B changed during phase 3")
    reminder2_d = next(m for m, _ in mails if key(m) == ("C-D", "reminder", "customer"))
    print(f"phase 3: {len(mails)} emails, {len(sms)} SMS, {len(hooks)} webhooks")

    # ---- window 2: D asks for a call at a time of her choosing -------------------------------------
    L.window_start(WINDOW2, "window2")
    answers_window2(L, reminder2_d)
    L.window_end()

    # ---- phase 5: the final reminder: C by email only; D paused; A and B silent ---------------------
    L.simulate(PHASE5, "phase5")
    mails, sms, hooks = L.new_mail(), L.new_sms(), L.new_hooks()
    check(mail_keys(mails) == [("C-C", "final", "customer")],
          f"phase 5 emails: {mail_keys(mails)}, expected only C's final (D waits for her call)")
    check(sms == [] and hooks == [], f"phase 5 SMS {sms_to(sms)}, webhooks {len(hooks)}: expected none")
    d = L.show("C-D")["contract"]
    check(d["state"] == "callback", f"D after phase 5: {d}")

    # ---- the whole story, as renewctl tells it -------------------------------------------------------
    a = L.show("C-A")
    later = [h for h in a["history"] if h["type"] == "reminder" and h["term"] == 1 and
             h["status"] in ("pending", "retry", "sending")]
    check(later == [], f"A still has reminders of term 1 queued: {later}")
    sent_a = [(h["term"], h["tier"]) for h in a["history"] if h["type"] == "reminder" and h["status"] == "sent"
              and h["audience"] == "customer"]
    check(sorted(sent_a) == [(1, "notice"), (1, "reminder"), (1, "reminder")],
          f"A's customer messages: {sent_a} (notice, reminder by email and SMS, nothing after the answer)")
    rep = json.loads(L.renewctl("report", "--from", "2031-03-01", "--to", "2031-04-30", "--json").stdout)
    f = rep["funnel"]
    # answered: A (renewed), B, D (call me); C's STOP is not an answer. Owner messages sent in
    # these terms: C's and D's escalation, D's call-back, each by email and webhook (A's
    # customer-renewed alert belongs to her term 2, expiring in 2032, outside the period).
    got = {k: f[k] for k in ("terms", "reminded", "answered", "renewed", "declined", "open", "callback",
                             "escalations", "escalated", "escalated_renewed")}
    want = dict(terms=4, reminded=4, answered=3, renewed=1, declined=1, open=2, callback=1,
                escalations=6, escalated=2, escalated_renewed=0)
    check(got == want, f"renewctl report funnel: {got}, expected {want}")
    check([r["reason"] for r in rep["decline_reasons"]] == ["switched-provider"],
          f"decline reasons: {rep['decline_reasons']}")


def answers_window1(L, reminder1):
    # ---- A: the renew link of the reminder email -------------------------------------------------
    renew = link(reminder1["C-A"], "Renew now")
    before, counts = L.show("C-A"), L.store_counts()
    form, page = L.open_form(renew)
    check("Renew your contract" in page and "C-A" in page and
          "Your Cloud Backup will be renewed until March 31, 2032." in page,
          f"A's renew page does not state the new end date:\n{page[-1500:]}")
    check(L.show("C-A") == before and L.store_counts() == counts, "GET of the renew link changed the store")
    done = L.submit(renew, form)
    check("Your Cloud Backup is renewed until March 31, 2032." in done and "invoice" in done,
          f"A's thank-you page:\n{done[-1500:]}")
    a = L.show("C-A")
    c = a["contract"]
    resp = [h for h in a["history"] if h["type"] == "response"]
    check(c["term"] == 2 and c["expires_on"] == "2032-03-31" and c["state"] == "active" and
          c["expires_at"] == "2032-03-31T22:00:00Z" and
          [(r["kind"], r["source"]) for r in resp] == [("renewed", "link")],
          f"A after the renew POST: {c} {resp}")
    cancelled = [h for h in a["history"] if h["type"] == "reminder" and h["status"] == "cancelled"]
    check(all(h["term"] == 1 for h in cancelled), f"cancelled rows: {cancelled}")

    # the owner hears of it at once (email and webhook), to send the invoice
    wait_for(lambda: L.outbox_idle() and len(L.smtp.messages()) > L.seen_mail, 30 * SLOW, 0.1,
             "the owner's customer-renewed alert")
    mails = L.new_mail()
    check(mail_keys(mails) == [("C-A", "customer-renewed", "owner")], f"after A's answer: {mail_keys(mails)}")
    alert, meta = mails[0]
    text = next(p.get_content() for p in alert.walk() if p.get_content_type() == "text/plain")
    check(meta["rcpt_tos"] == ["olivia@sales.example.com"] and
          str(alert["Subject"]) == "Anna Renew renewed Cloud Backup (C-A)" and
          "until March 31, 2032" in text and "send the invoice" in text,
          f"customer-renewed alert: {meta['rcpt_tos']} {alert['Subject']!r}\n{text}")
    hooks = L.new_hooks()
    check(len(hooks) == 1 and hooks[0]["path"] == "/owners/olivia" and hooks[0]["sig_ok"] is True and
          json.loads(hooks[0]["body"])["data"]["contract"]["id"] == "C-A",
          f"customer-renewed webhook: {[(h['path'], h['sig_ok']) for h in hooks]}")
    alerts = [h for h in a["history"] if h["type"] == "reminder" and h["tier"] == "customer-renewed"]
    check(alerts and all(h["term"] == 2 and h["audience"] == "owner" for h in alerts),
          f"the alert rows belong to the new term: {alerts}")
    status, _, text = L.request("GET", renew)
    check(status == 200 and 'data-page="already"' in text, f"A's used renew link again: {status}")
    status, _, _ = L.request("GET", link(reminder1["C-A"], "Remind me later"))
    check(status == 410, f"another link of A's old term after the renewal: {status}, expected 410")

    # ---- B: declines with a reason ------------------------------------------------------------------
    decline = link(reminder1["C-B"], "Not renewing")
    form, page = L.open_form(decline)
    check("switched-provider" in form.radios.get("reason", []), f"decline reasons offered: {form.radios}")
    L.submit(decline, form, reason="switched-provider", note="Moved to a competitor")
    b = L.show("C-B")
    resp = [h for h in b["history"] if h["type"] == "response"]
    check(b["contract"]["state"] == "declined" and len(resp) == 1 and resp[0]["kind"] == "declined" and
          resp[0]["reason"] == "switched-provider" and resp[0]["detail"] == "Moved to a competitor" and
          resp[0]["source"] == "link", f"B after declining: {b['contract']} {resp}")

    # ---- C: STOP by SMS, signed as Twilio signs -------------------------------------------------------
    params = [("AccountSid", ACCOUNT), ("MessageSid", "SM00000000000000000000000000000001"),
              ("From", PHONE["C-C"]), ("To", SMS_FROM), ("Body", "STOP"), ("NumMedia", "0")]
    sig = twilio_signature(SMS_TOKEN, L.base + "/sms/inbound", params)
    status, headers, text = L.request("POST", "/sms/inbound", urllib.parse.urlencode(params),
                                      {"Content-Type": "application/x-www-form-urlencoded",
                                       "X-Twilio-Signature": sig})
    check(status == 200 and headers.get("content-type", "").startswith("text/xml") and "<Message>" in text,
          f"STOP: {status} {text}")
    bad = twilio_signature("not-the-token", L.base + "/sms/inbound", params)
    status, _, _ = L.request("POST", "/sms/inbound", urllib.parse.urlencode(params),
                             {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": bad})
    check(status == 403, f"an SMS signed with another token: {status}")
    c = L.show("C-C")
    check(c["customer"]["optout"] == ["sms"] and c["contract"]["state"] == "reminding",
          f"C after STOP: {c['customer']} {c['contract']['state']}")

    wait_for(L.outbox_idle, 30 * SLOW, 0.1, "an idle outbox")
    check(L.new_mail() == [] and L.new_sms() == [] and L.new_hooks() == [],
          "B's decline or C's STOP sent something")


def answers_window2(L, reminder2_d):
    callback = link(reminder2_d, "Please call me")
    before, counts = L.show("C-D"), L.store_counts()
    form, _ = L.open_form(callback)
    check(L.show("C-D") == before and L.store_counts() == counts, "GET of the callback link changed the store")
    check(form.fields.get("when") == "asap" and "at" in form.radios.get("when", []),
          f"callback form: {form.fields} {form.radios}")
    L.submit(callback, form, when="at", at=CALL_AT_LOCAL, note="Mornings are bad")
    d = L.show("C-D")
    check(d["contract"]["state"] == "callback", f"D after asking for a call: {d['contract']}")
    wait_for(lambda: L.outbox_idle() and len(L.smtp.messages()) > L.seen_mail, 30 * SLOW, 0.1,
             "the owner's call-back alert")
    mails = L.new_mail()
    check(mail_keys(mails) == [("C-D", "callback", "owner")], f"after D's answer: {mail_keys(mails)}")
    msg, meta = mails[0]
    check(meta["rcpt_tos"] == ["oscar@sales.example.com"] and str(msg["Subject"]).startswith("Call back Dora Silent"),
          f"call-back alert: {meta['rcpt_tos']} {msg['Subject']!r}")
    cals = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    check(len(cals) == 1 and cals[0].get_param("method") == "REQUEST",
          f"call-back alert parts: {[p.get_content_type() for p in msg.walk()]}")
    lines = unfold_ics(cals[0].get_content())
    props = {}
    for line in lines:
        name = re.split(r"[;:]", line, 1)[0]
        props.setdefault(name, line)
    check("METHOD:REQUEST" in lines and lines.count("BEGIN:VEVENT") == 1, f"invitation:\n{lines}")
    check(props.get("DTSTART") == f"DTSTART:{CALL_AT_UTC}",
          f"the invitation is not at D's preferred time ({CALL_AT_LOCAL} Berlin = {CALL_AT_UTC}): "
          f"{props.get('DTSTART')}")
    check("oscar@sales.example.com" in props.get("ATTENDEE", "") or
          "oscar@sales.example.com" in props.get("ORGANIZER", ""), f"invitation parties: {lines}")
    hooks = L.new_hooks()
    check(len(hooks) == 1 and hooks[0]["path"] == "/owners/oscar" and hooks[0]["sig_ok"] is True,
          f"call-back webhook: {[(h['path'], h['sig_ok']) for h in hooks]}")

    # the manager's view: the report page behind the API token
    status, headers, _ = L.request("GET", "/report?from=2031-03-01&to=2031-04-30")
    check(status == 401 and headers.get("www-authenticate", "").startswith("Bearer"), f"/report: {status}")
    status, headers, text = L.request("GET", "/report?from=2031-03-01&to=2031-04-30&by=owner",
                                      headers={"Authorization": f"Bearer {API_TOKEN}"})
    check(status == 200 and headers.get("content-type", "").startswith("text/html") and
          'data-chart="funnel"' in text, f"/report with the token: {status} {headers}")
    write(os.path.join(L.art, "report.html"), text)


if __name__ == "__main__":
    sys.exit(main_wrapper("test-full-loop", body))
