#!/usr/bin/env python3
"""The sink through the real renewd on the simulated clock: every email
reminder becomes one RFC 5322 file in new/ (nothing left in tmp/), built by
the SMTP backend's own builder: From, To, Subject (RFC 2047 for non-ASCII),
Date, Message-ID derived from the idempotency key and From's domain, the
X-Renewd-* headers, multipart/alternative when the template has an HTML part
inside multipart/mixed with the .ics deadline, and the locale's template and
date format. A Kind=sms sink writes sms/*.txt (number, sender, segments,
text with the opt-out footer) and a Kind=webhook sink webhooks/*.http (the
request: headers and the event JSON), both beside the Maildir.

Usage: test-dispatch-sink.py BUILD_DIR
"""
import email
import email.header
import email.policy
import email.utils
import glob
import json
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

[Channel text]
Type=sink
Kind=sms
Maildir={env.maildir}
From=+15005550006
OptOutFooter=Reply STOP to opt out

[Channel hook]
Type=sink
Kind=webhook
Maildir={env.maildir}
URL=https://crm.example.com/hooks/renewd
""", channels_list="mail text hook")


def custom(i, row):
    if i == 2:
        row[2] = "王小明"
        row[6] = "zh-CN"


env.import_contracts(3, customize=custom)
env.simulate()
rows = {r["contract_id"]: r for r in env.rows()}
files = sorted(glob.glob(os.path.join(env.maildir, "new", "*")))
allrows = env.rows()
rows = {r["contract_id"]: r for r in allrows if r["channel"] == "mail"}
check(len(files) == 3 and len(allrows) == 9 and all(r["status"] == "sent" for r in allrows),
      "three emails, nine rows sent")
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
check(m1["Message-ID"] == f"<{rows['C-0001']['idem_key']}@example.com>", "Message-ID = <idem_key@From's domain>, as over SMTP")
check(email.utils.parsedate_to_datetime(m1["Date"]).isoformat() == "2031-01-16T00:00:00+00:00",
      "Date = the simulated send instant")
check(m1["X-Renewd-Tier"] == "notice" and m1["X-Renewd-Channel"] == "mail"
      and m1["X-Renewd-Audience"] == "customer", "X-Renewd-Tier/-Channel/-Audience")
check(m1["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
      and m1["List-Unsubscribe"].startswith("<https://renew.test/u/"), "RFC 8058 one-click unsubscribe")
check(m1.get_content_type() == "multipart/mixed", "multipart/mixed: the message and its .ics")
alt, ics = list(m1.iter_parts())
check(alt.get_content_type() == "multipart/alternative", "HTML part -> multipart/alternative")
check(ics.get_content_type() == "text/calendar" and "BEGIN:VCALENDAR" in ics.get_content(),
      "text/calendar deadline part, as over SMTP")
parts = {p.get_content_type(): p.get_content() for p in alt.iter_parts()}
check(set(parts) == {"text/plain", "text/html"}, "text/plain + text/html")
check("renew by February 14, 2031: https://renew.test/r/" in parts["text/plain"],
      "text part: English date of the last valid day, renew link")
check("Customer 1 &amp; co" in parts["text/html"], "html part")
raw_subject = [l for l in raws["C-0002"].split(b"\r\n") if l.startswith(b"Subject:")][0]
check(b"=?UTF-8?B?" in raw_subject, "non-ASCII subject written as RFC 2047 encoded-words")
check(str(m2["Subject"]) == "续订提醒：王小明", "... and decodes to the zh template's subject")
check([p.get_content_type() for p in m2.iter_parts()] == ["text/plain", "text/calendar"],
      "no HTML part in zh -> text/plain + calendar")
check("2031年2月14日" in m2.get_body(("plain",)).get_content(), "zh date format")
check(str(m2["To"]) == "王小明 <customer2@example.com>", "To with an encoded display name")

sms = sorted(glob.glob(os.path.join(env.dir, "sms", "*.txt")))
check(len(sms) == 3, "Kind=sms: three SMS files beside the Maildir, sms/*.txt")
with open(sms[0], encoding="utf-8") as f:
    head, _, body = f.read().partition("\n\n")
check(head.splitlines()[0].startswith("To: +") and "From: +15005550006" in head
      and head.splitlines()[2].startswith("Segments: "), "SMS file: To, From, Segments")
check(body.startswith("Hello Customer") and body.endswith("\nReply STOP to opt out\n")
      and "Subject" not in body and "MIME" not in body, "SMS file: the text as the provider gets it")
hooks = sorted(glob.glob(os.path.join(env.dir, "webhooks", "*.http")))
check(len(hooks) == 3, "Kind=webhook: three request files, webhooks/*.http")
with open(hooks[0], "rb") as f:
    head, _, body = f.read().partition(b"\r\n\r\n")
lines = head.decode().split("\r\n")
check(lines[0] == "POST https://crm.example.com/hooks/renewd HTTP/1.1", "webhook file: request line")
hdrs = dict(l.split(": ", 1) for l in lines[1:])
check(hdrs["Content-Type"] == "application/json" and hdrs["webhook-id"].startswith("rk-")
      and int(hdrs["Content-Length"]) == len(body.rstrip(b"\n")), "webhook file: headers")
check(json.loads(body)["type"] == "reminder.due", "webhook file: the event JSON")
check(not [n for d in ("sms", "webhooks") for n in os.listdir(os.path.join(env.dir, d))
           if n.startswith(".")], "no temporary files left")
env.cleanup()
print("PASS")
