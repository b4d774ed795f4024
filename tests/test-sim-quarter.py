#!/usr/bin/python3
"""A simulated quarter of the demo set-up: the example ladder
(config/renewd.conf.example), every channel turned into a sink by
scripts/demo-config.py (as scripts/demo.sh does), a generated book
(scripts/gen-contracts.py) with the demo's sales owners and their head of
sales (scripts/gen-owners.py, EscalateTo=head-of-sales), run by the real
renewd --simulate. Then, read back from the store and the sink's files:

  * one alert per moment: no two sent messages of one contract, term, tier,
    audience and channel share an instant (weekend repeats that the send
    window moves onto Monday morning are one message);
  * escalations greet and address the person they go to: every owner email
    greets its To: display name; every escalation past EscalateAfter= goes
    to the head of sales (To: Hannah Berg, "Hello Hannah Berg"), never with
    the account owner's name on it; the webhook events of those carry her as
    data.owner and the account owner as data.account_owner;
  * SMS and webhooks are written as what they are (sms/*.txt, webhooks/*.http),
    never as emails; every email parses as valid MIME.

Usage: test-sim-quarter.py RENEWD RENEWCTL
"""
import collections
import email
import email.policy
import glob
import json
import os
import re
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itestlib import check, free_port, main_wrapper, run, write  # noqa: E402

RENEWD, RENEWCTL = sys.argv[1], sys.argv[2]
TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
HEAD = ("Hannah Berg", "hannah@sales.example.com")


def setup(wd):
    conf = wd("renewd.conf")
    with open(os.path.join(TOP, "config", "renewd.conf.example"), encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"(?m)^Database=.*$", f"Database={wd('renewd.db')}", text)
    text = re.sub(r"(?m)^Templates=.*$", f"Templates={TOP}/notifiers/templates", text)
    text = re.sub(r"(?m)^Holidays=.*$", f"Holidays={TOP}/config/holidays.example.ics", text)
    text = re.sub(r"(?m)^Listen=.*$", f"Listen=127.0.0.1:{free_port()}", text)
    write(conf, text)
    os.makedirs(wd("renewd.conf.d"))
    os.makedirs(wd("secrets"), mode=0o700)
    write(wd("secrets", "link-key"), "0123456789abcdef0123456789abcdef\n")
    write(wd("secrets", "api-token"), "demo-token-0123456789\n")
    for f in ("link-key", "api-token"):
        os.chmod(wd("secrets", f), 0o600)
    dropin = run([sys.executable, f"{TOP}/scripts/demo-config.py", conf, wd("maildir"), wd("secrets")]).stdout
    write(wd("renewd.conf.d", "50-demo.conf"), dropin)
    owners = run([sys.executable, f"{TOP}/scripts/gen-owners.py"]).stdout
    check(f"head-of-sales,{HEAD[0]},{HEAD[1]}" in owners, "the demo's head of sales")
    write(wd("owners.csv"), owners)
    run([RENEWCTL, "--config", conf, "owners", "import", wd("owners.csv")])
    book = run([sys.executable, f"{TOP}/scripts/gen-contracts.py", "400", "--start", "2031-02-01",
                "--days", "60", "--seed", "11"]).stdout
    write(wd("contracts.csv"), book)
    run([RENEWCTL, "--config", conf, "import", wd("contracts.csv")])
    return conf


def first_line(text):
    return next((l for l in text.splitlines() if l.strip()), "")


def body(wd):
    conf = setup(wd)
    run([RENEWD, "--config", conf, "--log-target=console", "--log-level=warning",
         "--simulate", "2031-01-01..2031-04-01"], timeout=600)
    db = sqlite3.connect(wd("renewd.db"))
    rows = db.execute("SELECT contract_id, term, tier, step, channel, audience, recipient, sent_at "
                      "FROM reminders WHERE status = 'sent' AND tier != 'ops-alert'").fetchall()
    check(len(rows) > 500, f"a quarter of reminders: {len(rows)} sent")

    # one alert per moment
    at = collections.defaultdict(list)
    for cid, term, tier, step, ch, aud, _, sent in rows:
        at[(cid, term, tier, aud, ch, sent)].append(step)
    twins = {k: v for k, v in at.items() if len(v) > 1}
    check(not twins, f"{len(twins)} moments with several messages of one contract, tier and "
                     f"audience, e.g. {list(twins.items())[:3]}")
    esc = [r for r in rows if r[2] == "escalation"]
    boss_rows = [r for r in esc if r[6] == HEAD[1]]
    check(boss_rows, "some escalations went up to the head of sales")
    print(f"ok: {len(rows)} messages, no two of one contract/tier/audience/channel at one instant")

    # emails: valid MIME; owner emails greet whom they are addressed to
    files = glob.glob(wd("maildir", "new", "*"))
    check(len(files) == sum(1 for r in rows if "@" in (r[6] or "")),
          f"one Maildir file per sent email row: {len(files)}")
    to_boss = 0
    for path in files:
        with open(path, "rb") as f:
            m = email.message_from_bytes(f.read(), policy=email.policy.strict)
        check(not any(p.defects for p in m.walk()), f"{path}: MIME defects")
        if m["X-Renewd-Audience"] != "owner":
            continue
        name = m["To"].addresses[0].display_name
        greeting = first_line(m.get_body(("plain",)).get_content())
        check(name and name in greeting, f"{os.path.basename(path)}: To: {m['To']} but {greeting!r}")
        if m["To"].addresses[0].addr_spec == HEAD[1]:
            to_boss += 1
            check(greeting.startswith(f"Hello {HEAD[0]}"), f"the head of sales is greeted: {greeting!r}")
    check(to_boss == len(boss_rows) == sum(1 for r in esc if r[4] == "owner-email" and r[3] >= 2),
          f"every escalation email to the head of sales greets her ({to_boss})")
    print(f"ok: {len(files)} emails parse; {to_boss} to the head of sales greet her by name")

    # SMS and webhooks as what they are
    sms = glob.glob(wd("sms", "*.txt"))
    check(len(sms) == sum(1 for r in rows if (r[6] or "").startswith("+")), f"{len(sms)} SMS files")
    for path in sms[:50]:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        check(text.startswith("To: +") and "MIME-Version" not in text, f"{path}: an SMS, not an email")
    hooks = glob.glob(wd("webhooks", "*.http"))
    check(len(hooks) == sum(1 for r in rows if (r[6] or "").startswith("http")), f"{len(hooks)} webhook files")
    escalated = 0
    for path in hooks:
        with open(path, "rb") as f:
            head, _, payload = f.read().partition(b"\r\n\r\n")
        check(head.startswith(b"POST https://"), f"{path}: a request")
        data = json.loads(payload)["data"]
        if data.get("tier", {}).get("escalated"):
            escalated += 1
            check(data["owner"]["name"] == HEAD[0] and data["account_owner"]["name"] != HEAD[0],
                  f"{path}: escalated event names the head of sales as owner: {data['owner']}")
    # EscalateAfter=2 in the example ladder: steps from 2 on go up a level
    check(escalated == sum(1 for r in esc if r[4] == "owner-webhook" and r[3] >= 2),
          f"escalated webhook events: {escalated}")
    print(f"ok: {len(sms)} SMS files, {len(hooks)} webhook requests ({escalated} escalated)")


if __name__ == "__main__":
    sys.exit(main_wrapper("test-sim-quarter", body))
