#!/usr/bin/python3
"""Integration test: what a config reload (SIGHUP) does to the schedule.

renewd runs in real time (send window open around the clock, zone UTC,
CatchUp=all) with config A: notice -P30D, final -P10D. Three contracts:
  * C-ladder expires in 25 days: its notice was missed, so it is sent at
    start-up and the contract enters its ladder (snapshot of A); next: the
    final, expiry - 10 days;
  * C-wheel expires in 30 days + 1 hour: its notice is due in an hour (on the
    timer wheel), not yet in a ladder;
  * C-new expires in 35 days: notice in 5 days (beyond the 48 h horizon).
Config B moves the tiers: notice -P36D, final -P24D (windows unchanged). After
SIGHUP:
  * C-wheel and C-new, not in a ladder, follow B: both notices are now in the
    past, so (CatchUp=all) both are sent at once; their next due instant is
    B's final (expiry - 24 days);
  * C-ladder keeps A (no new row; its next due instant stays A's final), as
    docs/scheduling.md says, even though B's final for it would be due in a
    day.
Config C then changes the send window (Hours=): the whole horizon is planned
again; still nothing new for C-ladder. The daemon logs "refill done" after
each reload.

Usage: test-reload.py RENEWD RENEWCTL
"""
import os
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itestlib import (TestFailure, check, ensure_store, free_port, main_wrapper,  # noqa: E402
                      sanitized_slowdown, sql, wait_for, write, write_link_key)

DAY = 86400

CONFIG = """\
[Daemon]
Database={db}
Listen=127.0.0.1:{port}
TimeZone=UTC
ChangePollInterval=1s
LinkKeyFile={link_key}

[SendWindow]
Hours={hours}
Days=Mon..Sun

[Policy all]
Segments=*
CatchUp=all
Tiers=notice final

[Tier notice]
Offset=-P{notice}D
Channels=email

[Tier final]
Offset=-P{final}D
Channels=email

[Channel email]
Type=sink
Maildir={maildir}
"""


def query(db, q, args=()):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(q, args).fetchall()
    finally:
        con.close()


def rows(db, cid):
    return query(db, "SELECT tier, step, status FROM reminders WHERE contract_id=? "
                     "ORDER BY id", (cid,))


def contract(db, cid):
    return query(db, "SELECT ladder_id, next_due_at, state FROM contracts WHERE id=?", (cid,))[0]


def body(wd):
    renewd, renewctl = sys.argv[1], sys.argv[2]
    deadline = 10.0 * sanitized_slowdown()
    db, conf, maildir = wd("renewd.db"), wd("renewd.conf"), wd("maildir")
    port = free_port()
    link_key = write_link_key(wd)

    def config(notice, final, hours="00:00-24:00"):
        write(conf, CONFIG.format(db=db, port=port, maildir=maildir, link_key=link_key, notice=notice,
                                  final=final, hours=hours))

    config(30, 10)
    ensure_store(renewctl, db, conf, wd)
    now = int(time.time())
    exp = {"C-ladder": now + 25 * DAY, "C-wheel": now + 30 * DAY + 3600, "C-new": now + 35 * DAY}
    script = "BEGIN;\n"
    for cid, e in exp.items():
        script += (f"INSERT INTO customers(id,name,email,tz,segment) VALUES "
                   f"('K{cid}','{cid}','{cid.lower()}@example.com','UTC','smb');\n"
                   f"INSERT INTO contracts(id,customer_id,product,expires_at) VALUES "
                   f"('{cid}','K{cid}','Backup',{e});\n")
    sql(db, script + "COMMIT;\n")

    logf = open(wd("renewd.log"), "w", encoding="utf-8")
    proc = subprocess.Popen([renewd, "--config", conf, "--log-target", "console"], stdout=logf,
                            stderr=subprocess.STDOUT)

    def logtext():
        if not logf.closed:
            logf.flush()
        with open(wd("renewd.log"), encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_log_after(marker, needle, what, nth=1):
        def pred():
            t = logtext()
            i = t.rfind(marker)
            return t.count(marker) >= nth and needle in t[i:]
        try:
            wait_for(pred, deadline, what=what)
        except TestFailure as e:
            raise TestFailure(f"{e}\nlog:\n{logtext()[-3000:]}")

    try:
        wait_log_after("started", "ready:", "READY")
        wait_for(lambda: rows(db, "C-ladder") == [("notice", 0, "sent")], deadline,
                 what="C-ladder's missed notice sent at start-up")
        ladder, due, state = contract(db, "C-ladder")
        check(ladder and state == "reminding" and due == exp["C-ladder"] - 10 * DAY,
              f"C-ladder after start-up: {(ladder, due, state)}")
        check(rows(db, "C-wheel") == [] and rows(db, "C-new") == [], "nothing else sent yet")
        check(contract(db, "C-wheel")[1] == exp["C-wheel"] - 30 * DAY, "C-wheel due in an hour")
        check(contract(db, "C-new")[1] == exp["C-new"] - 30 * DAY, "C-new due in 5 days")

        # reload B: the tiers move, the windows do not
        config(36, 24)
        proc.send_signal(signal.SIGHUP)
        wait_log_after("configuration reloaded", "refill done in", "the reload's refill")
        for cid in ("C-wheel", "C-new"):
            wait_for(lambda: rows(db, cid) == [("notice", 0, "sent")], deadline,
                     what=f"{cid}'s notice (missed under B) sent after the reload")
            check(contract(db, cid)[1] == exp[cid] - 24 * DAY,
                  f"{cid} next due = B's final: {contract(db, cid)} vs {exp[cid] - 24 * DAY}")
        check(rows(db, "C-ladder") == [("notice", 0, "sent")], f"C-ladder: {rows(db, 'C-ladder')}")
        check(contract(db, "C-ladder") == (ladder, exp["C-ladder"] - 10 * DAY, "reminding"),
              f"C-ladder keeps its snapshot: {contract(db, 'C-ladder')}")

        # reload C: another send window: the whole horizon is planned again
        config(36, 24, hours="00:00-23:59")
        proc.send_signal(signal.SIGHUP)
        wait_log_after("configuration reloaded", "refill done in", "the second reload's refill", 2)
        check(rows(db, "C-ladder") == [("notice", 0, "sent")], "C-ladder unchanged again")
        check(contract(db, "C-ladder")[0] == ladder, "C-ladder keeps its ladder")
        check(contract(db, "C-ladder")[1] >= exp["C-ladder"] - 10 * DAY,
              f"C-ladder still on A's final: {contract(db, 'C-ladder')}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        logf.close()
    check(proc.returncode == 0, f"renewd exited {proc.returncode}:\n{logtext()[-3000:]}")
    return 0


if __name__ == "__main__":
    sys.exit(main_wrapper("test-reload", body))
