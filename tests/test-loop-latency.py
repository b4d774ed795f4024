#!/usr/bin/python3
"""Integration test: renewd's loop never waits on the store (functional, not timed).

renewd runs in real time with RENEWD_SCAN_PAGE_ROWS=7 (every scan and the
metrics recount read 7 rows per page) against a store other writers change:
  1. 300 contracts written by the sqlite3 shell before the start, each with a
     missed tier (CatchUp=all): every one gets its reminder row and is sent,
     which takes the paged scans dozens of pages over many loop iterations;
  2. 120 more contracts committed by another connection, which then holds the
     write lock (BEGIN IMMEDIATE) for 4 s: renewd's planning finds the store
     locked, backs off (renewd_store_busy_total grows) and keeps answering
     /healthz and /metrics meanwhile; once the lock is released every new
     contract gets its row;
  3. after a complete recount pass that started once nothing changed any
     more, /metrics figures (contracts by state, reminders by status) equal
     the tables' counts;
  4. the loop-iteration histogram and maximum are exported.
Deadlines are generous (a loaded machine); nothing is asserted about speed.

Usage: test-loop-latency.py RENEWD RENEWCTL
"""
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itestlib import (TestFailure, check, ensure_store, free_port, main_wrapper,  # noqa: E402
                      sanitized_slowdown, sql, wait_for, write,
                      write_link_key)

CONFIG = """\
[Daemon]
Database={db}
LinkKeyFile={key}
Listen=127.0.0.1:{port}
TimeZone=UTC
ChangePollInterval=1s

[SendWindow]
Hours=00:00-24:00
Days=Mon..Sun

[Policy all]
Segments=*
CatchUp=all
Tiers=notice

[Tier notice]
Offset=-P30D
Channels=email

[Channel email]
Type=sink
Maildir={maildir}
"""


def insert_sql(prefix, n, expires):
    rows = []
    for i in range(n):
        rows.append(f"INSERT INTO customers(id,name,email,tz,segment) VALUES "
                    f"('K-{prefix}{i}','C {i}','{prefix}{i}@example.com','UTC','smb');")
        rows.append(f"INSERT INTO contracts(id,customer_id,product,expires_at) VALUES "
                    f"('C-{prefix}{i}','K-{prefix}{i}','Backup',{expires});")
    return rows


def counts(db, query):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return dict(con.execute(query).fetchall())
    finally:
        con.close()


def get(port, path, timeout=10):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read().decode()


def metric(text, name, labels=None):
    """The value of one sample (labels: dict that must match), or None."""
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if labels is None or all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def body(wd):
    renewd, renewctl = sys.argv[1], sys.argv[2]
    slow = sanitized_slowdown()
    db, conf, maildir, port = wd("renewd.db"), wd("renewd.conf"), wd("maildir"), free_port()
    write(conf, CONFIG.format(db=db, port=port, maildir=maildir,
                                      key=write_link_key(wd)))
    ensure_store(renewctl, db, conf, wd)
    soon = int(time.time()) + 10 * 86400
    sql(db, "BEGIN;\n" + "\n".join(insert_sql("a", 300, soon)) + "\nCOMMIT;\n")

    log = open(wd("renewd.log"), "w", encoding="utf-8")
    env = dict(os.environ, RENEWD_SCAN_PAGE_ROWS="7")
    proc = subprocess.Popen([renewd, "--config", conf, "--log-target", "console"], stdout=log,
                            stderr=subprocess.STDOUT, env=env)

    def logtext():
        log.flush()
        with open(wd("renewd.log"), encoding="utf-8", errors="replace") as f:
            return f.read()

    def all_sent(prefix, n):
        c = counts(db, f"SELECT status, count(*) FROM reminders WHERE contract_id LIKE 'C-{prefix}%' "
                       "GROUP BY status")
        return c.get("sent", 0) == n and sum(c.values()) == n

    try:
        # 1. paged scans over many iterations
        wait_for(lambda: "ready" in logtext() or proc.poll() is not None, 60 * slow, what="start-up")
        check(proc.poll() is None, f"renewd exited {proc.returncode}\n{logtext()[-3000:]}")
        try:
            wait_for(lambda: all_sent("a", 300), 60 * slow, interval=0.2, what="300 reminders sent")
        except TestFailure as e:
            raise TestFailure(f"{e}: {counts(db, 'SELECT status, count(*) FROM reminders GROUP BY status')}"
                              f"\n{logtext()[-3000:]}")
        print("paged scans: 300 contracts planned and sent with 7-row pages")

        # 2. another writer commits, then holds the lock
        _, m0 = get(port, "/metrics")
        busy0 = metric(m0, "renewd_store_busy_total") or 0
        con = sqlite3.connect(db, timeout=10, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        for stmt in insert_sql("b", 120, soon):
            con.execute(stmt)
        con.execute("COMMIT")
        con.execute("BEGIN IMMEDIATE")  # held: renewd's next write finds it locked
        answered, failures = [], []
        t_end = time.monotonic() + 4
        while time.monotonic() < t_end:
            try:
                st, text = get(port, "/healthz", timeout=5 * slow)
                answered.append(st)
            except Exception as e:  # noqa: BLE001 (any failure to answer is the finding)
                failures.append(repr(e))
            time.sleep(0.05)
        st, mtext = get(port, "/metrics", timeout=5 * slow)
        con.execute("ROLLBACK")
        con.close()
        check(not failures and answered and all(s == 200 for s in answered),
              f"/healthz while the store was locked: {len(answered)} answers {set(answered)}, "
              f"failures {failures[:3]}")
        busy1 = metric(mtext, "renewd_store_busy_total") or 0
        check(busy1 > busy0, f"renewd_store_busy_total did not grow while locked ({busy0} -> {busy1})"
                             f"\n{logtext()[-2000:]}")
        wait_for(lambda: all_sent("b", 120), 60 * slow, interval=0.2,
                 what="the 120 contracts committed before the lock to be sent")
        print(f"busy store: {len(answered)} /healthz answers while locked, {busy1 - busy0:.0f} back-offs")

        # 3. /metrics equals the tables after a complete recount
        def passes():
            return metric(get(port, "/metrics")[1], "renewd_store_recount_passes_total") or 0
        p0 = passes()
        wait_for(lambda: passes() >= p0 + 2, 60 * slow, interval=0.3, what="two recount passes")
        _, mtext = get(port, "/metrics")
        states = counts(db, "SELECT state, count(*) FROM contracts GROUP BY state")
        for st in ("active", "reminding", "renewed", "closed"):
            got = metric(mtext, "renewd_contracts", {"state": st})
            check(got == states.get(st, 0), f"renewd_contracts{{state={st}}} {got}, table {states}")
        statuses = counts(db, "SELECT status, count(*) FROM reminders GROUP BY status")
        got = metric(mtext, "renewd_reminders", {"channel": "email", "tier": "notice",
                                                  "audience": "customer", "status": "sent"})
        check(got == statuses.get("sent"), f"renewd_reminders sent {got}, table {statuses}")
        check(metric(mtext, "renewd_outbox_depth", {"state": "pending"}) == statuses.get("pending", 0),
              "outbox depth differs from the table")
        check(metric(mtext, "renewd_store_up") == 1, "renewd_store_up is not 1")
        print(f"metrics: contracts {states}, reminders {statuses} match after a recount")

        # 4. loop statistics
        mx = metric(mtext, "renewd_loop_iteration_seconds_max")
        n = metric(mtext, "renewd_loop_iteration_seconds_count")
        check(mx is not None and mx > 0 and n and n > 0, f"loop statistics missing: max {mx} count {n}")
        check(metric(mtext, "renewd_loop_iteration_seconds_bucket", {"le": "+Inf"}) == n,
              "loop histogram +Inf bucket != count")
        print(f"loop: {n:.0f} iterations, longest {mx * 1000:.1f} ms")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
    check(proc.returncode == 0, f"renewd exited {proc.returncode} after SIGTERM")
    return 0


if __name__ == "__main__":
    sys.exit(main_wrapper("test-loop-latency", body))
