"""httptestlib: the renewd HTTP listener fixture shared by tests/test-http.py
and tests/test-pages-chromium.py.

Daemon(wd, renewd, renewctl) writes a configuration with the listener on a
free 127.0.0.1 port (PublicURL the same), a link key file with two keys (the
first signs, the second is an "old" key still accepted: rotation), an API
token file, a Twilio SMS channel (its AuthTokenFile is the inbound webhook
secret; it never sends: every tier uses the Maildir sink), a send window that
is always open, and a policy whose first tier is already missed for the
contracts it imports, so each of them gets one reminder at start-up (to a
Maildir of real messages with real links). Owners are imported too, so
answers that alert the owner produce owner messages.

Nothing here touches the network beyond 127.0.0.1.
"""
import base64
import csv
import datetime
import email
import email.policy
import glob
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse

from itestlib import (TestFailure, check, free_port, import_owners, run, sanitized_slowdown,  # noqa: F401
                      sql, wait_for, write)

LINK_KEY = "link-key-current-0123456789abcdef0123"
OLD_LINK_KEY = "link-key-previous-0123456789abcdef012"
OTHER_KEY = "link-key-of-someone-else-0123456789ab"
API_TOKEN = "api-token-7f3c2a9e1b5d4c6f8a0e2b4d6f8a0c2e"
SMS_TOKEN = "twilio-auth-token-0123456789abcdef"

CONFIG = """\
[Daemon]
Database={db}
Listen=127.0.0.1:{port}
PublicURL=http://127.0.0.1:{port}
TimeZone=UTC
Horizon=48h
RefillInterval=10min
ChangePollInterval=1s
LinkKeyFile={wd}/link.key
ApiTokenFile={wd}/api.tokens
Templates={wd}/templates

[SendWindow]
Hours=00:00-24:00
Days=Mon..Sun

[Policy standard]
Segments=*
Tiers=notice final escalate
LapseGrace=P30D

[Tier notice]
Offset=-P60D
Channels=email

[Tier final]
Offset=-P7D
Channels=email

[Tier escalate]
Offset=-P3D
Channels=email
Audience=owner

[Channel email]
Type=sink
Maildir={wd}/maildir
From=Renewals <renewals@example.com>

[Channel sms]
Type=sms
Provider=twilio
URL=http://127.0.0.1:9/2010-04-01/Accounts/AC0/Messages.json
From=+15005550006
AccountSID=AC0
AuthTokenFile={wd}/sms.token
"""

CSV_COLS = ["contract_id", "customer_id", "customer_name", "email", "phone", "timezone", "locale",
            "segment", "owner", "product", "starts_on", "expires_on", "value", "currency"]


def day(offset_days):
    return (datetime.date.today() + datetime.timedelta(days=offset_days)).isoformat()


def twilio_signature(token, url, params):
    """X-Twilio-Signature computed independently: base64 HMAC-SHA1 over the
    URL followed by each POST parameter name and value, sorted by name."""
    s = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), s.encode(), hashlib.sha1).digest()).decode()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict, lower-case names
        self.body = body        # bytes

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def page(self):
        """data-page of an HTML page (form, done, already, refused, error)."""
        m = re.search(r'data-page="([a-z]+)"', self.text)
        return m.group(1) if m else None


class Daemon:
    def __init__(self, wd, renewd, renewctl, contracts, owners=()):
        self.wd, self.renewd, self.renewctl = wd, renewd, renewctl
        self.slow = sanitized_slowdown()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db = wd("renewd.db")
        self.conf = wd("renewd.conf")
        self.maildir = wd("maildir")
        write(wd("link.key"), f"# first line signs\n{LINK_KEY}\n{OLD_LINK_KEY}\n")
        write(wd("other.key"), OTHER_KEY + "\n")
        write(wd("api.tokens"), f"# ops\n{API_TOKEN}\n")
        write(wd("sms.token"), SMS_TOKEN + "\n")
        write(self.conf, CONFIG.format(db=self.db, port=self.port, wd=wd.path))
        # the shipped page and SMS reply catalogues of every locale but en
        # (built in), and no message templates: messages use the built-in texts
        shipped = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "notifiers", "templates")
        for loc in sorted(os.listdir(shipped)):
            for cat in ("pages.po", "sms.po"):
                po = os.path.join(shipped, loc, cat)
                if loc != "en" and os.path.exists(po):
                    os.makedirs(wd(f"templates/{loc}"), exist_ok=True)
                    shutil.copy(po, wd(f"templates/{loc}/{cat}"))
        path = wd("contracts.csv")
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(CSV_COLS)
            for c in contracts:
                w.writerow([c.get(k, "") for k in CSV_COLS])
        run([renewctl, "--db", self.db, "--config", self.conf, "import", path])
        if owners:
            import_owners(renewctl, self.db, self.conf, owners, wd)
        self.log = open(wd("renewd.log"), "w+", encoding="utf-8")
        self.proc = subprocess.Popen([renewd, "--config", self.conf, "--log-target", "console",
                                      "--log-level", "debug"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for(self._healthy, 30 * self.slow, 0.1, "renewd's /healthz")
            # the listener answers before READY; the start-up planning may still
            # write (states, events): store snapshots wait for it
            wait_for(lambda: "ready: horizon loaded" in self.log_text(), 30 * self.slow, 0.1,
                     "renewd's readiness")
        except TestFailure:
            raise TestFailure(f"renewd did not come up:\n{self.log_text()}")

    def _healthy(self):
        if self.proc.poll() is not None:
            raise TestFailure(f"renewd exited {self.proc.returncode}:\n{self.log_text()}")
        try:
            return self.request("GET", "/healthz").status == 200
        except OSError:
            return False

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
        return self.proc.returncode

    # ---- HTTP ----

    def request(self, method, path, body=None, headers=None, timeout=30):
        """One request on a fresh connection; path may be a full URL of this daemon."""
        if path.startswith("http://"):
            u = urllib.parse.urlsplit(path)
            path = u.path + (("?" + u.query) if u.query else "")
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * self.slow)
        try:
            if isinstance(body, str):
                body = body.encode()
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post_form(self, path, fields, headers=None):
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        h.update(headers or {})
        return self.request("POST", path, urllib.parse.urlencode(fields), h)

    def api(self, method, path, obj=None, token=API_TOKEN, headers=None, raw=None):
        h = {"Content-Type": "application/json"}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        h.update(headers or {})
        body = raw if raw is not None else (json.dumps(obj) if obj is not None else None)
        return self.request(method, "/api/v1" + path, body, h)

    def sms(self, sender, text, sid, token=SMS_TOKEN, extra=()):
        params = [("From", sender), ("To", "+15005550006"), ("Body", text), ("MessageSid", sid),
                  ("AccountSid", "AC0"), ("NumMedia", "0")] + list(extra)
        sig = twilio_signature(token, self.base + "/sms/inbound", params)
        return self.request("POST", "/sms/inbound", urllib.parse.urlencode(params),
                            {"Content-Type": "application/x-www-form-urlencoded",
                             "X-Twilio-Signature": sig})

    # ---- renewctl and the store ----

    def link(self, contract, action, *extra):
        p = run([self.renewctl, "--db", self.db, "--config", self.conf, "link", contract, action,
                 *extra])
        url = p.stdout.strip()
        check(url.startswith(self.base + ("/u/" if action.startswith("unsub") else "/r/")),
              f"renewctl link printed {url!r}")
        return url

    def sql(self, query):
        return sql(self.db, query).strip()

    def contract(self, cid):
        out = self.sql(f"SELECT state, state_until, term, expires_at FROM contracts WHERE id = '{cid}';")
        state, until, term, exp = out.split("|")
        return {"state": state, "state_until": int(until), "term": int(term), "expires_at": int(exp)}

    def responses(self, cid=None):
        where = f"WHERE contract_id = '{cid}'" if cid else ""
        out = self.sql("SELECT id, contract_id, kind, source, coalesce(channel,''), coalesce(reason,''), "
                       f"coalesce(detail,''), until_at FROM responses {where} ORDER BY id;")
        rows = []
        for line in out.splitlines():
            i, c, k, s, ch, rs, d, u = line.split("|", 7)
            rows.append({"id": int(i), "contract": c, "kind": k, "source": s, "channel": ch,
                         "reason": rs, "detail": d, "until": int(u)})
        return rows

    def optout(self, customer):
        """The customer's opt-out bits, with email (1) and SMS (2) set while
        its address is suppressed."""
        return int(self.sql(
            "SELECT optout"
            " | CASE WHEN EXISTS (SELECT 1 FROM suppressions s WHERE s.kind = 'email'"
            "   AND s.address = lower(trim(c.email))) THEN 1 ELSE 0 END"
            " | CASE WHEN EXISTS (SELECT 1 FROM suppressions s WHERE s.kind = 'sms'"
            f"   AND s.address = c.phone) THEN 2 ELSE 0 END FROM customers c WHERE id = '{customer}';"))

    def snapshot(self):
        """What an answer would change: contracts' state, customers' opt-outs and suppressions,
        responses and events (not the outbox, which the dispatcher moves)."""
        return self.sql("SELECT id, state, state_until, term, expires_at FROM contracts ORDER BY id;"
                        "SELECT id, optout FROM customers ORDER BY id;"
                        "SELECT * FROM suppressions ORDER BY id;"
                        "SELECT * FROM responses ORDER BY id;"
                        "SELECT count(*) FROM events;")

    def quiesce(self):
        """Waits until the outbox has nothing pending or in flight."""
        wait_for(lambda: self.sql("SELECT count(*) FROM reminders WHERE status IN "
                                  "('pending','sending','retry');") == "0",
                 30 * self.slow, 0.1, "an idle outbox")

    # ---- Maildir ----

    def messages(self):
        out = []
        for path in sorted(glob.glob(os.path.join(self.maildir, "new", "*"))):
            with open(path, "rb") as f:
                out.append(email.message_from_bytes(f.read(), policy=email.policy.default))
        return out

    def links_in(self, msg):
        """Every http(s) URL in a message: its text and HTML parts and
        List-Unsubscribe (the .ics part repeats the renew link, folded)."""
        urls = set()
        for part in msg.walk():
            if part.get_content_type() in ("text/plain", "text/html"):
                urls.update(re.findall(r"https?://[^\s\"'<>]+", part.get_content()))
        lu = msg.get("List-Unsubscribe")
        if lu:
            urls.update(re.findall(r"<(https?://[^>]+)>", str(lu)))
        return sorted(u.rstrip(".,);") for u in urls)
