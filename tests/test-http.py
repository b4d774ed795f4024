#!/usr/bin/python3
"""Integration test of renewd's HTTP listener (issue 5), against the real
daemon in real time (fixture: tests/httptestlib.py).

Checked, in order:
  * start-up: /healthz is 200 JSON; every contract gets its first reminder
    (Maildir sink) and the URL `renewctl link` prints is the one in the message;
  * a GET-only crawler following every link of every sent message changes
    nothing in the store (contracts, opt-outs, responses, events);
  * tokens: tampered 403, malformed 400, expired 410, signed with an unknown key
    403, signed with the older key of the rotation 200, for an earlier term 410;
    none of them changes anything;
  * answers: GET shows a form and changes nothing; POST without confirm=yes
    (a bare POST too) 400 with the form again, "please use the button";
    POST decline acts; the same POST again and the GET afterwards say "already
    recorded" (200) and change nothing; a transition the table refuses is 409
    and changes nothing; a malformed form 400; a bad choice 422; snooze,
    callback with a time (owner alerted by email);
  * the customer's renew link: the page states the new end date (the current
    expiry plus the term's length in calendar months, computed here
    independently; in Chinese for a zh customer), the POST starts term 2
    with exactly that expiry, the same POST again and the GET say "already
    recorded", the old term's links are 410, and the owner gets the
    customer-renewed alert (in the new term);
  * the owner's "renewed" (new term, the customer's old links then 410);
  * RFC 8058: the message's List-Unsubscribe URL, GET = page only, POST with
    List-Unsubscribe=One-Click (urlencoded, or multipart/form-data) opts out of
    email; again: still 200; a POST without it is 400;
  * inbound SMS with an independently computed X-Twilio-Signature: STOP,
    the same MessageSid again (nothing twice), START, RENEW (owner alerted),
    CALL, free text (forwarded), HELP, Chinese reply for a zh customer, unknown
    sender; wrong signature, missing signature, signature over another URL: 403;
  * GET /report: 401 without / with a wrong bearer token (WWW-Authenticate);
    with the API token 200 text/html, the self-contained page with the
    funnel SVG, the same bytes again a second later (cache), 400 for bad
    parameters, 405 for POST;
  * the JSON API: no bearer / wrong bearer 401 with WWW-Authenticate; contract
    upsert (201, then 200 unchanged/updated), validation 422, unknown field
    422, malformed JSON 400, wrong content type 415; customer upsert; contract
    with history; 404; responses (201, 409, 422); Idempotency-Key replay (same
    status and body, Idempotent-Replayed) and reuse for another request 422;
    /due?within=;
  * limits: a body over 64 KiB is 413 (with Content-Length and chunked); a
    client that connects and sends nothing is disconnected (timeout);
  * /metrics passes `promtool check metrics` and its values move with sends
    and answers; SIGTERM: exit 0.

Usage: test-http.py RENEWD RENEWCTL
"""
import calendar
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import zoneinfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptestlib import (API_TOKEN, LINK_KEY, OLD_LINK_KEY, OTHER_KEY, SMS_TOKEN, Daemon,  # noqa: E402
                         day, twilio_signature)
from itestlib import (TestFailure, check, free_port, main_wrapper, sanitized_slowdown,  # noqa: E402
                      wait_for, write)

CONTRACTS = [
    dict(contract_id="C-100", customer_id="K-100", customer_name="Alice Example", email="alice@example.com",
         phone="+4930100000", timezone="Europe/Berlin", locale="en", segment="smb", owner="O-1",
         product="Support Plan", starts_on=day(-345), expires_on=day(20), value="1200.00", currency="EUR"),
    dict(contract_id="C-101", customer_id="K-101", customer_name="王芳", email="wang@example.com",
         phone="+8613800000001", timezone="Asia/Shanghai", locale="zh-CN", segment="smb", owner="O-1",
         product="支持计划", expires_on=day(25), value="800.00", currency="CNY"),
    dict(contract_id="C-102", customer_id="K-102", customer_name="Bob Example", email="bob@example.com",
         timezone="UTC", locale="en", owner="O-1", product="Gold", expires_on=day(30)),
    dict(contract_id="C-103", customer_id="K-103", customer_name="Carol Example", email="carol@example.com",
         phone="+4930100003", timezone="UTC", locale="en", owner="O-1", product="Silver", expires_on=day(35)),
    dict(contract_id="C-104", customer_id="K-104", customer_name="Dan Example", email="dan@example.com",
         timezone="UTC", locale="en", owner="O-1", product="Bronze", expires_on=day(40)),
    dict(contract_id="C-105", customer_id="K-105", customer_name="Eve Example", email="eve@example.com",
         timezone="UTC", locale="en", owner="O-1", product="Platinum", expires_on=day(45)),
    dict(contract_id="C-106", customer_id="K-106", customer_name="Erik Example", email="erik@example.com",
         timezone="Europe/Berlin", locale="en", owner="O-1", product="Cloud Storage",
         starts_on=day(-130), expires_on=day(50), value="300.00", currency="EUR"),
]
OWNERS = [dict(id="O-1", name="Olivia Owner", email="olivia@example.com", timezone="UTC")]


def parse_metrics(text):
    """{(name, frozenset(labels)): value}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        check(m, f"unparsable metrics line {line!r}")
        labels = frozenset(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric_sum(ms, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in ms.items() if n == name and want <= set(ls))


def renewal(zone, expires_on, months):
    """(expires_at, last valid day) of a renewal for `months` more, computed
    independently of renewd: a contract valid through expires_on ends at the
    next local midnight; the renewal ends `months` later on the same local
    date (the day clamped to the month's end), at local midnight."""
    end = datetime.date.fromisoformat(expires_on) + datetime.timedelta(days=1)
    m = end.month - 1 + months
    y, m = end.year + m // 12, m % 12 + 1
    new_end = datetime.date(y, m, min(end.day, calendar.monthrange(y, m)[1]))
    at = datetime.datetime.combine(new_end, datetime.time(0), zoneinfo.ZoneInfo(zone))
    return int(at.timestamp()), new_end - datetime.timedelta(days=1)


def long_date(d, zh=False):
    """'May 4, 2027' / '2027年5月4日', as renewd's pages write dates (CLDR long date of en / zh)."""
    months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"]
    return f"{d.year}年{d.month}月{d.day}日" if zh else f"{months[d.month - 1]} {d.day}, {d.year}"


def tamper(url):
    """Flips one character in the middle of the token's payload."""
    head, tok = url.rsplit("/", 1)
    ver, payload, tag = tok.split(".")
    i = len(payload) // 2
    c = "A" if payload[i] != "A" else "B"
    return f"{head}/{ver}.{payload[:i]}{c}{payload[i + 1:]}.{tag}"


def body(wd):
    renewd, renewctl = sys.argv[1], sys.argv[2]
    d = Daemon(wd, renewd, renewctl, CONTRACTS, OWNERS)
    try:
        run_checks(d, wd)
    except TestFailure as e:
        raise TestFailure(f"{e}\n--- renewd log (tail) ---\n{d.log_text()[-6000:]}")
    finally:
        rc = d.stop()
    check(rc == 0, f"renewd exited {rc} after SIGTERM")
    socket_activation(wd, renewd)
    return 0


def run_checks(d, wd):
    # ---- start-up ----------------------------------------------------------------------
    r = d.get("/healthz")
    check(r.status == 200 and r.headers["content-type"] == "application/json" and
          r.json()["status"] == "ok", f"/healthz: {r.status} {r.text}")
    wait_for(lambda: len(d.messages()) >= len(CONTRACTS), 30 * d.slow, 0.1, "the first reminders")
    d.quiesce()
    msgs = d.messages()
    check(len(msgs) == len(CONTRACTS), f"{len(msgs)} messages, expected {len(CONTRACTS)}")
    by_contract = {str(m["X-Renewd-Contract"]): m for m in msgs}
    metrics0 = parse_metrics(d.get("/metrics").text)
    check(metric_sum(metrics0, "renewd_deliveries_total", channel="email", outcome="sent") == len(CONTRACTS),
          "renewd_deliveries_total{channel=email,outcome=sent} counts the first reminders")
    check(metric_sum(metrics0, "renewd_delivery_duration_seconds_count", channel="email") == len(CONTRACTS),
          "the latency histogram counts the first reminders")
    check(metric_sum(metrics0, "renewd_answers_total") == 0, "no answers yet")
    decline_102 = d.link("C-102", "decline")
    check(decline_102 in d.links_in(by_contract["C-102"]),
          f"renewctl link C-102 decline ({decline_102}) is not a link of the message:\n"
          f"{d.links_in(by_contract['C-102'])}")

    # ---- a GET-only crawler changes nothing ---------------------------------------------
    before = d.snapshot()
    seen = 0
    for m in msgs:
        for url in d.links_in(m):
            check(url.startswith(d.base), f"link {url} is not under PublicURL {d.base}")
            r = d.get(url)
            check(r.status == 200 and r.page() == "form", f"GET {url}: {r.status} page={r.page()}")
            check("<script" not in r.text.lower(), f"GET {url}: the page has a script")
            check('name="viewport"' in r.text, f"GET {url}: no viewport meta")
            h = d.request("HEAD", url)
            check(h.status == 200 and h.body == b"", f"HEAD {url}: {h.status}")
            seen += 1
    check(seen >= 5 * len(CONTRACTS), f"the crawler followed only {seen} links")
    check(d.snapshot() == before, "following the links of the messages (GET) changed the store")
    print(f"crawler: {seen} links, store unchanged")

    # ---- tokens ---------------------------------------------------------------------------
    before = d.snapshot()
    write(wd("old.key"), OLD_LINK_KEY + "\n")
    cases = [
        ("tampered", tamper(d.link("C-100", "decline")), 403, "error"),
        ("malformed", d.base + "/r/garbage", 400, "error"),
        ("placeholder", d.base + "/r/unsigned", 400, "error"),
        ("unsubscribe token on /r/", d.link("C-100", "unsubscribe-email").replace("/u/", "/r/"), 400, "error"),
        ("expired", d.link("C-100", "decline", "--expires", "2020-01-01T00:00:00Z"), 410, "error"),
        ("unknown key", d.link("C-100", "decline", "--key-file", wd("other.key")), 403, "error"),
        ("older key (rotation)", d.link("C-100", "decline", "--key-file", wd("old.key")), 200, "form"),
        ("wrong term", d.link("C-100", "decline", "--term", "2"), 410, "error"),
    ]
    for what, url, status, page in cases:
        # a valid link is only looked at (GET); the others are also POSTed
        for method in ("GET",) if status == 200 else ("GET", "POST"):
            r = d.get(url) if method == "GET" else d.post_form(url, {"confirm": "yes", "reason": "price"})
            check(r.status == status and r.page() == page,
                  f"{what} token, {method}: {r.status} page={r.page()}, expected {status}/{page}")
    check(d.snapshot() == before, "refused tokens changed the store")

    # ---- decline: GET, confirm, POST, repeat, refused transition ---------------------------
    before = d.snapshot()
    r = d.get(decline_102)
    check(r.status == 200 and r.page() == "form" and 'name="reason"' in r.text and "C-102" in r.text,
          f"decline page: {r.status} {r.page()}")
    check("content-security-policy" in r.headers and r.headers.get("referrer-policy") == "no-referrer",
          f"decline page headers: {r.headers}")
    r = d.post_form(decline_102, {"reason": "price"})
    check(r.status == 400 and r.page() == "form", f"POST without confirm=yes: {r.status} {r.page()}")
    r = d.request("POST", decline_102, "", {})
    check(r.status == 400 and r.page() == "form" and "please use the button" in r.text
          and 'name="confirm" value="yes"' in r.text,
          f"bare POST to a valid link: the form again, 400: {r.status} {r.page()}\n{r.text[-600:]}")
    r = d.request("POST", decline_102, "confirm=yes&note=%zz",
                  {"Content-Type": "application/x-www-form-urlencoded"})
    check(r.status == 400, f"POST with a malformed form: {r.status}")
    r = d.post_form(decline_102, {"confirm": "yes", "reason": "nonsense"})
    check(r.status == 422 and r.page() == "form" and 'class="err"' in r.text, f"POST bad reason: {r.status}")
    check(d.snapshot() == before, "refused decline POSTs changed the store")
    r = d.post_form(decline_102, {"confirm": "yes", "reason": "price", "note": "Too expensive for us"})
    check(r.status == 200 and r.page() == "done", f"POST decline: {r.status} {r.page()}\n{r.text[-800:]}")
    check(d.contract("C-102")["state"] == "declined", f"C-102 is {d.contract('C-102')}")
    resp = d.responses("C-102")
    check(len(resp) == 1 and resp[0]["kind"] == "declined" and resp[0]["source"] == "link" and
          resp[0]["reason"] == "price" and resp[0]["detail"] == "Too expensive for us", f"responses {resp}")
    after = d.snapshot()
    r = d.post_form(decline_102, {"confirm": "yes", "reason": "budget"})
    check(r.status == 200 and r.page() == "already", f"repeated POST: {r.status} {r.page()}")
    r = d.get(decline_102)
    check(r.status == 200 and r.page() == "already", f"GET of a used link: {r.status} {r.page()}")
    check(d.snapshot() == after, "a repeated POST changed the store")
    snooze_102 = d.link("C-102", "snooze")
    r = d.get(snooze_102)
    check(r.status == 409 and r.page() == "refused", f"snooze a declined contract, GET: {r.status}")
    r = d.post_form(snooze_102, {"confirm": "yes", "snooze": "7d"})
    check(r.status == 409 and r.page() == "refused", f"snooze a declined contract, POST: {r.status}")
    check(d.snapshot() == after, "a refused transition changed the store")

    # ---- snooze, bad choice, callback with a time --------------------------------------------
    snooze_104 = d.link("C-104", "snooze")
    r = d.get(snooze_104)
    check(r.status == 200 and 'value="7d"' in r.text and 'value="14d"' in r.text, f"snooze page {r.status}")
    before = d.snapshot()
    r = d.post_form(snooze_104, {"confirm": "yes", "snooze": "5d"})
    check(r.status == 422 and r.page() == "form", f"snooze 5d: {r.status}")
    check(d.snapshot() == before, "a bad snooze choice changed the store")
    r = d.post_form(snooze_104, {"confirm": "yes", "snooze": "14d"})
    check(r.status == 200 and r.page() == "done", f"snooze 14d: {r.status} {r.page()}")
    c = d.contract("C-104")
    want = int(datetime.datetime.combine(datetime.date.today() + datetime.timedelta(days=14),
                                         datetime.time(9, 0), datetime.timezone.utc).timestamp())
    check(c["state"] == "snoozed" and c["state_until"] == want, f"C-104 after snooze: {c}, want until {want}")

    callback_100 = d.link("C-100", "callback")
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)
    r = d.post_form(callback_100, {"confirm": "yes", "when": "at", "at": f"{tomorrow}T10:30",
                                   "note": "mobile +49 170 1234567"})
    check(r.status == 200 and r.page() == "done", f"callback: {r.status} {r.page()}")
    at = int(datetime.datetime.combine(tomorrow, datetime.time(10, 30),
                                       zoneinfo.ZoneInfo("Europe/Berlin")).timestamp())
    resp = d.responses("C-100")
    check(d.contract("C-100")["state"] == "callback" and resp[-1]["kind"] == "callback" and
          resp[-1]["until"] == at, f"C-100 after callback: {d.contract('C-100')} {resp}")
    wait_for(lambda: d.sql("SELECT status FROM reminders WHERE contract_id='C-100' AND tier='callback' "
                           "AND audience='owner';") == "sent", 30 * d.slow, 0.1, "the owner's callback alert")
    check(any(str(m["To"]).endswith("olivia@example.com>") or str(m["To"]) == "olivia@example.com"
              for m in d.messages()), "no message to the owner")

    # ---- the customer's renew link: another term, the owner told ---------------------------------
    # C-106 runs from day(-130) through day(50) in Berlin: 181 days, 6 calendar months
    renew_106, old_snooze_106 = d.link("C-106", "renew"), d.link("C-106", "snooze")
    old_decline_106 = d.link("C-106", "decline")
    check(renew_106 in d.links_in(by_contract["C-106"]), "C-106's reminder lacks its renew link")
    want_at, want_last = renewal("Europe/Berlin", day(50), 6)
    before = d.snapshot()
    r = d.get(renew_106)
    check(r.status == 200 and r.page() == "form" and
          f"Your Cloud Storage will be renewed until {long_date(want_last)}." in r.text and
          'name="confirm" value="yes"' in r.text,
          f"renew page: {r.status} {r.page()}, expected the new end date {want_last}\n{r.text[-1500:]}")
    zh_at, zh_last = renewal("Asia/Shanghai", day(25), 12)  # C-101: no start date, one year
    r = d.get(d.link("C-101", "renew"))
    check(r.status == 200 and f"您的支持计划将续约至{long_date(zh_last, zh=True)}。" in r.text,
          f"renew page (zh): {r.status}, expected the new end date {zh_last}\n{r.text[-1500:]}")
    r = d.post_form(renew_106, {"note": "x"})
    check(r.status == 400, f"renew POST without confirm=yes: {r.status}")
    check(d.snapshot() == before, "the renew pages (GET) or an unconfirmed POST changed the store")
    r = d.post_form(renew_106, {"confirm": "yes"})
    check(r.status == 200 and r.page() == "done" and
          f"Your Cloud Storage is renewed until {long_date(want_last)}." in r.text and "invoice" in r.text,
          f"renew POST: {r.status} {r.page()}\n{r.text[-1500:]}")
    c = d.contract("C-106")
    check(c["term"] == 2 and c["state"] == "active" and c["expires_at"] == want_at,
          f"C-106 after renewing: {c}, expected term 2, expires_at {want_at} ({want_last})")
    resp = d.responses("C-106")
    check([(x["kind"], x["source"]) for x in resp] == [("renewed", "link")], f"C-106 responses {resp}")
    check(d.sql("SELECT new_expires_at FROM responses WHERE contract_id='C-106';") == str(want_at),
          "the renewal's recorded new expiry")
    after = d.snapshot()
    r = d.post_form(renew_106, {"confirm": "yes"})
    check(r.status == 200 and r.page() == "already", f"renew POST again: {r.status} {r.page()}")
    r = d.get(renew_106)
    check(r.status == 200 and r.page() == "already", f"GET of the used renew link: {r.status} {r.page()}")
    for what, url in (("snooze", old_snooze_106), ("decline", old_decline_106)):
        r = d.get(url)
        check(r.status == 410 and r.page() == "error", f"old term's {what} link, GET: {r.status}")
        r = d.post_form(url, {"confirm": "yes", "snooze": "7d", "reason": "price"})
        check(r.status == 410, f"old term's {what} link, POST: {r.status}")
    check(d.snapshot() == after, "a repeated renewal or an old term's link changed the store")
    wait_for(lambda: d.sql("SELECT status || ' ' || term FROM reminders WHERE contract_id='C-106' AND "
                           "tier='customer-renewed' AND audience='owner';") == "sent 2",
             30 * d.slow, 0.1, "the owner's customer-renewed alert (term 2)")
    # (this daemon has no Templates=: the built-in owner text; test-full-loop checks the shipped one)
    alert = [m for m in d.messages() if str(m["X-Renewd-Tier"]) == "customer-renewed"]
    check(len(alert) == 1 and "olivia@example.com" in str(alert[0]["To"]) and
          str(alert[0]["X-Renewd-Contract"]) == "C-106" and
          long_date(want_last) in alert[0].get_body(("plain",)).get_content(),
          f"customer-renewed alert: {[(str(m['To']), str(m['Subject'])) for m in alert]}")
    print(f"customer renewal: C-106 term 2 through {want_last}, owner alerted")

    # ---- the owner's links: renewed, then the customer's old links are out of date -------------
    old_decline_105 = d.link("C-105", "decline")
    owner_renewed = d.link("C-105", "owner-renewed")
    r = d.get(owner_renewed)
    check(r.status == 200 and 'name="expires_on"' in r.text, f"owner renewed page: {r.status}")
    new_day = (datetime.date.today() + datetime.timedelta(days=45 + 365)).isoformat()
    r = d.post_form(owner_renewed, {"confirm": "yes", "expires_on": new_day})
    check(r.status == 200 and r.page() == "done", f"owner renewed: {r.status} {r.page()}\n{r.text[-600:]}")
    c = d.contract("C-105")
    check(c["term"] == 2 and c["state"] == "active", f"C-105 after renewal: {c}")
    check(d.responses("C-105")[-1]["source"] == "owner-link", "the renewal's source is owner-link")
    r = d.post_form(owner_renewed, {"confirm": "yes", "expires_on": new_day})
    check(r.status == 200 and r.page() == "already", f"owner renewed again: {r.status} {r.page()}")
    r = d.get(old_decline_105)
    check(r.status == 410, f"a link of the old term after the renewal: {r.status}")

    # ---- RFC 8058 one-click unsubscribe -------------------------------------------------------------
    m = by_contract["C-101"]
    check(str(m["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click",
          f"List-Unsubscribe-Post: {m['List-Unsubscribe-Post']}")
    unsub = re.search(r"<(http[^>]+)>", str(m["List-Unsubscribe"])).group(1)
    before = d.snapshot()
    r = d.get(unsub)
    check(r.status == 200 and r.page() == "form" and "退订" in r.text and 'lang="zh-CN"' in r.text,
          f"unsubscribe page (zh): {r.status} {r.page()}")
    r = d.request("POST", unsub, "something=else", {"Content-Type": "application/x-www-form-urlencoded"})
    check(r.status == 400, f"unsubscribe POST without List-Unsubscribe=One-Click: {r.status}")
    check(d.snapshot() == before, "GET of the unsubscribe link changed the store")
    r = d.request("POST", unsub, "List-Unsubscribe=One-Click",
                  {"Content-Type": "application/x-www-form-urlencoded"})
    check(r.status == 200, f"one-click unsubscribe: {r.status}")
    check(d.optout("K-101") & 1, f"K-101 opt-out bits {d.optout('K-101')}: email not set")
    r = d.request("POST", unsub, "List-Unsubscribe=One-Click",
                  {"Content-Type": "application/x-www-form-urlencoded"})
    check(r.status == 200, f"one-click unsubscribe again: {r.status}")

    unsub_100 = re.search(r"<(http[^>]+)>", str(by_contract["C-100"]["List-Unsubscribe"])).group(1)
    boundary = "----renewd-test-boundary"
    mp = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
          f"One-Click\r\n--{boundary}--\r\n")
    r = d.request("POST", unsub_100, mp, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    check(r.status == 200 and d.optout("K-100") & 1,
          f"one-click unsubscribe as multipart/form-data: {r.status}, opt-out {d.optout('K-100')}")

    # ---- inbound SMS ------------------------------------------------------------------------------
    before = d.snapshot()
    r = d.sms("+4930100003", "STOP", "SM-bad", token="not-the-token")
    check(r.status == 403, f"SMS with a wrong signature: {r.status}")
    r = d.request("POST", "/sms/inbound", urllib.parse.urlencode({"From": "+4930100003", "Body": "STOP"}),
                  {"Content-Type": "application/x-www-form-urlencoded"})
    check(r.status == 403, f"SMS without a signature: {r.status}")
    params = [("From", "+4930100003"), ("Body", "STOP"), ("MessageSid", "SM-x")]
    sig = twilio_signature(SMS_TOKEN, f"http://localhost:{d.port}/sms/inbound", params)
    r = d.request("POST", "/sms/inbound", urllib.parse.urlencode(params),
                  {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig})
    check(r.status == 403, f"SMS signed over another URL: {r.status}")
    check(d.snapshot() == before, "refused SMS changed the store")

    def sms_ok(sender, text, sid):
        r = d.sms(sender, text, sid)
        check(r.status == 200 and r.headers["content-type"].startswith("text/xml") and
              r.text.startswith("<?xml") and "<Response" in r.text, f"SMS {text!r}: {r.status} {r.text}")
        return r.text

    t = sms_ok("+4930100003", " stop ", "SM-1")
    check("<Message>" in t and "unsubscribed" in t, f"STOP reply: {t}")
    check(d.optout("K-103") & 2, "STOP did not opt K-103 out of SMS")
    n = len(d.responses())
    sms_ok("+4930100003", " stop ", "SM-1")
    check(len(d.responses()) == n, "the same MessageSid was recorded twice")
    t = sms_ok("+4930100003", "Start", "SM-2")
    check(not d.optout("K-103") & 2 and "STOP" in t, f"START: opt-out {d.optout('K-103')}, reply {t}")
    sms_ok("+4930100003", "RENEW", "SM-3")
    check(d.responses("C-103")[-1]["kind"] == "renew_intent", f"RENEW: {d.responses('C-103')[-1]}")
    wait_for(lambda: d.sql("SELECT status FROM reminders WHERE contract_id='C-103' AND tier='renew-intent';")
             == "sent", 30 * d.slow, 0.1, "the owner's renew-intent alert")
    sms_ok("+4930100003", "call", "SM-4")
    check(d.contract("C-103")["state"] == "callback", f"CALL: {d.contract('C-103')}")
    t = sms_ok("+4930100003", "Can we talk about the price?", "SM-5")
    last = d.responses("C-103")[-1]
    check(last["kind"] == "message" and last["detail"] == "Can we talk about the price?" and
          last["source"] == "sms", f"free text: {last}")
    t = sms_ok("+4930100003", "help", "SM-6")
    check("RENEW" in t and "STOP" in t, f"HELP reply: {t}")
    t = sms_ok("+8613800000001", "STOP", "SM-7")
    check("退订" in t, f"STOP reply for a zh customer: {t}")
    # STOP from a number nobody has: the number is suppressed all the same
    t = sms_ok("+19995550123", "STOP", "SM-8")
    check("unsubscribed" in t, f"STOP from an unknown sender: {t}")
    check(d.sql("SELECT reason || ' ' || source FROM suppressions WHERE address = '+19995550123';")
          == "stop sms-inbound", "STOP from an unknown number is not suppressed")
    t = sms_ok("+19995550123", "hello", "SM-9")
    check("<Response/>" in t, f"unknown sender: {t}")
    print(f"sms: {len(d.responses())} responses recorded so far")

    # ---- the JSON API ------------------------------------------------------------------------------
    r = d.api("GET", "/contracts/C-100", token=None)
    check(r.status == 401 and r.headers.get("www-authenticate", "").startswith("Bearer"),
          f"API without a token: {r.status} {r.headers}")
    r = d.api("GET", "/contracts/C-100", token="wrong-" + API_TOKEN)
    check(r.status == 401 and 'error="invalid_token"' in r.headers.get("www-authenticate", ""),
          f"API with a wrong token: {r.status}")
    contract = {"customer_id": "K-200", "customer_name": "Frank API", "email": "frank@example.com",
                "timezone": "Europe/Paris", "locale": "en", "product": "API Plan",
                "expires_on": day(90), "value": "99.50", "currency": "EUR"}
    r = d.api("PUT", "/contracts/C-200", contract)
    check(r.status == 201 and r.json()["result"] == "inserted" and
          r.json()["contract"]["expires_on"] == day(90) and r.json()["contract"]["value"] == "99.50",
          f"PUT new contract: {r.status} {r.text}")
    r = d.api("PUT", "/contracts/C-200", contract)
    check(r.status == 200 and r.json()["result"] == "unchanged", f"PUT same contract: {r.status} {r.text}")
    r = d.api("PUT", "/contracts/C-200", dict(contract, product="API Plan Plus"))
    check(r.status == 200 and r.json()["result"] == "updated", f"PUT changed contract: {r.status}")
    r = d.api("PUT", "/contracts/C-201", {"customer_id": "K-200", "expires_on": "2027-02-30",
                                          "email": "frank@", "value": 12.345})
    probs = {p["field"] for p in r.json()["error"].get("problems", [])} if r.status == 422 else set()
    check(r.status == 422 and {"email", "expires_on", "value"} <= probs, f"PUT invalid: {r.status} {r.text}")
    r = d.api("PUT", "/contracts/C-202", {"customer_id": "K-200", "expires_on": day(90), "colour": "red"})
    check(r.status == 422 and "colour" in r.text, f"PUT unknown field: {r.status} {r.text}")
    r = d.api("PUT", "/contracts/C-202", raw='{"customer_id": "K-200",')
    check(r.status == 400, f"PUT malformed JSON: {r.status}")
    r = d.api("PUT", "/contracts/C-202", raw="[1,2]")
    check(r.status == 400, f"PUT a JSON array: {r.status}")
    r = d.api("PUT", "/contracts/C-202", raw="customer_id=K-200", headers={"Content-Type": "text/plain"})
    check(r.status == 415, f"PUT text/plain: {r.status}")
    r = d.api("PUT", "/contracts/C-203", {"customer_id": "K-200", "expires_on": day(100), "product": "Second"})
    check(r.status == 201 and r.json()["customer"]["email"] == "frank@example.com",
          f"PUT with only customer_id keeps the stored customer: {r.status} {r.text}")
    r = d.api("PUT", "/customers/K-200", {"name": "Frank Renamed", "phone": "+33 1 23 45 67 89"})
    check(r.status == 200 and r.json()["customer"]["phone"] == "+33123456789" and
          r.json()["customer"]["name"] == "Frank Renamed", f"PUT customer: {r.status} {r.text}")
    r = d.api("POST", "/customers/K-201", {"name": "Grace", "email": "grace@example.com"})
    check(r.status == 201, f"POST new customer: {r.status} {r.text}")
    r = d.api("POST", "/customers/K-202", {"name": "No Address"})
    check(r.status == 422, f"customer without email or phone: {r.status}")
    r = d.api("GET", "/contracts/C-102")
    j = r.json() if r.status == 200 else {}
    check(r.status == 200 and j["contract"]["state"] == "declined" and
          [x["kind"] for x in j["history"]["responses"]] == ["declined"] and
          len(j["history"]["reminders"]) >= 1 and len(j["history"]["events"]) >= 1,
          f"GET contract with history: {r.status} {r.text[:600]}")
    r = d.api("GET", "/contracts/C-999")
    check(r.status == 404, f"GET unknown contract: {r.status}")
    answer = {"kind": "renewed", "expires_on": day(90 + 365)}
    r1 = d.api("POST", "/contracts/C-200/responses", answer, headers={"Idempotency-Key": "renew-C-200-1"})
    check(r1.status == 201 and r1.json()["new_term"] is True and r1.json()["term"] == 2,
          f"POST renewed: {r1.status} {r1.text}")
    n = len(d.responses())
    r2 = d.api("POST", "/contracts/C-200/responses", answer, headers={"Idempotency-Key": "renew-C-200-1"})
    check(r2.status == r1.status and r2.body == r1.body and r2.headers.get("idempotent-replayed") == "true",
          f"Idempotency-Key replay: {r2.status} {r2.text} {r2.headers}")
    check(len(d.responses()) == n and d.contract("C-200")["term"] == 2, "the replay changed the store")
    r = d.api("POST", "/contracts/C-200/responses", dict(answer, expires_on=day(90 + 730)),
              headers={"Idempotency-Key": "renew-C-200-1"})
    check(r.status == 422 and "Idempotency-Key" in r.text, f"Idempotency-Key reused: {r.status} {r.text}")
    r = d.api("POST", "/contracts/C-102/responses", {"kind": "snoozed", "until": day(10)})
    check(r.status == 409, f"snooze a declined contract through the API: {r.status} {r.text}")
    r = d.api("POST", "/contracts/C-203/responses", {"kind": "renewed", "expires_on": day(1)})
    check(r.status == 422, f"renewed with an earlier expiry: {r.status} {r.text}")
    r = d.api("POST", "/contracts/C-203/responses", {"kind": "frobnicated"})
    check(r.status == 422, f"unknown kind: {r.status}")
    r = d.api("POST", "/contracts/C-999/responses", {"kind": "declined"})
    check(r.status == 404, f"answer for an unknown contract: {r.status}")
    r = d.api("POST", "/contracts/C-203/responses", {"kind": "declined", "reason": "budget"})
    check(r.status == 201 and r.json()["state"] == "declined", f"POST declined: {r.status} {r.text}")
    r = d.api("GET", "/due?within=60d")
    ids = [c["id"] for c in r.json()["contracts"]] if r.status == 200 else []
    check(r.status == 200 and r.json()["count"] == len(ids) and "C-101" in ids and "C-102" not in ids,
          f"/due: {r.status} {r.text[:600]}")
    r = d.api("GET", "/due?within=soon")
    check(r.status == 400, f"/due?within=soon: {r.status}")
    r = d.api("DELETE", "/contracts/C-200")
    check(r.status == 405 and "allow" in r.headers, f"DELETE: {r.status}")

    # ---- GET /report: the report page behind the API's bearer token ------------------------------
    r = d.get("/report")
    check(r.status == 401 and r.headers.get("www-authenticate") == 'Bearer realm="renewd"' and
          "<svg" not in r.text, f"/report without a token: {r.status} {r.headers}")
    r = d.get("/report", headers={"Authorization": "Bearer wrong-" + API_TOKEN})
    check(r.status == 401 and 'error="invalid_token"' in r.headers.get("www-authenticate", ""),
          f"/report with a wrong token: {r.status} {r.headers}")
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    period = f"/report?from={day(-1)}&to={day(100)}&by=segment"
    r = d.get(period, headers=auth)
    check(r.status == 200 and r.headers["content-type"] == "text/html; charset=utf-8",
          f"/report: {r.status} {r.headers.get('content-type')}\n{r.text[:400]}")
    check(r.text.startswith("<!DOCTYPE html>") and '<svg role="img" data-chart="funnel"' in r.text and
          "<script" not in r.text.lower() and "no-store" in r.headers.get("cache-control", ""),
          f"/report is not the self-contained report page:\n{r.text[:600]}")
    check(f"{day(-1)}" in r.text and f"{day(100)}" in r.text, "/report does not show the period asked for")
    time.sleep(1.1)  # a recomputed page would carry a later "generated" second
    r2 = d.get(period, headers=auth)
    check(r2.status == 200 and r2.body == r.body, "/report was computed again instead of served from the cache")
    r = d.request("HEAD", "/report", headers=auth)
    check(r.status == 200 and r.body == b"", f"HEAD /report (default period): {r.status}")
    for query in ("by=colour", "from=2027-02-30", "from=2027-03-02&to=2027-03-01", "to=yesterday"):
        r = d.get("/report?" + query, headers=auth)
        check(r.status == 400, f"/report?{query}: {r.status}, expected 400")
    r = d.request("POST", "/report", "", auth)
    check(r.status == 405 and r.headers.get("allow") == "GET, HEAD", f"POST /report: {r.status}")
    print("report page: 401 without a token, 200 text/html with the funnel chart, cached")

    # ---- limits -------------------------------------------------------------------------------------
    big = json.dumps({"customer_id": "K-200", "expires_on": day(90), "product": "x" * 70000})
    r = d.api("PUT", "/contracts/C-204", raw=big)
    check(r.status == 413, f"70 kB body with Content-Length: {r.status}")
    r = chunked_put(d, "/api/v1/contracts/C-204", big)
    check(r == 413, f"70 kB chunked body: {r}")
    r = d.request("POST", d.link("C-101", "decline"), "confirm=yes&note=" + "y" * 70000,
                  {"Content-Type": "application/x-www-form-urlencoded"})
    check(r.status == 413, f"70 kB form: {r.status}")
    check(d.get("/healthz").status == 200, "the listener still answers after 413s")
    s = socket.create_connection(("127.0.0.1", d.port))
    s.settimeout(60 * d.slow)
    t0 = time.monotonic()
    try:
        data = s.recv(100)
    except socket.timeout:
        raise TestFailure("a client that sends nothing was not disconnected within 60 s")
    finally:
        s.close()
    check(data == b"", f"an idle client got {data!r} instead of a closed connection")
    print(f"idle client disconnected after {time.monotonic() - t0:.1f} s")

    # ---- metrics move ----------------------------------------------------------------------------------
    n_resp = len(d.responses())

    def answers_counted():
        ms = parse_metrics(d.get("/metrics").text)
        return ms if metric_sum(ms, "renewd_answers_total") == n_resp else None
    ms = wait_for(answers_counted, 30 * d.slow, 0.5, f"renewd_answers_total to reach {n_resp}")
    check(metric_sum(ms, "renewd_answers_total", kind="declined", source="link") == 1, "declined/link")
    check(metric_sum(ms, "renewd_answers_total", source="sms") >= 6, "sms answers")
    check(metric_sum(ms, "renewd_contracts", state="declined") == 2, "two declined contracts")
    check(metric_sum(ms, "renewd_deliveries_total", outcome="sent") >
          metric_sum(metrics0, "renewd_deliveries_total", outcome="sent"), "owner alerts were counted")
    check(metric_sum(ms, "renewd_http_requests_total", endpoint="api") > 0, "http requests counted")
    check(metric_sum(ms, "renewd_build_info") == 1 and ms.get(("renewd_store_up", frozenset())) == 1,
          "build info and store up")
    text = d.get("/metrics").text
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        check(p.returncode == 0, f"promtool check metrics: {p.returncode}\n{p.stdout}{p.stderr}")
        print("promtool check metrics: ok")
    else:
        print("promtool not installed: exposition format not checked by promtool")
    r = d.request("POST", "/metrics", "")
    check(r.status == 405, f"POST /metrics: {r.status}")
    check(d.get("/nope").status == 404, "unknown path")

    # ---- key rotation by reload: a new first key signs, the dropped key is refused ---------------
    write(wd("link.key"), f"{OTHER_KEY}\n{LINK_KEY}\n")
    n = d.log_text().count("configuration reloaded")
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.log_text().count("configuration reloaded") > n, 30 * d.slow, 0.1, "the reload")
    r = d.get(d.link("C-101", "renew"))  # renewctl signs with the new first key
    check(r.status == 200 and r.page() == "form", f"link signed with the new key after reload: {r.status}")
    r = d.get(d.link("C-101", "renew", "--key-file", wd("old.key")))
    check(r.status == 403, f"link signed with a key dropped at reload: {r.status}")

    # ---- a second renewd on the same address stops at once, saying why ---------------------------
    p = subprocess.run([d.renewd, "--config", d.conf, "--log-target", "console"], capture_output=True,
                       text=True, timeout=60 * d.slow)
    check(p.returncode == 69 and "address already in use" in p.stderr,
          f"second renewd on the same port: exit {p.returncode}\n{p.stderr[-2000:]}")
    check(d.get("/healthz").status == 200, "the first renewd stopped answering")


def socket_activation(wd, renewd):
    """renewd started by systemd-socket-activate serves on the passed socket."""
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        print("systemd-socket-activate not installed: socket activation not checked")
        return
    port = free_port()
    log = open(wd("activated.log"), "w+")
    p = subprocess.Popen([activate, "-l", f"127.0.0.1:{port}", renewd, "--config", wd("renewd.conf"),
                          "--log-target", "console"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: p.poll() is None and "Listening on" in open(wd("activated.log")).read(),
                 30, 0.1, "systemd-socket-activate")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60 * sanitized_slowdown())
        c.request("GET", "/healthz")
        r = c.getresponse()
        check(r.status == 200, f"/healthz through socket activation: {r.status}")
        c.close()
        text = open(wd("activated.log")).read()
        check("HTTP listener on socket activation (fd 3)" in text, f"socket activation log:\n{text}")
    finally:
        p.terminate()
        rc = p.wait(timeout=60)
        log.close()
    check(rc == 0, f"socket-activated renewd exited {rc}")
    print("socket activation: ok")


def chunked_put(d, path, data):
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30 * d.slow)
    try:
        c.putrequest("PUT", path)
        c.putheader("Authorization", f"Bearer {API_TOKEN}")
        c.putheader("Content-Type", "application/json")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        raw = data.encode()
        try:
            for i in range(0, len(raw), 8192):
                chunk = raw[i:i + 8192]
                c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            c.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        return c.getresponse().status
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main_wrapper("test-http", body))
