#!/usr/bin/env python3
"""A store locked by another process while transfers are in flight, through
the real renewd (docs/delivery.md, "While another process holds the store"):

  1. a webhook receiver holds each request 1 s; while 4 transfers are in
     flight a foreign `sqlite3` process holds BEGIN IMMEDIATE for 3 s. The
     results that finish meanwhile are kept and written once the lock is
     free; nothing is claimed meanwhile; afterwards every row is 'sent',
     the receiver saw each webhook-id exactly once, none is left
     'sending', and the warning is logged once for the episode
  2. SIGTERM during such a lock: the stop waits until the results are
     written, then exits 0 with every row 'sent'

Usage: test-dispatch-busy.py BUILD_DIR
"""
import datetime
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dispatch_harness import Env, SECRET, check, fail, webhook_channel  # noqa: E402

BUILD = sys.argv[1]
SOON = (datetime.date.today() + datetime.timedelta(days=10)).isoformat()
HOLD = 1    # seconds the receiver holds each request
LOCKED = 3  # seconds the foreign writer holds the write lock
CONC = 4
WARNING = "another process holds the store's write lock"


class ForeignLock:
    """A sqlite3 CLI process holding BEGIN IMMEDIATE on the store."""

    def __init__(self, db):
        self.p = subprocess.Popen(["sqlite3", db], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.p.stdin.write(".timeout 10000\nBEGIN IMMEDIATE;\nSELECT 'locked';\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        if line != "locked":
            fail(f"sqlite3 could not take the write lock: {line!r} {self.p.stderr.read()}")
        self.t0 = time.monotonic()

    def release(self):
        self.p.stdin.write("COMMIT;\n.quit\n")
        self.p.stdin.flush()
        self.p.stdin.close()
        if self.p.wait(10) != 0:
            fail(f"sqlite3 failed: {self.p.stderr.read()}")


def wait_exit(p, timeout, what):
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        fail(f"{what}: renewd did not exit within {timeout}s")


def setup(name, n):
    env = Env(name, BUILD)
    rcv = env.receiver(secrets=[SECRET], default={"hang": HOLD, "status": 204})
    env.write_config(webhook_channel("hook", rcv.url("/hook"), f"MaxConcurrent={CONC}\n")
                     .replace("{secret}", env.secret_file))
    env.import_contracts(n, expires_on=SOON)
    return env, rcv


def check_once(env, rcv, n, what):
    rows = env.wait_rows(lambda rs: len(rs) == n and all(r["status"] == "sent" for r in rs),
                         timeout=60, what=f"{what}: every row sent")
    check(not any(r["status"] == "sending" for r in rows), f"{what}: no row left 'sending'")
    check(all(r["attempts"] == 1 for r in rows), f"{what}: one attempt per row")
    ids = [r["headers"]["webhook-id"] for r in rcv.records()]
    check(len(ids) == n and len(set(ids)) == n,
          f"{what}: the receiver saw each webhook-id once ({len(ids)} requests, {n} rows)")
    check(set(ids) == {r["idem_key"] for r in rows}, f"{what}: ... the rows' keys")


# 1. results and claims while the store is locked ------------------------------------------
N = 8
env, rcv = setup("busy-results", N)
p = env.start_daemon()
rcv.wait_for(lambda rs: len(rs) >= CONC, timeout=30)
lock = ForeignLock(env.db)
time.sleep(HOLD + 0.8)  # the transfers in flight finish while the lock is held
check(lock.p.poll() is None and time.monotonic() - lock.t0 < LOCKED,
      "the foreign writer still holds the lock")
rows = env.rows()
check(sum(r["status"] == "sending" for r in rows) == CONC,
      "finished transfers whose results cannot be written stay 'sending' meanwhile")
check(len(rcv.records()) == CONC, "nothing new was claimed while the store was locked")
time.sleep(max(0.0, LOCKED - (time.monotonic() - lock.t0)))
lock.release()
check_once(env, rcv, N, "after the lock")
env.wait_log("kept results written")
log = env.log_text()
check(log.count(WARNING) == 1, f"one warning for the episode, not one per retry "
      f"({log.count(WARNING)})")
check("late result not recorded" not in log, "no result was lost to the lease sweep")
p.send_signal(signal.SIGTERM)
check(wait_exit(p, 30, "idle stop") == 0, "exit status 0")
env.cleanup()

# 2. a graceful stop waits for the kept results --------------------------------------------
env, rcv = setup("busy-stop", CONC)
p = env.start_daemon()
rcv.wait_for(lambda rs: len(rs) >= CONC, timeout=30)
lock = ForeignLock(env.db)
p.send_signal(signal.SIGTERM)
time.sleep(HOLD + 0.8)
check(p.poll() is None, "the stop waits while results cannot be written")
time.sleep(max(0.0, LOCKED - (time.monotonic() - lock.t0)))
lock.release()
check(wait_exit(p, 30, "stop") == 0, "SIGTERM during the lock: exit status 0")
rows = env.rows()
check(len(rows) == CONC and all(r["status"] == "sent" for r in rows),
      "the results kept during the lock were written before the exit")
check(len(rcv.records()) == CONC, "each transfer ran once")
env.cleanup()
print("all ok")
