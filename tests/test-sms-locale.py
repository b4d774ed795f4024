"""Integration test: the replies to inbound SMS come from the sms.po catalogue
of the sender's locale (docs/http.md "SMS replies").

renewd with the Twilio webhook (tests/httptestlib.py: the shipped de/ and zh/
catalogues, en built in) and customers in de, zh-CN, fr-CA (no fr/: falls
back to the default, English) and en. For each, signed inbound STOP, START
and HELP (and the keywords of their sms.po: 退订 / 订阅 / 帮助 / TD from the
zh customer, STOPP / ANMELDEN / HILFE / ABMELDEN from the de customer, who
can still send STOP and START; STOPP from the en customer is a message):
  - the TwiML <Message> is exactly the msgstr of the locale's sms.po (read
    here from the shipped files, en from notifiers/templates/en/sms.po);
  - the German replies are GSM-7 (no character outside the GSM 03.38
    alphabet) and every reply fits one segment (160 GSM-7 / 70 UCS-2);
  - STOP opts the customer out of SMS and START back in, whatever the
    language.

Usage: test-sms-locale.py RENEWD RENEWCTL
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptestlib import Daemon, day  # noqa: E402
from itestlib import TestFailure, check, main_wrapper  # noqa: E402

SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "notifiers", "templates")
GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
           "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")

CUSTOMERS = [  # customer, phone, locale, catalogue directory
    ("K-1", "+4930100050", "de", "de"),
    ("K-2", "+8613800000050", "zh-CN", "zh"),
    ("K-3", "+15145550150", "fr-CA", "en"),
    ("K-4", "+4930100051", "en", "en"),
]


def catalogue(loc):
    """msgid -> msgstr of loc/sms.po (single-line entries, as shipped)."""
    with open(os.path.join(SHIPPED, loc, "sms.po"), encoding="utf-8") as f:
        text = f.read()
    return {k: v.replace('\\"', '"') for k, v in re.findall(r'^msgid "(.+)"\nmsgstr "(.*)"$', text, re.M)}


def message(xml):
    root = ET.fromstring(xml.encode("utf-8"))
    m = root.find("Message")
    return m.text if m is not None else None


def run_checks(d):
    for cid, phone, loc, cat in CUSTOMERS:
        words = catalogue(cat)
        check({"stop", "start", "help"} <= words.keys(), f"{cat}/sms.po: keys {sorted(words)}")
        bodies = [("STOP", "stop"), ("START", "start"), ("HELP", "help")]
        if loc == "zh-CN":
            bodies += [("退订", "stop"), ("订阅", "start"), ("帮助", "help"), ("TD", "stop"), ("START", "start")]
        if loc == "de":  # the German keywords (kw_* of de/sms.po), and STOP still
            bodies += [("STOPP", "stop"), ("anmelden", "start"), ("Hilfe", "help"), ("ABMELDEN", "stop"),
                       ("START", "start"), ("STOP", "stop"), ("START", "start")]
        if loc == "en":  # German words are not English ones: a message for the owner
            bodies += [("STOPP", "message")]
        for i, (body, key) in enumerate(bodies):
            r = d.sms(phone, body, f"SM-{cid}-{i}")
            check(r.status == 200 and r.headers.get("content-type", "").startswith("text/xml"),
                  f"{loc} {body}: {r.status} {r.text}")
            got = message(r.text)
            check(got == words[key], f"{loc} {body}: reply {got!r}, expected {cat}/sms.po {key!r}: {words[key]!r}")
            gsm = all(c in GSM7 for c in got)
            check(len(got) <= (160 if gsm else 70), f"{loc} {body}: {len(got)} characters, more than one SMS")
            if loc == "de":
                check(gsm, f"de {body}: not GSM-7: {[c for c in got if c not in GSM7]}")
            if key == "stop":
                check(d.optout(cid) & 2, f"{loc} {body}: {cid} not opted out of SMS")
            elif key == "start":
                check(not d.optout(cid) & 2, f"{loc} {body}: {cid} still opted out of SMS")
    de, zh = catalogue("de"), catalogue("zh")
    check("Sie" in de["stop"] and "退订" in zh["stop"], "the German and Chinese replies are not translated")
    check("STOPP" in de["start"] and "VERLÄNGERN" in de["help"] and "RENEW" not in de["help"],
          "the German replies do not name the German keywords")
    print(f"test-sms-locale: {len(CUSTOMERS)} locales, replies from their sms.po")


def body(wd):
    renewd, renewctl = sys.argv[1], sys.argv[2]
    contracts = [dict(contract_id=f"C-{cid}", customer_id=cid, customer_name=f"Customer {cid}",
                      email=f"{cid.lower()}@example.com", phone=phone, timezone="UTC", locale=loc,
                      segment="smb", owner="", product="Silver", expires_on=day(40))
                 for cid, phone, loc, _ in CUSTOMERS]
    d = Daemon(wd, renewd, renewctl, contracts)
    try:
        run_checks(d)
    except TestFailure as e:
        raise TestFailure(f"{e}\n--- renewd log ---\n{d.log_text()[-4000:]}")
    finally:
        d.stop()


if __name__ == "__main__":
    sys.exit(main_wrapper("test-sms-locale", body))
