/* Unit tests for core/lifecycle: the transition table (all 80 state x answer
 * pairs, each applied to a real contract), refusals with their exact messages
 * and nothing changed, idempotency (caller keys and derived ones), renewals
 * starting a new term, owner alert rows (also for a renewal through the
 * customer's link), opt-outs, snooze limits, reasons, the one-transaction
 * guarantee, and the customer's one-click renewal: where the current term
 * began and the expiry "another term" gives, in calendar months in real
 * zones (DST, month ends, a midnight that does not exist). Every test works
 * on a real SQLite file in its own mkdtemp() directory, removed afterwards. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <unistd.h>

#include "core/cal.h"
#include "core/lifecycle.h"
#include "core/store.h"
#include "core/util.h"
#include "storetmp.h"

#define T0 INT64_C(1790000000) /* 2026-09-21T14:13:20Z */
#define DAY INT64_C(86400)
#define EXPIRES (T0 + 60 * DAY)

struct fixture {
  struct store_tmp tmp;
  struct store *s;
};

static void add_owner(struct store *s, const char *id, const char *email, const char *phone) {
  struct owner o = {.id = (char *)id,
                    .email = (char *)email,
                    .phone = (char *)phone,
                    .tz = (char *)"Europe/Berlin"};
  assert_true(store_owner_upsert(s, &o, T0 - DAY) >= 0);
}

static void add_customer(struct store *s, const char *id, const char *owner) {
  struct customer cu = {.id = (char *)id,
                        .name = (char *)"Customer",
                        .email = (char *)"customer@example.com",
                        .phone = (char *)"+4915112345678",
                        .tz = (char *)"Europe/Berlin",
                        .owner_id = (char *)owner};
  assert_true(store_customer_upsert(s, &cu, T0 - DAY) >= 0);
}

static void add_contract(struct store *s, const char *id, const char *customer) {
  struct contract c = {.id = (char *)id,
                       .customer_id = (char *)customer,
                       .product = (char *)"p",
                       .expires_at = EXPIRES};
  assert_int_equal(store_contract_upsert(s, &c, T0 - DAY), STORE_INSERTED);
}

/* Puts contract id into state (with state_until), as the daemon would. */
static void set_state(struct store *s, const char *id, enum contract_state st, int64_t until) {
  struct contract c = {0};
  assert_int_equal(store_contract_get(s, id, &c), 0);
  c.state = st;
  c.state_until = until;
  assert_int_equal(store_contract_set_state(s, &c, NULL, NULL, T0 - DAY), 0);
  contract_clear(&c);
}

static int64_t add_reminder(struct store *s, const char *id, int32_t term, const char *tier,
                            const char *audience, enum reminder_status st) {
  struct reminder r = {.contract_id = (char *)id,
                       .term = term,
                       .tier = (char *)tier,
                       .channel = (char *)"email",
                       .audience = (char *)audience,
                       .recipient = (char *)"x@example.com",
                       .due_at = T0,
                       .status = st};
  int64_t rid;
  assert_int_equal(store_reminder_insert(s, &r, T0 - DAY, &rid), 0);
  return rid;
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  store_tmp_open(&f->tmp, "lifecycle", &f->s);
  add_owner(f->s, "own-1", "owner@example.com", "+4930123456");
  add_owner(f->s, "desk", "desk@example.com", NULL);
  add_customer(f->s, "cu-1", "own-1");
  add_customer(f->s, "cu-2", NULL);
  add_contract(f->s, "C-1", "cu-1");
  add_contract(f->s, "C-2", "cu-2");
  add_contract(f->s, "C-3", NULL);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  f->s = store_free(f->s);
  store_tmp_remove(&f->tmp);
  free(f);
  return 0;
}

/* ---- snapshots: everything an answer may touch ------------------------------ */

struct snap {
  enum contract_state state;
  int32_t term;
  int64_t expires_at, state_until, ladder_id, change_seq;
  int n_responses, n_events, n_store_events;
  int64_t counts[_REMINDER_STATUS_MAX];
  unsigned optout; /* of cu-1: its own bits, and OPTOUT_EMAIL/OPTOUT_SMS while its
                      address is suppressed */
};

static int count_resp(const struct response *r, void *ud) {
  (*(int *)ud)++;
  return 0;
}
static int count_ev(const struct event *e, void *ud) {
  (*(int *)ud)++;
  return 0;
}

static void take_snap(struct store *s, const char *id, struct snap *sn) {
  struct contract c = {0};
  struct customer cu = {0};
  *sn = (struct snap){0};
  assert_int_equal(store_contract_get(s, id, &c), 0);
  sn->state = c.state;
  sn->term = c.term;
  sn->expires_at = c.expires_at;
  sn->state_until = c.state_until;
  sn->ladder_id = c.ladder_id;
  sn->change_seq = c.change_seq;
  contract_clear(&c);
  assert_true(store_response_foreach_contract(s, id, -1, count_resp, &sn->n_responses) >= 0);
  assert_true(store_event_foreach_contract(s, id, count_ev, &sn->n_events) >= 0);
  assert_true(store_event_foreach_contract(s, NULL, count_ev, &sn->n_store_events) >= 0);
  assert_int_equal(store_reminder_count_by_status(s, sn->counts), 0);
  assert_int_equal(store_customer_get(s, "cu-1", &cu), 0);
  sn->optout = cu.optout;
  if (store_suppression_check(s, SUPPRESS_EMAIL, cu.email, NULL) > 0)
    sn->optout |= OPTOUT_EMAIL;
  if (store_suppression_check(s, SUPPRESS_SMS, cu.phone, NULL) > 0)
    sn->optout |= OPTOUT_SMS;
  customer_clear(&cu);
}

static void assert_snap_equal(const struct snap *a, const struct snap *b) {
  assert_int_equal(a->state, b->state);
  assert_int_equal(a->term, b->term);
  assert_int_equal(a->expires_at, b->expires_at);
  assert_int_equal(a->state_until, b->state_until);
  assert_int_equal(a->ladder_id, b->ladder_id);
  assert_int_equal(a->change_seq, b->change_seq);
  assert_int_equal(a->n_responses, b->n_responses);
  assert_int_equal(a->n_events, b->n_events);
  assert_int_equal(a->n_store_events, b->n_store_events);
  for (size_t i = 0; i < _REMINDER_STATUS_MAX; i++)
    assert_int_equal(a->counts[i], b->counts[i]);
  assert_int_equal(a->optout, b->optout);
}

/* Collects reminders of a contract. */
struct rows {
  struct reminder v[16];
  size_t n;
};
static int collect_rm(const struct reminder *r, void *ud) {
  struct rows *w = ud;
  assert_true(w->n < ELEMENTSOF(w->v));
  struct reminder *d = &w->v[w->n++];
  *d = *r;
  d->contract_id = strdup_or_null(r->contract_id);
  d->tier = strdup_or_null(r->tier);
  d->channel = strdup_or_null(r->channel);
  d->audience = strdup_or_null(r->audience);
  d->recipient = strdup_or_null(r->recipient);
  d->last_error = strdup_or_null(r->last_error);
  d->provider_id = strdup_or_null(r->provider_id);
  return 0;
}
static void rows_done(struct rows *w) {
  for (size_t i = 0; i < w->n; i++)
    reminder_clear(&w->v[i]);
  w->n = 0;
}

/* Event kinds of a contract joined with ' '. */
struct evlist {
  char text[1024];
};
static int collect_ev(const struct event *e, void *ud) {
  struct evlist *l = ud;
  size_t n = strlen(l->text);
  snprintf(l->text + n, sizeof l->text - n, "%s%s", n ? " " : "", e->kind);
  return 0;
}
static void events_of(struct store *s, const char *id, struct evlist *l) {
  l->text[0] = 0;
  assert_true(store_event_foreach_contract(s, id, collect_ev, l) >= 0);
}

/* The detail of the last event of that kind ("" when none). */
struct evdetail {
  const char *kind;
  char *out;
  size_t n;
};
static int detail_ev(const struct event *e, void *ud) {
  struct evdetail *d = ud;
  if (streq_ptr(e->kind, d->kind))
    snprintf(d->out, d->n, "%s", e->detail ? e->detail : "");
  return 0;
}
static void last_detail(struct store *s, const char *id, const char *kind, char *out, size_t n) {
  struct evdetail d = {.kind = kind, .out = out, .n = n};
  out[0] = 0;
  assert_true(store_event_foreach_contract(s, id, detail_ev, &d) >= 0);
}

static struct lifecycle_answer answer(const char *id, enum lifecycle_kind k) {
  return (struct lifecycle_answer){.contract_id = id, .kind = k, .source = LIFECYCLE_SOURCE_LINK};
}

/* ---- names ------------------------------------------------------------------- */

static void test_names(void **state) {
  static const char *const kinds[] = {"renewed", "declined",     "snoozed",      "callback",
                                      "lost",    "renew_intent", "unsubscribed", "resubscribed",
                                      "message", "help"};
  for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
    assert_string_equal(lifecycle_kind_to_string((enum lifecycle_kind)k), kinds[k]);
    assert_int_equal(lifecycle_kind_from_string(kinds[k]), (int)k);
  }
  assert_int_equal(lifecycle_kind_from_string("renew-intent"), LIFECYCLE_RENEW_INTENT);
  assert_int_equal(lifecycle_kind_from_string("Renewed"), -EINVAL);
  assert_int_equal(lifecycle_kind_from_string(""), -EINVAL);
  assert_int_equal(lifecycle_kind_from_string(NULL), -EINVAL);
  assert_null(lifecycle_kind_to_string(_LIFECYCLE_KIND_MAX));

  static const char *const sources[] = {"link", "sms", "api", "renewctl", "owner-link"};
  for (size_t k = 0; k < ELEMENTSOF(sources); k++) {
    assert_string_equal(lifecycle_source_to_string((enum lifecycle_source)k), sources[k]);
    assert_int_equal(lifecycle_source_from_string(sources[k]), (int)k);
  }
  assert_int_equal(lifecycle_source_from_string("email"), -EINVAL);
  assert_null(lifecycle_source_to_string(_LIFECYCLE_SOURCE_MAX));

  static const char *const reasons[] = {"price",  "switched-provider", "no-longer-needed",
                                        "budget", "missing-features",  "other"};
  for (size_t i = 0; i < ELEMENTSOF(reasons); i++) {
    assert_string_equal(lifecycle_reason_name(i), reasons[i]);
    assert_true(lifecycle_reason_valid(reasons[i]));
  }
  assert_null(lifecycle_reason_name(ELEMENTSOF(reasons)));
  assert_false(lifecycle_reason_valid("Price"));
  assert_false(lifecycle_reason_valid(""));
  assert_false(lifecycle_reason_valid(NULL));
}

/* ---- the table ------------------------------------------------------------------ */

/* Expected table, written out independently of lifecycle.c. One string per
 * kind, one letter per state (active reminding renewed declined snoozed
 * callback lapsed closed): N new term (active), K keep the state, D declined,
 * S snoozed, C callback, X closed, - refused, = already there. */
static const char *const expected_table[_LIFECYCLE_KIND_MAX] = {
    [LIFECYCLE_RENEWED] = "NNNNNNNN",      [LIFECYCLE_DECLINED] = "DD-=DDD-",
    [LIFECYCLE_SNOOZED] = "SS--SS--",      [LIFECYCLE_CALLBACK] = "CC--C=C-",
    [LIFECYCLE_LOST] = "XX--XXX=",         [LIFECYCLE_RENEW_INTENT] = "KK=KKKKK",
    [LIFECYCLE_UNSUBSCRIBED] = "KKKKKKKK", [LIFECYCLE_RESUBSCRIBED] = "KKKKKKKK",
    [LIFECYCLE_MESSAGE] = "KKKKKKKK",      [LIFECYCLE_HELP] = "KKKKKKKK",
};

static enum contract_state letter_state(char l, enum contract_state cur) {
  switch (l) {
  case 'N':
    return CONTRACT_ACTIVE;
  case 'D':
    return CONTRACT_DECLINED;
  case 'S':
    return CONTRACT_SNOOZED;
  case 'C':
    return CONTRACT_CALLBACK;
  case 'X':
    return CONTRACT_CLOSED;
  default:
    return cur;
  }
}

static void test_table(void **state) {
  for (int k = 0; k < _LIFECYCLE_KIND_MAX; k++)
    for (int st = 0; st < _CONTRACT_STATE_MAX; st++) {
      char l = expected_table[k][st];
      enum contract_state next = (enum contract_state)99;
      int v = lifecycle_can((enum contract_state)st, (enum lifecycle_kind)k, &next);
      if (l == '-') {
        assert_int_equal(v, LIFECYCLE_REFUSED);
        assert_int_equal(next, 99); /* untouched */
      } else if (l == '=') {
        assert_int_equal(v, LIFECYCLE_ALREADY);
        assert_int_equal(next, st);
      } else {
        assert_int_equal(v, LIFECYCLE_ALLOWED);
        assert_int_equal(next, letter_state(l, (enum contract_state)st));
      }
    }
  assert_int_equal(lifecycle_can(_CONTRACT_STATE_MAX, LIFECYCLE_HELP, NULL), -EINVAL);
  assert_int_equal(lifecycle_can(CONTRACT_ACTIVE, _LIFECYCLE_KIND_MAX, NULL), -EINVAL);
  for (int src = 0; src < _LIFECYCLE_SOURCE_MAX; src++) {
    assert_true(lifecycle_alerts_owner(LIFECYCLE_CALLBACK, src));
    assert_true(lifecycle_alerts_owner(LIFECYCLE_RENEW_INTENT, src));
    assert_true(lifecycle_alerts_owner(LIFECYCLE_MESSAGE, src));
    assert_false(lifecycle_alerts_owner(LIFECYCLE_DECLINED, src));
    assert_false(lifecycle_alerts_owner(LIFECYCLE_HELP, src));
    /* a renewal alerts the owner only when the customer did it by link */
    assert_int_equal(lifecycle_alerts_owner(LIFECYCLE_RENEWED, src), src == LIFECYCLE_SOURCE_LINK);
  }
}

/* A valid answer of kind k for contract id. */
static struct lifecycle_answer valid_answer(const char *id, enum lifecycle_kind k) {
  struct lifecycle_answer a = answer(id, k);
  a.source = LIFECYCLE_SOURCE_API;
  switch (k) {
  case LIFECYCLE_RENEWED:
    a.new_expires_at = EXPIRES + 365 * DAY;
    break;
  case LIFECYCLE_DECLINED:
    a.reason = "price";
    break;
  case LIFECYCLE_LOST:
    a.reason = "budget";
    break;
  case LIFECYCLE_SNOOZED:
    a.until = T0 + 10 * DAY;
    break;
  case LIFECYCLE_UNSUBSCRIBED:
  case LIFECYCLE_RESUBSCRIBED:
    a.channel = "email";
    break;
  case LIFECYCLE_MESSAGE:
    a.detail = "please call after 5";
    break;
  default:
    break;
  }
  return a;
}

/* Every pair of the table applied to a fresh contract in that state. */
static void test_every_pair_applied(void **state) {
  struct fixture *f = *state;
  static const char *const state_events[_LIFECYCLE_KIND_MAX] = {
      [LIFECYCLE_RENEWED] = "contract.renewed", [LIFECYCLE_DECLINED] = "contract.declined",
      [LIFECYCLE_SNOOZED] = "contract.snoozed", [LIFECYCLE_CALLBACK] = "contract.callback",
      [LIFECYCLE_LOST] = "contract.closed",
  };
  for (int k = 0; k < _LIFECYCLE_KIND_MAX; k++)
    for (int st = 0; st < _CONTRACT_STATE_MAX; st++) {
      char id[64], err[256] = "x";
      snprintf(id, sizeof id, "X-%d-%d", k, st);
      add_contract(f->s, id, "cu-1");
      set_state(f->s, id, (enum contract_state)st,
                st == CONTRACT_SNOOZED || st == CONTRACT_CALLBACK ? T0 + DAY : 0);
      /* a clean opt-out state for (un)subscribe */
      assert_int_equal(store_customer_set_optout(
                           f->s, "cu-1", k == LIFECYCLE_RESUBSCRIBED ? OPTOUT_EMAIL : 0, T0 - DAY),
                       0);
      struct snap before, after;
      take_snap(f->s, id, &before);
      struct lifecycle_answer a = valid_answer(id, (enum lifecycle_kind)k);
      struct lifecycle_result res = {0};
      int r = lifecycle_apply(f->s, &a, T0, &res, err, sizeof err);
      char l = expected_table[k][st];
      take_snap(f->s, id, &after);
      if (l == '-' || l == '=') {
        assert_int_equal(r, l == '-' ? -EPERM : -EALREADY);
        assert_snap_equal(&before, &after);
        assert_int_equal(res.response_id, 0); /* untouched */
        continue;
      }
      if (r != 0)
        fail_msg("%s in %s: %d %s", lifecycle_kind_to_string(k), contract_state_to_string(st), r,
                 err);
      assert_string_equal(err, "");
      enum contract_state want = letter_state(l, (enum contract_state)st);
      assert_int_equal(res.previous_state, st);
      assert_int_equal(res.new_state, want);
      assert_int_equal(after.state, want);
      assert_false(res.already_recorded);
      assert_int_equal(after.n_responses, before.n_responses + 1);
      assert_true(res.response_id > 0);
      assert_int_equal(res.response.id, res.response_id);
      assert_string_equal(res.response.kind, lifecycle_kind_to_string(k));
      assert_string_equal(res.response.source, "api");
      assert_int_equal(res.response.term, 1);
      assert_int_equal(res.new_term, l == 'N');
      assert_int_equal(after.term, l == 'N' ? 2 : 1);
      assert_int_equal(res.term, after.term);
      /* events: answer.<kind>, then contract.<state> when the state changes */
      struct evlist ev;
      events_of(f->s, id, &ev);
      char want_ev[128];
      snprintf(want_ev, sizeof want_ev, "answer.%s%s%s", lifecycle_kind_to_string(k),
               state_events[k] ? " " : "", state_events[k] ? state_events[k] : "");
      assert_string_equal(ev.text, want_ev);
      if (state_events[k])
        assert_true(after.change_seq > before.change_seq);
      if (l == 'K' && k != LIFECYCLE_UNSUBSCRIBED && k != LIFECYCLE_RESUBSCRIBED)
        assert_int_equal(after.change_seq, before.change_seq);
      if (k == LIFECYCLE_UNSUBSCRIBED)
        assert_int_equal(after.optout, OPTOUT_EMAIL);
      if (k == LIFECYCLE_RESUBSCRIBED)
        assert_int_equal(after.optout, 0);
      assert_int_equal(res.alert_owner, lifecycle_alerts_owner(k, a.source));
      lifecycle_result_clear(&res);
    }
}

/* ---- refusals ------------------------------------------------------------------- */

static void test_refused_messages(void **state) {
  struct fixture *f = *state;
  struct lifecycle_result res = {0};
  char err[256];
  struct snap before, after;

  set_state(f->s, "C-1", CONTRACT_DECLINED, 0);
  take_snap(f->s, "C-1", &before);
  struct lifecycle_answer a = valid_answer("C-1", LIFECYCLE_SNOOZED);
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EPERM);
  assert_string_equal(err, "contract C-1 is declined: snoozed is not allowed (allowed: renewed, "
                           "renew_intent, unsubscribed, resubscribed, message, help)");
  a = valid_answer("C-1", LIFECYCLE_DECLINED);
  a.reason = "budget";
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EALREADY);
  assert_string_equal(err, "contract C-1 is already declined: declined is not recorded again "
                           "(allowed: renewed, renew_intent, unsubscribed, resubscribed, "
                           "message, help)");
  take_snap(f->s, "C-1", &after);
  assert_snap_equal(&before, &after);

  set_state(f->s, "C-2", CONTRACT_CLOSED, 0);
  a = valid_answer("C-2", LIFECYCLE_CALLBACK);
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EPERM);
  assert_string_equal(err, "contract C-2 is closed: callback is not allowed (allowed: renewed, "
                           "renew_intent, unsubscribed, resubscribed, message, help)");

  /* lost is for the owner and staff */
  take_snap(f->s, "C-3", &before);
  a = valid_answer("C-3", LIFECYCLE_LOST);
  a.source = LIFECYCLE_SOURCE_SMS;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EPERM);
  assert_string_equal(err, "contract C-3: lost is recorded by the owner or staff, not from a "
                           "customer's SMS");
  a.source = LIFECYCLE_SOURCE_LINK;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EPERM);
  take_snap(f->s, "C-3", &after);
  assert_snap_equal(&before, &after);

  /* missing contract, bad arguments */
  a = valid_answer("NOPE", LIFECYCLE_DECLINED);
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -ENOENT);
  assert_string_equal(err, "no contract 'NOPE'");
  a.kind = _LIFECYCLE_KIND_MAX;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EINVAL);
  assert_int_equal(lifecycle_apply(f->s, NULL, T0, &res, NULL, 0), -EINVAL);
  assert_int_equal(res.response_id, 0);
}

/* ---- idempotency ------------------------------------------------------------------ */

static void test_idempotent_derived(void **state) {
  struct fixture *f = *state;
  struct lifecycle_result r1 = {0}, r2 = {0}, r3 = {0};
  char err[256];
  struct snap s1, s2;

  set_state(f->s, "C-1", CONTRACT_REMINDING, 0);
  struct lifecycle_answer a = valid_answer("C-1", LIFECYCLE_SNOOZED);
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &r1, err, sizeof err), 0);
  assert_false(r1.already_recorded);
  assert_int_equal(r1.new_state, CONTRACT_SNOOZED);
  assert_non_null(r1.response.idem_key);
  assert_int_equal(strlen(r1.response.idem_key), 35);
  assert_memory_equal(r1.response.idem_key, "lc-", 3);
  take_snap(f->s, "C-1", &s1);

  /* the same answer again (later, through SMS): nothing changes */
  a.source = LIFECYCLE_SOURCE_SMS;
  assert_int_equal(lifecycle_apply(f->s, &a, T0 + 60, &r2, err, sizeof err), 0);
  assert_true(r2.already_recorded);
  assert_int_equal(r2.response_id, r1.response_id);
  assert_int_equal(r2.response.id, r1.response_id);
  assert_string_equal(r2.response.source, "api"); /* the original's, not "sms" */
  assert_int_equal(r2.response.until_at, T0 + 10 * DAY);
  assert_int_equal(r2.previous_state, CONTRACT_SNOOZED);
  assert_int_equal(r2.new_state, CONTRACT_SNOOZED);
  assert_false(r2.alert_owner);
  take_snap(f->s, "C-1", &s2);
  assert_snap_equal(&s1, &s2);
  assert_int_equal(s2.n_responses, 1);

  /* another date is another answer: snoozed -> snoozed */
  a.until = T0 + 20 * DAY;
  assert_int_equal(lifecycle_apply(f->s, &a, T0 + 120, &r3, err, sizeof err), 0);
  assert_false(r3.already_recorded);
  assert_int_equal(r3.previous_state, CONTRACT_SNOOZED);
  assert_int_equal(r3.state_until, T0 + 20 * DAY);
  assert_string_not_equal(r3.response.idem_key, r1.response.idem_key);
  lifecycle_result_clear(&r1);
  lifecycle_result_clear(&r2);
  lifecycle_result_clear(&r3);

  /* unsubscribe, resubscribe, unsubscribe: three answers, not a repeat */
  a = valid_answer("C-1", LIFECYCLE_UNSUBSCRIBED);
  a.channel = "sms";
  struct lifecycle_answer b = valid_answer("C-1", LIFECYCLE_RESUBSCRIBED);
  b.channel = "sms";
  struct snap sn;
  assert_int_equal(lifecycle_apply(f->s, &a, T0 + 200, &r1, err, sizeof err), 0);
  take_snap(f->s, "C-1", &sn);
  assert_int_equal(sn.optout, OPTOUT_SMS);
  assert_int_equal(lifecycle_apply(f->s, &a, T0 + 201, &r2, err, sizeof err), 0);
  assert_true(r2.already_recorded);
  lifecycle_result_clear(&r2);
  assert_int_equal(lifecycle_apply(f->s, &b, T0 + 202, &r2, err, sizeof err), 0);
  assert_false(r2.already_recorded);
  take_snap(f->s, "C-1", &sn);
  assert_int_equal(sn.optout, 0);
  assert_int_equal(lifecycle_apply(f->s, &a, T0 + 203, &r3, err, sizeof err), 0);
  assert_false(r3.already_recorded);
  take_snap(f->s, "C-1", &sn);
  assert_int_equal(sn.optout, OPTOUT_SMS);
  assert_int_equal(sn.n_responses, 5);
  lifecycle_result_clear(&r1);
  lifecycle_result_clear(&r2);
  lifecycle_result_clear(&r3);
}

static void test_idempotent_key(void **state) {
  struct fixture *f = *state;
  struct lifecycle_result r1 = {0}, r2 = {0};
  char err[256];
  struct snap s1, s2;

  set_state(f->s, "C-1", CONTRACT_REMINDING, 0);
  add_reminder(f->s, "C-1", 1, "notice", "customer", REMINDER_PENDING);
  struct lifecycle_answer a = valid_answer("C-1", LIFECYCLE_DECLINED);
  a.idem_key = "tok-1";
  a.detail = "too expensive";
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &r1, err, sizeof err), 0);
  assert_string_equal(r1.response.idem_key, "tok-1");
  assert_int_equal(r1.cancelled, 1);
  take_snap(f->s, "C-1", &s1);
  assert_int_equal(s1.n_responses, 1);
  assert_int_equal(s1.n_events, 2); /* answer.declined, contract.declined */

  /* the same key with other values: the original wins */
  a.reason = "other";
  assert_int_equal(lifecycle_apply(f->s, &a, T0 + 5, &r2, err, sizeof err), 0);
  assert_true(r2.already_recorded);
  assert_int_equal(r2.response_id, r1.response_id);
  assert_string_equal(r2.response.reason, "price");
  assert_string_equal(r2.response.detail, "too expensive");
  assert_int_equal(r2.cancelled, 0);
  take_snap(f->s, "C-1", &s2);
  assert_snap_equal(&s1, &s2);
  lifecycle_result_clear(&r2);

  /* the same key for another answer or contract: refused, nothing changed */
  struct lifecycle_answer b = valid_answer("C-1", LIFECYCLE_RENEWED);
  b.idem_key = "tok-1";
  assert_int_equal(lifecycle_apply(f->s, &b, T0 + 6, &r2, err, sizeof err), -EEXIST);
  assert_string_equal(err, "contract C-1: idempotency key 'tok-1' was already used for a "
                           "declined answer (response 1)");
  take_snap(f->s, "C-1", &s2);
  assert_snap_equal(&s1, &s2);
  take_snap(f->s, "C-2", &s1);
  b.contract_id = "C-2";
  assert_int_equal(lifecycle_apply(f->s, &b, T0 + 7, &r2, err, sizeof err), -EEXIST);
  assert_string_equal(err, "contract C-2: idempotency key 'tok-1' was already used for another "
                           "contract");
  take_snap(f->s, "C-2", &s2);
  assert_snap_equal(&s1, &s2);
  lifecycle_result_clear(&r1);
}

/* ---- renewed ----------------------------------------------------------------------- */

static void test_renewed_new_term(void **state) {
  struct fixture *f = *state;
  struct lifecycle_result res = {0};
  char err[256];
  int64_t ladder;

  assert_int_equal(store_ladder_intern(f->s, "ladder/1 policy=x", &ladder), 0);
  struct contract c = {0};
  assert_int_equal(store_contract_get(f->s, "C-1", &c), 0);
  c.state = CONTRACT_REMINDING;
  c.ladder_id = ladder;
  assert_int_equal(store_contract_set_state(f->s, &c, NULL, NULL, T0 - DAY), 0);
  contract_clear(&c);
  int64_t sent = add_reminder(f->s, "C-1", 1, "notice", "customer", REMINDER_SENT);
  int64_t pend = add_reminder(f->s, "C-1", 1, "reminder", "customer", REMINDER_PENDING);
  int64_t retry = add_reminder(f->s, "C-1", 1, "final", "customer", REMINDER_RETRY);
  int64_t owner = add_reminder(f->s, "C-1", 1, "escalation", "owner", REMINDER_PENDING);

  /* not later than the current expiry */
  struct lifecycle_answer a = valid_answer("C-1", LIFECYCLE_RENEWED);
  a.source = LIFECYCLE_SOURCE_RENEWCTL;
  a.new_expires_at = EXPIRES;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EINVAL);
  assert_string_equal(err, "contract C-1: the new expiry 2026-11-20T14:13:20Z is not later than "
                           "the current one 2026-11-20T14:13:20Z");
  a.new_expires_at = 0;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EINVAL);
  assert_string_equal(err, "contract C-1: renewed needs the new expiry");

  a.new_expires_at = EXPIRES + 365 * DAY;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), 0);
  assert_true(res.new_term);
  assert_int_equal(res.previous_state, CONTRACT_REMINDING);
  assert_int_equal(res.new_state, CONTRACT_ACTIVE);
  assert_int_equal(res.term, 2);
  assert_int_equal(res.expires_at, EXPIRES + 365 * DAY);
  assert_int_equal(res.cancelled, 3);
  assert_false(res.alert_owner);
  assert_int_equal(res.response.term, 1); /* the answer belongs to the term it ended */
  assert_int_equal(res.response.new_expires_at, EXPIRES + 365 * DAY);
  assert_string_equal(res.response.source, "renewctl");
  lifecycle_result_clear(&res);

  assert_int_equal(store_contract_get(f->s, "C-1", &c), 0);
  assert_int_equal(c.term, 2);
  assert_int_equal(c.state, CONTRACT_ACTIVE);
  assert_int_equal(c.expires_at, EXPIRES + 365 * DAY);
  assert_int_equal(c.state_until, 0);
  assert_int_equal(c.ladder_id, 0);
  contract_clear(&c);
  struct reminder rm = {0};
  const struct {
    int64_t id;
    enum reminder_status st;
  } want[] = {{sent, REMINDER_SENT},
              {pend, REMINDER_CANCELLED},
              {retry, REMINDER_CANCELLED},
              {owner, REMINDER_CANCELLED}};
  for (size_t i = 0; i < ELEMENTSOF(want); i++) {
    assert_int_equal(store_reminder_get(f->s, want[i].id, &rm), 0);
    assert_int_equal(rm.status, want[i].st);
    reminder_clear(&rm);
  }
  struct evlist ev;
  events_of(f->s, "C-1", &ev);
  assert_string_equal(ev.text, "answer.renewed contract.renewed");
  char detail[256];
  last_detail(f->s, "C-1", "contract.renewed", detail, sizeof detail);
  assert_string_equal(detail, "from=reminding response=1 term=2 expires=2027-11-20T14:13:20Z "
                              "previous=2026-11-20T14:13:20Z");

  /* repeated: already recorded, no third term */
  assert_int_equal(lifecycle_apply(f->s, &a, T0 + 10, &res, err, sizeof err), 0);
  assert_true(res.already_recorded);
  assert_false(res.new_term);
  assert_int_equal(res.term, 2);
  lifecycle_result_clear(&res);

  /* win-back: a declined contract renews */
  set_state(f->s, "C-2", CONTRACT_DECLINED, 0);
  a.contract_id = "C-2";
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), 0);
  assert_int_equal(res.previous_state, CONTRACT_DECLINED);
  assert_int_equal(res.new_state, CONTRACT_ACTIVE);
  assert_int_equal(res.term, 2);
  lifecycle_result_clear(&res);
}

/* ---- owner alerts ------------------------------------------------------------------- */

static const struct lifecycle_channel owner_channels[] = {
    {.name = "owner-email", .addr = LIFECYCLE_ADDR_EMAIL},
    {.name = "owner-sms", .addr = LIFECYCLE_ADDR_PHONE},
    {.name = "owner-webhook", .addr = LIFECYCLE_ADDR_URL, .default_url = "https://crm.example/h"},
};

static void test_callback_owner_alerts(void **state) {
  struct fixture *f = *state;
  struct lifecycle_policy pol = {
      .callback_pause = 14 * DAY,
      .lapse_grace = 30 * DAY,
      .fallback_owner = "desk",
      .owner_channels = owner_channels,
      .n_owner_channels = ELEMENTSOF(owner_channels),
  };
  struct lifecycle_result res = {0};
  struct rows w = {0};
  char err[256];

  set_state(f->s, "C-1", CONTRACT_REMINDING, 0);
  int64_t cust = add_reminder(f->s, "C-1", 1, "reminder", "customer", REMINDER_PENDING);
  int64_t esc = add_reminder(f->s, "C-1", 1, "escalation", "owner", REMINDER_PENDING);
  struct lifecycle_answer a = valid_answer("C-1", LIFECYCLE_CALLBACK);
  a.source = LIFECYCLE_SOURCE_LINK;
  a.channel = "email";
  a.policy = &pol;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), 0);
  assert_int_equal(res.new_state, CONTRACT_CALLBACK);
  assert_int_equal(res.state_until, T0 + 14 * DAY);
  assert_true(res.alert_owner);
  assert_int_equal(res.owner_alerts, 3);
  assert_int_equal(res.owner_alerts_skipped, 0);
  assert_int_equal(res.cancelled, 1);
  int64_t rid = res.response_id;
  lifecycle_result_clear(&res);

  struct reminder rm = {0};
  assert_int_equal(store_reminder_get(f->s, cust, &rm), 0);
  assert_int_equal(rm.status, REMINDER_CANCELLED);
  reminder_clear(&rm);
  assert_int_equal(store_reminder_get(f->s, esc, &rm), 0);
  assert_int_equal(rm.status, REMINDER_PENDING); /* owner rows stay: the policy skips the rest */
  reminder_clear(&rm);

  assert_int_equal(store_reminder_foreach_contract(f->s, "C-1", 1, collect_rm, &w), 5);
  static const char *const want_to[] = {"owner@example.com", "+4930123456",
                                        "https://crm.example/h"};
  size_t found = 0;
  for (size_t i = 0; i < w.n; i++) {
    if (!streq(w.v[i].tier, LIFECYCLE_TIER_CALLBACK))
      continue;
    assert_string_equal(w.v[i].channel, owner_channels[found].name);
    assert_string_equal(w.v[i].audience, "owner");
    assert_string_equal(w.v[i].recipient, want_to[found]);
    assert_int_equal(w.v[i].step, rid);
    assert_int_equal(w.v[i].status, REMINDER_PENDING);
    assert_int_equal(w.v[i].due_at, T0);
    assert_int_equal(w.v[i].term, 1);
    found++;
  }
  assert_int_equal(found, 3);
  rows_done(&w);

  /* already in callback: refused as "already", nothing new */
  struct snap s1, s2;
  take_snap(f->s, "C-1", &s1);
  a.until = T0 + 3 * DAY; /* another answer (a preferred time) */
  assert_int_equal(lifecycle_apply(f->s, &a, T0 + 60, &res, err, sizeof err), -EALREADY);
  assert_string_equal(err, "contract C-1 is already in callback: callback is not recorded again "
                           "(allowed: renewed, declined, snoozed, lost, renew_intent, "
                           "unsubscribed, resubscribed, message, help)");
  take_snap(f->s, "C-1", &s2);
  assert_snap_equal(&s1, &s2);

  /* a preferred time after the pause extends it; no owner: the fallback owner,
   * who has no phone: that row is skipped with the reason */
  a.contract_id = "C-2";
  a.until = T0 + 20 * DAY;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), 0);
  assert_int_equal(res.state_until, T0 + 20 * DAY);
  assert_int_equal(res.response.until_at, T0 + 20 * DAY);
  assert_int_equal(res.owner_alerts, 2);
  assert_int_equal(res.owner_alerts_skipped, 1);
  lifecycle_result_clear(&res);
  assert_int_equal(store_reminder_foreach_contract(f->s, "C-2", 1, collect_rm, &w), 3);
  assert_string_equal(w.v[0].recipient, "desk@example.com");
  assert_int_equal(w.v[0].status, REMINDER_PENDING);
  assert_null(w.v[1].recipient);
  assert_int_equal(w.v[1].status, REMINDER_SKIPPED);
  assert_string_equal(w.v[1].last_error, "sales owner has no address for this channel");
  assert_string_equal(w.v[2].recipient, "https://crm.example/h");
  rows_done(&w);

  /* no customer, no fallback owner: every row skipped; no channels: one row */
  pol.fallback_owner = NULL;
  a.contract_id = "C-3";
  a.until = 0;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), 0);
  assert_int_equal(res.owner_alerts, 0);
  assert_int_equal(res.owner_alerts_skipped, 3);
  assert_true(res.alert_owner);
  lifecycle_result_clear(&res);
  assert_int_equal(store_reminder_foreach_contract(f->s, "C-3", 1, collect_rm, &w), 3);
  for (size_t i = 0; i < w.n; i++) {
    assert_int_equal(w.v[i].status, REMINDER_SKIPPED);
    assert_string_equal(w.v[i].last_error, "no sales owner");
  }
  rows_done(&w);

  pol.n_owner_channels = 0;
  struct lifecycle_answer m = valid_answer("C-3", LIFECYCLE_MESSAGE);
  m.policy = &pol;
  assert_int_equal(lifecycle_apply(f->s, &m, T0, &res, err, sizeof err), 0);
  assert_int_equal(res.owner_alerts_skipped, 1);
  lifecycle_result_clear(&res);
  assert_int_equal(store_reminder_foreach_contract(f->s, "C-3", 1, collect_rm, &w), 4);
  assert_string_equal(w.v[3].tier, LIFECYCLE_TIER_MESSAGE);
  assert_string_equal(w.v[3].channel, "none");
  assert_string_equal(w.v[3].last_error, "no owner channel in the policy");
  rows_done(&w);
}

static void test_message_and_intent(void **state) {
  struct fixture *f = *state;
  struct lifecycle_policy pol = {
      .callback_pause = DAY,
      .owner_channels = owner_channels,
      .n_owner_channels = 1,
  };
  struct lifecycle_result res = {0};
  struct rows w = {0};
  char err[256];

  set_state(f->s, "C-1", CONTRACT_REMINDING, 0);
  struct lifecycle_answer a = valid_answer("C-1", LIFECYCLE_MESSAGE);
  a.source = LIFECYCLE_SOURCE_SMS;
  a.channel = "sms";
  a.policy = &pol;
  a.detail = "";
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EINVAL);
  assert_string_equal(err, "contract C-1: a message needs its text");
  a.detail = "Can we get a discount?";
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), 0);
  assert_int_equal(res.new_state, CONTRACT_REMINDING);
  assert_int_equal(res.owner_alerts, 1);
  assert_string_equal(res.response.detail, "Can we get a discount?");
  assert_string_equal(res.response.channel, "sms");
  lifecycle_result_clear(&res);

  struct lifecycle_answer b = valid_answer("C-1", LIFECYCLE_RENEW_INTENT);
  b.source = LIFECYCLE_SOURCE_SMS;
  b.policy = &pol;
  assert_int_equal(lifecycle_apply(f->s, &b, T0 + 1, &res, err, sizeof err), 0);
  assert_int_equal(res.new_state, CONTRACT_REMINDING);
  assert_int_equal(res.owner_alerts, 1);
  lifecycle_result_clear(&res);
  assert_int_equal(store_reminder_foreach_contract(f->s, "C-1", 1, collect_rm, &w), 2);
  assert_string_equal(w.v[0].tier, LIFECYCLE_TIER_MESSAGE);
  assert_string_equal(w.v[1].tier, LIFECYCLE_TIER_RENEW_INTENT);
  assert_int_equal(w.v[1].step, 2);
  assert_string_equal(w.v[1].recipient, "owner@example.com");
  rows_done(&w);

  /* help changes nothing and alerts nobody */
  struct lifecycle_answer h = valid_answer("C-1", LIFECYCLE_HELP);
  assert_int_equal(lifecycle_apply(f->s, &h, T0 + 2, &res, err, sizeof err), 0);
  assert_false(res.alert_owner);
  lifecycle_result_clear(&res);
  struct evlist ev;
  events_of(f->s, "C-1", &ev);
  assert_string_equal(ev.text, "answer.message answer.renew_intent answer.help");

  set_state(f->s, "C-2", CONTRACT_RENEWED, 0);
  b.contract_id = "C-2";
  assert_int_equal(lifecycle_apply(f->s, &b, T0, &res, err, sizeof err), -EALREADY);
}

/* ---- opt-outs, snoozes, reasons ---------------------------------------------------------- */

static void test_unsubscribed(void **state) {
  struct fixture *f = *state;
  struct lifecycle_result res = {0};
  char err[256];
  struct snap sn;

  set_state(f->s, "C-1", CONTRACT_REMINDING, 0);
  struct lifecycle_answer a = valid_answer("C-1", LIFECYCLE_UNSUBSCRIBED);
  a.channel = "fax";
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EINVAL);
  assert_string_equal(err, "contract C-1: unsubscribed needs the channel: email, sms, webhook "
                           "or all");
  a.channel = "all";
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), 0);
  assert_int_equal(res.new_state, CONTRACT_REMINDING);
  assert_false(res.alert_owner);
  lifecycle_result_clear(&res);
  take_snap(f->s, "C-1", &sn);
  assert_int_equal(sn.optout, OPTOUT_EMAIL | OPTOUT_SMS | OPTOUT_WEBHOOK);
  assert_int_equal(sn.state, CONTRACT_REMINDING);

  struct lifecycle_answer b = valid_answer("C-1", LIFECYCLE_RESUBSCRIBED);
  b.channel = "webhook";
  assert_int_equal(lifecycle_apply(f->s, &b, T0, &res, err, sizeof err), 0);
  lifecycle_result_clear(&res);
  take_snap(f->s, "C-1", &sn);
  assert_int_equal(sn.optout, OPTOUT_EMAIL | OPTOUT_SMS);

  a.contract_id = "C-3";
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EINVAL);
  assert_string_equal(err, "contract C-3 has no customer to unsubscribe");
}

static void test_snooze_limits(void **state) {
  struct fixture *f = *state;
  struct lifecycle_policy pol = {
      .callback_pause = DAY, .max_snooze = 90 * DAY, .lapse_grace = 10 * DAY};
  struct lifecycle_result res = {0};
  char err[256];
  struct snap s1, s2;

  set_state(f->s, "C-1", CONTRACT_REMINDING, 0);
  int64_t cust = add_reminder(f->s, "C-1", 1, "reminder", "customer", REMINDER_RETRY);
  int64_t esc = add_reminder(f->s, "C-1", 1, "escalation", "owner", REMINDER_PENDING);
  take_snap(f->s, "C-1", &s1);
  struct lifecycle_answer a = valid_answer("C-1", LIFECYCLE_SNOOZED);
  a.policy = &pol;
  a.until = T0;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EINVAL);
  assert_string_equal(err, "contract C-1: snoozed needs a date in the future");
  a.until = 0;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EINVAL);
  a.until = T0 + 91 * DAY;
  pol.lapse_grace = -1;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EINVAL);
  assert_string_equal(err, "contract C-1: a snooze may last at most 90 days (until "
                           "2026-12-20T14:13:20Z)");
  pol.lapse_grace = 10 * DAY;
  a.until = EXPIRES + 10 * DAY + 1;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EINVAL);
  assert_string_equal(err, "contract C-1: a snooze may not end after the expiry plus the lapse "
                           "grace (2026-11-30T14:13:20Z)");
  take_snap(f->s, "C-1", &s2);
  assert_snap_equal(&s1, &s2);

  a.until = EXPIRES + 10 * DAY;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), 0);
  assert_int_equal(res.new_state, CONTRACT_SNOOZED);
  assert_int_equal(res.state_until, EXPIRES + 10 * DAY);
  assert_int_equal(res.response.until_at, EXPIRES + 10 * DAY);
  assert_int_equal(res.cancelled, 1);
  lifecycle_result_clear(&res);
  struct reminder rm = {0};
  assert_int_equal(store_reminder_get(f->s, cust, &rm), 0);
  assert_int_equal(rm.status, REMINDER_CANCELLED);
  reminder_clear(&rm);
  assert_int_equal(store_reminder_get(f->s, esc, &rm), 0);
  assert_int_equal(rm.status, REMINDER_PENDING);
  reminder_clear(&rm);
  struct contract c = {0};
  assert_int_equal(store_contract_get(f->s, "C-1", &c), 0);
  assert_int_equal(c.state, CONTRACT_SNOOZED);
  assert_int_equal(c.state_until, EXPIRES + 10 * DAY);
  contract_clear(&c);

  /* lapsed contracts cannot be snoozed */
  set_state(f->s, "C-2", CONTRACT_LAPSED, 0);
  a.contract_id = "C-2";
  a.until = T0 + DAY;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EPERM);
}

static void test_decline_and_lost(void **state) {
  struct fixture *f = *state;
  struct lifecycle_result res = {0};
  char err[256];

  set_state(f->s, "C-1", CONTRACT_SNOOZED, T0 + DAY);
  int64_t pend = add_reminder(f->s, "C-1", 1, "reminder", "customer", REMINDER_PENDING);
  struct lifecycle_answer a = valid_answer("C-1", LIFECYCLE_DECLINED);
  a.reason = "cheaper elsewhere";
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EINVAL);
  assert_string_equal(err, "contract C-1: unknown reason 'cheaper elsewhere' (price, "
                           "switched-provider, no-longer-needed, budget, missing-features, "
                           "other)");
  a.reason = "switched-provider";
  a.detail = "went to ACME";
  a.until = T0 + 5 * DAY; /* irrelevant for a decline: not stored */
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), 0);
  assert_int_equal(res.previous_state, CONTRACT_SNOOZED);
  assert_int_equal(res.new_state, CONTRACT_DECLINED);
  assert_int_equal(res.state_until, 0);
  assert_int_equal(res.cancelled, 1);
  assert_string_equal(res.response.reason, "switched-provider");
  assert_string_equal(res.response.detail, "went to ACME");
  assert_int_equal(res.response.until_at, 0);
  assert_false(res.alert_owner);
  lifecycle_result_clear(&res);
  struct reminder rm = {0};
  assert_int_equal(store_reminder_get(f->s, pend, &rm), 0);
  assert_int_equal(rm.status, REMINDER_CANCELLED);
  reminder_clear(&rm);

  /* an SMS "NO" carries no reason */
  struct lifecycle_answer b = valid_answer("C-2", LIFECYCLE_DECLINED);
  b.source = LIFECYCLE_SOURCE_SMS;
  b.reason = NULL;
  assert_int_equal(lifecycle_apply(f->s, &b, T0, &res, err, sizeof err), 0);
  assert_null(res.response.reason);
  lifecycle_result_clear(&res);

  /* lost needs a reason; closes the contract and cancels the owner rows too */
  add_reminder(f->s, "C-3", 1, "escalation", "owner", REMINDER_PENDING);
  struct lifecycle_answer l = valid_answer("C-3", LIFECYCLE_LOST);
  l.source = LIFECYCLE_SOURCE_OWNER_LINK;
  l.reason = NULL;
  assert_int_equal(lifecycle_apply(f->s, &l, T0, &res, err, sizeof err), -EINVAL);
  assert_string_equal(err, "contract C-3: lost needs a reason (price, switched-provider, "
                           "no-longer-needed, budget, missing-features, other)");
  l.reason = "missing-features";
  assert_int_equal(lifecycle_apply(f->s, &l, T0, &res, err, sizeof err), 0);
  assert_int_equal(res.new_state, CONTRACT_CLOSED);
  assert_int_equal(res.cancelled, 1);
  assert_string_equal(res.response.source, "owner-link");
  lifecycle_result_clear(&res);
  struct evlist ev;
  events_of(f->s, "C-3", &ev);
  assert_string_equal(ev.text, "answer.lost contract.closed");
}

/* ---- the customer's one-click renewal -------------------------------------------------- */

/* Renewed through the customer's link: a new term and, in the same
 * transaction, the owner alert rows (tier customer-renewed) in the new term,
 * so the planner's cancelling of older terms' rows leaves them alone. */
static void test_customer_renewed_alerts_owner(void **state) {
  struct fixture *f = *state;
  struct lifecycle_policy pol = {
      .callback_pause = DAY,
      .lapse_grace = 30 * DAY,
      .owner_channels = owner_channels,
      .n_owner_channels = 2,
  };
  struct lifecycle_result res = {0};
  struct rows w = {0};
  char err[256];

  set_state(f->s, "C-1", CONTRACT_REMINDING, 0);
  int64_t pend = add_reminder(f->s, "C-1", 1, "reminder", "customer", REMINDER_PENDING);
  struct lifecycle_answer a = answer("C-1", LIFECYCLE_RENEWED);
  a.new_expires_at = EXPIRES + 365 * DAY;
  a.idem_key = "link-0123456789abcdef-7";
  a.policy = &pol;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), 0);
  assert_true(res.new_term);
  assert_int_equal(res.term, 2);
  assert_int_equal(res.cancelled, 1);
  assert_true(res.alert_owner);
  assert_int_equal(res.owner_alerts, 2);
  assert_int_equal(res.owner_alerts_skipped, 0);
  assert_string_equal(res.response.source, "link");
  int64_t rid = res.response_id;
  lifecycle_result_clear(&res);
  struct reminder rm = {0};
  assert_int_equal(store_reminder_get(f->s, pend, &rm), 0);
  assert_int_equal(rm.status, REMINDER_CANCELLED);
  reminder_clear(&rm);
  assert_int_equal(store_reminder_foreach_contract(f->s, "C-1", 2, collect_rm, &w), 2);
  const char *want_to[] = {"owner@example.com", "+4930123456"};
  for (size_t i = 0; i < w.n; i++) {
    assert_string_equal(w.v[i].tier, LIFECYCLE_TIER_CUSTOMER_RENEWED);
    assert_string_equal(w.v[i].tier, "customer-renewed");
    assert_string_equal(w.v[i].audience, "owner");
    assert_string_equal(w.v[i].channel, owner_channels[i].name);
    assert_string_equal(w.v[i].recipient, want_to[i]);
    assert_int_equal(w.v[i].term, 2);
    assert_int_equal(w.v[i].step, rid);
    assert_int_equal(w.v[i].status, REMINDER_PENDING);
    assert_int_equal(w.v[i].due_at, T0);
  }
  rows_done(&w);

  /* the same POST again: already recorded, no third term, no second alert */
  assert_int_equal(lifecycle_apply(f->s, &a, T0 + 5, &res, err, sizeof err), 0);
  assert_true(res.already_recorded);
  assert_false(res.alert_owner);
  assert_int_equal(res.term, 2);
  lifecycle_result_clear(&res);
  assert_int_equal(store_reminder_foreach_contract(f->s, "C-1", -1, collect_rm, &w), 3);
  rows_done(&w);

  /* the owner's own renewal (owner-link) alerts nobody */
  struct lifecycle_answer o = answer("C-2", LIFECYCLE_RENEWED);
  o.source = LIFECYCLE_SOURCE_OWNER_LINK;
  o.new_expires_at = EXPIRES + 365 * DAY;
  o.policy = &pol;
  assert_int_equal(lifecycle_apply(f->s, &o, T0, &res, err, sizeof err), 0);
  assert_true(res.new_term);
  assert_false(res.alert_owner);
  lifecycle_result_clear(&res);
  assert_int_equal(store_reminder_foreach_contract(f->s, "C-2", -1, collect_rm, &w), 0);
}

/* Where the current term began: starts_at for term 1, the previous expiry
 * (previous= of the event that started the term) afterwards. */
static void test_term_start(void **state) {
  struct fixture *f = *state;
  struct lifecycle_result res = {0};
  char err[256];
  int64_t start = -1;
  struct contract c = {0};

  /* term 1: starts_at, 0 when unknown */
  assert_int_equal(store_contract_get(f->s, "C-1", &c), 0);
  assert_int_equal(lifecycle_term_start(f->s, &c, &start), 0);
  assert_int_equal(start, 0);
  contract_clear(&c);
  struct contract up = {.id = (char *)"C-1",
                        .customer_id = (char *)"cu-1",
                        .product = (char *)"p",
                        .starts_at = EXPIRES - 365 * DAY,
                        .expires_at = EXPIRES};
  assert_int_equal(store_contract_upsert(f->s, &up, T0 - DAY), STORE_UPDATED);
  assert_int_equal(store_contract_get(f->s, "C-1", &c), 0);
  assert_int_equal(lifecycle_term_start(f->s, &c, &start), 0);
  assert_int_equal(start, EXPIRES - 365 * DAY);
  contract_clear(&c);

  /* renewed: term 2 began at the old expiry; starts_at (term 1's) is older */
  struct lifecycle_answer a = valid_answer("C-1", LIFECYCLE_RENEWED);
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), 0);
  lifecycle_result_clear(&res);
  assert_int_equal(store_contract_get(f->s, "C-1", &c), 0);
  assert_int_equal(c.term, 2);
  assert_int_equal(c.starts_at, EXPIRES - 365 * DAY);
  assert_int_equal(lifecycle_term_start(f->s, &c, &start), 0);
  assert_int_equal(start, EXPIRES);
  contract_clear(&c);

  /* an import moves the expiry (store's contract.new_term, previous=) */
  up.expires_at = EXPIRES + 730 * DAY;
  assert_int_equal(store_contract_upsert(f->s, &up, T0), STORE_UPDATED);
  assert_int_equal(store_contract_get(f->s, "C-1", &c), 0);
  assert_int_equal(c.term, 3);
  assert_int_equal(lifecycle_term_start(f->s, &c, &start), 0);
  assert_int_equal(start, EXPIRES + 365 * DAY);
  contract_clear(&c);

  /* ... and one that gives the new term's start after a gap: starts_at wins */
  up.starts_at = EXPIRES + 800 * DAY;
  up.expires_at = EXPIRES + 1165 * DAY;
  assert_int_equal(store_contract_upsert(f->s, &up, T0), STORE_UPDATED);
  assert_int_equal(store_contract_get(f->s, "C-1", &c), 0);
  assert_int_equal(c.term, 4);
  assert_int_equal(lifecycle_term_start(f->s, &c, &start), 0);
  assert_int_equal(start, EXPIRES + 800 * DAY);
  contract_clear(&c);

  /* a later term whose start was not recorded (an older renewd): unknown */
  set_state(f->s, "C-2", CONTRACT_REMINDING, 0);
  assert_int_equal(store_contract_get(f->s, "C-2", &c), 0);
  c.term = 2;
  c.expires_at = EXPIRES + 365 * DAY;
  assert_int_equal(
      store_contract_set_state(f->s, &c, "contract.renewed", "from=reminding response=9", T0), 0);
  start = -1;
  assert_int_equal(lifecycle_term_start(f->s, &c, &start), 0);
  assert_int_equal(start, 0);
  contract_clear(&c);

  assert_int_equal(lifecycle_term_start(NULL, &c, &start), -EINVAL);
  assert_int_equal(lifecycle_term_start(f->s, NULL, &start), -EINVAL);
}

/* The expiry "another term" gives. Expected instants computed independently
 * (Python zoneinfo), written out as numbers. */
static void test_renewal_expiry(void **state) {
  struct cal *cal = NULL;
  assert_int_equal(cal_new(&cal), 0);
  static const struct {
    const char *what, *zone; /* zone NULL = UTC */
    int64_t start, expires, want;
    int months;
  } cases[] = {
      /* 2030-04-01 .. 2031-04-01 local midnight (CEST) -> 2032-04-01 */
      {"one year, Berlin", "Europe/Berlin", 1901224800, 1932760800, 1964383200, 12},
      /* 2031-01-01 .. 2031-02-01 CET -> 2031-03-01 CET */
      {"one month, Berlin", "Europe/Berlin", 1924988400, 1927666800, 1930086000, 1},
      /* 2030-12-31 .. 2031-01-31 -> 31 February = 2031-02-28 */
      {"month end clamped", "Europe/Berlin", 1924902000, 1927580400, 1929999600, 1},
      /* 2031-01-15 EST .. 2031-04-15 EDT (90 days less an hour) -> 2031-07-15 EDT */
      {"quarter across DST", "America/New_York", 1926219600, 1933992000, 1941854400, 3},
      /* 2031-02-09 CST .. 2031-03-09, whose midnight does not exist (01:00 CDT)
       * -> 2031-04-09 00:00 CDT, the start of the day again */
      {"midnight gap", "America/Havana", 1928379600, 1930798800, 1933473600, 1},
      /* exactly 28 days: 2031-02-01 .. 2031-03-01 -> 2031-04-01 */
      {"28 days", NULL, 1927670400, 1930089600, 1932768000, 1},
      /* 27 days is too short: one year */
      {"27 days", NULL, 1936483200 - 27 * DAY, 1936483200, 1936483200 + 366 * DAY, 12},
      /* 2026-04-01 .. 2031-04-01 (1826 days) -> 2036-04-01 */
      {"five years", NULL, 1775001600, 1932768000, 2090620800, 60},
      /* 2025-06-10 .. 2031-06-10 is too long: one year, 2032-06-10 */
      {"six years", NULL, 1749513600, 1938816000, 1970438400, 12},
      {"unknown start", NULL, 0, 1938816000, 1970438400, 12},
      {"start after expiry", NULL, 1938816000 + DAY, 1938816000, 1970438400, 12},
      /* not at a day's start: the time of day is kept */
      {"15:30 kept", NULL, 1907335800, 1938871800, 1970494200, 12},
      /* 2027-02-28 .. 2028-02-29 (366 days) -> 29 February 2029 = 28 February */
      {"leap day", NULL, 1803772800, 1835395200, 1866931200, 12},
  };
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    const struct cal_zone *z = cases[i].zone ? cal_zone(cal, cases[i].zone) : NULL;
    if (cases[i].zone)
      assert_non_null(z);
    int64_t got = -1;
    int months = -1;
    assert_int_equal(lifecycle_renewal_expiry(z, cases[i].start, cases[i].expires, &got, &months),
                     0);
    if (got != cases[i].want || months != cases[i].months)
      fail_msg("%s: got %" PRId64 " (%d months), want %" PRId64 " (%d months)", cases[i].what, got,
               months, cases[i].want, cases[i].months);
  }
  int64_t got = 7;
  assert_int_equal(lifecycle_renewal_expiry(NULL, 0, 0, &got, NULL), -EINVAL);
  assert_int_equal(lifecycle_renewal_expiry(NULL, 0, 1938816000, NULL, NULL), -EINVAL);
  /* 9999-07-25 + one year is past what the calendar handles */
  assert_int_equal(lifecycle_renewal_expiry(NULL, 0, INT64_C(253388505600), &got, NULL), -ERANGE);
  assert_int_equal(got, 7);
  cal_free(cal);
}

/* ---- one transaction ---------------------------------------------------------------- */

static void test_atomic(void **state) {
  struct fixture *f = *state;
  struct lifecycle_result res = {0};
  char err[256];
  struct snap s1, s2;

  /* a failure after the response, events, cancellation and state change (an
   * owner channel without a name) rolls everything back */
  const struct lifecycle_channel bad[] = {{.name = "owner-email"}, {.name = NULL}};
  struct lifecycle_policy pol = {
      .callback_pause = DAY, .owner_channels = bad, .n_owner_channels = 2};
  set_state(f->s, "C-1", CONTRACT_REMINDING, 0);
  add_reminder(f->s, "C-1", 1, "reminder", "customer", REMINDER_PENDING);
  take_snap(f->s, "C-1", &s1);
  struct lifecycle_answer a = valid_answer("C-1", LIFECYCLE_CALLBACK);
  a.policy = &pol;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EINVAL);
  assert_string_equal(err, "contract C-1: invalid owner channel list");
  take_snap(f->s, "C-1", &s2);
  assert_snap_equal(&s1, &s2);

  /* inside an open transaction: refused, the caller's transaction intact */
  assert_int_equal(store_begin(f->s), 0);
  a.policy = NULL;
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), -EBUSY);
  assert_int_equal(store_rollback(f->s), 0);
  take_snap(f->s, "C-1", &s2);
  assert_snap_equal(&s1, &s2);

  /* and with defaults it works: pause = LIFECYCLE_DEFAULT_CALLBACK_PAUSE */
  assert_int_equal(lifecycle_apply(f->s, &a, T0, &res, err, sizeof err), 0);
  assert_int_equal(res.state_until, T0 + LIFECYCLE_DEFAULT_CALLBACK_PAUSE);
  assert_int_equal(res.owner_alerts_skipped, 1); /* no channels by default */
  lifecycle_result_clear(&res);
}

/* lifecycle_reminder_live(): what may still go out for a contract. */
static void test_reminder_live(void **state) {
  struct contract c = {.id = "K1", .term = 2, .state = CONTRACT_REMINDING};
  struct reminder r = {.term = 2, .tier = "T-30", .audience = "customer"};
  char why[160] = "";
  assert_true(lifecycle_reminder_live(&c, &r, false, T0, why, sizeof why));
  r.term = 1;
  assert_false(lifecycle_reminder_live(&c, &r, false, T0, why, sizeof why));
  assert_string_equal(why, "term 1 is over: contract K1 is in term 2");
  assert_true(lifecycle_reminder_live(&c, &r, true, T0, why, sizeof why)); /* an ops alert */
  r.tier = LIFECYCLE_TIER_CUSTOMER_RENEWED; /* an owner alert of an answer */
  assert_true(lifecycle_reminder_live(&c, &r, false, T0, why, sizeof why));
  r.tier = "T-30";
  r.term = 2;
  c.state = CONTRACT_DECLINED;
  assert_false(lifecycle_reminder_live(&c, &r, false, T0, why, sizeof why));
  assert_string_equal(why, "contract K1 is declined");
  r.audience = "owner";
  c.state = CONTRACT_CLOSED;
  assert_false(lifecycle_reminder_live(&c, &r, false, T0, why, sizeof why));
  /* a pause holds the customer's ladder until it ends, not the owner's */
  c.state = CONTRACT_SNOOZED;
  c.state_until = T0 + 10;
  assert_true(lifecycle_reminder_live(&c, &r, false, T0, why, sizeof why));
  r.audience = "customer";
  assert_false(lifecycle_reminder_live(&c, &r, false, T0, why, sizeof why));
  assert_non_null(strstr(why, "is snoozed until"));
  assert_true(lifecycle_reminder_live(&c, &r, false, T0 + 10, why, sizeof why));
  c.state = CONTRACT_LAPSED;
  assert_true(lifecycle_reminder_live(&c, &r, false, T0, why, sizeof why));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_table),
      cmocka_unit_test_setup_teardown(test_every_pair_applied, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idempotent_derived, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idempotent_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_renewed_new_term, setup, teardown),
      cmocka_unit_test_setup_teardown(test_callback_owner_alerts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_message_and_intent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unsubscribed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_snooze_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_decline_and_lost, setup, teardown),
      cmocka_unit_test_setup_teardown(test_atomic, setup, teardown),
      cmocka_unit_test_setup_teardown(test_customer_renewed_alerts_owner, setup, teardown),
      cmocka_unit_test_setup_teardown(test_term_start, setup, teardown),
      cmocka_unit_test(test_renewal_expiry),
      cmocka_unit_test(test_reminder_live),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
