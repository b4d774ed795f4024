"""Integration test: every "days left" figure renewd writes equals the calendar
days from the day of the send, in the reader's zone, to the last valid day the
message names, computed here independently with zoneinfo.

Contracts in zones with odd offsets and DST rules (Lord_Howe's half hour,
St_Johns, Kathmandu, Chatham, Santiago, Kiritimati at +14, Pago_Pago at -11,
...) expire on days around DST changes. For each, `renewctl preview --json
--at T` renders the customer's notice at many send instants T (midnight and
late evening local, DST days, the last day, after it) and the owner's
escalation (owner in another zone: "today" is the owner's, the last day the
customer's). The message is parsed with Python's email package and checked:
  - a probe line put in front of the shipped text: days_left, expiry_iso,
    days_left_text ("1 day", "N days") and days_left_in ("in N days",
    "today", "N days ago") against the independent figure;
  - the shipped English sentence ("expires on October 20, 2027, in 41 days.")
    and the German one ("läuft am 20. Oktober 2027 ab, in 41 Tagen."): the
    date it names is the last valid day, the number is the figure;
  - the Chinese one names 2027年10月20日 and the same number.

Usage: test-days-left.py RENEWCTL
"""
import csv
import datetime
import email
import email.policy
import json
import os
import random
import re
import shutil
import sys
import zoneinfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itestlib import check, import_owners, main_wrapper, run, write  # noqa: E402

RENEWCTL = sys.argv[1]
SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "notifiers", "templates")

CONFIG = """\
[Daemon]
Database={db}
PublicURL=https://renew.test
TimeZone=UTC
Templates={templates}
LinkKeyFile={key}

[SendWindow]
Hours=00:00-24:00
Days=Mon..Sun

[Policy standard]
Segments=*
Tiers=notice escalation
FallbackOwner=alice

[Tier notice]
Offset=-P60D
Channels=email

[Tier escalation]
Offset=-P3D
Audience=owner
Channels=email

[Channel email]
Type=smtp
URL=smtp://127.0.0.1:9
From=Example Renewals <renewals@example.com>
"""

OWNER_ZONE = "Pacific/Auckland"
# (zone, last valid day, locale): days near DST changes of the zone or of the owner's
CONTRACTS = [
    ("Europe/Berlin", "2027-03-28", "en"), ("Europe/Berlin", "2027-10-31", "de"),
    ("America/New_York", "2027-03-14", "en"), ("America/Los_Angeles", "2027-11-07", "en"),
    ("America/St_Johns", "2027-03-15", "en"), ("Australia/Lord_Howe", "2027-04-04", "en"),
    ("Australia/Lord_Howe", "2027-10-03", "de"), ("Asia/Kathmandu", "2027-01-01", "zh-CN"),
    ("Pacific/Chatham", "2027-09-26", "en"), ("America/Santiago", "2027-04-04", "en"),
    ("Pacific/Kiritimati", "2027-06-30", "en"), ("Pacific/Pago_Pago", "2027-06-30", "en"),
    ("Asia/Kolkata", "2027-02-28", "zh-CN"), ("UTC", "2028-02-29", "en"),
    ("Pacific/Auckland", "2027-04-04", "de"),
]
EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December"]
DE_MONTHS = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
             "Oktober", "November", "Dezember"]
NBSP = re.compile("[\u00a0\u202f]")


def expected_in(days):
    if days == 0:
        return "today"
    n = abs(days)
    unit = "day" if n == 1 else "days"
    return f"in {n} {unit}" if days > 0 else f"{n} {unit} ago"


def send_instants(zone, last, rnd):
    """Instants around midnight and late evening local, on DST days, the last
    day and after it, plus random ones in the 70 days before."""
    z = zoneinfo.ZoneInfo(zone)
    out = []
    for back in (0, 1, 2, 7, 30, 59, 60, -1, -2):
        d = last - datetime.timedelta(days=back)
        for hh, mm in ((0, 0), (0, 30), (12, 0), (23, 30), (23, 59)):
            out.append(int(datetime.datetime(d.year, d.month, d.day, hh, mm, tzinfo=z).timestamp()))
    base = int(datetime.datetime(last.year, last.month, last.day, tzinfo=z).timestamp())
    out += [base - rnd.randrange(0, 70 * 86400) for _ in range(6)]
    return out


def preview(conf, cid, tier, at):
    ts = datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    p = run([RENEWCTL, "--config", conf, "--json", "preview", cid, tier, "--at", ts])
    j = json.loads(p.stdout)
    m = email.message_from_string(j["message"], policy=email.policy.default)
    check(not m.defects, f"{cid} {tier} at {ts}: MIME defects {m.defects}")
    return ts, m.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def check_probe(what, text, days, last):
    m = re.search(r"PROBE days=(-?\d+) last=(\S+) text=(.*?) in=(.*?)\n", text)
    check(m is not None, f"{what}: no probe line:\n{text[:400]}")
    got_days, got_last, got_text, got_in = int(m[1]), m[2], NBSP.sub(" ", m[3]), NBSP.sub(" ", m[4])
    check(got_last == last.isoformat(), f"{what}: expiry_iso {got_last}, want {last}")
    check(got_days == days, f"{what}: days_left {got_days}, want {days} (zoneinfo)")
    return got_text, got_in


def check_sentence(what, loc, text, days, last):
    t = NBSP.sub(" ", text)
    if loc == "en":
        m = re.search(r"expires on (\w+) (\d+), (\d{4}), (in (\d+) days?|today|(\d+) days? ago)\.", t)
        check(m is not None, f"{what}: no 'expires on DATE, in N days.' sentence:\n{t[:600]}")
        named = datetime.date(int(m[3]), EN_MONTHS.index(m[1]) + 1, int(m[2]))
        n = int(m[5]) if m[5] else 0 if m[4] == "today" else -int(m[6])
    elif loc == "de":
        m = re.search(r"läuft am (\d+)\. (\w+) (\d{4}) ab, (in (\d+) Tag(?:en)?|heute|vor (\d+) Tag(?:en)?)\.", t)
        check(m is not None, f"{what}: no 'läuft am DATUM ab, in N Tagen.' sentence:\n{t[:600]}")
        named = datetime.date(int(m[3]), DE_MONTHS.index(m[2]) + 1, int(m[1]))
        n = int(m[5]) if m[5] else 0 if m[4] == "heute" else -int(m[6])
    else:
        m = re.search(r"将于(\d{4})年(\d+)月(\d+)日到期，距今还有 (-?\d+) 天", t)
        check(m is not None, f"{what}: no '将于DATE到期，距今还有 N 天' sentence:\n{t[:600]}")
        named = datetime.date(int(m[1]), int(m[2]), int(m[3]))
        n = int(m[4])
    check(named == last, f"{what}: the text names {named}, the last valid day is {last}")
    check(n == days, f"{what}: the text says {n} days to {named}, the calendar gives {days}")


def setup(wd):
    tdir = wd("templates")
    shutil.copytree(SHIPPED, tdir)
    probe = ("PROBE days={{contract.days_left}} last={{contract.expiry_iso}} "
             "text={{contract.days_left_text}} in={{contract.days_left_in}}\n")
    for loc in ("en", "de", "zh"):
        for name in ("notice", "escalation"):
            path = os.path.join(tdir, loc, f"{name}.text.mustache")
            with open(path, encoding="utf-8") as f:
                body = f.read()
            write(path, probe + body)
    db, conf, key = wd("renewd.db"), wd("renewd.conf"), wd("link.key")
    write(key, "0123456789abcdef0123456789abcdef\n")
    write(conf, CONFIG.format(db=db, templates=tdir, key=key))
    path = wd("contracts.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["contract_id", "customer_id", "customer_name", "email", "phone", "timezone",
                    "locale", "segment", "owner", "product", "starts_on", "expires_on", "value",
                    "currency"])
        for i, (zone, last, loc) in enumerate(CONTRACTS):
            w.writerow([f"C-{i}", f"K-{i}", f"Customer {i}", f"c{i}@example.com", "", zone, loc,
                        "smb", "alice", "Cloud Backup", "", last, "1200.50", "EUR"])
    run([RENEWCTL, "--db", db, "--config", conf, "import", path])
    import_owners(RENEWCTL, db, conf, [{"id": "alice", "name": "Alice Owner",
                                         "email": "alice@example.com", "timezone": OWNER_ZONE}], wd)
    return conf


def body(wd):
    conf = setup(wd)
    rnd = random.Random(20271020)
    n = 0
    for i, (zone, last_s, loc) in enumerate(CONTRACTS):
        last = datetime.date.fromisoformat(last_s)
        cid = f"C-{i}"
        for at in send_instants(zone, last, rnd):
            today = datetime.datetime.fromtimestamp(at, zoneinfo.ZoneInfo(zone)).date()
            days = (last - today).days
            ts, text = preview(conf, cid, "notice", at)
            what = f"{cid} ({zone}, {loc}) notice sent {ts}"
            got_text, got_in = check_probe(what, text, days, last)
            if loc == "en":
                check(got_text == f"{abs(days)} {'day' if abs(days) == 1 else 'days'}",
                      f"{what}: days_left_text {got_text!r}")
                check(got_in == expected_in(days), f"{what}: days_left_in {got_in!r}, want {expected_in(days)!r}")
            check(not re.search(r"(?<![0-9])1 (days|Tagen)", text),
                  f"{what}: a singular count written as plural:\n{text[:400]}")
            check_sentence(what, "zh" if loc.startswith("zh") else loc, text, days, last)
            n += 1
        # the owner's escalation: today in the owner's zone, the customer's last day
        for at in send_instants(zone, last, rnd)[::7]:
            today = datetime.datetime.fromtimestamp(at, zoneinfo.ZoneInfo(OWNER_ZONE)).date()
            days = (last - today).days
            ts, text = preview(conf, cid, "escalation", at)
            what = f"{cid} ({zone}) escalation to the owner ({OWNER_ZONE}) sent {ts}"
            check_probe(what, text, days, last)
            want = f"{abs(days)} {'day' if abs(days) == 1 else 'days'}"
            check(f"Expires:    {datetime.date.strftime(last, '%B')} {last.day}, {last.year} ({want} left)"
                  in NBSP.sub(" ", text), f"{what}: the contract block names another day or count:\n{text}")
            n += 1
    print(f"test-days-left: {n} messages over {len(CONTRACTS)} zones and days agree with zoneinfo")


if __name__ == "__main__":
    sys.exit(main_wrapper("test-days-left", body))
