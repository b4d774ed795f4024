#!/usr/bin/python3
"""Integration test: a simulated year of renewd against an independent model.

Generates COUNT contracts (default 10,000) expiring over twelve months, with
customers and sales owners in time zones on every continent, imports them with
`renewctl import` and runs the real daemon on its simulated clock
(`renewd --simulate A..B`) through 14 months in four segments. Between the
segments, with the daemon stopped, the test changes the store as the outside
world would:
  * answers: responses rows and state changes through the sqlite3 shell
    (declined; renewed; renewed with a new term re-imported; "call me" with a
    callback pause);
  * expiry moved: a re-import with a new expires_on (a new term);
  * late imports: new contracts whose early tiers have already passed
    (catch-up rules).
The configuration has a five-tier ladder (notice -P60D, weekly reminder x3
-P30D, final -P7D repeated every two days and cut at the next tier,
escalation -P3D to the sales owner in the owner's zone and window, lapsed
P1D), an enterprise ladder with CatchUp=all and an hours offset
(-P89DT14H30M), a night ladder whose owner tier repeats daily at 02:xx local
across DST gaps and overlaps, a holidays .ics (yearly and one-off, a
multi-day shutdown), and sink channels only (Maildirs in the work dir).

Independently of the policy engine (Python zoneinfo; the rules of
docs/scheduling.md, core/policy.h and docs/configuration.md re-derived here),
the test computes every (contract, term, tier, step) that must be sent and the
simulated instant it is due, and every one that must be recorded as skipped
with its reason. Asserted:
  * the set of sent rows equals the expected set, each with due_at ==
    created_at == sent_at == the expected instant (first 20 mismatches shown);
  * the set of skipped rows (and reasons) equals the expected set;
  * no row is pending, retrying, dead or cancelled at the end;
  * every sent row lies inside its recipient's window in the recipient's
    local time (checked again from the row alone);
  * nothing of a closed loop or of a moved term after the change;
  * one Maildir message per sent row, per channel;
  * each contract's final state.

Usage: test-sim-year.py RENEWD RENEWCTL [--count N] [--seed S] [--keep]
"""
import argparse
import csv
import datetime as dt
import os
import random
import sqlite3
import subprocess
import sys
import time
import zoneinfo
from collections import Counter, namedtuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itestlib import (TestFailure, check, free_port, import_owners, main_wrapper, run,  # noqa: E402
                      sql, sql_quote, write, write_link_key)

UTC = dt.timezone.utc
DAY = 86400
GRACE = 3600  # an occurrence due more than this before "now" is missed (docs/scheduling.md)


def ts(y, mo, d, h=0, mi=0, s=0):
    return int(dt.datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp())


def iso(t):
    return dt.datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


SIM_START = ts(2027, 1, 4)                      # a Monday
BOUNDARIES = [ts(2027, 4, 15, 10, 17), ts(2027, 8, 2, 16, 45), ts(2027, 11, 19, 5, 0)]
SIM_END = ts(2028, 3, 20)
FIRST_EXPIRY = dt.date(2027, 3, 8)
LAST_EXPIRY = dt.date(2028, 2, 15)

# ---- time zones -------------------------------------------------------------

CUSTOMER_ZONES = [  # (zone, weight): every continent, DST north and south, odd offsets
    ("Europe/Berlin", 14), ("America/New_York", 12), ("Asia/Kolkata", 8), ("Asia/Tokyo", 8),
    ("America/Sao_Paulo", 7), ("Australia/Lord_Howe", 5), ("America/St_Johns", 5),
    ("Africa/Casablanca", 6), ("Pacific/Auckland", 6), ("Europe/London", 6),
    ("America/Los_Angeles", 6), ("Africa/Johannesburg", 4), ("America/Santiago", 4),
    ("Asia/Kathmandu", 3), ("Antarctica/Troll", 1), ("UTC", 2),
]
_zones = {}


def zone(name):
    z = _zones.get(name)
    if z is None:
        z = _zones[name] = zoneinfo.ZoneInfo(name)
    return z


def to_local(t, z):
    return dt.datetime.fromtimestamp(t, z)


def resolve(day, wall, z):
    """Local date + wall time -> instant. A wall time in a DST gap is taken under
    the offset before the gap (02:30 -> 03:30); in an overlap the first one."""
    return int(dt.datetime.combine(day, wall, tzinfo=z).replace(fold=0).timestamp())


# ---- RFC 5545 pieces ----------------------------------------------------------

Duration = namedtuple("Duration", "neg days secs")


def add_duration(z, t, d):
    """Days move the local date keeping the local wall time; seconds are exact."""
    if d.days:
        loc = to_local(t, z)
        day = loc.date() + dt.timedelta(days=-d.days if d.neg else d.days)
        t = resolve(day, loc.time().replace(tzinfo=None, fold=0), z)
    return t - d.secs if d.neg else t + d.secs


def duration_text(d):
    s = "-P" if d.neg else "P"
    if d.days:
        s += f"{d.days}D"
    if d.secs:
        h, m, sec = d.secs // 3600, d.secs // 60 % 60, d.secs % 60
        s += "T" + (f"{h}H" if h else "") + (f"{m}M" if m else "") + (f"{sec}S" if sec else "")
    return s


Rule = namedtuple("Rule", "every_days count text")  # the subset of RRULE this test uses


def expand(rule, z, raw0, until):
    """Occurrences of rule from raw0, in local wall time of z, each < until."""
    if rule is None:
        return [raw0]
    loc = to_local(raw0, z)
    wall = loc.time().replace(tzinfo=None, fold=0)
    out = [raw0]
    for k in range(1, rule.count):
        t = resolve(loc.date() + dt.timedelta(days=k * rule.every_days), wall, z)
        if t >= until:
            break
        out.append(t)
    return out


# ---- holidays and send windows -------------------------------------------------

YEARLY_HOLIDAYS = [(1, 1, "New Year"), (5, 1, "Labour Day"), (10, 3, "Unity Day"),
                   (12, 25, "Christmas Day"), (12, 26, "Boxing Day")]
ONE_OFF_HOLIDAYS = [(dt.date(2027, 3, 26), 1, "Good Friday"), (dt.date(2027, 3, 29), 1, "Easter Monday"),
                    (dt.date(2027, 5, 6), 1, "Ascension"), (dt.date(2027, 5, 17), 1, "Whit Monday"),
                    (dt.date(2027, 12, 27), 5, "Year-end shutdown"), (dt.date(2028, 2, 28), 1, "Founders day")]


def holiday_dates():
    s = set()
    for y in range(2026, 2030):
        for m, d, _ in YEARLY_HOLIDAYS:
            s.add(dt.date(y, m, d))
    for day, n, _ in ONE_OFF_HOLIDAYS:
        for k in range(n):
            s.add(day + dt.timedelta(days=k))
    return s


def holidays_ics():
    ev = []
    for m, d, name in YEARLY_HOLIDAYS:  # yearly rules starting in the past
        start = dt.date(2020, m, d)
        ev.append((start, start + dt.timedelta(days=1), name, "RRULE:FREQ=YEARLY\r\n"))
    for day, n, name in ONE_OFF_HOLIDAYS:
        ev.append((day, day + dt.timedelta(days=n), name, ""))
    out = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//renewd//test-sim-year//EN\r\n"
    for k, (a, b, name, rrule) in enumerate(ev):
        out += (f"BEGIN:VEVENT\r\nUID:h{k}@test.renewd\r\nDTSTAMP:20260101T000000Z\r\n"
                f"DTSTART;VALUE=DATE:{a:%Y%m%d}\r\nDTEND;VALUE=DATE:{b:%Y%m%d}\r\n{rrule}"
                f"SUMMARY:{name}\r\nEND:VEVENT\r\n")
    return out + "END:VCALENDAR\r\n"


Window = namedtuple("Window", "start end days holidays text")  # minutes; weekday() numbers
HOLIDAYS = holiday_dates()
MON_FRI, MON_SAT, ALL_DAYS = {0, 1, 2, 3, 4}, {0, 1, 2, 3, 4, 5}, set(range(7))
WINDOWS = {
    None: Window(9 * 60, 18 * 60, MON_FRI, HOLIDAYS, "Hours=09:00-18:00\nDays=Mon..Fri\nHolidays={ics}\n"),
    "owners": Window(7 * 60 + 30, 19 * 60 + 30, MON_SAT, HOLIDAYS,
                     "Hours=07:30-19:30\nDays=Mon..Sat\nHolidays={ics}\n"),
    "night": Window(60, 6 * 60, ALL_DAYS, set(), "Hours=01:00-06:00\nDays=Mon..Sun\n"),
}


def day_allowed(w, day):
    return day.weekday() in w.days and day not in w.holidays


def inside(w, z, t):
    loc = to_local(t, z)
    sod = loc.hour * 3600 + loc.minute * 60 + loc.second
    return day_allowed(w, loc.date()) and w.start * 60 <= sod < w.end * 60


def first_at_or_after_wall(day, minute, z):
    """The earliest instant of local day `day` whose wall time is >= minute
    (the end of the gap when that wall time does not exist)."""
    wall = dt.time(minute // 60, minute % 60)
    t0 = resolve(day, wall, z)
    loc = to_local(t0, z)
    if loc.date() == day and (loc.hour, loc.minute) == (wall.hour, wall.minute):
        return t0  # exists (first of two in an overlap)
    lo = t0 - 4 * 3600  # in a gap: search the transition instant
    hi = t0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        m = to_local(mid, z)
        if (m.date(), m.hour * 60 + m.minute) >= (day, minute):
            hi = mid
        else:
            lo = mid
    return hi


def window_next(w, z, t):
    """The earliest instant >= t inside window w in zone z."""
    if w is None or inside(w, z, t):
        return t
    day = to_local(t, z).date()
    for k in range(0, 400):
        d = day + dt.timedelta(days=k)
        if not day_allowed(w, d):
            continue
        lo = first_at_or_after_wall(d, w.start, z)
        if w.end < 24 * 60:
            hi = first_at_or_after_wall(d, w.end, z)
        else:
            hi = first_at_or_after_wall(d + dt.timedelta(days=1), 0, z)
        c = max(t, lo)
        # normally c itself; walk minute by minute over DST oddities inside [lo, hi)
        while c < hi:
            if inside(w, z, c):
                return c
            c = (c // 60 + 1) * 60
    raise AssertionError("no window opening within 400 days")


# ---- the configuration --------------------------------------------------------

Tier = namedtuple("Tier", "name offset rule audience channel")
TIERS = {
    "early": Tier("early", Duration(True, 89, 14 * 3600 + 30 * 60), None, "customer", "email"),
    "notice": Tier("notice", Duration(True, 60, 0), None, "customer", "email"),
    "reminder": Tier("reminder", Duration(True, 30, 0), Rule(7, 3, "FREQ=WEEKLY;COUNT=3"), "customer", "email"),
    # repeats at -7, -5, [-3, -1]: the last two reach the escalation's instant and are dropped
    "final": Tier("final", Duration(True, 7, 0), Rule(2, 4, "FREQ=DAILY;INTERVAL=2;COUNT=4"), "customer", "email"),
    "escalation": Tier("escalation", Duration(True, 3, 0), None, "owner", "owner-email"),
    "lapsed": Tier("lapsed", Duration(False, 1, 0), None, "customer", "email"),
    "night-esc": Tier("night-esc", Duration(True, 7, 0), Rule(1, 4, "FREQ=DAILY;COUNT=4"), "owner", "owner-email"),
}
Policy = namedtuple("Policy", "name segments tiers catchup fallback owner_window lapse_grace pause")
POLICIES = [
    Policy("standard", ["smb", "*"], ["notice", "reminder", "final", "escalation", "lapsed"], "latest",
           "desk", "owners", 30 * DAY, 7 * DAY),
    Policy("enterprise", ["enterprise"], ["early", "notice", "reminder", "final", "escalation", "lapsed"],
           "all", "desk", "owners", 45 * DAY, 14 * DAY),
    Policy("night", ["night-ops"], ["notice", "night-esc"], "latest", "night-desk", "night", 30 * DAY, 7 * DAY),
]


def policy_for(segment):
    for p in POLICIES:
        if segment in p.segments:
            return p
    return next(p for p in POLICIES if "*" in p.segments)


OWNERS = [  # id, zone (None: the customer's zone applies)
    ("alice", "Europe/Berlin"), ("bob", "America/New_York"), ("carol", "Asia/Tokyo"),
    ("dave", "Australia/Lord_Howe"), ("erin", "America/Sao_Paulo"), ("frank", "Asia/Kolkata"),
    ("gina", "Pacific/Auckland"), ("desk", "UTC"), ("night-desk", None),
]
OWNER_ZONE = dict(OWNERS)


def config_text(wd, db, port):
    ics = wd("holidays.ics")
    out = (f"[Daemon]\nDatabase={db}\nListen=127.0.0.1:{port}\nTimeZone=UTC\nHorizon=48h\n"
           f"RefillInterval=6h\nChangePollInterval=1s\nLinkKeyFile={write_link_key(wd)}\n\n")
    for name, w in WINDOWS.items():
        out += ("[SendWindow]\n" if name is None else f"[SendWindow {name}]\n") + w.text.format(ics=ics) + "\n"
    for p in POLICIES:
        out += (f"[Policy {p.name}]\nSegments={' '.join(p.segments)}\nTiers={' '.join(p.tiers)}\n"
                f"CatchUp={p.catchup}\nFallbackOwner={p.fallback}\nOwnerSendWindow={p.owner_window}\n"
                f"LapseGrace={p.lapse_grace // DAY}d\nCallbackPause={p.pause // DAY}d\n\n")
    for t in TIERS.values():
        out += f"[Tier {t.name}]\nOffset={duration_text(t.offset)}\nChannels={t.channel}\n"
        if t.rule:
            out += f"Repeat={t.rule.text}\n"
        if t.audience != "customer":
            out += f"Audience={t.audience}\n"
        out += "\n"
    out += f"[Channel email]\nType=sink\nMaildir={wd('maildir-customers')}\n\n"
    out += f"[Channel owner-email]\nType=sink\nMaildir={wd('maildir-owners')}\n"
    return out


# ---- contracts -----------------------------------------------------------------


class Term:
    def __init__(self, no, expires_on, expires_at, visible_from):
        self.no = no
        self.expires_on = expires_on  # the CSV text
        self.E = expires_at
        self.V = visible_from         # when the daemon first plans it
        self.events = []              # (time, kind, until): 'close' or 'pause'


class Contract:
    def __init__(self, cid, zone_name, segment, owner):
        self.id = cid
        self.zone_name = zone_name
        self.z = zone(zone_name)
        self.segment = segment
        self.owner = owner  # may name an owner that does not exist
        self.policy = policy_for(segment)
        self.terms = []

    @property
    def term(self):
        return self.terms[-1]

    def owner_recipient(self):
        """The owner who receives owner tiers: the contract's, else the policy's fallback."""
        return self.owner if self.owner in OWNER_ZONE else self.policy.fallback

    def owner_zone(self):
        zn = OWNER_ZONE.get(self.owner_recipient())
        return zone(zn) if zn else self.z

    def csv_row(self):
        t = self.term
        starts = ""
        if len(t.expires_on) == 10:
            starts = (dt.date.fromisoformat(t.expires_on) - dt.timedelta(days=365)).isoformat()
        return [self.id, "K" + self.id[1:], f"Customer {self.id}", f"{self.id.lower()}@example.com", "",
                self.zone_name, "en", self.segment, self.owner, "Cloud Backup", starts, t.expires_on,
                "1200.00", "EUR"]


CSV_HEADER = ["contract_id", "customer_id", "customer_name", "email", "phone", "timezone", "locale",
              "segment", "owner", "product", "starts_on", "expires_on", "value", "currency"]


def expiry_of(text, z):
    if len(text) == 10:  # valid through that local day
        return resolve(dt.date.fromisoformat(text) + dt.timedelta(days=1), dt.time(0, 0), z)
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def random_expiry(rnd, z, lo, hi):
    """A date (two thirds) or an RFC 3339 instant at a random second, in [lo, hi]."""
    day = lo + dt.timedelta(days=rnd.randrange((hi - lo).days + 1))
    if rnd.random() < 0.65:
        return day.isoformat()
    t = int(dt.datetime.combine(day, dt.time(0, 0), tzinfo=UTC).timestamp()) + rnd.randrange(DAY)
    return iso(t)


def transitions(z, start, end):
    """DST transitions of z in [start, end): (instant, offset before, offset after)."""
    out = []
    t = start
    prev = to_local(t, z).utcoffset()
    while t < end:
        t2 = t + 3600
        o = to_local(t2, z).utcoffset()
        if o != prev:
            lo, hi = t, t2
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if to_local(mid, z).utcoffset() == prev:
                    lo = mid
                else:
                    hi = mid
            out.append((hi, int(prev.total_seconds()), int(o.total_seconds())))
            prev = o
        t = t2
    return out


def night_contracts(start_no):
    """Contracts whose night-esc step k falls, at a 02:xx wall time, on a DST
    change day (inside the gap, or in the repeated hour) of their zone."""
    out = []
    n = start_no
    for zn in ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Auckland",
               "America/St_Johns", "Africa/Casablanca"]:
        z = zone(zn)
        for x, o1, o2 in transitions(z, SIM_START + 20 * DAY, SIM_END - 30 * DAY):
            if o2 > o1:   # gap: wall times [x+o1, x+o2) do not exist
                wall_t = x + o1 + (o2 - o1) // 2
            else:         # overlap: wall times [x+o2, x+o1) exist twice
                wall_t = x + o2 + (o1 - o2) // 2
            w = dt.datetime.fromtimestamp(wall_t, UTC).replace(tzinfo=None)  # the wall time as naive
            if not (1 <= w.hour < 6):
                continue
            for k in range(4):
                e = resolve(w.date() + dt.timedelta(days=7 - k), w.time(), z)
                c = Contract(f"C{n:06d}", zn, "night-ops", "night-desk")
                c.terms.append(Term(1, iso(e), e, SIM_START))
                out.append(c)
                n += 1
    return out


def generate(count, rnd):
    contracts = []
    zones = [z for z, w in CUSTOMER_ZONES for _ in range(w)]
    owners = [o for o, _ in OWNERS if o not in ("desk", "night-desk")]
    for i in range(1, count + 1):
        zn = rnd.choice(zones)
        r = rnd.random()
        segment = "smb" if r < 0.55 else "enterprise" if r < 0.8 else "vip" if r < 0.92 else ""
        r = rnd.random()
        owner = rnd.choice(owners) if r < 0.9 else "" if r < 0.97 else "ghost"
        c = Contract(f"C{i:06d}", zn, segment, owner)
        if zn == "America/Santiago" and rnd.random() < 0.2:
            text = "2027-09-04"  # expires at the start of 5 Sept, a day that starts at 01:00
        else:
            text = random_expiry(rnd, c.z, FIRST_EXPIRY, LAST_EXPIRY)
        c.terms.append(Term(1, text, expiry_of(text, c.z), SIM_START))
        contracts.append(c)
    contracts += night_contracts(count + 1)
    return contracts


# ---- the model ------------------------------------------------------------------

Occ = namedtuple("Occ", "tier step raw due audience negative")


def occurrences(c, term):
    """The term's ladder in order: every (tier, step) with its raw and due instant."""
    p = c.policy
    raw0 = [add_duration(c.z, term.E, TIERS[name].offset) for name in p.tiers]
    out = []
    for i, name in enumerate(p.tiers):
        t = TIERS[name]
        until = next((r for r in raw0[i + 1:] if r > raw0[i]), 1 << 62)
        for step, raw in enumerate(expand(t.rule, c.z, raw0[i], until)):
            if t.audience == "owner":
                due = window_next(WINDOWS[p.owner_window], c.owner_zone(), raw)
            else:
                due = window_next(WINDOWS[None], c.z, raw)
            out.append(Occ(name, step, raw, due, t.audience, t.offset.neg and (t.offset.days or t.offset.secs)))
    return out


def model_term(c, term, occs, end):
    """Walks the term's ladder the way docs/scheduling.md describes. Returns
    (sent {(tier, step): instant}, skipped {(tier, step): reason}, final state)."""
    p = c.policy
    E = term.E
    now = term.V
    state, until, answered = "active", 0, False
    events = sorted(term.events)
    sent, skipped = {}, {}
    i = 0

    def win_next(aud, t):
        if aud == "owner":
            return window_next(WINDOWS[p.owner_window], c.owner_zone(), t)
        return window_next(WINDOWS[None], c.z, t)

    def expired(o):
        return o.negative and (now >= E or state == "lapsed")

    def send_at(q):
        """When q would go out as the candidate now, None when not at all."""
        if q.due >= now - GRACE:
            return q.due
        return None if p.catchup == "skip" else win_next(q.audience, now)

    def decide(o):
        """('skip', reason, at) / ('remind', at) / None when held by a pause."""
        if o.audience == "owner" and (answered or state == "callback"):
            return ("skip", "customer answered", now)
        if expired(o):
            return ("skip", "expired", now)
        if state in ("snoozed", "callback") and o.audience == "customer" and o.raw < until:
            return None
        if state == "snoozed" and o.audience == "owner" and o.due < until:
            return ("skip", "snoozed", now)
        if o.due >= now - GRACE:
            return ("remind", o.due)
        if p.catchup == "skip":
            return ("skip", "catch-up: skip", now)
        if p.catchup == "latest":
            later = [q for q in occs[i + 1:] if q.audience == o.audience and not expired(q)]
            if later and later[0].due < now - GRACE:
                return ("skip", "catch-up: superseded", now)
        return ("remind", win_next(o.audience, now))

    while state not in ("renewed", "declined", "closed", "gone"):
        if state in ("active", "reminding"):
            trans = (E, "lapsed")
        elif state == "lapsed":
            trans = (E + p.lapse_grace, "closed")
        else:
            trans = (until, "reminding")
        act = decide(occs[i]) if i < len(occs) else None
        nxt_at = act[-1] if act is not None and act[-1] < trans[0] else trans[0]
        t_next = max(nxt_at, now)
        if events and events[0][0] < t_next:
            at, kind, arg = events.pop(0)
            now = max(now, at)
            if kind == "close":
                state = arg
            elif kind == "pause":
                state, until, answered = "callback", arg, True
            continue
        if t_next > end:
            break
        now = t_next
        if act is not None and act[-1] < trans[0]:
            o = occs[i]
            if act[0] == "skip":
                skipped[(o.tier, o.step)] = act[1]
            else:
                # the later occurrences of the tier that would go out at
                # this instant (or before it, in another zone) are the same
                # message, named by the last one
                while i + 1 < len(occs) and occs[i + 1].tier == o.tier \
                        and (send_at(occs[i + 1]) or 1 << 62) <= now:
                    i += 1
                    o = occs[i]
                sent[(o.tier, o.step)] = now
            if state == "active":
                state = "reminding"
            i += 1
        else:
            state = trans[1]
            if state == "reminding":
                until = 0
    return sent, skipped, state


# ---- between segments: the outside world ----------------------------------------------


def boundary_changes(contracts, b, rnd, next_no):
    """Picks and applies (to the model) answers, expiry moves and late imports at
    instant b. Returns (sql script, CSV rows to import, new contracts)."""
    script, rows, new = [], [], []
    open_ = [c for c in contracts
             if not any(k == "close" for _, k, _ in c.term.events)
             and c.term.E > b + 2 * DAY and c.term.V < b
             and not any(k == "pause" and u > b for _, k, u in c.term.events)]
    mid = [c for c in open_ if c.term.E - 60 * DAY < b]
    rnd.shuffle(mid)
    n_answers = max(6, len(contracts) // 50)
    answered = mid[:n_answers]
    for k, c in enumerate(answered):
        t = c.term
        kind = ["declined", "renewed", "renewed+term", "callback", "declined", "callback"][k % 6]
        if kind == "callback":
            u = b + c.policy.pause
            t.events.append((b, "pause", u))
            script.append(f"INSERT INTO responses(contract_id,term,kind,source,until_at,created_at) VALUES "
                          f"({sql_quote(c.id)},{t.no},'callback','test',{u},{b});")
            script.append(f"UPDATE contracts SET state='callback', state_until={u} WHERE id={sql_quote(c.id)};")
            continue
        state = "declined" if kind == "declined" else "renewed"
        t.events.append((b, "close", state))
        script.append(f"INSERT INTO responses(contract_id,term,kind,source,created_at) VALUES "
                      f"({sql_quote(c.id)},{t.no},{sql_quote(state)},'test',{b});")
        script.append(f"UPDATE contracts SET state={sql_quote(state)} WHERE id={sql_quote(c.id)};")
        if kind == "renewed+term":
            if len(t.expires_on) == 10:
                text = (dt.date.fromisoformat(t.expires_on) + dt.timedelta(days=365)).isoformat()
            else:
                text = iso(t.E + 365 * DAY)
            c.terms.append(Term(t.no + 1, text, expiry_of(text, c.z), b))
            rows.append(c.csv_row())
    busy = set(id(c) for c in answered)
    movable = [c for c in open_ if id(c) not in busy]
    rnd.shuffle(movable)
    for c in movable[:max(3, len(contracts) * 15 // 1000)]:
        t = c.term
        shift = rnd.choice([-20, -9, 12, 25, 45, 61])
        if len(t.expires_on) == 10:
            text = (dt.date.fromisoformat(t.expires_on) + dt.timedelta(days=shift)).isoformat()
        else:
            text = iso(t.E + shift * DAY + rnd.randrange(-7200, 7200))
        if expiry_of(text, c.z) == t.E:
            continue
        t.events.append((b, "close", "gone"))
        c.terms.append(Term(t.no + 1, text, expiry_of(text, c.z), b))
        rows.append(c.csv_row())
    # late imports: expiry from three days ago to ten weeks ahead
    zones = [z for z, w in CUSTOMER_ZONES for _ in range(w)]
    day_b = dt.datetime.fromtimestamp(b, UTC).date()
    for k in range(max(4, len(contracts) // 50)):
        zn = rnd.choice(zones)
        seg = rnd.choice(["smb", "smb", "enterprise", "vip"])
        c = Contract(f"C{next_no + k:06d}", zn, seg, rnd.choice(["alice", "bob", "carol", "", "dave"]))
        text = random_expiry(rnd, c.z, day_b - dt.timedelta(days=3), day_b + dt.timedelta(days=70))
        c.terms.append(Term(1, text, expiry_of(text, c.z), b))
        new.append(c)
        rows.append(c.csv_row())
    return script, rows, new


# ---- the test --------------------------------------------------------------------------------


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CSV_HEADER)
        w.writerows(rows)


def simulate(renewd, conf, db, a, b, wd, seg):
    t0 = time.monotonic()
    log = wd(f"renewd-{seg}.log")
    with open(log, "w", encoding="utf-8") as f:
        p = subprocess.run([renewd, "--config", conf, "--db", db, "--log-target", "console",
                            "--log-level", "warning", "--simulate", f"{iso(a)}..{iso(b)}"],
                           stdout=f, stderr=subprocess.STDOUT, timeout=3000)
    took = time.monotonic() - t0
    with open(log, encoding="utf-8", errors="replace") as f:
        text = f.read()
    check(p.returncode == 0, f"renewd --simulate {iso(a)}..{iso(b)} exited {p.returncode}:\n{text[-4000:]}")
    last = [l for l in text.splitlines() if "simulation done" in l]
    print(f"segment {seg} {iso(a)}..{iso(b)}: {took:.1f}s; {last[-1] if last else ''}", flush=True)
    return took


def fmt_local(t, z):
    return to_local(t, z).strftime("%a %Y-%m-%d %H:%M:%S%z") + f" {z.key}"


def body(wd):
    ap = argparse.ArgumentParser()
    ap.add_argument("renewd")
    ap.add_argument("renewctl")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=2027)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    db, conf = wd("renewd.db"), wd("renewd.conf")
    write(wd("holidays.ics"), holidays_ics())
    write(conf, config_text(wd, db, free_port()))
    run([a.renewd, "--check-config", "--config", conf])

    t_model = time.monotonic()
    contracts = generate(a.count, rnd)
    write_csv(wd("contracts.csv"), [c.csv_row() for c in contracts])
    run([a.renewctl, "--db", db, "--config", conf, "import", wd("contracts.csv")], timeout=600)
    how = import_owners(a.renewctl, db, conf, [
        {"id": o, "name": o.title(), "email": f"{o}@sales.example.com", "timezone": z or "",
         "manager": "" if o == "desk" else "desk"} for o, z in OWNERS], wd)
    print(f"{len(contracts)} contracts imported; owners through {how}", flush=True)

    # Segments, with the outside world's changes in between.
    times = [SIM_START] + BOUNDARIES + [SIM_END]
    runtime = 0.0
    for k in range(len(times) - 1):
        write(conf, config_text(wd, db, free_port()))  # a port free now (the HTTP listener binds it)
        runtime += simulate(a.renewd, conf, db, times[k], times[k + 1], wd, k + 1)
        if k + 1 < len(times) - 1:
            b = times[k + 1]
            next_no = max(int(c.id[1:]) for c in contracts) + 1
            script, rows, new = boundary_changes(contracts, b, rnd, next_no)
            if script:
                sql(db, "BEGIN;\n" + "\n".join(script) + "\nCOMMIT;\n")
            if rows:
                write_csv(wd(f"changes-{k + 1}.csv"), rows)
                run([a.renewctl, "--db", db, "--config", conf, "import", wd(f"changes-{k + 1}.csv")])
            contracts += new
            print(f"at {iso(b)}: {len(script)} SQL statements, {len(rows)} rows re-imported/late, "
                  f"{len(new)} late contracts", flush=True)

    # The expected outcome.
    t_model = time.monotonic()
    exp_sent, exp_skip, exp_state, info = {}, {}, {}, {}
    for c in contracts:
        for ti, term in enumerate(c.terms):
            occs = occurrences(c, term)
            sent, skipped, state = model_term(c, term, occs, SIM_END)
            by = {(o.tier, o.step): o for o in occs}
            for key, at in sent.items():
                exp_sent[(c.id, term.no) + key] = at
                info[(c.id, term.no) + key] = (c, by[key])
            for key, why in skipped.items():
                exp_skip[(c.id, term.no) + key] = why
            if ti == len(c.terms) - 1:
                exp_state[c.id] = state
    t_model = time.monotonic() - t_model

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = con.execute("SELECT contract_id, term, tier, step, channel, audience, recipient, due_at, status, "
                       "created_at, sent_at, last_error, idem_key FROM reminders").fetchall()
    states = dict(con.execute("SELECT id, state FROM contracts").fetchall())
    con.close()
    by_id = {c.id: c for c in contracts}

    problems = []

    def problem(kind, msg):
        problems.append((kind, msg))

    got_sent, got_skip, statuses = {}, {}, Counter()
    dup = Counter()
    for (cid, term, tier, step, channel, aud, rcpt, due, status, created, sent_at, err, key) in rows:
        statuses[status] += 1
        k = (cid, term, tier, step)
        dup[k] += 1
        if status == "sent":
            got_sent[k] = (due, created, sent_at, rcpt, aud)
        elif status == "skipped":
            got_skip[k] = err
    for k, n in dup.items():
        if n > 1:
            problem("duplicate", f"{k}: {n} rows")
    for st in ("pending", "sending", "retry", "dead", "cancelled"):
        if statuses[st]:
            problem("status", f"{statuses[st]} rows with status {st}")

    # sent: exact set and instants
    for k in sorted(set(exp_sent) | set(got_sent)):
        e, g = exp_sent.get(k), got_sent.get(k)
        if g is None:
            c, o = info[k]
            problem("missing", f"{k} expected at {iso(e)} ({fmt_local(e, c.owner_zone() if o.audience == 'owner' else c.z)}),"
                               f" raw {iso(o.raw)}" + (f", skipped: {got_skip[k]}" if k in got_skip else ""))
        elif e is None:
            c = by_id.get(k[0])
            z = c.z if c else UTC
            problem("unexpected", f"{k} sent at {iso(g[1])} ({fmt_local(g[1], z)}) to {g[3]}"
                                  + (f"; model skips it: {exp_skip[k]}" if k in exp_skip else ""))
        elif not (g[0] == g[1] == g[2] == e):
            c, o = info[k]
            z = c.owner_zone() if o.audience == "owner" else c.z
            who = ""
            if o.audience == "owner":
                who = f"; owner {c.owner!r}" + ("" if c.owner == c.owner_recipient() else
                                                f" (not an owner: fallback {c.owner_recipient()!r})")
            problem("instant", f"{k} due_at {iso(g[0])} created {iso(g[1])} sent {iso(g[2])}; expected {iso(e)} "
                               f"= {fmt_local(e, z)} (raw {fmt_local(o.raw, c.z)}); daemon: {fmt_local(g[0], z)}"
                               + who)
    for k in sorted(set(exp_skip) | set(got_skip)):
        e, g = exp_skip.get(k), got_skip.get(k)
        if k in exp_sent or k in got_sent:
            continue  # reported above
        if e != g:
            problem("skipped", f"{k}: row {'absent' if g is None else repr(g)}, expected "
                               f"{'none' if e is None else repr(e)}")

    # every sent row inside its recipient's window, from the row alone
    owner_email = {f"{o}@sales.example.com": o for o, _ in OWNERS}
    for k, (due, created, sent_at, rcpt, aud) in got_sent.items():
        c = by_id.get(k[0])
        if c is None:
            continue
        if aud == "owner":
            o = owner_email.get(rcpt)
            if o is None:
                problem("recipient", f"{k}: owner recipient {rcpt!r} unknown")
                continue
            z = zone(OWNER_ZONE[o]) if OWNER_ZONE[o] else c.z
            w = WINDOWS[c.policy.owner_window]
        else:
            z, w = c.z, WINDOWS[None]
            if rcpt != f"{c.id.lower()}@example.com":
                problem("recipient", f"{k}: sent to {rcpt!r}")
        for label, t in (("due_at", due), ("sent_at", sent_at)):
            if not inside(w, z, t):
                problem("window", f"{k} {label} {fmt_local(t, z)} outside the {aud} window")
        if aud == "owner" and o != c.owner_recipient():
            problem("recipient", f"{k}: escalation to {o}, expected {c.owner_recipient()}")

    # closed loops and moved terms: nothing after the change
    for c in contracts:
        for term in c.terms:
            for at, kind, _ in term.events:
                if kind != "close":
                    continue
                late = [k for k, g in got_sent.items() if k[0] == c.id and k[1] == term.no and g[1] > at]
                for k in late:
                    problem("after-close", f"{k} sent at {iso(got_sent[k][1])} after the term closed at {iso(at)}")

    # final states
    for cid, st in exp_state.items():
        if states.get(cid) != st:
            problem("state", f"{cid}: state {states.get(cid)!r}, expected {st!r}")

    # one Maildir message per sent row and channel
    for channel, sub in (("email", "maildir-customers"), ("owner-email", "maildir-owners")):
        n_files = sum(len(os.listdir(wd(sub, d))) for d in ("new", "cur") if os.path.isdir(wd(sub, d)))
        n_rows = sum(1 for r in rows if r[4] == channel and r[8] == "sent")
        if n_files != n_rows:
            problem("maildir", f"{sub}: {n_files} messages for {n_rows} sent rows of channel {channel}")

    kinds = Counter(k for k, _ in problems)
    n_exact = sum(1 for k, e in exp_sent.items() if k in got_sent and got_sent[k][1] == e)
    print(f"model: {len(exp_sent)} sends, {len(exp_skip)} skips expected ({t_model:.1f}s); "
          f"daemon: {len(got_sent)} sent, {len(got_skip)} skipped; rows by status {dict(statuses)}; "
          f"{n_exact} sends at exactly the expected instant; daemon time {runtime:.1f}s")
    by_tier = Counter((k[2], k[3]) for k in exp_sent)
    print("expected sends by tier/step: " + ", ".join(f"{t}/{s}: {n}" for (t, s), n in sorted(by_tier.items())))
    print("expected skips by reason: " + ", ".join(f"{r}: {n}" for r, n in sorted(Counter(exp_skip.values()).items())))
    restarts = set([SIM_START] + BOUNDARIES)
    at_restart = (sum(1 for g in got_sent.values() if g[1] in restarts),
                  sum(1 for e in exp_sent.values() if e in restarts))
    if at_restart[0] > 2 * at_restart[1] + 10:
        print(f"hint: {at_restart[0]} rows were sent at a segment start (the model expects {at_restart[1]}): "
              "the daemon fires most reminders only when it starts; is the horizon refill being run?")
    if problems:
        shown = Counter()
        lines = []
        for kind, msg in problems:
            shown[kind] += 1
            if shown[kind] <= 20:
                lines.append(f"  [{kind}] {msg}")
        raise TestFailure(f"{len(problems)} mismatches ({dict(kinds)}); first 20 of each kind:\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main_wrapper("test-sim-year", body))
