"""Shared set-up for the delivery integration tests (tests/test-dispatch-*.py).

Each test gets a temporary directory with a store, a config written from
pieces, contracts imported with the real `renewctl import`, and runs the real
`renewd` (simulated clock or real time). Receivers are tests/http_receiver.py
servers on loopback ports chosen by the kernel.
"""
import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_receiver import Receiver, free_port  # noqa: E402,F401

# Contracts of the tests expire on EXPIRES_ON (valid through that day, UTC),
# so the notice tier (Offset=-P30D) is due at NOTICE_AT, inside SIM_FROM..SIM_UNTIL.
EXPIRES_ON = "2031-02-14"
NOTICE_AT = "2031-01-16T00:00:00Z"
SIM_FROM = "2031-01-15"  # a day before NOTICE_AT: short simulations
SIM_UNTIL = "2031-01-25"

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks example key


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print(f"ok: {msg}")


class Env:
    def __init__(self, name, build_dir):
        self.build = build_dir
        self.renewd = os.path.join(build_dir, "daemon", "renewd")
        self.renewctl = os.path.join(build_dir, "cli", "renewctl")
        self.dir = tempfile.mkdtemp(prefix=f"renewd-{name}-")
        self.db = os.path.join(self.dir, "renewd.db")
        self.conf = os.path.join(self.dir, "renewd.conf")
        self.maildir = os.path.join(self.dir, "maildir")
        self.secret_file = os.path.join(self.dir, "webhook-secret")
        with open(self.secret_file, "w") as f:
            f.write(SECRET + "\n")
        self.token_file = os.path.join(self.dir, "sms-token")
        with open(self.token_file, "w") as f:
            f.write("tw-token-123\n")
        # customer email and SMS carry signed links: renewd refuses to start without a key
        self.link_key = os.path.join(self.dir, "link-key")
        with open(self.link_key, "w") as f:
            f.write("dispatch-harness-link-key-0123456789\n")
        self.procs = []
        self.receivers = []

    def receiver(self, **kw):
        r = Receiver(**kw).start()
        self.receivers.append(r)
        return r

    def write_config(self, channels, tier_extra="", channels_list="hook", ops="",
                     catchup="latest", offset="-P30D"):
        text = f"""[Daemon]
Database={self.db}
LinkKeyFile={self.link_key}
Listen=127.0.0.1:{free_port()}
PublicURL=https://renew.test
TimeZone=UTC
Templates={self.dir}/templates
Horizon=48h
RefillInterval=10min
ChangePollInterval=1s

[SendWindow]
Hours=00:00-24:00
Days=Mon..Sun

[Policy standard]
Segments=*
CatchUp={catchup}
Tiers=notice

[Tier notice]
Offset={offset}
Channels={channels_list}
{tier_extra}

{channels}
{ops}
"""
        with open(self.conf, "w") as f:
            f.write(text)

    def import_contracts(self, n, expires_on=EXPIRES_ON, phone=True, customize=None):
        """Imports contracts C-0001.. with customers K-0001..; customize(i, row)
        may change a CSV row (a list in the header's column order)."""
        path = os.path.join(self.dir, "contracts.csv")
        import datetime
        starts_on = (datetime.date.fromisoformat(expires_on) - datetime.timedelta(days=365)).isoformat()
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["contract_id", "customer_id", "customer_name", "email", "phone",
                        "timezone", "locale", "segment", "owner", "product", "starts_on",
                        "expires_on", "value", "currency"])
            for i in range(1, n + 1):
                row = [f"C-{i:04d}", f"K-{i:04d}", f"Customer {i}",
                       f"customer{i}@example.com", f"+4915112345{i:03d}" if phone else "",
                       "UTC", "en", "smb", "alice", "Cloud Backup", starts_on,
                       expires_on, "1200.50", "EUR"]
                if customize:
                    customize(i, row)
                w.writerow(row)
        p = subprocess.run([self.renewctl, "--config", self.conf, "import", path],
                           capture_output=True, text=True)
        if p.returncode != 0:
            fail(f"renewctl import failed: {p.stdout}{p.stderr}")

    def simulate(self, frm=SIM_FROM, until=SIM_UNTIL, timeout=60):
        p = subprocess.run([self.renewd, "--config", self.conf, "--log-target=console",
                            "--log-level=info", "--simulate", f"{frm}..{until}"],
                           capture_output=True, text=True, timeout=timeout)
        self.last_log = p.stderr
        with open(os.path.join(self.dir, "renewd.log"), "a") as f:
            f.write(p.stderr)
        if p.returncode != 0:
            fail(f"renewd exited {p.returncode}:\n{p.stderr[-3000:]}")
        return p.stderr

    def start_daemon(self):
        log = open(os.path.join(self.dir, "renewd.log"), "a")
        p = subprocess.Popen([self.renewd, "--config", self.conf, "--log-target=console",
                              "--log-level=info"], stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "renewd.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, needle, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_text():
                return True
            time.sleep(0.05)
        fail(f"'{needle}' not in the log within {timeout}s:\n{self.log_text()[-3000:]}")

    def rows(self, where="1=1", args=()):
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(f"SELECT * FROM reminders WHERE {where} ORDER BY id", args)]
        finally:
            con.close()

    def wait_rows(self, predicate, timeout=30, what="rows"):
        deadline = time.monotonic() + timeout
        rows = []
        while time.monotonic() < deadline:
            try:
                rows = self.rows()
            except sqlite3.OperationalError:
                rows = []
            if predicate(rows):
                return rows
            time.sleep(0.05)
        fail(f"{what}: not reached within {timeout}s; rows: {json.dumps(rows, indent=1)[-3000:]}")

    def renewctl_run(self, *args):
        return subprocess.run([self.renewctl, "--config", self.conf, *args], capture_output=True,
                              text=True)

    def cleanup(self, ok=True):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for r in self.receivers:
            r.stop()
        if ok and not os.environ.get("RENEWD_KEEP_TEST_DIR"):
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print(f"(test directory kept: {self.dir})")


def webhook_channel(name, url, extra=""):
    return f"""[Channel {name}]
Type=webhook
URL={url}
SecretFile={{secret}}
AllowPrivate=yes
{extra}
"""
