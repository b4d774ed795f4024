#!/usr/bin/python3
"""Every shipped template, for every tier and audience of the example ladder
and every shipped locale, through the one email builder (notifiers/mail.c,
as `renewctl preview --locale` of the SMTP channel prints it: the bytes the
SMTP backend sends), parsed by an independent parser (Python's email package,
email.policy.strict):

  * valid MIME: no parser defects, CRLF line ends, no line over 998
    characters, headers 7-bit, From/To/Subject/Date/Message-ID present,
    multipart/alternative text + HTML where the template has HTML, and the
    .ics deadline (text/calendar) for customer reminders before expiry;
  * the right language: a marker of the locale in the text (CJK characters
    for zh, ASCII words for en, and de when shipped);
  * nothing left unrendered: no "{{" or "}}" in any decoded part or header;
    no "1 days";
  * escalations past EscalateAfter= go To: the EscalateTo= owner and greet
    that person, not the customer's owner.

Usage: test-templates-mime.py RENEWCTL
"""
import email
import email.policy
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itestlib import check, import_owners, main_wrapper, run, write  # noqa: E402

RENEWCTL = sys.argv[1]
TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TEMPLATES = os.path.join(TOP, "notifiers", "templates")

OWNERS = [
    {"id": "alice", "name": "Alice Martin", "email": "alice@sales.example.com",
     "timezone": "Europe/Berlin", "manager": "head-of-sales"},
    {"id": "head-of-sales", "name": "Hannah Berg", "email": "hannah@sales.example.com",
     "timezone": "Europe/Berlin"},
]
# One customer per locale the templates ship (zh covers zh-CN), plus markers
# that only a text in that language has.
MARKERS = {
    "en": lambda s: re.search(r"\b(the|your|you|has|is|was|not|renew)\b", s, re.I) and not re.search(r"[\u4e00-\u9fff]", s),
    "zh": lambda s: re.search(r"[\u4e00-\u9fff]{4}", s),
    "de": lambda s: re.search(r"\b(Ihr|Ihre|der|die|das|und|läuft|Vertrag)\b", s),
}
LOCALE_OF = {"en": "en", "zh": "zh-CN", "de": "de"}
NAMES = {"en": "Aiko Lovelace", "zh": "王小明", "de": "Jürgen Groß"}

# (tier, audience, step, --at): the example ladder's tiers and the owner alerts
# the answers raise; escalation step 2 is past EscalateAfter=2.
CASES = [
    ("early", "customer", 0, "2030-11-16"),
    ("notice", "customer", 0, "2030-12-16"),
    ("reminder", "customer", 0, "2031-01-15"),
    ("reminder", "customer", 2, "2031-01-29"),
    ("final", "customer", 0, "2031-02-07"),
    ("escalation", "owner", 0, "2031-02-11"),
    ("escalation", "owner", 2, "2031-02-13"),
    ("lapsed", "customer", 0, "2031-02-16"),
    ("callback", "owner", 0, "2031-01-20"),
    ("renew-intent", "owner", 0, "2031-01-20"),
    ("customer-message", "owner", 0, "2031-01-20"),
    ("customer-renewed", "owner", 0, "2031-01-20"),
    ("ops-alert", "owner", 0, "2031-01-20"),
]


def setup(wd):
    conf = wd("renewd.conf")
    with open(os.path.join(TOP, "config", "renewd.conf.example"), encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"(?m)^Database=.*$", f"Database={wd('renewd.db')}", text)
    text = re.sub(r"(?m)^Templates=.*$", f"Templates={TEMPLATES}", text)
    text = re.sub(r"(?m)^Holidays=.*$", f"Holidays={TOP}/config/holidays.example.ics", text)
    text = re.sub(r"(?m)^LinkKeyFile=.*$", f"LinkKeyFile={wd('link-key')}", text)
    text = re.sub(r"(?m)^ApiTokenFile=.*$", "ApiTokenFile=", text)
    text = text.replace("[Ops]\n", "[Ops]\nEmail=ops@example.com\n")
    write(conf, text)
    write(wd("link-key"), "0123456789abcdef0123456789abcdef\n")
    os.chmod(wd("link-key"), 0o600)
    import_owners(RENEWCTL, wd("renewd.db"), conf, OWNERS, wd)
    rows = ["contract_id,customer_id,customer_name,email,phone,timezone,locale,segment,owner,"
            "product,starts_on,expires_on,value,currency"]
    for loc in LOCALES:
        rows.append(f"C-{loc},K-{loc},{NAMES.get(loc, 'Ada Byron')},{loc}@example.com,+4915112345678,"
                    f"Europe/Berlin,{LOCALE_OF.get(loc, loc)},smb,alice,Email Suite,2030-02-15,"
                    "2031-02-14,1200.50,EUR")
    write(wd("contracts.csv"), "\n".join(rows) + "\n")
    run([RENEWCTL, "--config", conf, "import", wd("contracts.csv")])
    return conf


def preview(conf, loc, tier, audience, step, at):
    channel = "owner-email" if audience == "owner" and tier != "ops-alert" else "email"
    p = subprocess.run([RENEWCTL, "--config", conf, "preview", f"C-{loc}", tier, "--channel", channel,
                        "--audience", audience, "--step", str(step), "--at", at,
                        "--locale", LOCALE_OF[loc]],
                       capture_output=True, timeout=60)
    check(p.returncode == 0, f"preview {loc} {tier}/{step}: exit {p.returncode}: {p.stderr.decode()}")
    return p.stdout


def check_message(what, raw, loc, tier, audience, step):
    check(b"\n" not in raw.replace(b"\r\n", b""), f"{what}: CRLF line ends only")
    check(all(len(line) <= 998 for line in raw.split(b"\r\n")), f"{what}: no line over 998 characters")
    head = raw.split(b"\r\n\r\n", 1)[0]
    check(all(b < 0x80 for b in head), f"{what}: 7-bit header block")
    m = email.message_from_bytes(raw, policy=email.policy.strict)
    defects = [(p.get_content_type(), p.defects) for p in m.walk() if p.defects]
    check(not defects, f"{what}: MIME defects {defects}")
    for h in ("From", "To", "Subject", "Date", "Message-ID"):
        check(m[h], f"{what}: {h}: present")
    texts = [str(m["Subject"])]
    types = []
    for part in m.walk():
        types.append(part.get_content_type())
        if part.get_content_maintype() == "text":
            texts.append(part.get_content())
    body = "\n".join(texts)
    for bad in ("{{", "}}"):
        check(bad not in body, f"{what}: unrendered {bad!r}:\n{body[:2000]}")
    check(not re.search(r"(?<!\d)1 days\b", body), f"{what}: '1 days'")
    check("text/plain" in types, f"{what}: a text/plain part ({types})")
    has_html = os.path.exists(os.path.join(TEMPLATES, loc, f"{template_of(tier)}.html.mustache"))
    check(("text/html" in types) == has_html, f"{what}: text/html iff the template has one ({types})")
    if audience == "customer" and tier != "lapsed":
        check("text/calendar" in types, f"{what}: the .ics deadline ({types})")
    plain = m.get_body(("plain",)).get_content()
    check(MARKERS[loc](plain), f"{what}: the text is not in {loc}:\n{plain[:600]}")
    if tier == "escalation":
        boss = step >= 2
        want = "hannah@sales.example.com" if boss else "alice@sales.example.com"
        name = "Hannah Berg" if boss else "Alice Martin"
        other = "Alice Martin" if boss else "Hannah Berg"
        check(want in str(m["To"]) and name in str(m["To"]), f"{what}: To: {m['To']}, expected {name}")
        first = plain.strip().splitlines()[0]
        check(name in first and other not in first, f"{what}: greets {name}: {first!r}")
    return m


def template_of(tier):
    return {"early": "early-notice", "lapsed": "lapsed-notice"}.get(tier, tier)


LOCALES = sorted(d for d in os.listdir(TEMPLATES)
                 if os.path.isdir(os.path.join(TEMPLATES, d)) and d != "partials" and d in MARKERS)


def body(wd):
    check("en" in LOCALES and "zh" in LOCALES, f"shipped locales: {LOCALES}")
    conf = setup(wd)
    n = 0
    for loc in LOCALES:
        for tier, audience, step, at in CASES:
            name = template_of(tier)
            if not os.path.exists(os.path.join(TEMPLATES, loc, f"{name}.text.mustache")):
                continue  # falls back to another locale: that one is checked there
            what = f"{loc} {tier}/{step} ({audience})"
            check_message(what, preview(conf, loc, tier, audience, step, at), loc, tier, audience, step)
            n += 1
    shipped = {f.split(".")[0] for f in os.listdir(os.path.join(TEMPLATES, "en"))
               if f.endswith(".text.mustache")}
    covered = {template_of(t) for t, *_ in CASES}
    check(shipped <= covered, f"shipped templates not covered: {sorted(shipped - covered)}")
    print(f"ok: {n} messages, {len(LOCALES)} locales, every shipped template")


if __name__ == "__main__":
    sys.exit(main_wrapper("test-templates-mime", body))
