/* Unit tests for core/report (the renewal funnel report) and the report rows
 * of core/store_report.c.
 *
 * build_fixture() writes a store with KNOWN outcomes through the store API
 * (customers, contracts, reminders with statuses and sent times, responses,
 * renewals that start new terms, an import that moves an expiry) and every
 * figure of the report over March 2027 is checked exactly: the funnel, the
 * rates, the median, the decline reasons, each tier, each channel, each
 * segment, owner and policy, and each week. The renderers are checked on the
 * same report (JSON, CSV and table lines with the same numbers).
 *
 * `test-report --make-fixture PATH` only writes the fixture store (used by
 * tests/test-renewctl-report.py, which checks renewctl's outputs against the
 * same expectations). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <unistd.h>

#include "core/report.h"
#include "core/store.h"
#include "core/util.h"
#include "storetmp.h"

#define DAY INT64_C(86400)
/* 2027-03-01T00:00:00Z, a Monday */
#define MAR1 INT64_C(1803859200)
#define D(n) (MAR1 + ((n)-1) * DAY) /* 00:00Z of March n, 2027 */
#define FROM MAR1
#define UNTIL D(32) /* 2027-04-01 */

/* ---- the fixture -------------------------------------------------------------- */

static void customer(struct store *s, const char *id, const char *segment, const char *owner) {
  struct customer c = {.id = (char *)id,
                       .segment = (char *)segment,
                       .owner_id = (char *)owner,
                       .email = "x@example.com"};
  assert_int_equal(store_customer_upsert(s, &c, D(1) - 60 * DAY), STORE_INSERTED);
}

static void contract(struct store *s, const char *id, const char *cust, int64_t expires) {
  struct contract c = {.id = (char *)id, .customer_id = (char *)cust, .expires_at = expires};
  assert_int_equal(store_contract_upsert(s, &c, expires - 60 * DAY), STORE_INSERTED);
}

/* One outbox row; step distinguishes repeats of a tier. */
static void rem(struct store *s, const char *id, int32_t term, const char *tier, int32_t step,
                const char *channel, const char *audience, enum reminder_status st, int64_t sent_at,
                int32_t attempts) {
  struct reminder m = {
      .contract_id = (char *)id,
      .term = term,
      .tier = (char *)tier,
      .step = step,
      .channel = (char *)channel,
      .audience = (char *)audience,
      .due_at = sent_at ? sent_at : D(1),
      .status = st,
      .attempts = attempts,
      .sent_at = st == REMINDER_SENT ? sent_at : 0,
  };
  assert_int_equal(store_reminder_insert(s, &m, sent_at ? sent_at : D(1) - 40 * DAY, NULL), 0);
}

static void resp(struct store *s, const char *id, int32_t term, const char *kind,
                 const char *reason, const char *source, int64_t at) {
  struct response p = {.contract_id = (char *)id,
                       .term = term,
                       .kind = (char *)kind,
                       .reason = (char *)reason,
                       .source = (char *)source};
  assert_int_equal(store_response_insert(s, &p, at, NULL), 0);
}

static void state(struct store *s, const char *id, enum contract_state st, int32_t term,
                  int64_t expires, int64_t now) {
  struct contract c = {0};
  assert_int_equal(store_contract_get(s, id, &c), 0);
  c.state = st;
  c.term = term;
  c.expires_at = expires;
  if (term != c.term)
    c.ladder_id = 0;
  assert_int_equal(store_contract_set_state(s, &c, "test", NULL, now), 0);
  contract_clear(&c);
}

/* A renewal as lifecycle records it: the answer, then the new term. */
static void renew(struct store *s, const char *id, int32_t term, int64_t old_expiry, int64_t at) {
  resp(s, id, term, "renewed", NULL, "link", at);
  state(s, id, CONTRACT_ACTIVE, term + 1, old_expiry + 365 * DAY, at);
}

#define C "customer"
#define O "owner"

static void build_fixture(const char *path) {
  char err[256];
  struct store *s = NULL;
  assert_int_equal(store_open(path, 0, &s, err, sizeof err), 0);

  customer(s, "alice-1", "smb", "alice");
  customer(s, "bob-1", "enterprise", "bob");
  customer(s, "carol-1", "smb", "carol");

  /* K01 smb/alice: reminded twice, renewed 10 days before expiry */
  int64_t e = D(10);
  contract(s, "K01", "alice-1", e);
  rem(s, "K01", 1, "notice", 0, "email", C, REMINDER_SENT, e - 30 * DAY, 1);
  rem(s, "K01", 1, "reminder", 0, "email", C, REMINDER_SENT, e - 14 * DAY, 1);
  renew(s, "K01", 1, e, e - 10 * DAY);

  /* K02 smb/alice: notice by email and SMS at once, reminder dead, final by
   * SMS, declined (price) 2 days before expiry */
  e = D(12);
  contract(s, "K02", "alice-1", e);
  rem(s, "K02", 1, "notice", 0, "email", C, REMINDER_SENT, e - 30 * DAY, 1);
  rem(s, "K02", 1, "notice", 0, "sms", C, REMINDER_SENT, e - 30 * DAY, 1);
  rem(s, "K02", 1, "reminder", 0, "email", C, REMINDER_DEAD, 0, 3);
  rem(s, "K02", 1, "final", 0, "sms", C, REMINDER_SENT, e - 3 * DAY, 2);
  /* the dispatcher's alert about the dead row: a delivery, not an escalation */
  rem(s, "K02", 1, "ops-alert", 99, "ops", O, REMINDER_SENT, e - 13 * DAY, 1);
  resp(s, "K02", 1, "declined", "price", "sms", e - 2 * DAY);
  state(s, "K02", CONTRACT_DECLINED, 1, e, e - 2 * DAY);

  /* K03 enterprise/bob: escalated to the owner, renewed 5 days before */
  e = D(15);
  contract(s, "K03", "bob-1", e);
  rem(s, "K03", 1, "notice", 0, "email", C, REMINDER_SENT, e - 30 * DAY, 1);
  rem(s, "K03", 1, "reminder", 0, "email", C, REMINDER_SENT, e - 14 * DAY, 1);
  rem(s, "K03", 1, "escalation", 0, "owner-email", O, REMINDER_SENT, e - 7 * DAY, 1);
  renew(s, "K03", 1, e, e - 5 * DAY);

  /* K04 enterprise/bob: silent, escalated (one alert dead), lapsed */
  e = D(20);
  contract(s, "K04", "bob-1", e);
  rem(s, "K04", 1, "notice", 0, "email", C, REMINDER_SENT, e - 30 * DAY, 1);
  rem(s, "K04", 1, "escalation", 0, "owner-email", O, REMINDER_SENT, e - 7 * DAY, 1);
  rem(s, "K04", 1, "escalation", 1, "owner-email", O, REMINDER_DEAD, 0, 4);
  rem(s, "K04", 1, "final", 0, "email", C, REMINDER_SENT, e - 3 * DAY, 1);
  state(s, "K04", CONTRACT_LAPSED, 1, e, e);

  /* K05 smb/carol: snoozed, asked for a call, closed lost by the owner */
  e = D(22);
  contract(s, "K05", "carol-1", e);
  rem(s, "K05", 1, "notice", 0, "email", C, REMINDER_SENT, e - 30 * DAY, 1);
  resp(s, "K05", 1, "snoozed", NULL, "link", e - 25 * DAY);
  rem(s, "K05", 1, "reminder", 0, "email", C, REMINDER_SENT, e - 14 * DAY, 1);
  resp(s, "K05", 1, "callback", NULL, "sms", e - 10 * DAY);
  resp(s, "K05", 1, "lost", "switched-provider", "owner-link", e - DAY);
  state(s, "K05", CONTRACT_CLOSED, 1, e, e - DAY);

  /* K06 smb/alice: nothing sent yet (a pending row is not a reminder) */
  e = D(25);
  contract(s, "K06", "alice-1", e);
  rem(s, "K06", 1, "notice", 0, "email", C, REMINDER_PENDING, 0, 0);

  /* K07 no customer: reminded, silent, still in progress */
  e = D(28);
  contract(s, "K07", NULL, e);
  rem(s, "K07", 1, "notice", 0, "email", C, REMINDER_SENT, e - 30 * DAY, 1);
  /* an opt-out is not an answer */
  resp(s, "K07", 1, "unsubscribed", NULL, "link", e - 20 * DAY);
  state(s, "K07", CONTRACT_REMINDING, 1, e, e - 30 * DAY);

  /* K08 enterprise/bob: renewed outside renewd: an import moved the expiry
   * 20 days before it (a new term, no answer) */
  e = D(5);
  contract(s, "K08", "bob-1", e);
  rem(s, "K08", 1, "notice", 0, "email", C, REMINDER_SENT, e - 30 * DAY, 1);
  struct contract moved = {.id = "K08", .customer_id = "bob-1", .expires_at = e + 365 * DAY};
  assert_int_equal(store_contract_upsert(s, &moved, e - 20 * DAY), STORE_UPDATED);

  /* K09 smb/alice: lapsed, then renewed 2 days after expiry */
  e = D(18);
  contract(s, "K09", "alice-1", e);
  rem(s, "K09", 1, "notice", 0, "email", C, REMINDER_SENT, e - 30 * DAY, 1);
  state(s, "K09", CONTRACT_LAPSED, 1, e, e);
  renew(s, "K09", 1, e, e + 2 * DAY);

  /* K10 smb/alice: expires after the period: none of it counts */
  e = D(46);
  contract(s, "K10", "alice-1", e);
  rem(s, "K10", 1, "notice", 0, "email", C, REMINDER_SENT, e - 30 * DAY, 1);
  resp(s, "K10", 1, "declined", "budget", "link", e - 20 * DAY);
  state(s, "K10", CONTRACT_DECLINED, 1, e, e - 20 * DAY);

  /* K11 smb/alice: term 1 (February) renewed into term 2 expiring on March
   * 31: only term 2 is in the period, open, nothing sent for it */
  e = D(1) - 19 * DAY; /* 2027-02-10 */
  contract(s, "K11", "alice-1", e);
  rem(s, "K11", 1, "notice", 0, "email", C, REMINDER_SENT, e - 30 * DAY, 1);
  resp(s, "K11", 1, "renewed", NULL, "link", e - 9 * DAY);
  state(s, "K11", CONTRACT_ACTIVE, 2, D(31), e - 9 * DAY);

  store_free(s);
}

#undef C
#undef O

/* ---- expectations ------------------------------------------------------------- */

#define NONE REPORT_RATE_NONE

struct want_funnel {
  int64_t terms, reminded, answered, prompted, renewed, renewed_external, declined, lost, lapsed,
      open, snoozed, callback, escalations, escalated, escalated_renewed, renewal, decided,
      response;
  bool has_median;
  int64_t median_x10;
};

static void check_funnel(const char *what, const struct report_funnel *g,
                         const struct want_funnel *w) {
  print_message("funnel %s\n", what);
  assert_int_equal(g->terms, w->terms);
  assert_int_equal(g->reminded, w->reminded);
  assert_int_equal(g->answered, w->answered);
  assert_int_equal(g->prompted, w->prompted);
  assert_int_equal(g->renewed, w->renewed);
  assert_int_equal(g->renewed_external, w->renewed_external);
  assert_int_equal(g->declined, w->declined);
  assert_int_equal(g->lost, w->lost);
  assert_int_equal(g->lapsed, w->lapsed);
  assert_int_equal(g->open, w->open);
  assert_int_equal(g->snoozed, w->snoozed);
  assert_int_equal(g->callback, w->callback);
  assert_int_equal(g->escalations, w->escalations);
  assert_int_equal(g->escalated, w->escalated);
  assert_int_equal(g->escalated_renewed, w->escalated_renewed);
  assert_int_equal(g->renewal_rate_bp, w->renewal);
  assert_int_equal(g->decided_renewal_rate_bp, w->decided);
  assert_int_equal(g->response_rate_bp, w->response);
  assert_int_equal(g->has_median, w->has_median);
  assert_int_equal(g->median_days_x10, w->median_x10);
}

/* terms reminded answered prompted renewed ext declined lost lapsed open snoozed
 * callback escalations escalated esc_renewed renewal decided response median */
static const struct want_funnel want_total = {10, 8, 5, 5, 4, 1,    2,    1,    1,    3,
                                              1,  1, 2, 2, 1, 4000, 5714, 6250, true, 75};

static const struct {
  const char *name;
  struct want_funnel f;
} want_segments[] =
    {
        {"smb", {6, 4, 4, 4, 2, 0, 2, 1, 0, 2, 1, 1, 0, 0, 0, 3333, 5000, 10000, true, 40}},
        {"enterprise", {3, 3, 1, 1, 2, 1, 0, 0, 1, 0, 0, 0, 2, 2, 1, 6667, 6667, 3333, true, 125}},
        {"(none)", {1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, NONE, 0, false, 0}},
},
  want_owners[] =
      {
          {"alice", {5, 3, 3, 3, 2, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 4000, 6667, 10000, true, 40}},
          {"bob", {3, 3, 1, 1, 2, 1, 0, 0, 1, 0, 0, 0, 2, 2, 1, 6667, 6667, 3333, true, 125}},
          {"(none)", {1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, NONE, 0, false, 0}},
          {"carol", {1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 10000, false, 0}},
},
  want_policies[] = {
      {"standard", {7, 5, 4, 4, 2, 0, 2, 1, 0, 3, 1, 1, 0, 0, 0, 2857, 5000, 8000, true, 40}},
      {"premium", {3, 3, 1, 1, 2, 1, 0, 0, 1, 0, 0, 0, 2, 2, 1, 6667, 6667, 3333, true, 125}},
};

static const struct want_touch {
  const char *name;
  int64_t reached, sent, answers, renewals, owner_sent, attempted, dead, response, renewal, failure;
} want_tiers[] =
    {
        /* in ladder order: mean lead before expiry 30, 14, 13, 7 and 3 days */
        {"notice", 8, 9, 2, 2, 0, 9, 0, 2500, 2500, 0},
        {"reminder", 3, 3, 2, 2, 0, 4, 1, 6667, 6667, 2500},
        {"ops-alert", 0, 0, 0, 0, 0, 1, 0, NONE, NONE, 0},
        {"escalation", 0, 0, 0, 0, 2, 3, 1, NONE, NONE, 3333},
        {"final", 2, 2, 1, 0, 0, 2, 0, 5000, 0, 0},
},
  want_channels[] = {
      {"email", 8, 12, 4, 4, 0, 13, 1, 5000, 5000, 769},
      {"ops", 0, 0, 0, 0, 0, 1, 0, NONE, NONE, 0},
      {"owner-email", 0, 0, 0, 0, 2, 3, 1, NONE, NONE, 3333},
      {"sms", 1, 2, 1, 0, 0, 2, 0, 10000, 0, 0},
};

static void check_touches(const struct report_touch *g, size_t n, const struct want_touch *w,
                          size_t wn) {
  assert_int_equal(n, wn);
  for (size_t i = 0; i < n; i++) {
    print_message("touch %s\n", w[i].name);
    assert_string_equal(g[i].name, w[i].name);
    assert_int_equal(g[i].reached, w[i].reached);
    assert_int_equal(g[i].sent, w[i].sent);
    assert_int_equal(g[i].answers, w[i].answers);
    assert_int_equal(g[i].renewals, w[i].renewals);
    assert_int_equal(g[i].owner_sent, w[i].owner_sent);
    assert_int_equal(g[i].attempted, w[i].attempted);
    assert_int_equal(g[i].dead, w[i].dead);
    assert_int_equal(g[i].response_rate_bp, w[i].response);
    assert_int_equal(g[i].renewal_rate_bp, w[i].renewal);
    assert_int_equal(g[i].failure_rate_bp, w[i].failure);
  }
}

static const char *policy_of(const char *segment, void *ud) {
  return segment && streq(segment, "enterprise") ? "premium" : "standard";
}

struct fixture {
  struct store_tmp tmp;
  struct store *s;
  struct report *r;
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  store_tmp_make(&f->tmp, "report");
  build_fixture(f->tmp.path);
  char err[256];
  assert_int_equal(
      store_open(f->tmp.path, STORE_READONLY | STORE_NO_CREATE, &f->s, err, sizeof err), 0);
  struct report_options o = {
      .from = FROM, .until = UNTIL, .now = D(31), .by = REPORT_BY_TIER, .policy_of = policy_of};
  assert_int_equal(report_compute(f->s, &o, &f->r), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  f->r = report_free(f->r);
  f->s = store_free(f->s);
  store_tmp_remove(&f->tmp);
  free(f);
  return 0;
}

/* ---- tests --------------------------------------------------------------------- */

static void test_rate(void **state) {
  assert_int_equal(report_rate_bp(4, 7), 5714);
  assert_int_equal(report_rate_bp(2, 3), 6667);
  assert_int_equal(report_rate_bp(1, 8), 1250);
  assert_int_equal(report_rate_bp(1, 20000), 1); /* 0.5 bp rounds up */
  assert_int_equal(report_rate_bp(0, 5), 0);
  assert_int_equal(report_rate_bp(5, 5), 10000);
  assert_int_equal(report_rate_bp(3, 0), NONE);
  assert_int_equal(report_by_from_string("owner"), REPORT_BY_OWNER);
  assert_int_equal(report_by_from_string("tiers"), -EINVAL);
  assert_string_equal(report_by_to_string(REPORT_BY_POLICY), "policy");
}

/* The rows: terms of the period with their outbox rows and responses. */
struct rows_seen {
  char ids[16][8];
  int32_t terms[16];
  int64_t ended[16];
  size_t n_rem[16], n_resp[16];
  size_t n;
};

static int rows_cb(const struct store_report_term *t, void *ud) {
  struct rows_seen *w = ud;
  assert_true(w->n < 16);
  snprintf(w->ids[w->n], sizeof w->ids[w->n], "%s", t->contract_id);
  w->terms[w->n] = t->term;
  w->ended[w->n] = t->ended_at;
  w->n_rem[w->n] = t->n_reminders;
  w->n_resp[w->n] = t->n_responses;
  w->n++;
  return 0;
}

static int stop_cb(const struct store_report_term *t, void *ud) {
  return -ECANCELED;
}

static void test_rows(void **state) {
  struct fixture *f = *state;
  struct rows_seen w = {0};
  assert_int_equal(store_report_foreach_term(f->s, FROM, UNTIL, rows_cb, &w), 10);
  static const struct {
    const char *id;
    int32_t term;
    int64_t ended;
    size_t rem, resp;
  } want[] = {
      {"K01", 1, D(10) - 10 * DAY, 2, 1},
      {"K02", 1, 0, 5, 1},
      {"K03", 1, D(15) - 5 * DAY, 3, 1},
      {"K04", 1, 0, 4, 0},
      {"K05", 1, 0, 2, 3},
      {"K06", 1, 0, 1, 0},
      {"K07", 1, 0, 1, 1},
      {"K08", 1, D(5) - 20 * DAY, 1, 0},
      {"K09", 1, D(18) + 2 * DAY, 1, 1},
      {"K11", 2, 0, 0, 0},
  };
  assert_int_equal(w.n, ELEMENTSOF(want));
  for (size_t i = 0; i < w.n; i++) {
    assert_string_equal(w.ids[i], want[i].id);
    assert_int_equal(w.terms[i], want[i].term);
    assert_int_equal(w.ended[i], want[i].ended);
    assert_int_equal(w.n_rem[i], want[i].rem);
    assert_int_equal(w.n_resp[i], want[i].resp);
  }
  /* an empty period, a bad one */
  w.n = 0;
  assert_int_equal(store_report_foreach_term(f->s, D(40), D(41), rows_cb, &w), 0);
  assert_int_equal(store_report_foreach_term(f->s, D(2), D(1), rows_cb, &w), -EINVAL);
  /* the callback's error stops the walk */
  assert_int_equal(store_report_foreach_term(f->s, FROM, UNTIL, stop_cb, NULL), -ECANCELED);
}

static void test_funnel(void **state) {
  struct fixture *f = *state;
  check_funnel("total", &f->r->total, &want_total);
  assert_int_equal(f->r->from, FROM);
  assert_int_equal(f->r->until, UNTIL);
  assert_int_equal(f->r->generated_at, D(31));
  /* the outcomes partition the terms */
  const struct report_funnel *t = &f->r->total;
  assert_int_equal(t->renewed + t->declined + t->lapsed + t->open, t->terms);
}

static void test_reasons(void **state) {
  struct fixture *f = *state;
  assert_int_equal(f->r->n_reasons, 2);
  assert_string_equal(f->r->reasons[0].reason, "price");
  assert_int_equal(f->r->reasons[0].count, 1);
  assert_string_equal(f->r->reasons[1].reason, "switched-provider");
  assert_int_equal(f->r->reasons[1].count, 1);
}

static void test_tiers_channels(void **state) {
  struct fixture *f = *state;
  check_touches(f->r->tiers, f->r->n_tiers, want_tiers, ELEMENTSOF(want_tiers));
  check_touches(f->r->channels, f->r->n_channels, want_channels, ELEMENTSOF(want_channels));
}

static void test_groups(void **state) {
  struct fixture *f = *state;
  size_t n;
  const struct report_group *g = report_groups(f->r, REPORT_BY_SEGMENT, &n);
  assert_int_equal(n, ELEMENTSOF(want_segments));
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(g[i].name, want_segments[i].name);
    check_funnel(g[i].name, &g[i].f, &want_segments[i].f);
  }
  g = report_groups(f->r, REPORT_BY_OWNER, &n);
  assert_int_equal(n, ELEMENTSOF(want_owners));
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(g[i].name, want_owners[i].name);
    check_funnel(g[i].name, &g[i].f, &want_owners[i].f);
  }
  g = report_groups(f->r, REPORT_BY_POLICY, &n);
  assert_int_equal(n, ELEMENTSOF(want_policies));
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(g[i].name, want_policies[i].name);
    check_funnel(g[i].name, &g[i].f, &want_policies[i].f);
  }
  assert_null(report_groups(f->r, REPORT_BY_TIER, &n));
  assert_int_equal(n, 0);
}

static void test_weeks(void **state) {
  struct fixture *f = *state;
  static const int64_t want[][7] = {
      /* start, terms, reminded, prompted, renewed, renewal, response */
      {D(1), 1, 1, 0, 1, 10000, 0},    {D(8), 2, 2, 2, 1, 5000, 10000},
      {D(15), 3, 3, 2, 2, 6667, 6667}, {D(22), 3, 2, 1, 0, 0, 5000},
      {D(29), 1, 0, 0, 0, 0, NONE},
  };
  assert_int_equal(f->r->n_weeks, ELEMENTSOF(want));
  for (size_t i = 0; i < ELEMENTSOF(want); i++) {
    const struct report_week *w = &f->r->weeks[i];
    assert_int_equal(w->start, want[i][0]);
    assert_int_equal(w->terms, want[i][1]);
    assert_int_equal(w->reminded, want[i][2]);
    assert_int_equal(w->prompted, want[i][3]);
    assert_int_equal(w->renewed, want[i][4]);
    assert_int_equal(w->renewal_rate_bp, want[i][5]);
    assert_int_equal(w->response_rate_bp, want[i][6]);
  }
}

/* A period starting mid-week: weeks start on the Monday before; a week day
 * before `from` holds no term. */
static void test_period_edges(void **state) {
  struct fixture *f = *state;
  struct report *r = NULL;
  struct report_options o = {.from = D(10), .until = D(12), .now = D(31), .by = REPORT_BY_SEGMENT};
  assert_int_equal(report_compute(f->s, &o, &r), 0);
  assert_int_equal(r->total.terms, 1); /* K01 (March 10); K02 expires at the exclusive end */
  assert_int_equal(r->total.renewed, 1);
  assert_int_equal(r->n_weeks, 1);
  assert_int_equal(r->weeks[0].start, D(8));
  assert_int_equal(r->n_policies, 1);
  assert_string_equal(r->policies[0].name, "(none)"); /* no policy_of */
  r = report_free(r);

  /* an empty period: every rate absent, no median */
  o.from = D(100);
  o.until = D(107);
  assert_int_equal(report_compute(f->s, &o, &r), 0);
  assert_int_equal(r->total.terms, 0);
  assert_int_equal(r->total.renewal_rate_bp, NONE);
  assert_int_equal(r->total.response_rate_bp, NONE);
  assert_false(r->total.has_median);
  assert_int_equal(r->n_tiers + r->n_channels + r->n_segments + r->n_reasons, 0);
  r = report_free(r);

  struct report_builder *b = NULL;
  o.until = o.from;
  assert_int_equal(report_builder_new(&o, &b), -EINVAL);
  o.until = o.from + INT64_C(400) * 365 * DAY;
  assert_int_equal(report_builder_new(&o, &b), -ERANGE);
  assert_null(b);
}

/* Median of an odd count, a negative median, and attribution ties. Pure:
 * rows built by hand. */
static void test_builder_pure(void **state) {
  struct report_builder *b = NULL;
  struct report_options o = {.from = D(1), .until = D(32), .by = REPORT_BY_TIER};
  assert_int_equal(report_builder_new(&o, &b), 0);
  struct store_report_reminder m[] = {
      {.id = 7,
       .tier = "t",
       .channel = "sms",
       .audience = "customer",
       .status = REMINDER_SENT,
       .sent_at = D(1)},
      {.id = 5,
       .tier = "t",
       .channel = "email",
       .audience = "customer",
       .status = REMINDER_SENT,
       .sent_at = D(1)},
  };
  struct store_report_response renewed = {.id = 1, .kind = "renewed", .created_at = D(5) + 3600};
  /* leads: 1 h after expiry, 3 days after, 2 days before: median -1 h = -0.04 d -> 0.0 */
  struct store_report_term t = {.contract_id = "A",
                                .term = 1,
                                .expires_at = D(5),
                                .reminders = m,
                                .n_reminders = 2,
                                .responses = &renewed,
                                .n_responses = 1};
  assert_int_equal(report_builder_add(b, &t), 0);
  struct store_report_response late = {.id = 2, .kind = "renewed", .created_at = D(9)};
  t = (struct store_report_term){
      .contract_id = "B", .term = 1, .expires_at = D(6), .responses = &late, .n_responses = 1};
  assert_int_equal(report_builder_add(b, &t), 0);
  struct store_report_response early = {.id = 3, .kind = "renewed", .created_at = D(5)};
  t = (struct store_report_term){
      .contract_id = "C", .term = 1, .expires_at = D(7), .responses = &early, .n_responses = 1};
  assert_int_equal(report_builder_add(b, &t), 0);
  /* outside the period: ignored */
  t.expires_at = D(40);
  assert_int_equal(report_builder_add(b, &t), 0);
  struct report *r = NULL;
  assert_int_equal(report_builder_finish(b, &r), 0);
  b = report_builder_free(b);
  assert_int_equal(r->total.terms, 3);
  assert_int_equal(r->total.renewed, 3);
  assert_true(r->total.has_median);
  assert_int_equal(r->total.median_days_x10, 0); /* -3600 s = -0.0417 d rounds to 0.0 */
  /* same sent_at: the higher id (sms, 7) triggered the renewal */
  assert_int_equal(r->n_channels, 2);
  assert_string_equal(r->channels[0].name, "email");
  assert_int_equal(r->channels[0].renewals, 0);
  assert_string_equal(r->channels[1].name, "sms");
  assert_int_equal(r->channels[1].renewals, 1);
  assert_int_equal(r->channels[1].answers, 1);
  assert_int_equal(r->n_tiers, 1);
  assert_int_equal(r->tiers[0].reached, 1); /* two sends, one term */
  assert_int_equal(r->tiers[0].sent, 2);
  r = report_free(r);

  /* an even count: the mean of the two middle leads, rounded half away from zero */
  assert_int_equal(report_builder_new(&o, &b), 0);
  struct store_report_response r1 = {.id = 1, .kind = "renewed", .created_at = D(10) + 3 * DAY};
  struct store_report_response r2 = {
      .id = 2, .kind = "renewed", .created_at = D(10) + DAY + DAY / 4 + DAY / 4};
  t = (struct store_report_term){
      .contract_id = "A", .term = 1, .expires_at = D(10), .responses = &r1, .n_responses = 1};
  assert_int_equal(report_builder_add(b, &t), 0);
  t.contract_id = "B";
  t.responses = &r2;
  assert_int_equal(report_builder_add(b, &t), 0);
  assert_int_equal(report_builder_finish(b, &r), 0);
  b = report_builder_free(b);
  /* leads -3 d and -1.5 d: median -2.25 d -> -2.3 (half away from zero) */
  assert_int_equal(r->total.median_days_x10, -23);
  r = report_free(r);
}

/* ---- renderers: the same numbers in every format ------------------------------- */

static char *render(const struct report *r, int (*fn)(const struct report *, FILE *)) {
  char *data = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&data, &len);
  assert_non_null(f);
  assert_int_equal(fn(r, f), 0);
  assert_int_equal(fclose(f), 0);
  return data;
}

static void assert_contains(const char *hay, const char *needle) {
  if (!strstr(hay, needle))
    fail_msg("missing: [%s]", needle);
}

static void test_render_json(void **state) {
  struct fixture *f = *state;
  _cleanup_free_ char *j = render(f->r, report_render_json);
  static const char *const want[] = {
      "\"report_version\": 1,",
      "\"from\": \"2027-03-01\",",
      "\"to\": \"2027-03-31\",",
      "\"until_at\": \"2027-04-01T00:00:00Z\"",
      "\"by\": \"tier\",",
      "\"funnel\": {\n    \"terms\": 10,\n    \"reminded\": 8,\n    \"answered\": 5,\n"
      "    \"prompted\": 5,\n    \"renewed\": 4,\n    \"renewed_external\": 1,\n"
      "    \"declined\": 2,\n    \"lost\": 1,\n    \"lapsed\": 1,\n    \"open\": 3,\n"
      "    \"snoozed\": 1,\n    \"callback\": 1,\n    \"escalations\": 2,\n"
      "    \"escalated\": 2,\n    \"escalated_renewed\": 1,\n    \"renewal_rate\": 0.4000,\n"
      "    \"decided_renewal_rate\": 0.5714,\n    \"response_rate\": 0.6250,\n"
      "    \"median_days_before_expiry\": 7.5\n  }",
      "{\"reason\": \"price\", \"count\": 1},\n    {\"reason\": \"switched-provider\", \"count\": "
      "1}",
      "\"name\": \"escalation\",\n      \"reached\": 0,\n      \"sent\": 0,\n      \"answers\": "
      "0,\n"
      "      \"response_rate\": null,\n      \"renewals\": 0,\n      \"renewal_rate\": null,\n"
      "      \"owner_sent\": 2,\n      \"attempted\": 3,\n      \"dead\": 1,\n"
      "      \"failure_rate\": 0.3333",
      "\"name\": \"email\",\n      \"reached\": 8,\n      \"sent\": 12,\n      \"answers\": 4,\n"
      "      \"response_rate\": 0.5000,\n      \"renewals\": 4,\n      \"renewal_rate\": 0.5000,\n"
      "      \"owner_sent\": 0,\n      \"attempted\": 13,\n      \"dead\": 1,\n"
      "      \"failure_rate\": 0.0769",
      "\"name\": \"(none)\",\n      \"terms\": 1,",
      "\"decided_renewal_rate\": null,",
      "\"median_days_before_expiry\": 12.5",
      "\"start\": \"2027-03-29\",\n      \"terms\": 1,\n      \"reminded\": 0,\n"
      "      \"prompted\": 0,\n      \"renewed\": 0,\n      \"renewal_rate\": 0.0000,\n"
      "      \"response_rate\": null\n    }\n  ]\n}\n",
  };
  for (size_t i = 0; i < ELEMENTSOF(want); i++)
    assert_contains(j, want[i]);
}

static void test_render_csv(void **state) {
  struct fixture *f = *state;
  _cleanup_free_ char *c = render(f->r, report_render_csv);
  static const char *const want[] = {
      "section,name,metric,value\r\nperiod,,from,2027-03-01\r\nperiod,,to,2027-03-31\r\n",
      "funnel,,terms,10\r\n",
      ("funnel,,renewal_rate,0.4000\r\nfunnel,,decided_renewal_rate,0.5714\r\n"
       "funnel,,response_rate,0.6250\r\nfunnel,,median_days_before_expiry,7.5\r\n"),
      "reason,price,count,1\r\nreason,switched-provider,count,1\r\n",
      "tier,reminder,response_rate,0.6667\r\n",
      "tier,escalation,response_rate,\r\n",
      "channel,email,failure_rate,0.0769\r\n",
      "segment,enterprise,median_days_before_expiry,12.5\r\n",
      "segment,(none),decided_renewal_rate,\r\n",
      "owner,carol,lost,1\r\n",
      "policy,standard,renewal_rate,0.2857\r\n",
      "week,2027-03-15,renewal_rate,0.6667\r\n",
  };
  for (size_t i = 0; i < ELEMENTSOF(want); i++)
    assert_contains(c, want[i]);
}

static void test_render_table(void **state) {
  struct fixture *f = *state;
  _cleanup_free_ char *t = render(f->r, report_render_table);
  static const char *const want[] = {
      "Renewal report: terms expiring 2027-03-01 to 2027-03-31 (UTC)\n",
      "\nFunnel\n  terms expiring in the period                    10\n"
      "  reminded                                         8\n",
      "  renewed without an answer (new term by import)   1\n",
      "  open (undecided)                                 3\n",
      "\nRates\n  renewal rate (renewed / terms)                               40.00%\n"
      "  renewal rate of decided (renewed / renewed+declined+lapsed)  57.14%\n"
      "  response rate (answered after a reminder / reminded)         62.50%\n"
      "  median days before expiry at renewal                            7.5\n",
      "\nEscalations\n  escalations sent (owner alerts)  2\n  terms escalated                  2\n"
      "  escalated and renewed            1\n",
      "  REASON             COUNT\n  price                  1\n  switched-provider      1\n",
      "  TIER        REACHED  SENT  ANSWERS  RESPONSE  RENEWALS  RENEWAL  ESCAL.  ATTEMPTED  DEAD  "
      "FAILURE\n"
      "  notice            8     9        2    25.00%         2   25.00%       0          9     0"
      "    0.00%\n",
      "  escalation        0     0        0         -         0        -       2          3     1"
      "   33.33%\n",
      "  email              8    12        4    50.00%         4   50.00%       0         13     1"
      "    7.69%\n",
  };
  for (size_t i = 0; i < ELEMENTSOF(want); i++)
    assert_contains(t, want[i]);

  /* the owner breakdown */
  struct report copy = *f->r;
  copy.by = REPORT_BY_OWNER;
  _cleanup_free_ char *o = render(&copy, report_render_table);
  assert_contains(o, "By owner\n  OWNER   TERMS  REMINDED  ANSWERED  RENEWED  DECLINED  LAPSED  "
                     "OPEN  RESPONSE  RENEWAL  MEDIAN DAYS\n"
                     "  alice       5         3         3        2         1       0     2   "
                     "100.00%   40.00%          4.0\n");
  assert_contains(o, "  carol       1         1         1        0         1       0     0   "
                     "100.00%    0.00%            -\n");
}

static void test_render_html(void **state) {
  struct fixture *f = *state;
  _cleanup_free_ char *h = render(f->r, report_render_html);
  assert_true(strncmp(h, "<!DOCTYPE html>\n<html lang=\"en\">", 32) == 0);
  assert_contains(h, "data-chart=\"funnel\"");
  assert_contains(h, "<title>Renewal funnel</title>");
  assert_contains(h, "<title>Renewal and response rate per week of expiry</title>");
  assert_contains(h, "<div class=\"v\">40.00%</div>");
  assert_contains(h, "<div class=\"v\">7.5</div>");
  assert_contains(h, "notice 25.00% (2/8)");
  /* self-contained: no scripts, no external resources */
  assert_null(strstr(h, "<script"));
  assert_null(strstr(h, " src="));
  assert_null(strstr(h, " href="));
  assert_null(strstr(h, "url("));
}

/* Names from the store are escaped in every format. */
static void test_escaping(void **state) {
  struct report_builder *b = NULL;
  struct report_options o = {.from = D(1), .until = D(8), .by = REPORT_BY_SEGMENT};
  assert_int_equal(report_builder_new(&o, &b), 0);
  struct store_report_term t = {.contract_id = "A",
                                .term = 1,
                                .expires_at = D(2),
                                .segment = "a,\"b\"<c>&\n\xff",
                                .state = CONTRACT_ACTIVE};
  assert_int_equal(report_builder_add(b, &t), 0);
  struct report *r = NULL;
  assert_int_equal(report_builder_finish(b, &r), 0);
  b = report_builder_free(b);
  _cleanup_free_ char *j = render(r, report_render_json);
  assert_contains(j, "\"name\": \"a,\\\"b\\\"<c>&\\u000a\\ufffd\"");
  _cleanup_free_ char *c = render(r, report_render_csv);
  assert_contains(c, "segment,\"a,\"\"b\"\"<c>&\n\xef\xbf\xbd\",terms,1\r\n");
  _cleanup_free_ char *h = render(r, report_render_html);
  assert_contains(h, "a,&quot;b&quot;&lt;c&gt;&amp;?\xef\xbf\xbd");
  assert_null(strstr(h, "<c>"));
  _cleanup_free_ char *tt = render(r, report_render_table);
  assert_contains(tt, "  a,\"b\"<c>&??      1");
  r = report_free(r);
}

/* security: CSV cells that a spreadsheet would run as a formula start with
 * ' (a leading TAB or CR used to slip through: some spreadsheets skip it). */
static void test_csv_formula(void **state) {
  static const struct {
    const char *segment, *cell;
  } t[] = {
      {"=HYPERLINK(\"http://x\")", "segment,\"'=HYPERLINK(\"\"http://x\"\")\",terms,1\r\n"},
      {"+1+1", "segment,'+1+1,terms,1\r\n"},
      {"-2+3", "segment,'-2+3,terms,1\r\n"},
      {"@SUM(A1)", "segment,'@SUM(A1),terms,1\r\n"},
      {"\t=1+2", "segment,'\t=1+2,terms,1\r\n"},
      {"\r=1+2", "segment,\"'\r=1+2\",terms,1\r\n"},
      {"smb", "segment,smb,terms,1\r\n"},
  };
  for (size_t i = 0; i < ELEMENTSOF(t); i++) {
    struct report_builder *b = NULL;
    struct report_options o = {.from = D(1), .until = D(8), .by = REPORT_BY_SEGMENT};
    assert_int_equal(report_builder_new(&o, &b), 0);
    struct store_report_term term = {.contract_id = "A",
                                     .term = 1,
                                     .expires_at = D(2),
                                     .segment = t[i].segment,
                                     .state = CONTRACT_ACTIVE};
    assert_int_equal(report_builder_add(b, &term), 0);
    struct report *r = NULL;
    assert_int_equal(report_builder_finish(b, &r), 0);
    b = report_builder_free(b);
    _cleanup_free_ char *c = render(r, report_render_csv);
    assert_contains(c, t[i].cell);
    r = report_free(r);
  }
}

int main(int argc, char **argv) {
  if (argc == 3 && streq(argv[1], "--make-fixture")) {
    unlink(argv[2]);
    build_fixture(argv[2]);
    return 0;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rate),
      cmocka_unit_test(test_builder_pure),
      cmocka_unit_test(test_escaping),
      cmocka_unit_test(test_csv_formula),
      cmocka_unit_test_setup_teardown(test_rows, setup, teardown),
      cmocka_unit_test_setup_teardown(test_funnel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reasons, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tiers_channels, setup, teardown),
      cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
      cmocka_unit_test_setup_teardown(test_weeks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_period_edges, setup, teardown),
      cmocka_unit_test_setup_teardown(test_render_json, setup, teardown),
      cmocka_unit_test_setup_teardown(test_render_csv, setup, teardown),
      cmocka_unit_test_setup_teardown(test_render_table, setup, teardown),
      cmocka_unit_test_setup_teardown(test_render_html, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
