#!/usr/bin/env python3
"""Integration test: the real `renewctl respond` and `renewctl history` against a
real store (imported with `renewctl import`), checking exit codes, output and
what ends up in the SQLite file.

Usage: test-renewctl-respond.py PATH/TO/renewctl
"""
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import zoneinfo

RENEWCTL = sys.argv[1] if len(sys.argv) > 1 else "renewctl"
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}", file=sys.stderr)


def run(tmp, *args):
    p = subprocess.run([RENEWCTL, "--config", os.path.join(tmp, "renewd.conf"), *args],
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def expect(tmp, args, rc, out=None, err=None):
    got_rc, o, e = run(tmp, *args)
    check(got_rc == rc, f"{' '.join(args)}: exit {got_rc}, want {rc} (stderr: {e.strip()})")
    if out is not None:
        check(out in o, f"{' '.join(args)}: stdout {o!r} lacks {out!r}")
    if err is not None:
        check(err in e, f"{' '.join(args)}: stderr {e!r} lacks {err!r}")
    return o, e


def end_of_day(day, tz):
    """A date valid through `day` in zone tz expires at the next local midnight."""
    nxt = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zoneinfo.ZoneInfo(tz))
    return int(nxt.timestamp())


def rfc3339(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


CONFIG = """\
[Daemon]
Database={db}
TimeZone=Europe/Berlin

[Policy standard]
Segments=*
Tiers=notice escalation
FallbackOwner=desk
CallbackPause=7d
LapseGrace=30d

[Tier notice]
Offset=-P30D
Channels=email

[Tier escalation]
Offset=-P3D
Audience=owner
Channels=owner-email owner-hook

[Channel email]
Type=sink
Maildir={tmp}/maildir

[Channel owner-email]
Type=sink
Maildir={tmp}/maildir

[Channel owner-hook]
Type=webhook
URL=http://127.0.0.1:9/hook
"""


def main():
    tmp = tempfile.mkdtemp(prefix="renewd-test-respond-")
    try:
        db = os.path.join(tmp, "renewd.db")
        with open(os.path.join(tmp, "renewd.conf"), "w") as f:
            f.write(CONFIG.format(db=db, tmp=tmp))
        today = dt.date.today()
        exp1 = today + dt.timedelta(days=200)
        with open(os.path.join(tmp, "c.csv"), "w") as f:
            f.write("contract_id,customer_id,customer_name,email,phone,timezone,owner,expires_on\n")
            f.write(f"C-1,CU-1,Ann,ann@example.com,+4915112345678,Europe/Berlin,alice,{exp1}\n")
            f.write(f"C-2,CU-2,Bob,bob@example.com,,America/New_York,,{exp1}\n")
            f.write(f"C-3,CU-3,Cat,cat@example.com,,Asia/Tokyo,nobody,{exp1}\n")
        expect(tmp, ["import", os.path.join(tmp, "c.csv")], 0)
        con = sqlite3.connect(db)
        con.execute("INSERT INTO owners(id, name, email, phone) VALUES "
                    "('alice', 'Alice', 'alice@example.com', '+4930111222'), "
                    "('desk', 'Desk', 'desk@example.com', NULL)")
        con.commit()

        def one(sql, *p):
            return con.execute(sql, p).fetchone()

        # snoozed: a date is the end of that local day in the customer's zone
        snooze = today + dt.timedelta(days=10)
        expect(tmp, ["respond", "C-1", "snoozed", "--until", str(snooze)], 0,
               out=f"C-1: active → snoozed (until {snooze})\n")
        check(one("SELECT state, state_until FROM contracts WHERE id='C-1'")
              == ("snoozed", end_of_day(snooze, "Europe/Berlin")), "C-1 snoozed until end of day")
        # the same answer again: already recorded, one response row
        expect(tmp, ["respond", "C-1", "snoozed", "--until", str(snooze)], 0,
               out="C-1: already recorded (response 1, snoozed on ")
        check(one("SELECT count(*) FROM responses WHERE contract_id='C-1'") == (1,),
              "one response after a repeat")

        # callback: owner rows in the same transaction, customer reminders pause 7 days
        o, _ = expect(tmp, ["respond", "C-1", "callback"], 0, out="C-1: snoozed → callback (")
        check("owner alert: 2 queued, 0 skipped" in o, f"callback alert line: {o!r}")
        rows = con.execute("SELECT channel, audience, recipient, status, step FROM reminders "
                           "WHERE contract_id='C-1' AND tier='callback' ORDER BY id").fetchall()
        rid = one("SELECT max(id) FROM responses WHERE contract_id='C-1'")[0]
        check(rows == [("owner-email", "owner", "alice@example.com", "pending", rid),
                       ("owner-hook", "owner", "http://127.0.0.1:9/hook", "pending", rid)],
              f"callback owner rows: {rows}")
        st, until = one("SELECT state, state_until FROM contracts WHERE id='C-1'")
        check(st == "callback", "C-1 in callback")
        now = int(dt.datetime.now(dt.timezone.utc).timestamp())
        check(abs(until - (now + 7 * 86400)) < 120, f"callback pause 7d: {until - now}")
        expect(tmp, ["respond", "C-1", "callback"], 0, out="C-1: already recorded")
        expect(tmp, ["respond", "C-1", "callback", "--at", f"{snooze} 10:00"], 65,
               err="renewctl: contract C-1 is already in callback: callback is not recorded again")

        # renewed: a new term, pending rows of the old term cancelled
        new_exp = today + dt.timedelta(days=600)
        expect(tmp, ["respond", "C-1", "renewed", "--expires-on", str(new_exp)], 0,
               out=f"C-1: callback → renewed (term 2, expires {new_exp})\n")
        check(one("SELECT state, term, expires_at, state_until, ladder_id FROM contracts "
                  "WHERE id='C-1'") == ("active", 2, end_of_day(new_exp, "Europe/Berlin"), 0, None),
              "C-1 renewed into term 2")
        check(con.execute("SELECT DISTINCT status FROM reminders WHERE contract_id='C-1' "
                          "AND tier='callback'").fetchall() == [("cancelled",)],
              "callback rows cancelled by the renewal")
        o, _ = expect(tmp, ["respond", "C-1", "renewed", "--expires-on", str(new_exp), "--json"], 0)
        j = json.loads(o)
        check(j["already_recorded"] is True and j["term"] == 2 and j["state"] == "active"
              and j["expires_on"] == str(new_exp)
              and j["expires_at"] == rfc3339(end_of_day(new_exp, "Europe/Berlin")),
              f"respond --json repeat: {j}")
        expect(tmp, ["respond", "C-1", "renewed", "--expires-on", str(today)], 65,
               err="is not later than the current one")

        # declined with reason and note; then a refused transition changes nothing
        expect(tmp, ["respond", "C-2", "declined", "--reason", "price", "--note", "too much"], 0,
               out="C-2: active → declined (reason: price)\n")
        check(one("SELECT kind, source, reason, detail FROM responses WHERE contract_id='C-2'")
              == ("declined", "renewctl", "price", "too much"), "C-2 decline response")
        before = (one("SELECT count(*) FROM responses"), one("SELECT count(*) FROM events"),
                  one("SELECT state, change_seq FROM contracts WHERE id='C-2'"))
        expect(tmp, ["respond", "C-2", "snoozed", "--until", str(snooze)], 65,
               err="renewctl: contract C-2 is declined: snoozed is not allowed (allowed: "
                   "renewed, renew_intent, unsubscribed, resubscribed, message, help)\n")
        after = (one("SELECT count(*) FROM responses"), one("SELECT count(*) FROM events"),
                 one("SELECT state, change_seq FROM contracts WHERE id='C-2'"))
        check(before == after, f"refused answer changed the store: {before} -> {after}")

        # lost with an idempotency key: the repeat is recorded once
        expect(tmp, ["respond", "C-3", "lost", "--reason", "budget", "--idempotency-key", "K-1"],
               0, out="C-3: active → closed (lost: budget)\n")
        expect(tmp, ["respond", "C-3", "lost", "--reason", "other", "--idempotency-key", "K-1"],
               0, out="already recorded")
        check(one("SELECT count(*), max(reason), max(idem_key) FROM responses "
                  "WHERE contract_id='C-3'") == (1, "budget", "K-1"), "C-3 one lost response")
        expect(tmp, ["respond", "C-2", "renewed", "--expires-on", str(new_exp),
                     "--idempotency-key", "K-1"], 65, err="was already used for another contract")

        # unsubscribed suppresses the customer's number, the state stays
        expect(tmp, ["respond", "C-1", "unsubscribed", "--channel", "sms"], 0,
               out="C-1: unsubscribed from sms (state active)\n")
        check(one("SELECT address, reason, source, note FROM suppressions WHERE kind='sms'") ==
              ("+4915112345678", "unsubscribe", "renewctl", "customer CU-1"), "sms suppression")
        check(one("SELECT optout FROM customers WHERE id='CU-1'") == (0,), "no opt-out bit needed")

        # input errors and missing contracts
        expect(tmp, ["respond", "NOPE", "lost", "--reason", "price"], 66,
               err="renewctl: no contract 'NOPE'")
        expect(tmp, ["respond", "C-1", "snoozed", "--until", "2027-02-30"], 65,
               err="invalid date '2027-02-30'")
        expect(tmp, ["respond", "C-1", "declined", "--reason", "nope"], 65, err="unknown reason")
        expect(tmp, ["respond", "C-1", "declined"], 64, err="declined needs --reason R")
        expect(tmp, ["respond", "C-1", "maybe"], 64, err="unknown answer 'maybe'")
        expect(tmp, ["respond", "C-1", "snoozed", "--expires-on", "2030-01-01"], 64,
               err="--expires-on does not go with snoozed")
        expect(tmp, ["respond", "C-1"], 64)

        # history: text and JSON
        o, _ = expect(tmp, ["history", "C-1"], 0, out="Contract C-1: active, term 2\n")
        lines = o.splitlines()
        check(lines[1].split() == ["UTC", "LOCAL", "(Europe/Berlin)", "WHAT", "DETAIL"],
              f"history header: {lines[1]!r}")
        check(any("response" in l and "snoozed via renewctl, until "
                  + rfc3339(end_of_day(snooze, "Europe/Berlin")) in l for l in lines),
              "history shows the snooze")
        check(any("callback step %d via owner-email to owner alice@example.com: queued" % rid in l
                  for l in lines), "history shows the owner alert")
        check(any("delivery" in l and "cancelled" in l for l in lines), "history shows delivery")
        check(any("contract.renewed from=callback" in l for l in lines), "history shows renewal")
        check(not any("answer.snoozed" in l for l in lines), "answer events folded into responses")
        o, _ = expect(tmp, ["history", "C-1", "--json"], 0)
        h = json.loads(o)
        check(h["contract"] == "C-1" and h["timezone"] == "Europe/Berlin" and h["term"] == 2,
              f"history --json header: {h}")
        ats = [i["at"] for i in h["items"]]
        check(ats == sorted(ats), "history items in time order")
        types = {i["type"] for i in h["items"]}
        check(types == {"response", "event", "reminder", "delivery"}, f"history types {types}")
        check(all("local" in i and i["local"][-6] in "+-" for i in h["items"]), "local times")
        check(sum(1 for i in h["items"] if i["type"] == "response") == 4, "four responses")
        expect(tmp, ["history", "NOPE"], 66, err="no contract 'NOPE'")
        con.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{failures} check(s) failed", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
