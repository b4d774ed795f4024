#!/usr/bin/python3
"""Integration test: renewd notices writes by other processes within seconds.

renewd runs in real time (ChangePollInterval=1s, a send window open around the
clock, CatchUp=all) against a store that other writers change while it runs:
  1. the sqlite3 shell inserts a customer and a contract expiring in 10 days:
     the missed -P30D tier is caught up at once, so its reminder row appears;
  2. the sqlite3 shell moves the expiry of a contract with nothing due to
     10 days from now: its reminder rows appear;
  3. `renewctl import` of a CSV with a contract expiring in 5 days: its rows
     (-P30D and -P7D both missed, CatchUp=all) appear.
Each row must appear within DEADLINE seconds of the write (polled, not slept),
be sent through the Maildir sink, and no row may appear for a contract whose
tiers all lie in the future. The measured latencies are printed.

Usage: test-change-poll.py RENEWD RENEWCTL
"""
import os
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itestlib import (TestFailure, check, ensure_store, free_port, main_wrapper, run,  # noqa: E402
                      sanitized_slowdown, sql, wait_for, write, write_link_key)

DEADLINE = 3.0  # seconds from a commit to the reminder row (ChangePollInterval=1s)

CONFIG = """\
[Daemon]
Database={db}
Listen=127.0.0.1:{port}
TimeZone=UTC
ChangePollInterval=1s
LinkKeyFile={link_key}

[SendWindow]
Hours=00:00-24:00
Days=Mon..Sun

[Policy all]
Segments=*
CatchUp=all
Tiers=notice final

[Tier notice]
Offset=-P30D
Channels=email

[Tier final]
Offset=-P7D
Channels=email

[Channel email]
Type=sink
Maildir={maildir}
"""

CSV_HEADER = ("contract_id,customer_id,customer_name,email,phone,timezone,locale,segment,owner,"
              "product,starts_on,expires_on,value,currency\n")


def rows_of(db, contract_id):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT tier, step, status, term FROM reminders WHERE contract_id=? "
                           "ORDER BY tier, step", (contract_id,)).fetchall()
    finally:
        con.close()


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def body(wd):
    renewd, renewctl = sys.argv[1], sys.argv[2]
    slow = sanitized_slowdown()
    deadline = DEADLINE * (3 if slow > 1 else 1)
    db, conf, maildir = wd("renewd.db"), wd("renewd.conf"), wd("maildir")
    write(conf, CONFIG.format(db=db, port=free_port(), maildir=maildir, link_key=write_link_key(wd)))
    ensure_store(renewctl, db, conf, wd)
    now = int(time.time())
    # A contract with nothing due for months (changed in step 2).
    sql(db, f"""BEGIN;
INSERT INTO customers(id,name,email,tz,segment) VALUES ('K-far','Far Away','far@example.com','UTC','smb');
INSERT INTO contracts(id,customer_id,product,expires_at) VALUES ('C-far','K-far','Backup',{now + 200 * 86400});
INSERT INTO customers(id,name,email,tz,segment) VALUES ('K-quiet','Quiet','quiet@example.com','Asia/Tokyo','smb');
INSERT INTO contracts(id,customer_id,product,expires_at) VALUES ('C-quiet','K-quiet','Backup',{now + 300 * 86400});
COMMIT;
""")

    log = open(wd("renewd.log"), "w", encoding="utf-8")
    proc = subprocess.Popen([renewd, "--config", conf, "--log-target", "console"], stdout=log,
                            stderr=subprocess.STDOUT)
    latencies = {}

    def logtext():
        log.flush()
        with open(wd("renewd.log"), encoding="utf-8", errors="replace") as f:
            return f.read()

    def expect_rows(cid, want, t0, what):
        try:
            got = wait_for(lambda: (lambda r: r if len(r) >= len(want) else None)(rows_of(db, cid)),
                           deadline, interval=0.02, what=f"{what}: reminder rows of {cid}")
        except TestFailure as e:
            raise TestFailure(f"{e}; rows now {rows_of(db, cid)}\nlog:\n{logtext()[-3000:]}")
        latencies[what] = time.monotonic() - t0
        check(sorted((t, s) for t, s, _, _ in got) == sorted(want),
              f"{what}: rows of {cid} are {got}, expected tiers/steps {want}")
        return got

    try:
        # Started and idle: nothing is due for C-far / C-quiet.
        wait_for(lambda: "ready" in logtext() or proc.poll() is not None, 30 * slow, what="renewd start-up")
        check(proc.poll() is None, f"renewd exited {proc.returncode}\n{logtext()}")
        time.sleep(0.5)
        check(rows_of(db, "C-far") == [] and rows_of(db, "C-quiet") == [],
              f"rows for contracts with nothing due: {rows_of(db, 'C-far')} {rows_of(db, 'C-quiet')}")

        # 1. insert by the sqlite3 shell
        t0 = time.monotonic()
        sql(db, f"""BEGIN;
INSERT INTO customers(id,name,email,tz,segment) VALUES ('K-new','New One','new@example.com','America/New_York','smb');
INSERT INTO contracts(id,customer_id,product,expires_at) VALUES ('C-new','K-new','Backup',{now + 10 * 86400});
COMMIT;
""")
        expect_rows("C-new", [("notice", 0)], t0, "sqlite3 insert")

        # 2. expiry moved by the sqlite3 shell
        t0 = time.monotonic()
        sql(db, f"UPDATE contracts SET expires_at={now + 10 * 86400} WHERE id='C-far';\n")
        expect_rows("C-far", [("notice", 0)], t0, "sqlite3 update")

        # 3. renewctl import
        csv = wd("late.csv")
        write(csv, CSV_HEADER + f"C-imp,K-imp,Imported,imp@example.com,,Europe/Berlin,en,smb,,Backup,,"
                                f"{iso(now + 5 * 86400)},100.00,EUR\n")
        t0 = time.monotonic()
        run([renewctl, "--db", db, "--config", conf, "import", csv])
        expect_rows("C-imp", [("notice", 0), ("final", 0)], t0, "renewctl import")

        # Everything caught up is sent through the sink; nothing for C-quiet.
        wait_for(lambda: all(st == "sent" for c in ("C-new", "C-far", "C-imp") for _, _, st, _ in rows_of(db, c)),
                 10 * slow, what="reminder rows to be sent")
        time.sleep(1.5)  # one more poll interval: nothing else may appear
        check(rows_of(db, "C-quiet") == [], f"rows for C-quiet: {rows_of(db, 'C-quiet')}")
        check(len(rows_of(db, "C-new")) == 1 and len(rows_of(db, "C-far")) == 1 and len(rows_of(db, "C-imp")) == 2,
              "extra rows appeared: " + str({c: rows_of(db, c) for c in ("C-new", "C-far", "C-imp")}))
        files = [f for sub in ("new", "cur") if os.path.isdir(os.path.join(maildir, sub))
                 for f in os.listdir(os.path.join(maildir, sub))]
        check(len(files) == 4, f"{len(files)} messages in the Maildir, expected 4")

        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30 * slow)
        check(rc == 0, f"renewd exited {rc} after SIGTERM\n{logtext()}")
        print("latency from commit to reminder row: " +
              ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in latencies.items()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main_wrapper("test-change-poll", body))
