#!/usr/bin/python3
"""Integration test: HTTP writes while another process holds the store's write
lock (the daemon's loop connection never waits in SQLite's busy handler; a
request that meets the lock is suspended and run again from a timer, see
docs/http.md "A locked store"). Real renewd, real sqlite3 shell as the
foreign writer (fixture: tests/httptestlib.py).

Checked:
  * a short lock (about 2 s, BEGIN IMMEDIATE in a sqlite3 process): an answer
    POST (signed link), a signed inbound SMS STOP and an API answer with an
    Idempotency-Key, all sent while the lock is held, succeed once it is
    released (200 / 200 TwiML / 201), none of them before; each is recorded
    exactly once (the link's POST again says "already"); /healthz and a GET of
    an answer page keep answering 200 while the lock is held;
  * a lock held past the daemon's bound: the same three kinds of request get
    503 with Retry-After (the localized error page; the API's JSON error) after
    the bound and nothing is recorded; the API request sent again after the
    release is recorded (a 503 is not stored for its Idempotency-Key);
  * renewd_store_busy_total counts the back-offs; SIGTERM while a request
    waits for its retry: exit 0, the request is not recorded; no link token in
    the log.

Usage: test-http-busy.py RENEWD RENEWCTL
"""
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptestlib import Daemon, day  # noqa: E402
from itestlib import TestFailure, check, main_wrapper, wait_for  # noqa: E402

BOUND_S = 8  # HTTP_BUSY_LIMIT_MS (daemon/http.h)

CONTRACTS = [
    dict(contract_id=f"C-{i}", customer_id=f"K-{i}", customer_name=f"Customer {i}",
         email=f"c{i}@example.com", phone=f"+493020000{i}", timezone="UTC", locale="en",
         owner="O-1", product=f"Plan {i}", expires_on=day(20 + i))
    for i in range(1, 7)
]
OWNERS = [dict(id="O-1", name="Olivia Owner", email="olivia@example.com", timezone="UTC")]


class Lock:
    """A sqlite3 shell holding BEGIN IMMEDIATE on the store until release()."""

    def __init__(self, db):
        self.p = subprocess.Popen(["sqlite3", "-batch", db], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.p.stdin.write(".timeout 20000\nBEGIN IMMEDIATE;\nSELECT 'locked';\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        if line != "locked":
            raise TestFailure(f"sqlite3 did not take the lock: {line!r} {self.p.stderr.read()}")

    def release(self):
        out, err = self.p.communicate("COMMIT;\n.quit\n", timeout=30)
        check(self.p.returncode == 0 and not err.strip(), f"sqlite3 COMMIT: {self.p.returncode} {err}")


class Call(threading.Thread):
    """One request on its own thread: result, and when it came back."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error, self.done_at = fn, None, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn()
        except Exception as e:  # reported by get()
            self.error = e
        self.done_at = time.monotonic()

    def get(self, timeout):
        self.join(timeout)
        check(not self.is_alive(), "a request did not come back")
        if self.error:
            raise TestFailure(f"request failed: {self.error!r}")
        return self.result


def counts(d):
    return {c["contract_id"]: len(d.responses(c["contract_id"])) for c in CONTRACTS}


def suppressed(d, phone):
    return int(d.sql(f"SELECT count(*) FROM suppressions WHERE kind = 'sms' AND address = '{phone}';"))


def metric(d, name):
    for line in d.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return 0.0


def short_lock(d):
    decline = d.link("C-1", "decline")
    page = d.link("C-2", "decline")
    before = counts(d)
    lock = Lock(d.db)
    t_lock = time.monotonic()
    calls = {
        "link": Call(lambda: d.post_form(decline, {"confirm": "yes", "reason": "price"})),
        "sms": Call(lambda: d.sms("+4930200003", "STOP", "SM-busy-1")),
        "api": Call(lambda: d.api("POST", "/contracts/C-4/responses", {"kind": "declined"},
                                  headers={"Idempotency-Key": "busy-C-4"})),
    }
    # the listener keeps serving while those wait
    served = 0
    while time.monotonic() - t_lock < 2.0:
        r = d.get("/healthz", timeout=5)
        check(r.status == 200, f"/healthz during the lock: {r.status} {r.text}")
        served += 1
        time.sleep(0.05)
    r = d.get(page, timeout=5)
    check(r.status == 200 and r.page() == "form", f"GET of an answer page during the lock: {r.status} {r.page()}")
    waiting = [k for k, c in calls.items() if c.done_at is None]
    check(waiting == list(calls), f"requests answered while the store was locked: "
          f"{ {k: (c.result.status if c.result else c.error) for k, c in calls.items() if k not in waiting} }")
    t_release = time.monotonic()
    lock.release()
    res = {k: c.get(30 * d.slow) for k, c in calls.items()}
    check(all(c.done_at >= t_release for c in calls.values()), "a request came back before the release")
    r = res["link"]
    check(r.status == 200 and r.page() == "done", f"link POST after the lock: {r.status} {r.page()}\n{r.text[-600:]}")
    r = res["sms"]
    check(r.status == 200 and "<Message>" in r.text and "unsubscribed" in r.text,
          f"SMS STOP after the lock: {r.status} {r.text}")
    r = res["api"]
    check(r.status == 201 and r.json()["kind"] == "declined", f"API answer after the lock: {r.status} {r.text}")
    after = counts(d)
    expected = dict(before, **{"C-1": before["C-1"] + 1, "C-3": before["C-3"] + 1, "C-4": before["C-4"] + 1})
    check(after == expected, f"responses after the lock: {after}, expected {expected}")
    check(suppressed(d, "+4930200003") == 1, "STOP did not suppress the number once")
    check(d.contract("C-1")["state"] == "declined" and d.contract("C-4")["state"] == "declined",
          f"states: {d.contract('C-1')} {d.contract('C-4')}")
    # once only: the link again says so, the SMS again and the API key replay record nothing
    r = d.post_form(decline, {"confirm": "yes", "reason": "price"})
    check(r.status == 200 and r.page() == "already", f"the link POST again: {r.status} {r.page()}")
    r = d.sms("+4930200003", "STOP", "SM-busy-1")
    check(r.status == 200, f"the SMS again: {r.status}")
    r = d.api("POST", "/contracts/C-4/responses", {"kind": "declined"}, headers={"Idempotency-Key": "busy-C-4"})
    check(r.status == 201 and r.headers.get("idempotent-replayed") == "true", f"API replay: {r.status} {r.headers}")
    check(counts(d) == expected, f"repeats recorded something: {counts(d)}")
    print(f"short lock: 3 writes done after the release, /healthz served {served} times meanwhile")


def long_lock(d):
    decline = d.link("C-5", "decline")
    before = counts(d)
    busy0 = metric(d, "renewd_store_busy_total")
    lock = Lock(d.db)
    t0 = time.monotonic()
    try:
        calls = {
            "link": Call(lambda: d.post_form(decline, {"confirm": "yes", "reason": "price"})),
            "sms": Call(lambda: d.sms("+4930200006", "STOP", "SM-busy-2")),
            "api": Call(lambda: d.api("POST", "/contracts/C-6/responses", {"kind": "declined"},
                                      headers={"Idempotency-Key": "busy-C-6"})),
        }
        res = {k: c.get(60 * d.slow) for k, c in calls.items()}
        r = d.get("/healthz", timeout=5)
        check(r.status == 200, f"/healthz during the long lock: {r.status}")
    finally:
        lock.release()
    for k, c in calls.items():
        r = res[k]
        check(r.status == 503 and r.headers.get("retry-after", "").isdigit(),
              f"{k} during a long lock: {r.status} {r.headers}\n{r.text[-400:]}")
        check(c.done_at - t0 >= BOUND_S - 1, f"{k}: 503 after {c.done_at - t0:.1f} s, before the bound")
    r = res["link"]
    check(r.page() == "error" and "try again" in r.text, f"the page's 503: {r.page()}\n{r.text[-600:]}")
    r = res["api"]
    check(r.headers["content-type"] == "application/json" and r.json()["error"]["status"] == 503,
          f"the API's 503: {r.text}")
    check(counts(d) == before, f"a 503 recorded something: {counts(d)} (before {before})")
    check(suppressed(d, "+4930200006") == 0, "a 503 STOP suppressed the number")
    busy = metric(d, "renewd_store_busy_total")
    check(busy > busy0 + 3, f"renewd_store_busy_total {busy0} -> {busy}")
    # the client's retry after the release is recorded (503 was not stored for its key)
    r = d.api("POST", "/contracts/C-6/responses", {"kind": "declined"}, headers={"Idempotency-Key": "busy-C-6"})
    check(r.status == 201 and "idempotent-replayed" not in r.headers, f"API retry after the release: {r.status}")
    check(counts(d)["C-6"] == before["C-6"] + 1, "the API retry was not recorded once")
    print(f"long lock: 3 × 503 with Retry-After after {BOUND_S} s, nothing recorded")


def body(wd):
    renewd, renewctl = sys.argv[1], sys.argv[2]
    d = Daemon(wd, renewd, renewctl, CONTRACTS, OWNERS)
    try:
        wait_for(lambda: len(d.messages()) >= len(CONTRACTS), 30 * d.slow, 0.1, "the first reminders")
        d.quiesce()
        short_lock(d)
        d.quiesce()
        long_lock(d)
        d.quiesce()
        decline = d.link("C-2", "decline")
        before = counts(d)
        lock = Lock(d.db)
        try:
            call = Call(lambda: d.post_form(decline, {"confirm": "yes", "reason": "price"}))
            time.sleep(0.5)
            check(call.done_at is None, "the POST was answered while the store was locked")
            rc = d.stop()
            call.join(30 * d.slow)
        finally:
            lock.release()
        check(rc == 0, f"renewd exited {rc} after SIGTERM with a request waiting for its retry")
        check(counts(d) == before, f"the request cut by SIGTERM was recorded: {counts(d)}")
        with open(wd("renewd.log"), encoding="utf-8", errors="replace") as f:
            check("/r/v1." not in f.read(), "a link token was logged")
    except TestFailure as e:
        with open(wd("renewd.log"), encoding="utf-8", errors="replace") as f:
            log = f.read()
        raise TestFailure(f"{e}\n--- renewd log (tail) ---\n{log[-6000:]}")
    finally:
        d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main_wrapper("test-http-busy", body))
