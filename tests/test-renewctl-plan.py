#!/usr/bin/python3
"""Integration test: `renewctl plan`, `plan --diff` and `replan` on a small
hand-made store, with exact output lines.

The store: five contracts (imported with `renewctl import`), two sales owners
(sqlite3 shell), one customer opted out of SMS. The ladder: notice -P30D
(email, sms), reminder -P14D repeated weekly twice (email), escalation -P3D to
the owner (owner-email); windows Mon-Fri 09-18 for customers, 08-19 for
owners. The "new" config moves the notice to -P21D and adds a final tier at
-P7D (which cuts the reminder's second repeat).

Each expected instant was derived by hand (see the comments) from
docs/scheduling.md: calendar-day offsets in the customer's zone, then the
recipient's window in the recipient's zone (C2's owner "ghost" does not exist:
its escalation goes to the fallback owner "desk" in Tokyo).

Steps: plan (table and JSON), plan --diff (table and JSON), a short
`renewd --simulate` so that C4 enters its ladder (its notice is sent), plan
again (C4's history shows as sent/skipped; the diff keeps C4 unchanged),
replan --dry-run (nothing written), replan (ladder_id moved, change_seq
bumped, event logged), replan again (nothing), and usage errors.

Usage: test-renewctl-plan.py RENEWD RENEWCTL
"""
import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itestlib import (TestFailure, check, free_port, main_wrapper, run, sql, write,  # noqa: E402
                      write_link_key)

CONFIG = """\
[Daemon]
Database={db}
Listen=127.0.0.1:{port}
TimeZone=Europe/Berlin
LinkKeyFile={wd}/link.key

[SendWindow]
Hours=09:00-18:00
Days=Mon..Fri

[SendWindow owners]
Hours=08:00-19:00
Days=Mon..Fri

[Policy standard]
Segments=smb *
CatchUp=latest
Tiers={tiers}
FallbackOwner=desk
OwnerSendWindow=owners

[Tier notice]
Offset={notice}
Channels=email sms

[Tier reminder]
Offset=-P14D
Repeat=FREQ=WEEKLY;COUNT=2
Channels=email

[Tier final]
Offset=-P7D
Channels=email

[Tier escalation]
Offset=-P3D
Channels=owner-email
Audience=owner

[Channel email]
Type=sink
Maildir={wd}/maildir

[Channel owner-email]
Type=sink
Maildir={wd}/maildir-owners

[Channel sms]
Type=sms
Provider=generic
URL=http://127.0.0.1:9/send
From=Renewals
"""

CSV = """\
contract_id,customer_id,customer_name,email,phone,timezone,locale,segment,owner,product,starts_on,expires_on,value,currency
C1,K1,Anna,anna@example.com,+4915112345001,Europe/Berlin,de,smb,alice,Backup,,2030-02-28,100.00,EUR
C2,K2,Bob,bob@example.com,,Asia/Tokyo,en,smb,ghost,Backup,,2030-03-05,100.00,EUR
C3,K3,Carol,carol@example.com,+15551234567,America/New_York,en,smb,alice,Backup,,2030-02-20,100.00,EUR
C4,K4,Dan,dan@example.com,,UTC,en,smb,,Backup,,2030-02-12,100.00,EUR
C9,K9,Far,far@example.com,,UTC,en,smb,,Backup,,2031-06-30,100.00,EUR
"""

# Expiries: C1 2030-03-01 00:00 Berlin (02-28T23:00Z); C2 03-06 00:00 Tokyo
# (03-05T15:00Z); C3 02-21 00:00 New York (05:00Z); C4 02-13T00:00Z. 2030-01-01
# is a Tuesday.
PLAN = """\
WHEN (UTC)            LOCAL                      CONTRACT  TIER        STEP  CHANNEL      TO                                   STATUS
2030-01-14T09:00:00Z  2030-01-14T09:00:00+00:00  C4        notice         0  email        dan@example.com                      planned
2030-01-14T09:00:00Z  2030-01-14T09:00:00+00:00  C4        notice         0  sms          customer                             skip: no phone number
2030-01-22T14:00:00Z  2030-01-22T09:00:00-05:00  C3        notice         0  email        carol@example.com                    planned
2030-01-22T14:00:00Z  2030-01-22T09:00:00-05:00  C3        notice         0  sms          customer                             skip: customer opted out of this channel
2030-01-30T08:00:00Z  2030-01-30T09:00:00+01:00  C1        notice         0  email        anna@example.com                     planned
2030-01-30T08:00:00Z  2030-01-30T09:00:00+01:00  C1        notice         0  sms          +4915112345001                       planned
2030-01-30T09:00:00Z  2030-01-30T09:00:00+00:00  C4        reminder       0  email        dan@example.com                      planned
2030-02-04T00:00:00Z  2030-02-04T09:00:00+09:00  C2        notice         0  email        bob@example.com                      planned
2030-02-04T00:00:00Z  2030-02-04T09:00:00+09:00  C2        notice         0  sms          customer                             skip: no phone number
2030-02-06T09:00:00Z  2030-02-06T09:00:00+00:00  C4        reminder       1  email        dan@example.com                      planned
2030-02-07T14:00:00Z  2030-02-07T09:00:00-05:00  C3        reminder       0  email        carol@example.com                    planned
2030-02-10T23:00:00Z  2030-02-11T08:00:00+09:00  C4        escalation     0  owner-email  owner desk desk@sales.example.com    planned
2030-02-14T14:00:00Z  2030-02-14T09:00:00-05:00  C3        reminder       1  email        carol@example.com                    planned
2030-02-15T08:00:00Z  2030-02-15T09:00:00+01:00  C1        reminder       0  email        anna@example.com                     planned
2030-02-18T13:00:00Z  2030-02-18T08:00:00-05:00  C3        escalation     0  owner-email  owner alice alice@sales.example.com  planned
2030-02-20T00:00:00Z  2030-02-20T09:00:00+09:00  C2        reminder       0  email        bob@example.com                      planned
2030-02-22T08:00:00Z  2030-02-22T09:00:00+01:00  C1        reminder       1  email        anna@example.com                     planned
2030-02-25T23:00:00Z  2030-02-25T18:00:00-05:00  C1        escalation     0  owner-email  owner alice alice@sales.example.com  planned
2030-02-27T00:00:00Z  2030-02-27T09:00:00+09:00  C2        reminder       1  email        bob@example.com                      planned
2030-03-03T23:00:00Z  2030-03-04T08:00:00+09:00  C2        escalation     0  owner-email  owner desk desk@sales.example.com    planned
"""

# The new config: notice 9 days later (-P21D), reminder/1 (-P7D) replaced by final/0.
DIFF = """\
CONTRACT  TIER      STEP  OLD                   NEW                   CHANGE
C1        notice       0  2030-01-30T08:00:00Z  2030-02-08T08:00:00Z  moved +9d
C1        reminder     1  2030-02-22T08:00:00Z  -                     removed
C1        final        0  -                     2030-02-22T08:00:00Z  added
C2        notice       0  2030-02-04T00:00:00Z  2030-02-13T00:00:00Z  moved +9d
C2        reminder     1  2030-02-27T00:00:00Z  -                     removed
C2        final        0  -                     2030-02-27T00:00:00Z  added
C3        notice       0  2030-01-22T14:00:00Z  2030-01-31T14:00:00Z  moved +9d
C3        reminder     1  2030-02-14T14:00:00Z  -                     removed
C3        final        0  -                     2030-02-14T14:00:00Z  added
C4        notice       0  2030-01-14T09:00:00Z  2030-01-23T09:00:00Z  moved +9d
C4        reminder     1  2030-02-06T09:00:00Z  -                     removed
C4        final        0  -                     2030-02-06T09:00:00Z  added
contracts: 4 compared, 4 changed, 0 in a ladder (they keep their snapshot; renewctl replan moves them)
reminders: 4 moved, 4 added, 4 removed, 0 with other channels
"""

# After the simulated days up to 2030-01-15, C4 is in its ladder: unchanged.
DIFF_AFTER = """\
CONTRACT  TIER      STEP  OLD                   NEW                   CHANGE
C1        notice       0  2030-01-30T08:00:00Z  2030-02-08T08:00:00Z  moved +9d
C1        reminder     1  2030-02-22T08:00:00Z  -                     removed
C1        final        0  -                     2030-02-22T08:00:00Z  added
C2        notice       0  2030-02-04T00:00:00Z  2030-02-13T00:00:00Z  moved +9d
C2        reminder     1  2030-02-27T00:00:00Z  -                     removed
C2        final        0  -                     2030-02-27T00:00:00Z  added
C3        notice       0  2030-01-22T14:00:00Z  2030-01-31T14:00:00Z  moved +9d
C3        reminder     1  2030-02-14T14:00:00Z  -                     removed
C3        final        0  -                     2030-02-14T14:00:00Z  added
contracts: 4 compared, 3 changed, 1 in a ladder (they keep their snapshot; renewctl replan moves them)
reminders: 3 moved, 3 added, 3 removed, 0 with other channels
"""

PLAN_C4 = """\
WHEN (UTC)            LOCAL                      CONTRACT  TIER        STEP  CHANNEL      TO                                 STATUS
2030-01-14T09:00:00Z  2030-01-14T09:00:00+00:00  C4        notice         0  email        dan@example.com                    sent
2030-01-14T09:00:00Z  2030-01-14T09:00:00+00:00  C4        notice         0  sms          customer                           skipped: no phone number
2030-01-30T09:00:00Z  2030-01-30T09:00:00+00:00  C4        reminder       0  email        dan@example.com                    planned
2030-02-06T09:00:00Z  2030-02-06T09:00:00+00:00  C4        {tier_step}  email        dan@example.com                    planned
2030-02-10T23:00:00Z  2030-02-11T08:00:00+09:00  C4        escalation     0  owner-email  owner desk desk@sales.example.com  planned
"""

REPLAN_DRY = """\
CONTRACT  STATE      POLICY    LADDER
C4        reminding  standard  1 → new
1 contract would move to the current ladder, 0 already on it
"""

REPLAN = """\
CONTRACT  STATE      POLICY    LADDER
C4        reminding  standard  1 → 2
1 contract moved to the current ladder, 0 already on it; renewd re-plans them on its next change poll
"""


def expect(what, got, want):
    if got != want:
        import difflib
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                            "expected", "got"))
        raise TestFailure(f"{what}: output differs:\n{diff}")


def contract_row(db, cid):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT ladder_id, change_seq, state FROM contracts WHERE id=?",
                           (cid,)).fetchone()
    finally:
        con.close()


def body(wd):
    renewd, renewctl = sys.argv[1], sys.argv[2]
    db, cur, new = wd("store.db"), wd("renewd.conf"), wd("new.conf")
    port = free_port()
    write_link_key(wd)
    write(cur, CONFIG.format(db=db, port=port, wd=wd.path, notice="-P30D",
                             tiers="notice reminder escalation"))
    write(new, CONFIG.format(db=db, port=port, wd=wd.path, notice="-P21D",
                             tiers="notice reminder final escalation"))
    write(wd("c.csv"), CSV)
    run([renewctl, "--config", cur, "import", wd("c.csv")])
    sql(db, "INSERT INTO owners(id,name,email,tz) VALUES "
            "('alice','Alice','alice@sales.example.com','America/New_York'),"
            "('desk','Desk','desk@sales.example.com','Asia/Tokyo');\n"
            "UPDATE customers SET optout = 2 WHERE id = 'K3';\n")
    ctl = [renewctl, "--config", cur]
    period = ["--now", "2030-01-06", "--days", "60"]

    # 1. the timeline
    expect("plan", run(ctl + ["plan"] + period).stdout, PLAN)
    p = run(ctl + ["plan", "--contract", "C2", "--json"] + period)
    rows = json.loads(p.stdout)
    check([(r["tier"], r["step"], r["channel"], r["status"]) for r in rows] ==
          [("notice", 0, "email", "planned"), ("notice", 0, "sms", "skip"),
           ("reminder", 0, "email", "planned"), ("reminder", 1, "email", "planned"),
           ("escalation", 0, "owner-email", "planned")], f"plan --json rows: {rows}")
    check(rows[1]["reason"] == "no phone number" and rows[1]["recipient"] is None,
          f"skip row: {rows[1]}")
    check(rows[4] == {"at": "2030-03-03T23:00:00Z", "local": "2030-03-04T08:00:00+09:00",
                      "timezone": "Asia/Tokyo", "contract_id": "C2", "term": 1,
                      "tier": "escalation", "step": 0, "channel": "owner-email",
                      "audience": "owner", "owner": "desk",
                      "recipient": "desk@sales.example.com", "status": "planned",
                      "reason": None, "catch_up": False, "reminder_id": None},
          f"escalation row: {rows[4]}")
    p = run(ctl + ["plan", "--contract", "C9"] + period)
    expect("plan C9", p.stdout, "nothing due between 2030-01-06T00:00:00Z and 2030-03-07T00:00:00Z\n")

    # 2. what the new config would move
    expect("plan --diff", run(ctl + ["plan", "--config", new, "--diff"] + period).stdout, DIFF)
    j = json.loads(run(ctl + ["plan", "--config", new, "--diff", "--json"] + period).stdout)
    check(j["summary"] == {"contracts": 4, "changed": 4, "in_ladder": 0, "moved": 4, "added": 4,
                           "removed": 4, "channels": 0}, f"diff summary {j['summary']}")
    check(j["changes"][0] == {"contract_id": "C1", "tier": "notice", "step": 0, "change": "moved",
                              "old_at": "2030-01-30T08:00:00Z", "new_at": "2030-02-08T08:00:00Z",
                              "old_channels": "email,sms", "new_channels": "email,sms"},
          f"diff change 0: {j['changes'][0]}")
    # --current names the current config explicitly
    p = run([renewctl, "plan", "--current", cur, "--config", new, "--diff"] + period)
    expect("plan --current --diff", p.stdout, DIFF)

    # 3. C4 enters its ladder: the daemon sends its notice on 2030-01-14
    log = wd("renewd.log")
    with open(log, "w") as f:
        import subprocess
        rc = subprocess.run([renewd, "--config", cur, "--log-target", "console",
                             "--simulate", "2030-01-06..2030-01-15"], stdout=f,
                            stderr=subprocess.STDOUT, timeout=120).returncode
    check(rc == 0, f"renewd --simulate exited {rc}: {open(log).read()[-2000:]}")
    ladder0, seq0, state0 = contract_row(db, "C4")
    check(ladder0 == 1 and state0 == "reminding", f"C4 after the notice: {(ladder0, seq0, state0)}")
    now = ["--now", "2030-01-15", "--from", "2030-01-06", "--days", "60"]
    expect("plan C4", run(ctl + ["plan", "--contract", "C4"] + now).stdout,
           PLAN_C4.format(tier_step="reminder       1"))
    expect("plan --diff after", run(ctl + ["plan", "--config", new, "--diff"] + now).stdout,
           DIFF_AFTER)

    # 4. replan
    newctl = [renewctl, "--config", new]
    expect("replan --dry-run", run(newctl + ["replan", "--all", "--dry-run"]).stdout, REPLAN_DRY)
    check(contract_row(db, "C4") == (ladder0, seq0, state0), "dry run changed nothing")
    expect("replan current", run(ctl + ["replan", "--all"]).stdout,
           "0 contracts moved to the current ladder, 1 already on it\n")
    expect("replan", run(newctl + ["replan", "--all", "--now", "2030-01-15"]).stdout, REPLAN)
    ladder1, seq1, state1 = contract_row(db, "C4")
    check(ladder1 == 2 and seq1 > seq0 and state1 == "reminding",
          f"C4 after replan: {(ladder1, seq1, state1)} (was {(ladder0, seq0, state0)})")
    ev = sql(db, "SELECT kind, detail FROM events WHERE contract_id='C4' AND kind='contract.replan';")
    check(ev == "contract.replan|ladder 1 -> 2 (policy standard)\n", f"replan event: {ev!r}")
    # history kept: the sent notice stays, the new ladder's final tier follows
    expect("plan C4 replanned", run(newctl + ["plan", "--contract", "C4"] + now).stdout,
           PLAN_C4.format(tier_step="final          0"))
    j = json.loads(run(newctl + ["replan", "--contract", "C4", "--json"]).stdout)
    check(j == {"dry_run": False, "moved": [], "moved_count": 0, "unchanged_count": 1},
          f"replan again: {j}")

    # 5. usage and data errors
    for args, want in ((["plan", "--diff"], 64), (["replan"], 64),
                       (["replan", "--all", "--contract", "C1"], 64),
                       (["plan", "--contract", "NOPE"], 65), (["plan", "--days", "0"], 64)):
        p = run(ctl + args, check_rc=False)
        check(p.returncode == want, f"{args}: exit {p.returncode}, expected {want}: {p.stderr}")
    return 0


if __name__ == "__main__":
    sys.exit(main_wrapper("test-renewctl-plan", body))
