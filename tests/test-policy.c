/* Unit tests for core/policy: table-driven single decisions (one call of
 * policy_next() against an exact expected action), table-driven traces (a
 * simulated daemon applying actions until a horizon, compared line by line),
 * policy_plan() and input validation.
 *
 * Actions are written as text for readability:
 *   "remind TIER/STEP DUE[ catch-up][ merged N]", "skip TIER/STEP DUE (REASON)",
 *   "transition STATE DUE", "done"  -- DUE as RFC 3339 UTC.
 *
 * The reference ladder (L5) for a contract expiring 2027-03-20 00:00 in
 * America/New_York (a Saturday, EDT, = 04:00Z; DST began 2027-03-14):
 *   pre30  -P30D  Repeat=FREQ=DAILY;INTERVAL=7  -> Feb 18, Feb 25, Mar 4 (Thu);
 *                 Mar 11 is dropped: it is after pre14's instant
 *   pre14  -P14D  -> Sat Mar 6 (biz window: Mon Mar 8 09:00 EST = 14:00Z)
 *   esc7   -P7D   Audience=owner -> Sat Mar 13 05:00Z (owner Europe/Berlin biz
 *                 window: Mon Mar 15 09:00 CET = 08:00Z)
 *   pre3   -P3D   Repeat=FREQ=DAILY;COUNT=3 -> Wed Mar 17, Thu 18, Fri 19 (EDT)
 *   lapsed P1D    -> Sun Mar 21 (biz window: Mon Mar 22 09:00 EDT = 13:00Z)
 * -P30D lands on 2027-02-18 00:00 EST = 05:00Z while expiry is at 04:00Z: days
 * are calendar days in the customer's zone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <unistd.h>

#include "core/cal.h"
#include "core/ladder.h"
#include "core/policy.h"
#include "core/util.h"

/* The tables start from a common contract (NY_L5) and override fields of it in
 * designated initializers: intended. */
#pragma GCC diagnostic ignored "-Woverride-init"

#define HOUR INT64_C(3600)
#define DAY (24 * HOUR)

enum { WIN_NONE, WIN_BIZ, WIN_HOL };

struct tier_spec {
  const char *name;
  const char *offset;
  const char *repeat;
  enum audience audience;
};

/* The reference ladder, see the file comment. */
static const struct tier_spec L5[] = {
    {"pre30", "-P30D", "FREQ=DAILY;INTERVAL=7", AUDIENCE_CUSTOMER},
    {"pre14", "-P14D", NULL, AUDIENCE_CUSTOMER},
    {"esc7", "-P7D", NULL, AUDIENCE_OWNER},
    {"pre3", "-P3D", "FREQ=DAILY;COUNT=3", AUDIENCE_CUSTOMER},
    {"lapsed", "P1D", NULL, AUDIENCE_CUSTOMER},
    {0},
};

/* One tier at -P30D. */
static const struct tier_spec L1[] = {
    {"t", "-P30D", NULL, AUDIENCE_CUSTOMER},
    {0},
};

/* Hours are exact, days are calendar days. */
static const struct tier_spec LHOURS[] = {
    {"h36", "-PT36H", NULL, AUDIENCE_CUSTOMER},
    {"d1h12", "-P1DT12H", NULL, AUDIENCE_CUSTOMER},
    {0},
};

static const struct tier_spec L7[] = {
    {"w", "-P7D", NULL, AUDIENCE_CUSTOMER},
    {0},
};

/* A tier at the expiry instant itself, and after it. */
static const struct tier_spec LZERO[] = {
    {"pre1", "-P1D", NULL, AUDIENCE_CUSTOMER},
    {"at", "P0D", NULL, AUDIENCE_CUSTOMER},
    {"post", "P2D", NULL, AUDIENCE_CUSTOMER},
    {0},
};

/* A customer and an owner tier at the same instant: the owner tier does not
 * cut the customer tier's repeats. */
static const struct tier_spec LSAME[] = {
    {"cust", "-P10D", "FREQ=DAILY;COUNT=3", AUDIENCE_CUSTOMER},
    {"own", "-P10D", NULL, AUDIENCE_OWNER},
    {"last", "-P2D", NULL, AUDIENCE_CUSTOMER},
    {0},
};

/* A daily owner escalation over a weekend: Saturday's and Sunday's
 * occurrences both wait for Monday 09:00 in the owner's window and are one
 * message (rule 7). */
static const struct tier_spec LWEEKEND[] = {
    {"esc", "-P8D", "FREQ=DAILY;COUNT=3", AUDIENCE_OWNER},
    {"last", "-P2D", NULL, AUDIENCE_CUSTOMER},
    {0},
};

/* Last tier with an unbounded repeat: capped at POLICY_MAX_OCCURRENCES. */
static const struct tier_spec LINF[] = {
    {"every", "-P100D", "FREQ=DAILY", AUDIENCE_CUSTOMER},
    {0},
};

struct env {
  struct cal *cal;
  const struct cal_holidays *holidays;
  struct cal_window biz; /* 09:00-18:00 Mon..Fri */
  struct cal_window hol; /* the same minus the test holidays */
  char dir[64];
};

static int setup(void **state) {
  struct env *e = calloc(1, sizeof(*e));
  assert_non_null(e);
  assert_int_equal(cal_new(&e->cal), 0);
  strcpy(e->dir, "/tmp/renewd-test-policy-XXXXXX");
  assert_non_null(mkdtemp(e->dir));
  _cleanup_free_ char *path = strprintf("%s/holidays.ics", e->dir);
  FILE *f = fopen(path, "we");
  assert_non_null(f);
  fputs("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//renewd//test//EN\r\n"
        "BEGIN:VEVENT\r\nUID:h1@renewd.test\r\nDTSTAMP:20260101T000000Z\r\n"
        "DTSTART;VALUE=DATE:20270218\r\nSUMMARY:Test holiday\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n",
        f);
  fclose(f);
  char err[256];
  assert_int_equal(cal_holidays_load(e->cal, path, &e->holidays, err, sizeof(err)), 0);
  e->biz = (struct cal_window){.start_min = 9 * 60, .end_min = 18 * 60, .days = 0x3e};
  e->hol = e->biz;
  e->hol.holidays = e->holidays;
  *state = e;
  return 0;
}

static int teardown(void **state) {
  struct env *e = *state;
  _cleanup_free_ char *path = strprintf("%s/holidays.ics", e->dir);
  unlink(path);
  rmdir(e->dir);
  cal_free(e->cal);
  free(e);
  return 0;
}

static struct policy *build_policy(const struct tier_spec *spec, enum catchup catchup,
                                   int64_t lapse_grace) {
  size_t n = 0;
  while (spec[n].name)
    n++;
  struct policy *p = calloc(1, sizeof(*p));
  assert_non_null(p);
  p->name = strdup("test");
  p->catchup = catchup;
  p->lapse_grace = lapse_grace;
  p->tiers = calloc(n, sizeof(struct tier));
  assert_non_null(p->tiers);
  p->n_tiers = n;
  for (size_t i = 0; i < n; i++) {
    struct tier *t = &p->tiers[i];
    t->name = strdup(spec[i].name);
    t->audience = spec[i].audience;
    assert_int_equal(cal_duration_parse(spec[i].offset, &t->offset), 0);
    if (spec[i].repeat) {
      char err[128];
      t->repeat = strdup(spec[i].repeat);
      assert_int_equal(cal_rrule_parse(spec[i].repeat, &t->rrule, err, sizeof(err)), 0);
    }
  }
  return p;
}

/* Frees what build_policy() made (by hand: only the fields it sets). */
static void free_policy(struct policy *p) {
  for (size_t i = 0; i < p->n_tiers; i++) {
    free(p->tiers[i].name);
    free(p->tiers[i].repeat);
    cal_rrule_free(p->tiers[i].rrule);
  }
  free(p->tiers);
  free(p->name);
  free(p);
}

static int64_t t3339(const char *s) {
  int64_t t;
  if (!s)
    return 0;
  if (cal_parse_rfc3339(s, &t) < 0)
    fail_msg("bad instant in table: %s", s);
  return t;
}

static const char *state_name(enum contract_state s) {
  static const char *const names[] = {"active",  "reminding", "renewed", "declined",
                                      "snoozed", "callback",  "lapsed",  "closed"};
  return (unsigned)s < ELEMENTSOF(names) ? names[s] : "?";
}

static void action_str(const struct policy *p, const struct policy_action *a, char *out, size_t n) {
  char due[21], merged[24] = "";
  if (a->merged > 1)
    snprintf(merged, sizeof merged, " merged %d", (int)a->merged);
  switch (a->kind) {
  case POLICY_DONE:
    snprintf(out, n, "done");
    break;
  case POLICY_TRANSITION:
    snprintf(out, n, "transition %s %s", state_name(a->new_state), format_rfc3339(a->due_at, due));
    break;
  case POLICY_REMIND:
    snprintf(out, n, "remind %s/%d %s%s%s", p->tiers[a->tier].name, (int)a->step,
             format_rfc3339(a->due_at, due), a->catch_up ? " catch-up" : "", merged);
    break;
  case POLICY_SKIP:
    snprintf(out, n, "skip %s/%d %s (%s)", p->tiers[a->tier].name, (int)a->step,
             format_rfc3339(a->due_at, due), a->reason);
    break;
  }
}

static bool action_eq(const struct policy_action *a, const struct policy_action *b) {
  return a->kind == b->kind && a->due_at == b->due_at && a->tier == b->tier && a->step == b->step &&
         a->audience == b->audience && a->raw_at == b->raw_at && a->catch_up == b->catch_up &&
         a->reason == b->reason && a->new_state == b->new_state;
}

/* The contract and world common to both tables. */
struct setup_spec {
  const struct tier_spec *ladder;
  enum catchup catchup;
  int64_t lapse_grace;      /* seconds */
  const char *zone;         /* customer zone */
  const char *owner_zone;   /* NULL = none (customer zone is used) */
  int window, owner_window; /* WIN_* */
  const char *expires;
  enum contract_state state;
  const char *state_until;     /* NULL = 0 */
  struct policy_sent sent[12]; /* terminated by .tier == NULL */
  bool answered;
  const char *now;
};

static const struct cal_window *window_of(struct env *e, int w) {
  return w == WIN_BIZ ? &e->biz : w == WIN_HOL ? &e->hol : NULL;
}

static void fill_input(struct env *e, const struct setup_spec *s, const struct policy *p,
                       struct policy_input *in) {
  size_t n_sent = 0;
  while (n_sent < ELEMENTSOF(s->sent) && s->sent[n_sent].tier)
    n_sent++;
  *in = (struct policy_input){
      .policy = p,
      .expires_at = t3339(s->expires),
      .state = s->state,
      .state_until = t3339(s->state_until),
      .customer_zone = cal_zone(e->cal, s->zone),
      .customer_window = window_of(e, s->window),
      .owner_zone = s->owner_zone ? cal_zone(e->cal, s->owner_zone) : NULL,
      .owner_window = window_of(e, s->owner_window),
      .sent = s->sent,
      .n_sent = n_sent,
      .customer_answered = s->answered,
      .now = t3339(s->now),
      .catchup_grace = HOUR,
  };
  assert_non_null(in->customer_zone);
  if (s->owner_zone)
    assert_non_null(in->owner_zone);
}

/* ---- single decisions -------------------------------------------------- */

struct step_case {
  const char *name;
  struct setup_spec s;
  const char *expect;
};

/* The reference contract: L5, New York customer, Berlin owner, biz windows. */
#define NY_L5                                                                                      \
  .ladder = L5, .lapse_grace = 14 * DAY, .zone = "America/New_York",                               \
  .owner_zone = "Europe/Berlin", .window = WIN_BIZ, .owner_window = WIN_BIZ,                       \
  .expires = "2027-03-20T04:00:00Z"
#define SENT_PRE30                                                                                 \
  {"pre30", 0}, {"pre30", 1}, {                                                                    \
    "pre30", 2                                                                                     \
  }
#define SENT_PRE14                                                                                 \
  SENT_PRE30, {                                                                                    \
    "pre14", 0                                                                                     \
  }
#define SENT_ESC7                                                                                  \
  SENT_PRE14, {                                                                                    \
    "esc7", 0                                                                                      \
  }
#define SENT_PRE3                                                                                  \
  SENT_ESC7, {"pre3", 0}, {"pre3", 1}, {                                                           \
    "pre3", 2                                                                                      \
  }

static const struct step_case step_cases[] = {
    /* occurrences, zones, windows */
    {"DST between tier and expiry, no window",
     {NY_L5, .window = WIN_NONE, .now = "2027-02-01T00:00:00Z"},
     "remind pre30/0 2027-02-18T05:00:00Z"},
    {"ACTIVE: first reminder returned as is, in the window",
     {NY_L5, .now = "2027-02-01T00:00:00Z"},
     "remind pre30/0 2027-02-18T14:00:00Z"},
    {"holiday moves the reminder to the next business day",
     {NY_L5, .window = WIN_HOL, .now = "2027-02-01T00:00:00Z"},
     "remind pre30/0 2027-02-19T14:00:00Z"},
    {"history high-water mark: next repeat",
     {NY_L5, .state = CONTRACT_REMINDING, .sent = {{"pre30", 0}, {"pre30", 1}},
      .now = "2027-02-26T00:00:00Z"},
     "remind pre30/2 2027-03-04T14:00:00Z"},
    {"repeat at the next tier's instant dropped; Saturday -> Monday 09:00",
     {NY_L5, .state = CONTRACT_REMINDING, .sent = {SENT_PRE30}, .now = "2027-03-05T00:00:00Z"},
     "remind pre14/0 2027-03-08T14:00:00Z"},
    {"never goes back behind the last row, whatever the order of rows",
     {NY_L5, .state = CONTRACT_REMINDING, .sent = {{"pre14", 0}, {"pre30", 0}},
      .now = "2027-02-17T00:00:00Z"},
     "remind esc7/0 2027-03-15T08:00:00Z"},
    {"rows of unknown tiers are ignored",
     {NY_L5, .sent = {{"gone", 5}}, .now = "2027-02-01T00:00:00Z"},
     "remind pre30/0 2027-02-18T14:00:00Z"},
    {"escalation in the owner's zone and hours",
     {NY_L5, .state = CONTRACT_REMINDING, .sent = {SENT_PRE14}, .now = "2027-03-10T00:00:00Z"},
     "remind esc7/0 2027-03-15T08:00:00Z"},
    {"owner zone unknown: the customer's zone is used",
     {NY_L5, .owner_zone = NULL, .state = CONTRACT_REMINDING, .sent = {SENT_PRE14},
      .now = "2027-03-10T00:00:00Z"},
     "remind esc7/0 2027-03-15T13:00:00Z"},
    {"customer answered: escalation skipped at once",
     {NY_L5, .state = CONTRACT_REMINDING, .sent = {SENT_PRE14}, .answered = true,
      .now = "2027-03-10T00:00:00Z"},
     "skip esc7/0 2027-03-10T00:00:00Z (customer answered)"},
    {"customer answered: customer tiers go on",
     {NY_L5, .state = CONTRACT_REMINDING, .sent = {SENT_ESC7}, .answered = true,
      .now = "2027-03-16T00:00:00Z"},
     "remind pre3/0 2027-03-17T13:00:00Z"},
    {"Asia/Kolkata: Saturday midnight -> Monday 09:00 IST",
     {.ladder = (const struct tier_spec[]){{"t", "-P3D", NULL, AUDIENCE_CUSTOMER}, {0}},
      .zone = "Asia/Kolkata",
      .window = WIN_BIZ,
      .expires = "2027-05-31T18:30:00Z",
      .now = "2027-05-01T00:00:00Z"},
     "remind t/0 2027-05-31T03:30:00Z"},
    {"Australia/Lord_Howe: 30-minute DST shift between tier and expiry",
     {.ladder = L1,
      .zone = "Australia/Lord_Howe",
      .expires = "2027-10-09T13:00:00Z",
      .now = "2027-09-01T00:00:00Z"},
     "remind t/0 2027-09-09T13:30:00Z"},
    {"America/St_Johns: -PT36H is exact hours across DST",
     {.ladder = LHOURS,
      .zone = "America/St_Johns",
      .expires = "2027-03-15T02:30:00Z",
      .now = "2027-03-01T00:00:00Z"},
     "remind h36/0 2027-03-13T14:30:00Z"},
    {"America/St_Johns: -P1DT12H is a calendar day then exact hours",
     {.ladder = LHOURS,
      .zone = "America/St_Johns",
      .expires = "2027-03-15T02:30:00Z",
      .sent = {{"h36", 0}},
      .now = "2027-03-13T14:30:00Z"},
     "remind d1h12/0 2027-03-13T15:30:00Z"},
    {"02:30 on the spring-forward day does not exist: 03:30 EDT",
     {.ladder = L7,
      .zone = "America/New_York",
      .expires = "2027-03-21T06:30:00Z",
      .now = "2027-03-01T00:00:00Z"},
     "remind w/0 2027-03-14T07:30:00Z"},
    {"same-instant tiers do not cut each other's repeats",
     {.ladder = LSAME,
      .zone = "UTC",
      .expires = "2027-06-30T00:00:00Z",
      .sent = {{"cust", 1}},
      .now = "2027-06-21T00:00:00Z"},
     "remind cust/2 2027-06-22T00:00:00Z"},
    {"unbounded repeat on the last tier stops at 64 occurrences",
     {.ladder = LINF,
      .zone = "UTC",
      .expires = "2027-06-30T00:00:00Z",
      .sent = {{"every", 63}},
      .now = "2027-05-01T00:00:00Z"},
     "transition lapsed 2027-06-30T00:00:00Z"},
    {"unbounded repeat: step 63 is the last one",
     {.ladder = LINF,
      .zone = "UTC",
      .expires = "2027-06-30T00:00:00Z",
      .sent = {{"every", 62}},
      .now = "2027-05-23T00:00:00Z"},
     "remind every/63 2027-05-24T00:00:00Z"},

    /* due now and missed */
    {"late within the grace: due now, not a catch-up",
     {NY_L5, .now = "2027-02-18T14:30:00Z"},
     "remind pre30/0 2027-02-18T14:00:00Z"},
    {"missed, CatchUp=all: sent now, inside the window",
     {NY_L5, .catchup = CATCHUP_ALL, .now = "2027-02-18T16:00:00Z"},
     "remind pre30/0 2027-02-18T16:00:00Z catch-up"},
    {"missed, CatchUp=all, outside the window: next window instant",
     {NY_L5, .catchup = CATCHUP_ALL, .now = "2027-02-19T23:30:00Z"},
     "remind pre30/0 2027-02-22T14:00:00Z catch-up"},
    {"missed, CatchUp=skip",
     {NY_L5, .catchup = CATCHUP_SKIP, .now = "2027-02-18T16:00:00Z"},
     "skip pre30/0 2027-02-18T16:00:00Z (catch-up: skip)"},
    {"missed, CatchUp=latest, only one missed: sent",
     {NY_L5, .catchup = CATCHUP_LATEST, .now = "2027-02-18T16:00:00Z"},
     "remind pre30/0 2027-02-18T16:00:00Z catch-up"},
    {"missed, CatchUp=latest, a later one missed too: superseded",
     {NY_L5, .catchup = CATCHUP_LATEST, .now = "2027-03-01T12:00:00Z"},
     "skip pre30/0 2027-03-01T12:00:00Z (catch-up: superseded)"},
    {"CatchUp=latest is per audience: the owner's latest missed goes out",
     {NY_L5, .state = CONTRACT_REMINDING, .sent = {SENT_PRE14}, .now = "2027-03-18T20:00:00Z"},
     "remind esc7/0 2027-03-19T08:00:00Z catch-up"},
    {"CatchUp=latest looks past the other audience's tiers",
     {NY_L5, .state = CONTRACT_REMINDING, .sent = {SENT_PRE30}, .now = "2027-03-16T12:00:00Z"},
     "remind pre14/0 2027-03-16T13:00:00Z catch-up"},
    {"CatchUp=latest: superseded by a customer tier behind an owner tier",
     {NY_L5, .state = CONTRACT_REMINDING, .sent = {SENT_PRE30}, .now = "2027-03-18T20:00:00Z"},
     "skip pre14/0 2027-03-18T20:00:00Z (catch-up: superseded)"},

    /* expiry */
    {"ACTIVE, reminders left after expiry: lapse first, at the expiry instant",
     {NY_L5, .state = CONTRACT_REMINDING, .sent = {SENT_ESC7}, .now = "2027-03-20T12:00:00Z"},
     "transition lapsed 2027-03-20T04:00:00Z"},
    {"expired: a negative tier is skipped, not sent late",
     {NY_L5, .state = CONTRACT_LAPSED, .sent = {SENT_ESC7}, .now = "2027-03-20T12:00:00Z"},
     "skip pre3/0 2027-03-20T12:00:00Z (expired)"},
    {"expired: a positive tier is sent after expiry",
     {NY_L5, .state = CONTRACT_LAPSED, .sent = {SENT_PRE3}, .now = "2027-03-20T12:00:00Z"},
     "remind lapsed/0 2027-03-22T13:00:00Z"},
    {"a reminder pushed past expiry by the window waits behind the lapse",
     {.ladder = (const struct tier_spec[]){{"t", "-PT2H", NULL, AUDIENCE_CUSTOMER}, {0}},
      .zone = "America/New_York",
      .window = WIN_BIZ,
      .expires = "2027-03-20T04:00:00Z",
      .now = "2027-03-19T20:00:00Z"},
     "transition lapsed 2027-03-20T04:00:00Z"},
    {"nothing left before expiry: lapse armed in the future",
     {NY_L5, .state = CONTRACT_REMINDING, .sent = {SENT_PRE3}, .now = "2027-03-19T20:00:00Z"},
     "transition lapsed 2027-03-20T04:00:00Z"},
    {"tie at the expiry instant: the transition comes first",
     {.ladder = LZERO,
      .zone = "UTC",
      .expires = "2027-06-30T00:00:00Z",
      .state = CONTRACT_REMINDING,
      .sent = {{"pre1", 0}},
      .now = "2027-06-29T12:00:00Z"},
     "transition lapsed 2027-06-30T00:00:00Z"},
    {"P0D tier after the lapse is not 'expired'",
     {.ladder = LZERO,
      .lapse_grace = 14 * DAY,
      .zone = "UTC",
      .expires = "2027-06-30T00:00:00Z",
      .state = CONTRACT_LAPSED,
      .sent = {{"pre1", 0}},
      .now = "2027-06-30T00:00:00Z"},
     "remind at/0 2027-06-30T00:00:00Z"},
    {"LAPSED: close after the grace",
     {NY_L5, .state = CONTRACT_LAPSED, .sent = {SENT_PRE3, {"lapsed", 0}},
      .now = "2027-03-25T00:00:00Z"},
     "transition closed 2027-04-03T04:00:00Z"},
    {"LAPSED: close competes by time with a later positive tier",
     {NY_L5, .lapse_grace = DAY, .state = CONTRACT_LAPSED, .sent = {SENT_PRE3},
      .now = "2027-03-20T12:00:00Z"},
     "transition closed 2027-03-21T04:00:00Z"},
    {"RENEWED: done", {NY_L5, .state = CONTRACT_RENEWED, .now = "2027-02-01T00:00:00Z"}, "done"},
    {"DECLINED: done", {NY_L5, .state = CONTRACT_DECLINED, .now = "2027-02-01T00:00:00Z"}, "done"},
    {"CLOSED: done", {NY_L5, .state = CONTRACT_CLOSED, .now = "2027-04-05T00:00:00Z"}, "done"},

    /* snooze and callback */
    {"SNOOZED: customer reminders inside the pause wait for the wake-up",
     {NY_L5, .state = CONTRACT_SNOOZED, .state_until = "2027-03-01T00:00:00Z",
      .sent = {{"pre30", 0}}, .answered = true, .now = "2027-02-20T00:00:00Z"},
     "transition reminding 2027-03-01T00:00:00Z"},
    {"SNOOZED: a reminder after the pause still comes after the wake-up",
     {NY_L5, .state = CONTRACT_SNOOZED, .state_until = "2027-02-20T00:00:00Z",
      .sent = {{"pre30", 0}}, .answered = true, .now = "2027-02-19T00:00:00Z"},
     "transition reminding 2027-02-20T00:00:00Z"},
    {"SNOOZED, pause over but not yet applied: wake-up due now",
     {NY_L5, .state = CONTRACT_SNOOZED, .state_until = "2027-03-01T00:00:00Z",
      .sent = {{"pre30", 0}}, .answered = true, .now = "2027-03-02T00:00:00Z"},
     "transition reminding 2027-03-01T00:00:00Z"},
    {"after the snooze: the occurrence inside the pause is missed (latest)",
     {NY_L5, .state = CONTRACT_REMINDING, .state_until = "2027-03-01T00:00:00Z",
      .sent = {{"pre30", 0}}, .answered = true, .now = "2027-03-01T00:00:00Z"},
     "remind pre30/1 2027-03-01T14:00:00Z catch-up"},
    {"SNOOZED by an operator (no answer): escalation inside the pause skipped",
     {NY_L5, .state = CONTRACT_SNOOZED, .state_until = "2027-03-16T00:00:00Z", .sent = {SENT_PRE14},
      .now = "2027-03-10T00:00:00Z"},
     "skip esc7/0 2027-03-10T00:00:00Z (snoozed)"},
    {"SNOOZED with an answer: escalation skipped as answered",
     {NY_L5, .state = CONTRACT_SNOOZED, .state_until = "2027-03-16T00:00:00Z", .sent = {SENT_PRE14},
      .answered = true, .now = "2027-03-10T00:00:00Z"},
     "skip esc7/0 2027-03-10T00:00:00Z (customer answered)"},
    {"CALLBACK: owner tier skipped as answered, before the wake-up",
     {NY_L5, .state = CONTRACT_CALLBACK, .state_until = "2027-03-16T00:00:00Z",
      .sent = {SENT_PRE14}, .answered = true, .now = "2027-03-10T00:00:00Z"},
     "skip esc7/0 2027-03-10T00:00:00Z (customer answered)"},
    {"CALLBACK implies an answer even without the flag",
     {NY_L5, .state = CONTRACT_CALLBACK, .state_until = "2027-03-16T00:00:00Z",
      .sent = {SENT_PRE14}, .now = "2027-03-10T00:00:00Z"},
     "skip esc7/0 2027-03-10T00:00:00Z (customer answered)"},
    {"SNOOZED across expiry: from the expiry instant on, negative tiers are expired",
     {NY_L5, .state = CONTRACT_SNOOZED, .state_until = "2027-03-25T00:00:00Z", .sent = {SENT_ESC7},
      .answered = true, .now = "2027-03-20T04:00:00Z"},
     "skip pre3/0 2027-03-20T04:00:00Z (expired)"},
    {"SNOOZED, one second before expiry: still held back by the pause",
     {NY_L5, .state = CONTRACT_SNOOZED, .state_until = "2027-03-25T00:00:00Z", .sent = {SENT_ESC7},
      .answered = true, .now = "2027-03-20T03:59:59Z"},
     "transition reminding 2027-03-25T00:00:00Z"},
    {"CALLBACK: customer tiers wait for the end of the pause",
     {NY_L5, .state = CONTRACT_CALLBACK, .state_until = "2027-03-18T00:00:00Z", .sent = {SENT_ESC7},
      .answered = true, .now = "2027-03-16T00:00:00Z"},
     "transition reminding 2027-03-18T00:00:00Z"},
};

static void test_step_table(void **state) {
  struct env *e = *state;
  for (size_t k = 0; k < ELEMENTSOF(step_cases); k++) {
    const struct step_case *c = &step_cases[k];
    struct policy *p = build_policy(c->s.ladder, c->s.catchup, c->s.lapse_grace);
    struct policy_input in;
    fill_input(e, &c->s, p, &in);
    struct policy_action a, b;
    assert_int_equal(policy_next(&in, &a), 0);
    char got[160];
    action_str(p, &a, got, sizeof(got));
    if (!streq(got, c->expect))
      fail_msg("case \"%s\":\n  expected %s\n  got      %s", c->name, c->expect, got);
    /* audience and reason fields agree with the tier; pure: same input, same answer */
    if (a.kind == POLICY_REMIND || a.kind == POLICY_SKIP)
      assert_int_equal(a.audience, p->tiers[a.tier].audience);
    if (a.kind != POLICY_SKIP)
      assert_null(a.reason);
    assert_int_equal(policy_next(&in, &b), 0);
    assert_true(action_eq(&a, &b));
    free_policy(p);
  }
}

/* ---- traces: a simulated daemon --------------------------------------- */

struct trace_case {
  const char *name;
  struct setup_spec s;
  const char *until;      /* horizon: stop at an action due after it */
  const char *expect[16]; /* NULL-terminated; "done" when the ladder ended */
};

static const struct trace_case trace_cases[] = {
    {"a whole term, nobody answers",
     {NY_L5, .now = "2027-02-01T00:00:00Z"},
     "2027-12-31T00:00:00Z",
     {"remind pre30/0 2027-02-18T14:00:00Z", "remind pre30/1 2027-02-25T14:00:00Z",
      "remind pre30/2 2027-03-04T14:00:00Z", "remind pre14/0 2027-03-08T14:00:00Z",
      "remind esc7/0 2027-03-15T08:00:00Z", "remind pre3/0 2027-03-17T13:00:00Z",
      "remind pre3/1 2027-03-18T13:00:00Z", "remind pre3/2 2027-03-19T13:00:00Z",
      "transition lapsed 2027-03-20T04:00:00Z", "remind lapsed/0 2027-03-22T13:00:00Z",
      "transition closed 2027-04-03T04:00:00Z", "done"}},
    {"weekend repeats moved onto Monday morning are one message",
     {NY_L5, .ladder = LWEEKEND, .now = "2027-03-01T00:00:00Z"},
     "2027-12-31T00:00:00Z",
     {"remind esc/0 2027-03-12T08:00:00Z", "remind esc/2 2027-03-15T08:00:00Z merged 2",
      "remind last/0 2027-03-18T13:00:00Z", "transition lapsed 2027-03-20T04:00:00Z",
      "transition closed 2027-04-03T04:00:00Z", "done"}},
    {"10-day outage, CatchUp=latest",
     {NY_L5, .catchup = CATCHUP_LATEST, .now = "2027-02-27T12:00:00Z"},
     "2027-03-05T00:00:00Z",
     {"skip pre30/0 2027-02-27T12:00:00Z (catch-up: superseded)",
      "remind pre30/1 2027-03-01T14:00:00Z catch-up", "remind pre30/2 2027-03-04T14:00:00Z"}},
    {"10-day outage, CatchUp=all",
     {NY_L5, .catchup = CATCHUP_ALL, .now = "2027-02-27T12:00:00Z"},
     "2027-03-05T00:00:00Z",
     /* both missed steps would go out on Monday 14:00: one message */
     {"remind pre30/1 2027-03-01T14:00:00Z catch-up merged 2",
      "remind pre30/2 2027-03-04T14:00:00Z"}},
    {"10-day outage, CatchUp=skip",
     {NY_L5, .catchup = CATCHUP_SKIP, .now = "2027-02-27T12:00:00Z"},
     "2027-03-05T00:00:00Z",
     {"skip pre30/0 2027-02-27T12:00:00Z (catch-up: skip)",
      "skip pre30/1 2027-02-27T12:00:00Z (catch-up: skip)", "remind pre30/2 2027-03-04T14:00:00Z"}},
    {"10-day outage across expiry: lapse, expired skips (owner tier too), +P1D on time",
     {NY_L5, .state = CONTRACT_REMINDING, .sent = {SENT_PRE14}, .now = "2027-03-22T12:00:00Z"},
     "2027-12-31T00:00:00Z",
     {"transition lapsed 2027-03-20T04:00:00Z", "skip esc7/0 2027-03-22T12:00:00Z (expired)",
      "skip pre3/0 2027-03-22T12:00:00Z (expired)", "skip pre3/1 2027-03-22T12:00:00Z (expired)",
      "skip pre3/2 2027-03-22T12:00:00Z (expired)", "remind lapsed/0 2027-03-22T13:00:00Z",
      "transition closed 2027-04-03T04:00:00Z", "done"}},
    {"snoozed for ten days after the first reminder",
     {NY_L5, .state = CONTRACT_SNOOZED, .state_until = "2027-03-01T15:00:00Z",
      .sent = {{"pre30", 0}}, .answered = true, .now = "2027-02-19T00:00:00Z"},
     "2027-03-16T00:00:00Z",
     {"transition reminding 2027-03-01T15:00:00Z", "remind pre30/1 2027-03-01T15:00:00Z catch-up",
      "remind pre30/2 2027-03-04T14:00:00Z", "remind pre14/0 2027-03-08T14:00:00Z",
      "skip esc7/0 2027-03-08T14:00:00Z (customer answered)"}},
    {"call me: owner tier skipped, customer tiers resume after the pause",
     {NY_L5, .state = CONTRACT_CALLBACK, .state_until = "2027-03-16T00:00:00Z",
      .sent = {SENT_PRE14}, .answered = true, .now = "2027-03-09T00:00:00Z"},
     "2027-03-18T00:00:00Z",
     {"skip esc7/0 2027-03-09T00:00:00Z (customer answered)",
      "transition reminding 2027-03-16T00:00:00Z", "remind pre3/0 2027-03-17T13:00:00Z"}},
};

static void test_trace_table(void **state) {
  struct env *e = *state;
  for (size_t k = 0; k < ELEMENTSOF(trace_cases); k++) {
    const struct trace_case *c = &trace_cases[k];
    struct policy *p = build_policy(c->s.ladder, c->s.catchup, c->s.lapse_grace);
    struct policy_input in;
    fill_input(e, &c->s, p, &in);
    struct policy_sent sent[128];
    memcpy(sent, in.sent, in.n_sent * sizeof(*sent));
    in.sent = sent;
    int64_t until = t3339(c->until);
    size_t line = 0;
    for (int guard = 0; guard < 100; guard++) {
      struct policy_action a;
      char got[160];
      assert_int_equal(policy_next(&in, &a), 0);
      if (a.kind != POLICY_DONE && a.due_at > until)
        break;
      action_str(p, &a, got, sizeof(got));
      if (!c->expect[line])
        fail_msg("trace \"%s\": unexpected extra action %s", c->name, got);
      if (!streq(got, c->expect[line]))
        fail_msg("trace \"%s\" line %zu:\n  expected %s\n  got      %s", c->name, line,
                 c->expect[line], got);
      line++;
      if (a.kind == POLICY_DONE)
        break;
      if (a.due_at > in.now) /* the daemon's timer fires */
        in.now = a.due_at;
      if (a.kind == POLICY_TRANSITION) {
        in.state = a.new_state;
      } else {
        assert_true(in.n_sent < ELEMENTSOF(sent));
        sent[in.n_sent++] = (struct policy_sent){p->tiers[a.tier].name, a.step};
        if (a.kind == POLICY_REMIND && in.state == CONTRACT_ACTIVE)
          in.state = CONTRACT_REMINDING; /* the daemon's business, not the engine's */
      }
    }
    if (c->expect[line])
      fail_msg("trace \"%s\": missing %s", c->name, c->expect[line]);
    free_policy(p);
  }
}

/* ---- plan ----------------------------------------------------------------- */

struct plan_acc {
  const struct policy *p;
  char lines[32][64];
  size_t n;
};

static int plan_cb(size_t tier, int32_t step, int64_t raw_at, int64_t due_at, void *ud) {
  struct plan_acc *acc = ud;
  char raw[21], due[21];
  assert_true(acc->n < ELEMENTSOF(acc->lines));
  snprintf(acc->lines[acc->n++], sizeof(acc->lines[0]), "%s/%d %s %s", acc->p->tiers[tier].name,
           (int)step, format_rfc3339(raw_at, raw), format_rfc3339(due_at, due));
  return 0;
}

static int plan_stop(size_t tier, int32_t step, int64_t raw_at, int64_t due_at, void *ud) {
  return -ECANCELED;
}

static void test_plan(void **state) {
  struct env *e = *state;
  static const char *const expect[] = {
      "pre30/0 2027-02-18T05:00:00Z 2027-02-18T14:00:00Z",
      "pre30/1 2027-02-25T05:00:00Z 2027-02-25T14:00:00Z",
      "pre30/2 2027-03-04T05:00:00Z 2027-03-04T14:00:00Z",
      "pre14/0 2027-03-06T05:00:00Z 2027-03-08T14:00:00Z",
      "esc7/0 2027-03-13T05:00:00Z 2027-03-15T08:00:00Z",
      "pre3/0 2027-03-17T04:00:00Z 2027-03-17T13:00:00Z",
      "pre3/1 2027-03-18T04:00:00Z 2027-03-18T13:00:00Z",
      "pre3/2 2027-03-19T04:00:00Z 2027-03-19T13:00:00Z",
      "lapsed/0 2027-03-21T04:00:00Z 2027-03-22T13:00:00Z",
  };
  const struct setup_spec s = {NY_L5, .state = CONTRACT_REMINDING, .sent = {SENT_PRE3},
                               .answered = true, .now = "2027-03-21T00:00:00Z"};
  struct policy *p = build_policy(s.ladder, s.catchup, s.lapse_grace);
  struct policy_input in;
  fill_input(e, &s, p, &in);

  struct plan_acc acc = {.p = p};
  assert_int_equal(policy_plan(&in, 0, TIME_NEVER, plan_cb, &acc), (int)ELEMENTSOF(expect));
  assert_int_equal(acc.n, ELEMENTSOF(expect));
  for (size_t i = 0; i < ELEMENTSOF(expect); i++)
    assert_string_equal(acc.lines[i], expect[i]);

  /* [from, until) on the due instant */
  acc.n = 0;
  assert_int_equal(
      policy_plan(&in, t3339("2027-03-08T14:00:00Z"), t3339("2027-03-17T13:00:00Z"), plan_cb, &acc),
      2);
  assert_string_equal(acc.lines[0], expect[3]);
  assert_string_equal(acc.lines[1], expect[4]);

  assert_int_equal(policy_plan(&in, 0, TIME_NEVER, plan_stop, NULL), -ECANCELED);
  assert_int_equal(policy_plan(&in, 0, TIME_NEVER, NULL, NULL), -EINVAL);
  free_policy(p);

  /* the plan folds same-instant occurrences of a tier as policy_next() does */
  static const char *const weekend[] = {
      "esc/0 2027-03-12T05:00:00Z 2027-03-12T08:00:00Z",
      "esc/2 2027-03-14T05:00:00Z 2027-03-15T08:00:00Z",
      "last/0 2027-03-18T04:00:00Z 2027-03-18T13:00:00Z",
  };
  const struct setup_spec w = {NY_L5, .ladder = LWEEKEND, .now = "2027-03-01T00:00:00Z"};
  p = build_policy(w.ladder, w.catchup, w.lapse_grace);
  fill_input(e, &w, p, &in);
  acc = (struct plan_acc){.p = p};
  assert_int_equal(policy_plan(&in, 0, TIME_NEVER, plan_cb, &acc), (int)ELEMENTSOF(weekend));
  for (size_t i = 0; i < ELEMENTSOF(weekend); i++)
    assert_string_equal(acc.lines[i], weekend[i]);
  free_policy(p);
}

/* An escalation step that goes up a level is timed in its EscalateTo=
 * person's zone: Sunday's step 2 is due Monday 09:00 in Berlin (08:00Z),
 * before Monday 09:00 in New York (13:00Z) where Saturday's step 1 waits.
 * Ladder order would send it right after that one, at the same instant, so
 * the two are one message (rule 7), to the person step 2 goes to. */
static void test_merge_escalate_zone(void **state) {
  struct env *e = *state;
  static const struct tier_spec LESC[] = {
      {"esc", "-P8D", "FREQ=DAILY;COUNT=3", AUDIENCE_OWNER},
      {0},
  };
  const struct setup_spec s = {NY_L5,
                               .ladder = LESC,
                               .owner_zone = "America/New_York",
                               .state = CONTRACT_REMINDING,
                               .sent = {{"esc", 0}},
                               .now = "2027-03-12T14:00:00Z"};
  struct policy *p = build_policy(s.ladder, s.catchup, s.lapse_grace);
  p->tiers[0].escalate_to = (char *)"boss";
  p->tiers[0].escalate_after = 2;
  struct policy_input in;
  fill_input(e, &s, p, &in);
  const struct cal_zone *zones[] = {cal_zone(e->cal, "Europe/Berlin")};
  in.escalate_zones = zones;
  struct policy_action a;
  char got[160];
  assert_int_equal(policy_next(&in, &a), 0);
  action_str(p, &a, got, sizeof got);
  assert_string_equal(got, "remind esc/2 2027-03-15T13:00:00Z merged 2");
  p->tiers[0].escalate_to = NULL;
  free_policy(p);
}

/* ---- validation ----------------------------------------------------------- */

static void test_invalid(void **state) {
  struct env *e = *state;
  const struct setup_spec s = {NY_L5, .now = "2027-02-01T00:00:00Z"};
  struct policy *p = build_policy(s.ladder, s.catchup, s.lapse_grace);
  struct policy_input in, bad;
  fill_input(e, &s, p, &in);
  struct policy_action a = {.kind = POLICY_SKIP, .due_at = 42};

  assert_int_equal(policy_next(NULL, &a), -EINVAL);
  assert_int_equal(policy_next(&in, NULL), -EINVAL);
  bad = in;
  bad.policy = NULL;
  assert_int_equal(policy_next(&bad, &a), -EINVAL);
  bad = in;
  bad.customer_zone = NULL;
  assert_int_equal(policy_next(&bad, &a), -EINVAL);
  bad = in;
  bad.catchup_grace = -1;
  assert_int_equal(policy_next(&bad, &a), -EINVAL);
  bad = in;
  bad.n_sent = 3;
  bad.sent = NULL;
  assert_int_equal(policy_next(&bad, &a), -EINVAL);
  bad = in;
  bad.state = _CONTRACT_STATE_MAX;
  assert_int_equal(policy_next(&bad, &a), -EINVAL);
  /* untouched on failure */
  assert_int_equal(a.kind, POLICY_SKIP);
  assert_int_equal(a.due_at, 42);

  /* an empty ladder: only the transitions remain */
  size_t n = p->n_tiers;
  p->n_tiers = 0;
  assert_int_equal(policy_next(&in, &a), 0);
  assert_int_equal(a.kind, POLICY_TRANSITION);
  assert_int_equal(a.new_state, CONTRACT_LAPSED);
  assert_int_equal(a.due_at, in.expires_at);
  p->n_tiers = n;

  assert_string_equal(policy_action_kind_to_string(POLICY_REMIND), "remind");
  assert_null(policy_action_kind_to_string((enum policy_action_kind)17));
  free_policy(p);
}

/* EscalateTo=: from step EscalateAfter= on, an escalation goes up a level and
 * is timed in the hours of the person it goes to, not the owner's. */
static void test_escalate_zone(void **state) {
  struct env *e = *state;
  static const struct tier_spec spec[] = {
      {"esc", "-P5D", "FREQ=DAILY;COUNT=3", AUDIENCE_OWNER},
      {0},
  };
  struct policy *p = build_policy(spec, CATCHUP_ALL, 0);
  p->tiers[0].escalate_after = 1;
  p->tiers[0].escalate_to = strdup("boss");
  const struct cal_zone *zones[1] = {cal_zone(e->cal, "America/New_York")};
  struct policy_sent sent[] = {{"esc", 0}};
  struct policy_input in = {
      .policy = p,
      .expires_at = t3339("2027-06-12T00:00:00Z"), /* a Saturday */
      .state = CONTRACT_REMINDING,
      .customer_zone = cal_zone(e->cal, "UTC"),
      .owner_zone = cal_zone(e->cal, "Asia/Tokyo"),
      .owner_window = &e->biz,
      .escalate_zones = zones,
      .sent = sent,
      .n_sent = 1,
      .now = t3339("2027-06-07T12:00:00Z"),
      .catchup_grace = HOUR,
  };
  struct policy_action a;
  char buf[160];
  /* step 1 (raw Tue 2027-06-08 00:00Z = 20:00 Mon in New York): the boss's
   * 09:00 on Tuesday, 13:00Z — not Tokyo's 09:00 (00:00Z). */
  assert_int_equal(policy_next(&in, &a), 0);
  action_str(p, &a, buf, sizeof buf);
  assert_string_equal(buf, "remind esc/1 2027-06-08T13:00:00Z");
  /* Without the boss's zone, the owner's (Tokyo) hours apply. */
  in.escalate_zones = NULL;
  assert_int_equal(policy_next(&in, &a), 0);
  action_str(p, &a, buf, sizeof buf);
  assert_string_equal(buf, "remind esc/1 2027-06-08T00:00:00Z");
  free(p->tiers[0].escalate_to);
  p->tiers[0].escalate_to = NULL;
  free_policy(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_step_table),    cmocka_unit_test(test_trace_table),
      cmocka_unit_test(test_plan),          cmocka_unit_test(test_invalid),
      cmocka_unit_test(test_escalate_zone), cmocka_unit_test(test_merge_escalate_zone),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
