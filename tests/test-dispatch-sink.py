#!/usr/bin/env python3
"""The Maildir sink through the real renewd on the simulated clock: every
reminder becomes one RFC 5322 file in new/ (nothing left in tmp/) with
From, To, Subject (RFC 2047 for non-ASCII), Date, Message-ID derived from the
idempotency key, the X-Renewd-* headers, multipart/alternative when the
template has an HTML part, and the locale's template and date format.

Usage: test-dispatch-sink.py BUILD_DIR
"""
import email
import email.header
import email.policy
import email.utils
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dispatch_harness import Env, check  # noqa: E402

BUILD = sys.argv[1]
env = Env("sink", BUILD)
tdir = os.path.join(env.dir, "templates")
for loc, parts in {
    "en": {"subject": "Renewal for {{customer.name}}: {{contract.product}}",
           "text": "Hello {{customer.name}}, renew by {{contract.expiry}}: {{links.renew}}\n",
           "html": "<p>Hello {{customer.name}} &amp; co, <a href=\"{{links.renew}}\">renew</a></p>\n"},
    "zh": {"subject": "续订提醒：{{customer.name}}",
           "text": "{{customer.name}}，您的合同将于{{contract.expiry}}到期。\n"},
}.items():
    os.makedirs(os.path.join(tdir, loc), exist_ok=True)
    for part, text in parts.items():
        with open(os.path.join(tdir, loc, f"notice.{part}.mustache"), "w") as f:
            f.write(text)
env.write_config(f"""[Channel mail]
Type=sink
Maildir={env.maildir}
From=Example Renewals <renewals@example.com>
""", channels_list="mail")


def custom(i, row):
    if i == 2:
        row[2] = "王小明"
        row[6] = "zh-CN"


env.import_contracts(3, customize=custom)
env.simulate()
rows = {r["contract_id"]: r for r in env.rows()}
files = sorted(glob.glob(os.path.join(env.maildir, "new", "*")))
check(len(files) == 3 and all(r["status"] == "sent" for r in rows.values()), "three messages, three rows sent")
check(not os.listdir(os.path.join(env.maildir, "tmp")), "nothing left in tmp/")
msgs, raws = {}, {}
for path in files:
    with open(path, "rb") as f:
        raw = f.read()
    check(b"\r\n" in raw and b"\n\n" not in raw.replace(b"\r\n", b""), f"{os.path.basename(path)}: CRLF line ends")
    m = email.message_from_bytes(raw, policy=email.policy.default)
    msgs[str(m["X-Renewd-Contract"])] = m
    raws[str(m["X-Renewd-Contract"])] = raw
check(set(msgs) == set(rows), "X-Renewd-Contract names each contract once")
m1, m2 = msgs["C-0001"], msgs["C-0002"]
check(str(m1["From"]) == "Example Renewals <renewals@example.com>", "From = From=")
check(str(m1["To"]) == "Customer 1 <customer1@example.com>", "To = customer name and address")
check(str(m1["Subject"]) == "Renewal for Customer 1: Cloud Backup", "subject rendered")
check(m1["Message-ID"] == f"<{rows['C-0001']['idem_key']}@renewd>", "Message-ID = <idem_key@renewd>")
check(email.utils.parsedate_to_datetime(m1["Date"]).isoformat() == "2031-01-16T00:00:00+00:00",
      "Date = the simulated send instant")
check(m1["X-Renewd-Tier"] == "notice" and m1["X-Renewd-Channel"] == "mail"
      and m1["X-Renewd-Audience"] == "customer", "X-Renewd-Tier/-Channel/-Audience")
check(m1["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
      and m1["List-Unsubscribe"].startswith("<https://renew.test/u/"), "RFC 8058 one-click unsubscribe")
check(m1.get_content_type() == "multipart/alternative", "HTML part -> multipart/alternative")
parts = {p.get_content_type(): p.get_content() for p in m1.iter_parts()}
check(set(parts) == {"text/plain", "text/html"}, "text/plain + text/html")
check("renew by February 14, 2031: https://renew.test/r/" in parts["text/plain"],
      "text part: English date of the last valid day, renew link")
check("Customer 1 &amp; co" in parts["text/html"], "html part")
raw_subject = [l for l in raws["C-0002"].split(b"\r\n") if l.startswith(b"Subject:")][0]
check(b"=?UTF-8?B?" in raw_subject, "non-ASCII subject written as RFC 2047 encoded-words")
check(str(m2["Subject"]) == "续订提醒：王小明", "... and decodes to the zh template's subject")
check(m2.get_content_type() == "text/plain", "no HTML part in zh -> single text/plain")
check("2031年2月14日" in m2.get_content(), "zh date format")
check(str(m2["To"]) == "王小明 <customer2@example.com>", "To with an encoded display name")
env.cleanup()
print("PASS")
