"""Integration test of `renewctl templates check` on the shipped templates and
on a copy with one of each problem it reports.

  1. The shipped directory with the example config's tiers: exit 0, "ok",
     every shipped locale (en, de, zh) checked; also with Locale=de.
  2. A copy where de/notice.text names a key the data lacks and writes
     "1 days", de/ lacks a partial with words, a page string and an SMS
     reply, de's HELP reply takes two SMS segments, de's sms.po lacks the
     keywords kw_call and lists an empty one in kw_stop, zh/ has no sms.po, and
     a zh SMS template does not compile: exit 1 and one line for each,
     naming the locale and the file; the "{{! shared" partials (base,
     button, ...) missing from a locale are not reported.
  3. A regional directory (de-CH/ with one file) needs only what differs.

Usage: test-templates-check.py RENEWCTL SOURCE_DIR
"""
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itestlib import check, main_wrapper, run, write  # noqa: E402

RENEWCTL, SRC = sys.argv[1], os.path.abspath(sys.argv[2])


def body(wd):
    os.makedirs(wd("etc/renewd.conf.d"))
    conf = wd("etc/renewd.conf")
    shutil.copy(os.path.join(SRC, "config", "renewd.conf.example"), conf)
    hol = os.path.join(SRC, "config", "holidays.example.ics")
    write(wd("etc/renewd.conf.d/10-test.conf"),
          f"[SendWindow]\nHolidays={hol}\n\n[SendWindow owners]\nHolidays={hol}\n")
    shipped = os.path.join(SRC, "notifiers", "templates")

    p = run([RENEWCTL, "--config", conf, "templates", "check", "--dir", shipped], check_rc=False)
    check(p.returncode == 0 and re.search(r"templates: 3 locales, \d+ templates, \d+ renders: ok", p.stdout),
          f"shipped templates: exit {p.returncode}\n{p.stdout}{p.stderr}")

    # another default locale: its chain still reaches en/ (the shared partials)
    write(wd("etc/renewd.conf.d/20-locale.conf"), "[Daemon]\nLocale=de\n")
    p = run([RENEWCTL, "--config", conf, "templates", "check", "--dir", shipped], check_rc=False)
    check(p.returncode == 0, f"shipped templates with Locale=de: exit {p.returncode}\n{p.stdout}{p.stderr}")
    os.remove(wd("etc/renewd.conf.d/20-locale.conf"))

    bad = wd("templates")
    shutil.copytree(shipped, bad)
    with open(os.path.join(bad, "de", "notice.text.mustache"), "a", encoding="utf-8") as f:
        f.write("{{contract.no_such_key}} 1 days\n")
    os.remove(os.path.join(bad, "de", "partials", "footer-text.mustache"))
    for shared in ("base", "button"):
        assert os.path.exists(os.path.join(bad, "en", "partials", f"{shared}.mustache"))
    po = os.path.join(bad, "de", "pages.po")
    with open(po, encoding="utf-8") as f:
        text = f.read()
    write(po, text.replace('msgid "thanks"', 'msgid "thanks-removed"'))
    write(os.path.join(bad, "zh", "final.sms.mustache"), "{{#open}} 最后通知\n")
    sms = os.path.join(bad, "de", "sms.po")
    with open(sms, encoding="utf-8") as f:
        text = f.read()
    text = text.replace('msgid "call"', 'msgid "call-removed"')
    text = text.replace('msgid "kw_call"', 'msgid "kw_call-removed"')
    text = text.replace('msgid "kw_stop"\nmsgstr "', 'msgid "kw_stop"\nmsgstr "||')
    text = text.replace('msgid "help"\nmsgstr "', 'msgid "help"\nmsgstr "' + "Bitte lesen Sie das. " * 5)
    write(sms, text)
    os.remove(os.path.join(bad, "zh", "sms.po"))
    p = run([RENEWCTL, "--config", conf, "templates", "check", "--dir", bad], check_rc=False)
    out = p.stdout
    check(p.returncode == 1, f"broken copy: exit {p.returncode}, expected 1\n{out}{p.stderr}")
    for want in (r"^de: notice \(customer, email\): de/notice\.text\.mustache: \{\{contract\.no_such_key\}\} is not in the data$",
                 r"^de: notice \(customer, email\)\.text: \"1 days\" in the output$",
                 r"^de: partials/footer-text\.mustache is not translated",
                 r"^de: pages\.po \"thanks\" is not translated \(found in en\)$",
                 r"zh/final\.sms\.mustache:1: section 'open' is not closed",
                 r"^de: sms\.po \"call\" is not translated \(found in en\)$",
                 r"^de: sms\.po \"help\": \d+ characters of GSM-7 are 2 SMS segments; keep a reply within 160$",
                 r"^de: sms\.po \"kw_call\" is not translated \(found in en\)$",
                 r"^de: sms\.po \"kw_stop\": an empty keyword$",
                 r"^zh: sms\.po \"stop\" is not translated \(found in en\)$",
                 r"^zh: sms\.po \"kw_renew\" is not translated \(found in en\)$",
                 r"^zh: sms\.po \"error\" is not translated \(found in en\)$",
                 r"problems above$"):
        check(re.search(want, out, re.M), f"broken copy: no line matching {want!r} in\n{out}")
    check(not re.search(r"partials/(base|button|link|company)\.mustache", out),
          f"shared partials reported as untranslated:\n{out}")

    regional = wd("regional")
    shutil.copytree(shipped, regional)
    os.makedirs(os.path.join(regional, "de-CH"))
    write(os.path.join(regional, "de-CH", "notice.subject.mustache"),
          "Ihr {{contract.product}} läuft am {{contract.expiry}} ab (Schweiz)\n")
    p = run([RENEWCTL, "--config", conf, "templates", "check", "--dir", regional], check_rc=False)
    check(p.returncode == 0 and "4 locales" in p.stdout,
          f"de-CH beside de needs only what differs: exit {p.returncode}\n{p.stdout}")


if __name__ == "__main__":
    sys.exit(main_wrapper("test-templates-check", body))
