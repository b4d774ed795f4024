#!/usr/bin/python3
"""Integration test: email through the real renewd (--simulate) and a real SMTP
server on loopback (tests/smtp_server.py, aiosmtpd), parsed with Python's
email package (email.policy.default).

  1. plain SMTP: an English and a Chinese customer get the notice tier, the
     sales owner an escalation. For each message: envelope; From, Reply-To,
     To (display names), Subject (the Chinese one decoded intact), Date (the
     simulated send time), Message-ID = <idem_key@example.com> of the outbox
     row, List-Unsubscribe(-Post) (customers) / Auto-Submitted (owner);
     multipart/mixed = multipart/alternative(text/plain, text/html) +
     text/calendar (method=PUBLISH): texts with the name, the local expiry
     date in the locale's format and the signed links; the VEVENT's
     DTSTART;VALUE=DATE, SUMMARY and VALARM; the row's provider id = the
     server's queue id. `renewctl preview` of the same row gives the same
     message (but for Date).
  2. STARTTLS required + AUTH: delivered over TLS as the configured user,
     CAFile= trusting the test's self-signed certificate; the password is in
     neither the log nor the store; `renewctl send-test` through the same
     channel. A wrong password: 535, dead at once. Without CAFile= the
     self-signed certificate is refused: dead at once.
  3. smtps:// (implicit TLS).
  4. 451 for the first message: retried, delivered once after two attempts.
  5. 550 for one recipient: that row is dead (renewctl outbox --state dead
     when renewctl has it), the other is delivered.
  6. connection reuse: 12 messages at MaxConcurrent=2 over at most 2
     connections (counted by the server).
  7. ReturnPath=bounces+{key}@...: each message's envelope MAIL FROM is the
     VERP address carrying its row's key (= its Message-ID), customer mail
     has Feedback-ID: standard:notice:smb:renewd, no Return-Path header;
     a ReturnPath= without {key} fails --check-config (file:line, exit 78).

Usage: test-smtp.py RENEWD RENEWCTL
"""
import csv
import datetime
import email
import email.policy
import email.utils
import os
import re
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itestlib import SKIP, TestFailure, check, free_port, import_owners, main_wrapper, run, write  # noqa: E402

try:
    from smtp_server import SmtpServer  # noqa: E402
except ImportError as e:  # python3-aiosmtpd missing
    print(f"test-smtp: SKIP: {e}")
    sys.exit(SKIP)

RENEWD, RENEWCTL = sys.argv[1], sys.argv[2]
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "notifiers", "templates")

EXPIRES_ON = "2031-02-14"      # valid through that day
SIM = "2031-01-10..2031-01-25"  # notice (-P30D) and escalation (-P28D) fall inside
PASSWORD = "pa55 w0rd:with$pecial"

CONFIG = """\
[Daemon]
Database={db}
Listen=127.0.0.1:{listen_port}
PublicURL=https://renew.test
TimeZone=UTC
Templates={templates}
LinkKeyFile={linkkey}
Horizon=48h

[SendWindow]
Hours=00:00-24:00
Days=Mon..Sun

[Policy standard]
Segments=*
CatchUp=all
Tiers={tiers}
FallbackOwner=alice

[Tier notice]
Offset=-P30D
Channels=email

[Tier escalation]
Offset=-P28D
Audience=owner
Channels=email

[Channel email]
Type=smtp
URL={url}
From=Example Renewals <renewals@example.com>
ReplyTo=Renewals Team <renewals@example.com>
RetryBase=1s
RetryMax=2s
{extra}
"""

CUSTOMERS = {
    # contract: (customer, name, email, zone, locale, product, value, currency)
    "C-EN": ("K-EN", "Jane Doe", "jane@example.com", "Europe/Berlin", "en", "Cloud Backup",
             "1200.50", "EUR"),
    "C-ZH": ("K-ZH", "王小明", "wang@example.cn", "Asia/Shanghai", "zh-CN", "企业支持计划",
             "12500.00", "CNY"),
}


def setup(wd, name, url, extra="", tiers="notice", contracts=None):
    """A store with contracts (dict as CUSTOMERS) and a config; returns paths."""
    d = wd(name)
    os.makedirs(d)
    db, conf, key = os.path.join(d, "renewd.db"), os.path.join(d, "renewd.conf"), os.path.join(d, "link-key")
    write(key, "0123456789abcdef0123456789abcdef\n")
    write(conf, CONFIG.format(db=db, listen_port=free_port(), templates=TEMPLATES, linkkey=key, url=url, extra=extra,
                              tiers=tiers))
    path = os.path.join(d, "contracts.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["contract_id", "customer_id", "customer_name", "email", "phone", "timezone",
                    "locale", "segment", "owner", "product", "starts_on", "expires_on", "value",
                    "currency"])
        for cid, (kid, cname, mail, zone, loc, product, value, cur) in (contracts or CUSTOMERS).items():
            w.writerow([cid, kid, cname, mail, "", zone, loc, "smb", "", product, "2030-02-15",
                        EXPIRES_ON, value, cur])
    run([RENEWCTL, "--config", conf, "import", path])
    import_owners(RENEWCTL, db, conf, [{"id": "alice", "name": "Alice Owner",
                                        "email": "alice@example.com", "timezone": "UTC"}],
                  lambda *p: os.path.join(d, *p))
    return d, db, conf


def simulate(d, conf):
    p = run([RENEWD, "--config", conf, "--log-target=console", "--log-level=debug", "--simulate", SIM],
            timeout=120, check_rc=False)
    with open(os.path.join(d, "renewd.log"), "a") as f:
        f.write(p.stderr + p.stdout)
    check(p.returncode == 0, f"renewd --simulate exited {p.returncode}:\n{p.stderr[-3000:]}")
    return p.stderr + p.stdout


def rows(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM reminders ORDER BY id")]
    finally:
        con.close()


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def ics_props(text):
    """Unfolded iCalendar lines as (name-with-params, value) pairs."""
    text = re.sub(r"\r?\n[ \t]", "", text)
    out = []
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out.append((k, v))
    return out


def ics_unescape(v):
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), v)


def check_customer_message(raw, meta, row, cid, subject, date_text, lang):
    kid, cname, mail, zone, loc, product, value, cur = CUSTOMERS[cid]
    m = parse(raw)
    what = f"{cid} ({loc})"
    check(meta["mail_from"] == "renewals@example.com" and meta["rcpt_tos"] == [mail],
          f"{what}: envelope {meta['mail_from']} -> {meta['rcpt_tos']}")
    check(m["From"].addresses[0].display_name == "Example Renewals" and
          m["From"].addresses[0].addr_spec == "renewals@example.com", f"{what}: From {m['From']}")
    check(m["Reply-To"].addresses[0].addr_spec == "renewals@example.com" and
          m["Reply-To"].addresses[0].display_name == "Renewals Team", f"{what}: Reply-To {m['Reply-To']}")
    to = m["To"].addresses[0]
    check(to.display_name == cname and to.addr_spec == mail, f"{what}: To {to.display_name!r} <{to.addr_spec}>")
    check(m["Subject"] == subject, f"{what}: Subject {m['Subject']!r}, expected {subject!r}")
    check(m["Message-ID"] == f"<{row['idem_key']}@example.com>",
          f"{what}: Message-ID {m['Message-ID']} is the outbox key {row['idem_key']}")
    sent = email.utils.parsedate_to_datetime(m["Date"]).timestamp()
    check(abs(sent - row["sent_at"]) <= 60 and sent >= row["due_at"],
          f"{what}: Date {m['Date']} is the simulated send time (row sent_at {row['sent_at']})")
    unsub = m["List-Unsubscribe"]
    check(re.fullmatch(r"<https://renew\.test/u/v1\.[A-Za-z0-9_.-]+>", unsub or ""),
          f"{what}: List-Unsubscribe {unsub}")
    check(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click", f"{what}: List-Unsubscribe-Post")
    check(m["Auto-Submitted"] is None, f"{what}: no Auto-Submitted on a customer reminder")
    check(m["X-Renewd-Contract"] == cid and m["X-Renewd-Tier"] == "notice", f"{what}: X-Renewd-*")
    check(m["Feedback-ID"] == "standard:notice:smb:renewd", f"{what}: Feedback-ID {m['Feedback-ID']!r}")
    check(m["Return-Path"] is None, f"{what}: no Return-Path header (the receiving MTA adds it)")

    check(m.get_content_type() == "multipart/mixed", f"{what}: top part {m.get_content_type()}")
    parts = list(m.iter_parts())
    check([p.get_content_type() for p in parts] == ["multipart/alternative", "text/calendar"],
          f"{what}: mixed holds {[p.get_content_type() for p in parts]}")
    alt = list(parts[0].iter_parts())
    check([p.get_content_type() for p in alt] == ["text/plain", "text/html"],
          f"{what}: alternative holds {[p.get_content_type() for p in alt]}")
    check(all(p.get_content_charset() == "utf-8" for p in alt), f"{what}: parts are utf-8")
    text, html = alt[0].get_content(), alt[1].get_content()
    renew = re.search(r"https://renew\.test/r/v1\.[A-Za-z0-9_.-]+", text)
    check(renew is not None, f"{what}: text has a renew link")
    for needle in (cname, date_text, product, cid, unsub[1:-1]):
        check(needle in text, f"{what}: text part contains {needle!r}")
        check(needle in html, f"{what}: html part contains {needle!r}")
    check(f'href="{renew.group(0)}"' in html, f"{what}: html links to the same renew URL")
    check(f'<html lang="{lang}">' in html, f"{what}: html lang={lang}")

    cal = parts[1]
    check(cal.get_param("method") == "PUBLISH", f"{what}: text/calendar; method=PUBLISH")
    props = ics_props(cal.get_content())
    d = dict(props)
    check(d.get("METHOD") == "PUBLISH", f"{what}: METHOD:PUBLISH in the calendar")
    check(d.get("DTSTART;VALUE=DATE") == EXPIRES_ON.replace("-", ""),
          f"{what}: DTSTART;VALUE=DATE:{d.get('DTSTART;VALUE=DATE')} is the last valid day")
    check(ics_unescape(d.get("SUMMARY", "")) == subject, f"{what}: SUMMARY {d.get('SUMMARY')!r}")
    names = [k for k, _ in props]
    check("BEGIN:VALARM" in [f"{k}:{v}" for k, v in props] and d.get("TRIGGER") == "-P1D",
          f"{what}: a VALARM with TRIGGER:-P1D")
    check(names.count("UID") == 1 and d["UID"].endswith("@example.com"), f"{what}: one UID")
    check(d.get("URL") == renew.group(0), f"{what}: the event's URL is the renew link")
    check(row["provider_id"] == meta["queue_id"],
          f"{what}: provider id {row['provider_id']} = the server's queue id {meta['queue_id']}")
    return m


def case_plain(wd):
    srv = SmtpServer(wd("mail-plain")).start()
    try:
        d, db, conf = setup(wd, "plain", f"smtp://127.0.0.1:{srv.port}", tiers="notice escalation")
        simulate(d, conf)
        msgs = srv.messages()
        rs = rows(db)
        check(len(msgs) == 4 and len(rs) == 4 and all(r["status"] == "sent" for r in rs),
              f"plain: 4 messages sent (got {len(msgs)}, rows {[(r['contract_id'], r['tier'], r['status']) for r in rs]})")
        check(all(meta["tls"] is False for _, meta in msgs), "plain: no TLS (the server offers none)")
        by = {}
        for raw, meta in msgs:
            m = parse(raw)
            by[(m["X-Renewd-Contract"], m["X-Renewd-Tier"])] = (raw, meta)
        rowby = {(r["contract_id"], r["tier"]): r for r in rs}
        check_customer_message(*by[("C-EN", "notice")], rowby[("C-EN", "notice")], "C-EN",
                               "Your Cloud Backup expires on February 14, 2031", "February 14, 2031", "en")
        mzh = check_customer_message(*by[("C-ZH", "notice")], rowby[("C-ZH", "notice")], "C-ZH",
                                     "您的企业支持计划将于2031年2月14日到期", "2031年2月14日", "zh-Hans")
        raw_zh = by[("C-ZH", "notice")][0]
        check(b"=?UTF-8?B?" in raw_zh.split(b"\r\n\r\n", 1)[0], "zh: the subject travels RFC 2047-encoded")
        long = [l for l in raw_zh.split(b"\r\n") if len(l) > 78]
        check(all(l.startswith(b"List-Unsubscribe: <https://") and len(l) <= 998 for l in long),
              f"zh: no line longer than 78 octets but List-Unsubscribe (a URL, unfolded): {long}")
        check(all(b < 128 for b in raw_zh), "zh: the message is 7-bit clean")

        # the owner's escalation
        raw, meta = by[("C-EN", "escalation")]
        m = parse(raw)
        check(meta["rcpt_tos"] == ["alice@example.com"] and m["To"].addresses[0].display_name == "Alice Owner",
              "escalation goes to the owner")
        check(m["Auto-Submitted"] == "auto-generated", "owner alert: Auto-Submitted: auto-generated")
        check(m["List-Unsubscribe"] is None, "owner alert: no List-Unsubscribe")
        check(m["Feedback-ID"] is None, "owner alert: no Feedback-ID")
        text = m.get_body(preferencelist=("plain",)).get_content()
        for needle in ("Jane Doe", "€1,200.50", "February 14, 2031", "Renewed:", "https://renew.test/r/v1.",
                       "notice #1 via email (to the customer): sent"):
            check(needle in text, f"escalation text contains {needle!r}")
        check(m["Message-ID"] == f"<{rowby[('C-EN', 'escalation')]['idem_key']}@example.com>",
              "escalation Message-ID = its outbox key")

        # renewctl preview of the sent row, as of its send time: byte for byte
        # what the server received (aiosmtpd undoes the dot-stuffing)
        at = datetime.datetime.fromtimestamp(rowby[("C-ZH", "notice")]["sent_at"],
                                             datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        p = subprocess.run([RENEWCTL, "--config", conf, "preview", "C-ZH", "notice", "--at", at],
                           capture_output=True)
        check(p.returncode == 0, f"renewctl preview: exit {p.returncode}: {p.stderr.decode()}")
        check(p.stdout == raw_zh, "renewctl preview --at <sent_at> prints exactly the message sent "
                                  f"({len(p.stdout)} vs {len(raw_zh)} bytes)")
        pv = parse(p.stdout)
        check(pv["Message-ID"] == mzh["Message-ID"], "preview: same Message-ID")
        p = run([RENEWCTL, "--config", conf, "preview", "C-ZH", "notice", "--locale", "en"])
        check(parse(p.stdout.encode())["Subject"].startswith("Your 企业支持计划 expires on February 14, 2031"),
              "preview --locale en renders the English template")
    finally:
        srv.stop()


def case_tls_auth(wd):
    srv = SmtpServer(wd("mail-tls"), tls=True, require_tls=True, auth=("renewd", PASSWORD)).start()
    try:
        pw = wd("smtp-password")
        write(pw, PASSWORD + "\n")
        extra = f"RequireTLS=yes\nCAFile={srv.cert}\nUsername=renewd\nPasswordFile={pw}\n"
        d, db, conf = setup(wd, "tls", f"smtp://127.0.0.1:{srv.port}", extra)
        p = run([RENEWD, "--check-config", "--config", conf], check_rc=False)
        check(p.returncode == 0, f"--check-config accepts the TLS/AUTH channel: {p.stderr}")
        log = simulate(d, conf)
        msgs = srv.messages()
        rs = rows(db)
        check(len(msgs) == 2 and all(r["status"] == "sent" for r in rs), f"tls: 2 sent (got {len(msgs)})")
        check(all(meta["tls"] and meta["auth_login"] == "renewd" for _, meta in msgs),
              "tls: every message came over STARTTLS, authenticated as renewd")
        check(srv.stats()["auth_failed"] == 0, "tls: no failed AUTH")
        check(PASSWORD not in log, "the password is not in the log")
        with open(db, "rb") as f:
            check(PASSWORD.encode() not in f.read(), "the password is not in the store")
        parse(msgs[0][0])  # parses

        # renewctl send-test through the same channel: sample data, STARTTLS + AUTH
        p = run([RENEWCTL, "--config", conf, "send-test", "--channel", "email", "--to", "probe@example.com"])
        check("sent to probe@example.com" in p.stdout and "provider id Q" in p.stdout,
              f"send-test over STARTTLS+AUTH: {p.stdout}")
        raw, meta = srv.messages()[-1]
        check(meta["rcpt_tos"] == ["probe@example.com"] and meta["tls"] and meta["auth_login"] == "renewd",
              "send-test: delivered over TLS, authenticated")
        check(parse(raw)["Subject"].startswith("Your Enterprise Support Plan expires on"),
              f"send-test: the sample notice ({parse(raw)['Subject']})")

        # a wrong password: 535 is permanent
        srv2 = SmtpServer(wd("mail-badpw"), tls=True, require_tls=True, auth=("renewd", "other")).start()
        try:
            extra2 = f"RequireTLS=yes\nCAFile={srv2.cert}\nUsername=renewd\nPasswordFile={pw}\n"
            d2, db2, conf2 = setup(wd, "badpw", f"smtp://127.0.0.1:{srv2.port}", extra2,
                                   contracts={"C-EN": CUSTOMERS["C-EN"]})
            log2 = simulate(d2, conf2)
            rs2 = rows(db2)
            check(len(srv2.messages()) == 0 and rs2[0]["status"] == "dead" and rs2[0]["attempts"] == 1,
                  f"wrong password: dead after one attempt ({rs2[0]['status']}, {rs2[0]['attempts']})")
            check("535" in (rs2[0]["last_error"] or ""), f"wrong password: error names 535: {rs2[0]['last_error']}")
            check(PASSWORD not in log2 and PASSWORD not in (rs2[0]["last_error"] or ""),
                  "wrong password: the password appears nowhere")
        finally:
            srv2.stop()

        # without CAFile= the self-signed certificate is refused: permanent
        d3, db3, conf3 = setup(wd, "noca", f"smtp://127.0.0.1:{srv.port}",
                               f"RequireTLS=yes\nUsername=renewd\nPasswordFile={pw}\n",
                               contracts={"C-EN": CUSTOMERS["C-EN"]})
        simulate(d3, conf3)
        r3 = rows(db3)[0]
        check(r3["status"] == "dead" and r3["attempts"] == 1,
              f"untrusted certificate: dead at once ({r3['status']}, {r3['attempts']}: {r3['last_error']})")
    finally:
        srv.stop()


def case_smtps(wd):
    srv = SmtpServer(wd("mail-smtps"), implicit_tls=True).start()
    try:
        d, db, conf = setup(wd, "smtps", f"smtps://127.0.0.1:{srv.port}", f"CAFile={srv.cert}\n",
                            contracts={"C-EN": CUSTOMERS["C-EN"]})
        simulate(d, conf)
        msgs = srv.messages()
        check(len(msgs) == 1 and msgs[0][1]["tls"] and rows(db)[0]["status"] == "sent",
              "smtps://: delivered over implicit TLS")
    finally:
        srv.stop()


def case_451(wd):
    srv = SmtpServer(wd("mail-451"), fail_first=1).start()
    try:
        d, db, conf = setup(wd, "t451", f"smtp://127.0.0.1:{srv.port}",
                            contracts={"C-EN": CUSTOMERS["C-EN"]})
        simulate(d, conf)
        st, rs = srv.stats(), rows(db)
        check(st["data_attempts"] == 2 and st["accepted"] == 1 and len(srv.messages()) == 1,
              f"451: two attempts, one delivery ({st['data_attempts']}, {st['accepted']})")
        check(len(rs) == 1 and rs[0]["status"] == "sent" and rs[0]["attempts"] == 2,
              f"451: the row is sent after 2 attempts ({rs[0]['status']}, {rs[0]['attempts']})")
        mids = {parse(srv.messages()[0][0])["Message-ID"]}
        check(mids == {f"<{rs[0]['idem_key']}@example.com>"}, "451: the retry keeps the Message-ID")
    finally:
        srv.stop()


def case_550(wd):
    srv = SmtpServer(wd("mail-550"), reject=["wang@example.cn"]).start()
    try:
        d, db, conf = setup(wd, "t550", f"smtp://127.0.0.1:{srv.port}")
        simulate(d, conf)
        rs = {r["contract_id"]: r for r in rows(db)}
        check(rs["C-ZH"]["status"] == "dead" and rs["C-ZH"]["attempts"] == 1,
              f"550: dead after one attempt ({rs['C-ZH']['status']}, {rs['C-ZH']['attempts']})")
        check("550" in rs["C-ZH"]["last_error"] and "Recipient address rejected" in rs["C-ZH"]["last_error"],
              f"550: the error quotes the server: {rs['C-ZH']['last_error']}")
        check(rs["C-EN"]["status"] == "sent" and len(srv.messages()) == 1, "550: the other message is delivered")
        p = run([RENEWCTL, "--config", conf, "help"], check_rc=False)
        if any(l.strip().startswith("outbox") for l in p.stdout.splitlines()):
            p = run([RENEWCTL, "--config", conf, "outbox", "--state", "dead"], check_rc=False)
            check(p.returncode == 0 and "C-ZH" in p.stdout and "C-EN" not in p.stdout,
                  f"renewctl outbox --state dead lists C-ZH only:\n{p.stdout}{p.stderr}")
        else:
            print("note: renewctl has no 'outbox' command yet; checked the store instead")
    finally:
        srv.stop()


def case_verp(wd):
    srv = SmtpServer(wd("mail-verp")).start()
    try:
        d, db, conf = setup(wd, "verp", f"smtp://127.0.0.1:{srv.port}",
                            "ReturnPath=bounces+{key}@bounce.example.com\n", tiers="notice escalation")
        p = run([RENEWD, "--check-config", "--config", conf], check_rc=False)
        check(p.returncode == 0, f"--check-config accepts ReturnPath=: {p.stderr}")
        simulate(d, conf)
        msgs = srv.messages()
        rs = rows(db)
        check(len(msgs) == 4 and all(r["status"] == "sent" for r in rs), f"verp: 4 sent (got {len(msgs)})")
        for raw, meta in msgs:
            m = parse(raw)
            key = m["Message-ID"].strip("<>").split("@")[0]
            row = [r for r in rs if r["idem_key"] == key]
            check(len(row) == 1, f"verp: Message-ID {m['Message-ID']} names one outbox row")
            check(re.fullmatch(r"rk-[0-9a-f]{32}", key), f"verp: key {key} is address-safe")
            check(meta["mail_from"] == f"bounces+{key}@bounce.example.com",
                  f"verp: envelope sender {meta['mail_from']} carries the row's key {key}")
            check(m["From"].addresses[0].addr_spec == "renewals@example.com", "verp: From= unchanged")
            check(m["Return-Path"] is None, "verp: no Return-Path header written")
            customer = m["X-Renewd-Audience"] == "customer"
            check((m["Feedback-ID"] == "standard:notice:smb:renewd") if customer else m["Feedback-ID"] is None,
                  f"verp: Feedback-ID {m['Feedback-ID']!r} ({m['X-Renewd-Audience']})")

        # a ReturnPath= without {key}: refused at load with file:line, exit 78
        with open(conf, encoding="utf-8") as f:
            text = f.read()
        lineno = next(i for i, l in enumerate(text.split("\n"), 1) if l.startswith("ReturnPath="))
        write(conf, text.replace("bounces+{key}@", "bounces@"))
        p = run([RENEWD, "--check-config", "--config", conf], check_rc=False)
        check(p.returncode == 78 and f"renewd.conf:{lineno}:" in p.stderr and "{key} exactly once" in p.stderr,
              f"--check-config refuses ReturnPath= without {{key}}: exit {p.returncode}: {p.stderr}")
    finally:
        srv.stop()


def case_reuse(wd):
    srv = SmtpServer(wd("mail-reuse")).start()
    try:
        many = {f"C-{i:02d}": (f"K-{i:02d}", f"Customer {i}", f"c{i}@example.com", "UTC", "en",
                               "Cloud Backup", "100.00", "EUR") for i in range(12)}
        d, db, conf = setup(wd, "reuse", f"smtp://127.0.0.1:{srv.port}", "MaxConcurrent=2\n",
                            contracts=many)
        simulate(d, conf)
        st = srv.stats()
        check(st["accepted"] == 12 and all(r["status"] == "sent" for r in rows(db)),
              f"reuse: 12 delivered (got {st['accepted']})")
        check(st["connections"] <= 2,
              f"reuse: 12 messages over {st['connections']} connections (MaxConcurrent=2)")
        conns = {meta["connection"] for _, meta in srv.messages()}
        check(len(conns) == st["connections"], "reuse: every connection carried messages")
    finally:
        srv.stop()


def body(wd):
    for case in (case_plain, case_verp, case_tls_auth, case_smtps, case_451, case_550, case_reuse):
        case(wd)
        print(f"{case.__name__}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main_wrapper("test-smtp", body))
