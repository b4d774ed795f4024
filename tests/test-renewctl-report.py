#!/usr/bin/env python3
"""Integration test of `renewctl report`: the real renewctl on a store with
KNOWN outcomes (written through the store API by `test-report --make-fixture`,
the same fixture tests/test-report.c checks), over March 2027.

Checks every figure of `--json` against the expectations below, then that the
terminal table (`--by tier`, `--by channel`, `--by segment|owner|policy`) and
`--csv` show exactly the same numbers as the JSON, and the usage errors.

Usage: test-renewctl-report.py RENEWCTL TEST_REPORT_BINARY
"""
import csv
import io
import json
import sys
from decimal import Decimal

sys.path.insert(0, __import__("os").path.dirname(__file__))
from itestlib import TestFailure, check, main_wrapper, run, write  # noqa: E402

RENEWCTL, TEST_REPORT = sys.argv[1], sys.argv[2]

CONFIG = """\
[Policy standard]
Segments=smb *
Tiers=notice

[Policy premium]
Segments=enterprise
Tiers=notice

[Tier notice]
Offset=-P30D
Channels=sink

[Channel sink]
Type=sink
Maildir=/tmp/renewd-report-test-maildir
"""

D = Decimal
N = None  # a rate without a denominator / no median
FUNNEL_KEYS = ["terms", "reminded", "answered", "prompted", "renewed", "renewed_external",
               "declined", "lost", "lapsed", "open", "snoozed", "callback", "escalations",
               "escalated", "escalated_renewed", "renewal_rate", "decided_renewal_rate",
               "response_rate", "median_days_before_expiry"]
TOUCH_KEYS = ["reached", "sent", "answers", "response_rate", "renewals", "renewal_rate",
              "owner_sent", "attempted", "dead", "failure_rate"]
WEEK_KEYS = ["terms", "reminded", "prompted", "renewed", "renewal_rate", "response_rate"]


def funnel(*v):
    return dict(zip(FUNNEL_KEYS, v))


def touch(*v):
    return dict(zip(TOUCH_KEYS, v))


# Worked out by hand from the fixture (see tests/test-report.c).
WANT = {
    "funnel": funnel(10, 8, 5, 5, 4, 1, 2, 1, 1, 3, 1, 1, 2, 2, 1,
                     D("0.4000"), D("0.5714"), D("0.6250"), D("7.5")),
    "decline_reasons": [("price", 1), ("switched-provider", 1)],
    "tiers": [
        ("notice", touch(8, 9, 2, D("0.2500"), 2, D("0.2500"), 0, 9, 0, D("0.0000"))),
        ("reminder", touch(3, 3, 2, D("0.6667"), 2, D("0.6667"), 0, 4, 1, D("0.2500"))),
        ("ops-alert", touch(0, 0, 0, N, 0, N, 0, 1, 0, D("0.0000"))),
        ("escalation", touch(0, 0, 0, N, 0, N, 2, 3, 1, D("0.3333"))),
        ("final", touch(2, 2, 1, D("0.5000"), 0, D("0.0000"), 0, 2, 0, D("0.0000"))),
    ],
    "channels": [
        ("email", touch(8, 12, 4, D("0.5000"), 4, D("0.5000"), 0, 13, 1, D("0.0769"))),
        ("ops", touch(0, 0, 0, N, 0, N, 0, 1, 0, D("0.0000"))),
        ("owner-email", touch(0, 0, 0, N, 0, N, 2, 3, 1, D("0.3333"))),
        ("sms", touch(1, 2, 1, D("1.0000"), 0, D("0.0000"), 0, 2, 0, D("0.0000"))),
    ],
    "segments": [
        ("smb", funnel(6, 4, 4, 4, 2, 0, 2, 1, 0, 2, 1, 1, 0, 0, 0,
                       D("0.3333"), D("0.5000"), D("1.0000"), D("4.0"))),
        ("enterprise", funnel(3, 3, 1, 1, 2, 1, 0, 0, 1, 0, 0, 0, 2, 2, 1,
                              D("0.6667"), D("0.6667"), D("0.3333"), D("12.5"))),
        ("(none)", funnel(1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0,
                          D("0.0000"), N, D("0.0000"), N)),
    ],
    "owners": [
        ("alice", funnel(5, 3, 3, 3, 2, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0,
                         D("0.4000"), D("0.6667"), D("1.0000"), D("4.0"))),
        ("bob", funnel(3, 3, 1, 1, 2, 1, 0, 0, 1, 0, 0, 0, 2, 2, 1,
                       D("0.6667"), D("0.6667"), D("0.3333"), D("12.5"))),
        ("(none)", funnel(1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0,
                          D("0.0000"), N, D("0.0000"), N)),
        ("carol", funnel(1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0,
                         D("0.0000"), D("0.0000"), D("1.0000"), N)),
    ],
    "policies": [
        ("standard", funnel(7, 5, 4, 4, 2, 0, 2, 1, 0, 3, 1, 1, 0, 0, 0,
                            D("0.2857"), D("0.5000"), D("0.8000"), D("4.0"))),
        ("premium", funnel(3, 3, 1, 1, 2, 1, 0, 0, 1, 0, 0, 0, 2, 2, 1,
                           D("0.6667"), D("0.6667"), D("0.3333"), D("12.5"))),
    ],
    "weeks": [
        ("2027-03-01", dict(zip(WEEK_KEYS, (1, 1, 0, 1, D("1.0000"), D("0.0000"))))),
        ("2027-03-08", dict(zip(WEEK_KEYS, (2, 2, 2, 1, D("0.5000"), D("1.0000"))))),
        ("2027-03-15", dict(zip(WEEK_KEYS, (3, 3, 2, 2, D("0.6667"), D("0.6667"))))),
        ("2027-03-22", dict(zip(WEEK_KEYS, (3, 2, 1, 0, D("0.0000"), D("0.5000"))))),
        ("2027-03-29", dict(zip(WEEK_KEYS, (1, 0, 0, 0, D("0.0000"), N)))),
    ],
}

# Labels of the table's Funnel/Rates/Escalations blocks -> JSON keys.
TABLE_LABELS = {
    "terms expiring in the period": "terms",
    "reminded": "reminded",
    "answered": "answered",
    "answered after a reminder": "prompted",
    "renewed": "renewed",
    "renewed without an answer (new term by import)": "renewed_external",
    "declined": "declined",
    "closed as lost by the owner": "lost",
    "lapsed": "lapsed",
    "open (undecided)": "open",
    "snoozed at least once": "snoozed",
    "asked for a call": "callback",
    "escalations sent (owner alerts)": "escalations",
    "terms escalated": "escalated",
    "escalated and renewed": "escalated_renewed",
    "renewal rate (renewed / terms)": "renewal_rate",
    "renewal rate of decided (renewed / renewed+declined+lapsed)": "decided_renewal_rate",
    "response rate (answered after a reminder / reminded)": "response_rate",
    "median days before expiry at renewal": "median_days_before_expiry",
}
GROUP_COLUMNS = ["terms", "reminded", "answered", "renewed", "declined", "lapsed", "open",
                 "response_rate", "renewal_rate", "median_days_before_expiry"]


def human(v):
    """A table cell as the JSON value it stands for."""
    if v == "-":
        return None
    if v.endswith("%"):
        return (D(v[:-1]) / 100).quantize(D("0.0001"))
    return D(v) if "." in v else int(v)


def report(*args, by=None):
    cmd = [RENEWCTL, "--db", DB, "--config", CONF, "report", "--from", "2027-03-01",
           "--to", "2027-03-31"] + (["--by", by] if by else []) + list(args)
    return run(cmd).stdout


def check_json(j):
    check(j["report_version"] == 1, "report_version")
    check(j["period"] == {"from": "2027-03-01", "to": "2027-03-31",
                          "from_at": "2027-03-01T00:00:00Z", "until_at": "2027-04-01T00:00:00Z"},
          f"period {j['period']}")
    check(j["funnel"] == WANT["funnel"], f"funnel:\n got {j['funnel']}\nwant {WANT['funnel']}")
    got = [(x["reason"], x["count"]) for x in j["decline_reasons"]]
    check(got == WANT["decline_reasons"], f"decline_reasons {got}")
    for key in ("tiers", "channels", "segments", "owners", "policies"):
        got = [(x.pop("name"), x) for x in j[key]]
        check(got == WANT[key], f"{key}:\n got {got}\nwant {WANT[key]}")
    got = [(x.pop("start"), x) for x in j["weeks"]]
    check(got == WANT["weeks"], f"weeks:\n got {got}\nwant {WANT['weeks']}")


def table_blocks(text):
    """{title: [rows split on 2+ spaces]} of the terminal table."""
    blocks, title = {}, None
    for line in text.splitlines():
        if not line.strip():
            title = None
            continue
        if not line.startswith("  "):
            title = line
            blocks[title] = []
            continue
        blocks[title].append([c for c in line.strip().split("  ") if c.strip()])
    return {t: [[c.strip() for c in row] for row in rows] for t, rows in blocks.items()}


def check_table(text, want, by):
    b = table_blocks(text)
    seen = {}
    for title in ("Funnel", "Rates", "Escalations"):
        for label, value in b[title]:
            seen[TABLE_LABELS[label]] = human(value)
    check(seen == want["funnel"], f"table funnel:\n got {seen}\nwant {want['funnel']}")
    reasons = [(r, int(c)) for r, c in b["Decline reasons"][1:]]
    check(reasons == want["decline_reasons"], f"table reasons {reasons}")
    if by in ("tier", "channel"):
        title = next(t for t in b if t.startswith(f"By {by}"))
        key = "tiers" if by == "tier" else "channels"
        rows = [(r[0], dict(zip(TOUCH_KEYS, map(human, r[1:])))) for r in b[title][1:]]
        check(rows == want[key], f"table {key}:\n got {rows}\nwant {want[key]}")
    else:
        key = {"segment": "segments", "owner": "owners", "policy": "policies"}[by]
        rows = [(r[0], dict(zip(GROUP_COLUMNS, map(human, r[1:])))) for r in b[f"By {by}"][1:]]
        wanted = [(n, {k: f[k] for k in GROUP_COLUMNS}) for n, f in want[key]]
        check(rows == wanted, f"table {key}:\n got {rows}\nwant {wanted}")
    # the channel table follows every breakdown but the channel one
    if by != "channel":
        rows = [(r[0], dict(zip(TOUCH_KEYS, map(human, r[1:])))) for r in b["By channel"][1:]]
        check(rows == want["channels"], f"table channels:\n got {rows}\nwant {want['channels']}")


def check_csv(text, j):
    rows = list(csv.reader(io.StringIO(text)))
    check(rows[0] == ["section", "name", "metric", "value"], f"csv header {rows[0]}")
    got = {(s, n, m): v for s, n, m, v in rows[1:]}

    def val(v):
        return None if v == "" else D(v) if "." in v else int(v)

    want = {("period", "", "from"): "2027-03-01", ("period", "", "to"): "2027-03-31"}
    for k, v in j["funnel"].items():
        want[("funnel", "", k)] = v
    for r in j["decline_reasons"]:
        want[("reason", r["reason"], "count")] = r["count"]
    for section, key in (("tier", "tiers"), ("channel", "channels"), ("segment", "segments"),
                         ("owner", "owners"), ("policy", "policies"), ("week", "weeks")):
        for x in j[key]:
            name = x.get("name", x.get("start"))
            for k, v in x.items():
                if k not in ("name", "start"):
                    want[(section, name, k)] = v
    for k, v in want.items():
        check(k in got, f"csv lacks {k}")
        g = got[k] if k[0] == "period" else val(got[k])
        check(g == v, f"csv {k}: {got[k]!r} != json {v!r}")
    extra = set(got) - set(want) - {("period", "", "by")}
    check(not extra, f"csv has figures the JSON lacks: {sorted(extra)[:5]}")


def body(wd):
    global DB, CONF
    DB, CONF = wd("renewd.db"), wd("renewd.conf")
    run([TEST_REPORT, "--make-fixture", DB])
    write(CONF, CONFIG)

    j = json.loads(report("--json"), parse_float=D)
    check_json(j)
    print("json: every figure as expected")

    raw = json.loads(report("--json"), parse_float=D)  # with names, for the comparisons
    for by in ("tier", "channel", "segment", "owner", "policy"):
        check_table(report(by=by), WANT, by)
    print("table: the same numbers as the JSON (tier, channel, segment, owner, policy)")
    check_csv(report("--csv"), raw)
    print("csv: the same numbers as the JSON")

    # usage errors: exit 64 with a message
    for args, msg in ((["--by", "tiers"], "unknown --by 'tiers'"),
                      (["--from", "2027-02-30"], "invalid --from"),
                      (["--from", "2027-04-02"], "is after --to"),
                      (["--json", "--csv"], "exclude each other")):
        p = run([RENEWCTL, "--db", DB, "--config", CONF, "report", "--to", "2027-03-31"] + args,
                check_rc=False)
        check(p.returncode == 64 and msg in p.stderr, f"{args}: rc {p.returncode} {p.stderr!r}")
    # a missing store: exit 66 and a plain sentence
    p = run([RENEWCTL, "--db", wd("missing.db"), "--config", CONF, "report"], check_rc=False)
    check(p.returncode == 66 and "no such file" in p.stderr, f"missing store: {p.returncode} {p.stderr!r}")
    # an empty period: zeros and absent rates
    e = json.loads(report_period("2030-01-01", "2030-01-07"), parse_float=D)
    check(e["funnel"]["terms"] == 0 and e["funnel"]["renewal_rate"] is None
          and e["funnel"]["median_days_before_expiry"] is None, f"empty period {e['funnel']}")
    return 0


def report_period(a, b):
    return run([RENEWCTL, "--db", DB, "--config", CONF, "report", "--from", a, "--to", b,
                "--json"]).stdout


if __name__ == "__main__":
    try:
        sys.exit(main_wrapper("test-renewctl-report", body))
    except TestFailure as e:
        print(e, file=sys.stderr)
        sys.exit(1)
