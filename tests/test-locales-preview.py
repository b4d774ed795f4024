"""Integration test: every shipped template of every shipped locale, for every
tier and audience of the example config, as `renewctl preview --json` prints
it (the channel's own formatting), parsed with Python's email package.

For en, de and zh-CN, each tier of config/renewd.conf.example (customer
tiers by email, final also by SMS; the owner's escalation) and the owner
alerts of answers (callback, renew-intent, customer-message):
  - the email parses without defects, has a subject, a text/plain part and
    a text/html part whose <html lang> is the locale's;
  - the text is in the right language (a marker per locale: "Hello",
    "Guten Tag", "您好") and has no unrendered "{{" and no "1 days";
  - the SMS text is in the locale's language too and stays GSM-7 in en/de
    (ICU's no-break spaces are made plain);
  - {{history_text}} of an owner alert after an answer is in the locale's
    words with an ICU date.

Usage: test-locales-preview.py RENEWCTL SOURCE_DIR
"""
import csv
import datetime
import email
import email.policy
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itestlib import check, import_owners, main_wrapper, run, write  # noqa: E402

RENEWCTL, SRC = sys.argv[1], os.path.abspath(sys.argv[2])
MARKER = {"en": ("Hello", "en"), "de": ("Guten Tag", "de"), "zh-CN": ("您好", "zh-Hans")}
SMS_MARKER = {"en": "Renew", "de": "Verlängern", "zh-CN": "续约"}
# tier, channel (None: the tier's first), kind
CASES = [("early", None, "email"), ("notice", None, "email"), ("reminder", None, "email"),
         ("final", None, "email"), ("final", "sms", "sms"), ("lapsed", None, "email"),
         ("escalation", "owner-email", "email"), ("callback", None, "email"),
         ("renew-intent", None, "email"), ("customer-message", None, "email")]


def body(wd):
    os.makedirs(wd("etc/renewd.conf.d"))
    conf = wd("etc/renewd.conf")
    shutil.copy(os.path.join(SRC, "config", "renewd.conf.example"), conf)
    hol = os.path.join(SRC, "config", "holidays.example.ics")
    for name in ("sms-token", "webhook-secret", "link-key"):
        write(wd(name), "0123456789abcdef0123456789abcdef\n")
    write(wd("etc/renewd.conf.d/10-test.conf"),
          f"[Daemon]\nDatabase={wd('renewd.db')}\nTemplates={os.path.join(SRC, 'notifiers', 'templates')}\n"
          f"LinkKeyFile={wd('link-key')}\n\n[SendWindow]\nHolidays={hol}\n\n[SendWindow owners]\nHolidays={hol}\n")
    p = run([RENEWCTL, "--config", conf, "check-config"], check_rc=False)
    check(p.returncode == 0, f"example config: {p.stderr}")
    expires = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
    with open(wd("contracts.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["contract_id", "customer_id", "customer_name", "email", "phone", "timezone",
                    "locale", "segment", "owner", "product", "starts_on", "expires_on", "value",
                    "currency"])
        w.writerow(["C-1", "K-1", "Aiko Lovelace", "aiko@example.com", "+4915112345678", "Europe/Berlin", "en",
                    "smb", "alice", "Email Suite", "", expires, "1200.50", "EUR"])
    run([RENEWCTL, "--config", conf, "import", wd("contracts.csv")])
    import_owners(RENEWCTL, wd("renewd.db"), conf, [{"id": "alice", "name": "Alice Martin",
                                                     "email": "alice@example.com", "timezone": "Europe/Paris"}], wd)
    n = 0
    for loc, (marker, lang) in MARKER.items():
        for tier, channel, kind in CASES:
            args = [RENEWCTL, "--config", conf, "--json", "preview", "C-1", tier, "--locale", loc]
            if channel:
                args += ["--channel", channel]
            p = run(args, check_rc=False)
            what = f"{loc} {tier} ({kind})"
            check(p.returncode == 0, f"{what}: preview exit {p.returncode}: {p.stderr}")
            j = json.loads(p.stdout)
            if kind == "sms":
                text = j["text"]
                check(SMS_MARKER[loc] in text, f"{what}: not in {loc}: {text}")
                if loc != "zh-CN":
                    check(j["encoding"].lower().startswith("gsm"), f"{what}: encoding {j['encoding']}: {text!r}")
            else:
                m = email.message_from_string(j["message"], policy=email.policy.default)
                check(not m.defects, f"{what}: MIME defects {m.defects}")
                check(m["Subject"] and "{{" not in m["Subject"], f"{what}: subject {m['Subject']!r}")
                text = m.get_body(preferencelist=("plain",)).get_content()
                html = m.get_body(preferencelist=("html",))
                check(html is not None, f"{what}: no text/html part")
                html = html.get_content()
                check(re.search(rf'<html lang="{lang}"', html), f"{what}: html lang is not {lang}")
                check(marker in text, f"{what}: the text is not in {loc} (no {marker!r}):\n{text[:300]}")
                check("{{" not in html, f"{what}: unrendered tag in html")
            check("{{" not in text, f"{what}: unrendered tag:\n{text}")
            check(not re.search(r"(?<![0-9])1 days", text), f"{what}: '1 days':\n{text}")
            n += 1
    print(f"test-locales-preview: {n} previews in {len(MARKER)} locales")
    check_history_text(wd, conf)


# {{history_text}} of an owner alert, per locale: the answer's words from
# alerts.po and its local date from ICU (Europe/Paris, the owner's zone).
HISTORY = {"en": r"^- \w+ \d+, \d{4} at .*: answered \"please call me\"$",
           "de": r"^- \d+\. \w+ \d{4} um .*: Antwort „bittet um Rückruf“$",
           "zh-CN": r"^- \d{4}年\d+月\d+日 .*：客户答复“请求回电”$"}


def check_history_text(wd, conf):
    tdir = wd("templates-history")
    shutil.copytree(os.path.join(SRC, "notifiers", "templates"), tdir)
    for loc in ("en", "de", "zh"):
        with open(os.path.join(tdir, loc, "callback.text.mustache"), "a", encoding="utf-8") as f:
            f.write("HISTORY\n{{history_text}}END\n")
    write(wd("etc/renewd.conf.d/20-history.conf"), f"[Daemon]\nTemplates={tdir}\n")
    run([RENEWCTL, "--config", conf, "respond", "C-1", "callback"])
    for loc, want in HISTORY.items():
        p = run([RENEWCTL, "--config", conf, "--json", "preview", "C-1", "callback", "--locale", loc])
        m = email.message_from_string(json.loads(p.stdout)["message"], policy=email.policy.default)
        text = m.get_body(preferencelist=("plain",)).get_content()
        hist = text.replace("\r\n", "\n").split("HISTORY\n", 1)[1].split("END", 1)[0]
        check(re.search(want, hist.replace("\u202f", " "), re.M), f"{loc}: history_text {hist!r}, expected {want}")
        check("answered" not in hist or loc == "en", f"{loc}: English in history_text {hist!r}")
    os.remove(wd("etc/renewd.conf.d/20-history.conf"))


if __name__ == "__main__":
    sys.exit(main_wrapper("test-locales-preview", body))
