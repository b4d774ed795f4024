#!/usr/bin/env python3
"""Overlaps in real time, through the real renewd (docs/delivery.md,
"Answers, stops and crashes that overlap a send"):

  1. an answer arrives while its reminder is in flight (the receiver holds
     the request, then refuses it with a transient error): no request after
     the answer, the row ends 'cancelled' with the in-flight attempt
     recorded; for a webhook, a Twilio-style SMS and SMTP
  2. SIGTERM while 4 transfers are in flight: they finish and are recorded,
     nothing else is claimed, exit status 0; after the restart every
     reminder has reached the receiver exactly once
  3. StopTimeout= bounds the stop: transfers still running are aborted, the
     exit status is 0, and the restart resends them with the same key
  4. a lease that expires while the daemon runs (another claim that died)
     is recovered by the periodic sweep, without a restart; the late result
     of the older claim is not recorded
  5. SMS with an unknown outcome is never resent blindly: after a crash
     mid-SMS or a timeout after the request went out, a Twilio channel
     looks the message up (found: 'sent' with its sid, nothing resent;
     absent: sent once more under the same token); a generic provider's row
     ends 'unknown' with a warning naming the contract, until
     `renewctl outbox retry`

Usage: test-dispatch-overlap.py BUILD_DIR
"""
import datetime
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dispatch_harness import Env, SECRET, check, fail, webhook_channel  # noqa: E402

BUILD = sys.argv[1]
SOON = (datetime.date.today() + datetime.timedelta(days=10)).isoformat()
FINAL = {"sent", "dead", "cancelled", "skipped", "unknown"}
HOLD = 4  # seconds a receiver holds the request before refusing it


def twilio_channel(env, rcv, extra=""):
    return f"""[Channel sms]
Type=sms
Provider=twilio
URL={rcv.url('/2010-04-01/Accounts/AC123/Messages.json')}
From=+15005550006
AccountSID=AC123
AuthTokenFile={env.token_file}
{extra}
"""


def wait_exit(p, timeout, what):
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        fail(f"{what}: renewd did not exit within {timeout}s")


def respond_declined(env):
    r = env.renewctl_run("respond", "C-0001", "declined", "--reason", "price")
    check(r.returncode == 0, f"renewctl respond C-0001 declined recorded ({r.stderr.strip()})")


def answered_in_flight(name, channel_cfg, channels_list, held, requests):
    """held(): True once the request is held by the receiver; requests(): how
    many requests the receiver has seen."""
    env = Env(f"overlap-{name}", BUILD)
    env.write_config(channel_cfg(env), channels_list=channels_list)
    env.import_contracts(1, expires_on=SOON)
    p = env.start_daemon()
    t_end = time.monotonic() + 30
    while not held() and time.monotonic() < t_end:
        time.sleep(0.02)
    check(held(), f"{name}: the reminder is in flight, held by the receiver")
    rows = env.rows()
    check(len(rows) == 1 and rows[0]["status"] == "sending", f"{name}: its row is 'sending'")
    respond_declined(env)
    rows = env.rows()
    check(rows[0]["status"] == "sending" and rows[0]["cancel"] == 1,
          f"{name}: the answer marked the row in flight (still 'sending', cancel=1)")
    rows = env.wait_rows(lambda rs: rs and rs[0]["status"] in FINAL, timeout=30,
                         what=f"{name}: the row settled")
    row = rows[0]
    check(row["status"] == "cancelled", f"{name}: the row ends cancelled (got {row['status']})")
    check(row["attempts"] == 1, f"{name}: the in-flight attempt is recorded (attempts=1)")
    check("cancelled by an answer while in flight" in (row["last_error"] or ""),
          f"{name}: last_error says it was cancelled in flight: {row['last_error']!r}")
    time.sleep(3)  # RetryBase=RetryMax=1s: a retry would have come by now
    check(requests() == 1, f"{name}: no request after the answer ({requests()} in all)")
    check(env.rows()[0]["status"] == "cancelled", f"{name}: a late result did not resurrect it")
    check("cancelled by an answer while in flight" in env.log_text(), f"{name}: logged")
    p.send_signal(signal.SIGTERM)
    check(wait_exit(p, 30, name) == 0, f"{name}: exit status 0")
    env.cleanup()


# 1. answers while in flight -------------------------------------------------------------
def webhook_case():
    box = {}

    def cfg(env):
        box["rcv"] = rcv = env.receiver(secrets=[SECRET], default={"hang": HOLD, "status": 503})
        return webhook_channel("hook", rcv.url("/hook"), "RetryBase=1s\nRetryMax=1s\n").replace(
            "{secret}", env.secret_file)

    answered_in_flight("webhook", cfg, "hook", lambda: len(box["rcv"].records()) >= 1,
                       lambda: len(box["rcv"].records()))


def sms_case():
    box = {}

    def cfg(env):
        box["rcv"] = rcv = env.receiver(basic="AC123:tw-token-123", twilio=True,
                                        default={"hang": HOLD, "status": 503})
        return twilio_channel(env, rcv, "RetryBase=1s\nRetryMax=1s\n")

    answered_in_flight("sms", cfg, "sms", lambda: len(box["rcv"].records()) >= 1,
                       lambda: len(box["rcv"].records()))


def smtp_case():
    from smtp_server import SmtpServer
    box = {}

    def cfg(env):
        box["srv"] = srv = SmtpServer(os.path.join(env.dir, "smtp"), hold_data=HOLD).start()
        box["env"] = env
        return f"""[Channel mail]
Type=smtp
URL=smtp://127.0.0.1:{srv.port}
From=Renewals <renewals@example.com>
RetryBase=1s
RetryMax=1s
"""

    def events(kind):
        return sum(1 for e in box["srv"].stats()["events"] if e["kind"] == kind)

    try:
        answered_in_flight("smtp", cfg, "mail", lambda: events("data-held") >= 1,
                           lambda: events("data-held"))
    finally:
        box["srv"].stop()


webhook_case()
sms_case()
smtp_case()

# 2. SIGTERM mid-burst, then restart: nothing resent ------------------------------------
N, CONC = 8, 4
env = Env("overlap-stop", BUILD)
rcv = env.receiver(secrets=[SECRET], default={"hang": 2, "status": 204})
env.write_config(webhook_channel("hook", rcv.url("/hook"), f"MaxConcurrent={CONC}\n").replace(
    "{secret}", env.secret_file))
env.import_contracts(N, expires_on=SOON)
p = env.start_daemon()
rcv.wait_for(lambda rs: len(rs) >= CONC, timeout=30)
in_flight = {r["headers"]["webhook-id"] for r in rcv.records()}
t0 = time.monotonic()
p.send_signal(signal.SIGTERM)
rc = wait_exit(p, 30, "stop")
check(rc == 0, "SIGTERM with 4 transfers in flight: exit status 0")
check(time.monotonic() - t0 >= 0.5, "... after waiting for them (they were held 2 s)")
rows = env.rows()
sent = {r["idem_key"] for r in rows if r["status"] == "sent"}
check(sent == in_flight, "the 4 transfers in flight finished and were recorded 'sent'")
check(not any(r["status"] == "sending" for r in rows), "no row left 'sending'")
check(len(rows) - len(sent) == N - CONC and all(r["attempts"] == 0 for r in rows
                                                 if r["idem_key"] not in sent),
      "nothing else was claimed during the stop")
check("finished and recorded; exiting" in env.log_text(), "the stop says it waited")
rcv.set_script([], default={"status": 204})
p = env.start_daemon()
env.wait_rows(lambda rs: len(rs) == N and all(r["status"] == "sent" for r in rs), timeout=30,
              what="all sent after the restart")
ids = [r["headers"]["webhook-id"] for r in rcv.records()]
check(len(ids) == N and len(set(ids)) == N, f"restart during a burst: 0 duplicates ({len(ids)} "
      f"requests for {N} reminders)")
p.send_signal(signal.SIGTERM)
check(wait_exit(p, 30, "idle stop") == 0, "an idle stop exits 0")
env.cleanup()

# 3. StopTimeout= bounds the stop --------------------------------------------------------
env = Env("overlap-stoptimeout", BUILD)
rcv = env.receiver(secrets=[SECRET], default={"hang": 20, "status": 204})
env.write_config(webhook_channel("hook", rcv.url("/hook"), "MaxConcurrent=2\nTimeout=60s\n")
                 .replace("{secret}", env.secret_file))
with open(env.conf) as f:
    text = f.read()
with open(env.conf, "w") as f:
    f.write(text.replace("[Daemon]\n", "[Daemon]\nStopTimeout=1s\n", 1))
env.import_contracts(2, expires_on=SOON)
p = env.start_daemon()
rcv.wait_for(lambda rs: len(rs) >= 2, timeout=30)
t0 = time.monotonic()
p.send_signal(signal.SIGTERM)
rc = wait_exit(p, 15, "stop with StopTimeout=1s")
check(rc == 0 and time.monotonic() - t0 < 10, "StopTimeout=1s: exit 0 without waiting 20 s")
check("StopTimeout=1s reached: 2 transfers aborted" in env.log_text(), "the abort is logged")
check(all(r["status"] == "sending" for r in env.rows()), "their rows stay 'sending' (leased)")
rcv.set_script([], default={"status": 204})
env.start_daemon()
env.wait_rows(lambda rs: all(r["status"] == "sent" for r in rs), timeout=30,
              what="resent after the restart")
ids = [r["headers"]["webhook-id"] for r in rcv.records()]
check(sorted(set(ids)) == sorted(r["idem_key"] for r in env.rows()) and len(ids) == 4,
      "each aborted transfer resent once, with the same webhook-id")
env.cleanup()

# 4. a lease that expires while the daemon runs -----------------------------------------
env = Env("overlap-lease", BUILD)
rcv = env.receiver(secrets=[SECRET], script=[{"hang": 14, "status": 204}],
                   default={"status": 204})
env.write_config(webhook_channel("hook", rcv.url("/hook"), "Timeout=60s\n").replace(
    "{secret}", env.secret_file))
env.import_contracts(1, expires_on=SOON)
p = env.start_daemon()
rcv.wait_for(lambda rs: len(rs) >= 1, timeout=30)
# another claim took the row over and died: its lease is over
con = sqlite3.connect(env.db, timeout=10)
with con:
    con.execute("UPDATE reminders SET claim = claim + 100, claimed_by = 'elsewhere:1', "
                "claimed_until = CAST(strftime('%s','now') AS INTEGER) - 1 "
                "WHERE status = 'sending'")
con.close()
t0 = time.monotonic()
rcv.wait_for(lambda rs: len(rs) >= 2, timeout=60)
check(time.monotonic() - t0 < 50, "the expired lease was recovered by the running daemon "
      f"({time.monotonic() - t0:.1f} s, sweep every 10 s)")
rows = env.wait_rows(lambda rs: rs[0]["status"] == "sent", timeout=30, what="sent")
ids = [r["headers"]["webhook-id"] for r in rcv.records()]
check(ids == [rows[0]["idem_key"]] * 2, "resent with the same webhook-id")
check(rows[0]["claim"] == 102 and rows[0]["attempts"] == 2, "claimed again: claim 102, attempts 2")
env.wait_log("late result not recorded", timeout=30)
check(env.rows()[0]["status"] == "sent", "the older claim's late result changed nothing")
p.send_signal(signal.SIGTERM)
check(wait_exit(p, 30, "lease") == 0, "exit 0")
env.cleanup()

# 5. SMS: an unknown outcome is looked up, never resent blindly -------------------------
def posts(rcv):
    return [r for r in rcv.records() if r["method"] == "POST"]


def gets(rcv):
    return [r for r in rcv.records() if r["method"] == "GET"]


def sms_crash(name, script, generic=False):
    """kill -9 while the SMS request is held by the provider, then restart."""
    env = Env(f"overlap-{name}", BUILD)
    if generic:
        rcv = env.receiver(script=script, default={"status": 202})
        cfg = f"""[Channel sms]
Type=sms
Provider=generic
URL={rcv.url('/send')}
From=Renewals
Timeout=60s
"""
    else:
        rcv = env.receiver(basic="AC123:tw-token-123", twilio=True, script=script,
                           default={"status": 201})
        cfg = twilio_channel(env, rcv, "Timeout=60s\nRetryBase=1s\nRetryMax=1s\n")
    env.write_config(cfg, channels_list="sms")
    env.import_contracts(1, expires_on=SOON)
    p = env.start_daemon()
    rcv.wait_for(lambda rs: len(rs) >= 1, timeout=30)
    p.send_signal(signal.SIGKILL)
    p.wait()
    p = env.start_daemon()
    rows = env.wait_rows(lambda rs: rs[0]["status"] in FINAL, timeout=30, what=f"{name}: settled")
    return env, rcv, p, rows[0]


# Twilio, the provider has the message: found by the lookup, not sent again
env, rcv, p, row = sms_crash("sms-crash-found", [{"hang": 30, "status": 201}])
check(row["status"] == "sent" and row["provider_id"] == f"SM{1:032d}",
      f"kill -9 mid-SMS, Twilio has it: the lookup finds it, the row is 'sent' with its sid "
      f"({row['status']}, {row['provider_id']})")
q = gets(rcv)[0]["query"]
check(q.get("To") == "+4915112345001" and q.get("From") == "+15005550006" and "DateSent>" in q,
      f"the lookup lists messages by To, From and DateSent>= ({q})")
check(gets(rcv)[0]["auth_ok"] is True, "... with the account's basic auth")
time.sleep(2)
check(len(posts(rcv)) == 1, "the SMS was not sent again")
p.send_signal(signal.SIGTERM)
wait_exit(p, 30, "sms crash found")
env.cleanup()

# Twilio, the request never became a message: the lookup finds nothing, it is sent
env, rcv, p, row = sms_crash("sms-crash-absent", [{"hang": 30, "status": 201, "forget": True}])
check(row["status"] == "sent", f"kill -9 mid-SMS, Twilio has no such message: sent ({row['status']})")
ps = posts(rcv)
check(len(ps) == 2 and len(gets(rcv)) >= 1, "one lookup, then one more POST")
check(ps[0]["headers"].get("i-twilio-idempotency-token") == ps[1]["headers"].get(
    "i-twilio-idempotency-token") == row["idem_key"], "... under the same idempotency token")
p.send_signal(signal.SIGTERM)
wait_exit(p, 30, "sms crash absent")
env.cleanup()

# generic provider: no lookup, so 'unknown' and a warning
env, rcv, p, row = sms_crash("sms-crash-generic", [{"hang": 30, "status": 202}], generic=True)
check(row["status"] == "unknown", f"kill -9 mid-SMS, generic provider: 'unknown' ({row['status']})")
time.sleep(3)
check(len(rcv.records()) == 1, "the SMS was not sent again")
log = env.log_text()
lines = [ln for ln in log.splitlines() if "outcome unknown, not resent" in ln]
check(lines and "CONTRACT_ID=C-0001" in lines[0] and "REMINDER_ID=" in lines[0],
      "a warning names the contract and the row")
r = env.renewctl_run("outbox", "retry", str(row["id"]))
check(r.returncode == 0, f"renewctl outbox retry takes an 'unknown' row ({r.stderr.strip()})")
env.wait_rows(lambda rs: rs[0]["status"] == "sent", timeout=30, what="sent after ops decided")
p.send_signal(signal.SIGTERM)
wait_exit(p, 30, "sms crash generic")
env.cleanup()

# Twilio, a timeout after the request went out: looked up, found, not resent
env = Env("overlap-sms-timeout", BUILD)
rcv = env.receiver(basic="AC123:tw-token-123", twilio=True, default={"hang": 4, "status": 201})
env.write_config(twilio_channel(env, rcv, "Timeout=1s\nRetryBase=1s\nRetryMax=1s\n"),
                 channels_list="sms")
env.import_contracts(1, expires_on=SOON)
p = env.start_daemon()
rows = env.wait_rows(lambda rs: rs and rs[0]["status"] in FINAL, timeout=30, what="settled")
check(rows[0]["status"] == "sent" and rows[0]["attempts"] == 2,
      f"an SMS that timed out after its request went out: looked up and found "
      f"({rows[0]['status']}, attempts {rows[0]['attempts']})")
time.sleep(2)
check(len(posts(rcv)) == 1 and len(gets(rcv)) == 1, "one POST, one lookup, no resend")
check("looking it up at the provider before any resend" in env.log_text(), "logged")
p.send_signal(signal.SIGTERM)
check(wait_exit(p, 30, "sms timeout") == 0, "exit 0")
env.cleanup()
print("PASS")
