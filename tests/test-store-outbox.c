/* Unit tests for the guarded outbox calls of core/store_outbox.c: claims as
 * leases (the claim counter as a fencing token, claimed_until, claimed_by),
 * results recorded only under the claim that made the attempt, cancellation
 * of rows in flight (the outcome is kept, the row ends cancelled, a late
 * result never resurrects it), the expired-lease walk and its guarded
 * recovery, guarded status changes outside a claim, and provider delivery
 * receipts by status rank. Each test works in
 * its own mkdtemp() directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <unistd.h>

#include "core/store.h"
#include "core/util.h"
#include "storetmp.h"

#define T0 INT64_C(1790000000)
#define DAY INT64_C(86400)

struct fixture {
  struct store_tmp tmp;
  struct store *s;
  int64_t id; /* the contract K1's email row, due at T0 */
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  store_tmp_open(&f->tmp, "outbox", &f->s);
  struct customer cu = {.id = "C1", .email = "ada@example.com", .segment = "smb"};
  assert_int_equal(store_customer_upsert(f->s, &cu, T0), STORE_INSERTED);
  const char *ids[] = {"K1", "K2"};
  for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
    struct contract c = {.id = (char *)ids[i], .customer_id = "C1", .expires_at = T0 + 30 * DAY};
    assert_int_equal(store_contract_upsert(f->s, &c, T0), STORE_INSERTED);
  }
  struct reminder m = {.contract_id = "K1",
                       .term = 1,
                       .tier = "T-30",
                       .channel = "email",
                       .audience = "customer",
                       .recipient = "ada@example.com",
                       .due_at = T0};
  assert_int_equal(store_reminder_insert(f->s, &m, T0 - 10, &f->id), 0);
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

struct got {
  int64_t id, claim, claimed_until;
  int n;
};

static int got_cb(const struct reminder *r, void *ud) {
  struct got *g = ud;
  g->id = r->id;
  g->claim = r->claim;
  g->claimed_until = r->claimed_until;
  g->n++;
  return 0;
}

static struct reminder get(struct fixture *f) {
  struct reminder m = {0};
  assert_int_equal(store_reminder_get(f->s, f->id, &m), 0);
  return m;
}

static int64_t claim(struct fixture *f, int64_t now) {
  struct got g = {0};
  assert_int_equal(
      store_reminder_claim_lease(f->s, "email", now, now + 90, "host:1", 10, got_cb, &g), 1);
  assert_int_equal(g.id, f->id);
  assert_int_equal(g.claimed_until, now + 90);
  return g.claim;
}

/* Each claim is a new fencing token; a result needs the current one. */
static void test_claim_is_a_lease(void **state) {
  struct fixture *f = *state;
  int64_t c1 = claim(f, T0);
  assert_int_equal(c1, 1);
  struct reminder m = get(f);
  assert_int_equal(m.status, REMINDER_SENDING);
  assert_int_equal(m.attempts, 1);
  assert_int_equal(m.claimed_until, T0 + 90);
  reminder_clear(&m);

  assert_int_equal(store_reminder_renew(f->s, f->id, c1, T0 + 200, T0 + 10), 0);
  assert_int_equal(store_reminder_renew(f->s, f->id, c1 + 1, T0 + 200, T0 + 10), -ESTALE);

  /* the lease ends without a result: recovered under the same claim */
  struct got g = {0};
  assert_int_equal(store_reminder_foreach_expired(f->s, T0 + 100, 0, got_cb, &g), 0);
  assert_int_equal(store_reminder_foreach_expired(f->s, T0 + 201, 0, got_cb, &g), 1);
  assert_int_equal(g.claim, c1);
  assert_int_equal(store_reminder_recover_row(f->s, f->id, c1 + 5, REMINDER_RETRY, T0, NULL, T0),
                   -ESTALE);
  assert_int_equal(
      store_reminder_recover_row(f->s, f->id, c1, REMINDER_RETRY, T0 + 201, NULL, T0 + 201), 0);
  m = get(f);
  assert_int_equal(m.status, REMINDER_RETRY);
  assert_int_equal(m.claimed_until, 0);
  reminder_clear(&m);

  int64_t c2 = claim(f, T0 + 201);
  assert_int_equal(c2, c1 + 1);
  /* the first claim's late result is refused; the second's is recorded */
  enum reminder_status st = _REMINDER_STATUS_MAX;
  assert_int_equal(
      store_reminder_finish(f->s, f->id, c1, REMINDER_SENT, 0, NULL, "late", T0 + 202, &st),
      -ESTALE);
  assert_int_equal(st, _REMINDER_STATUS_MAX);
  assert_int_equal(
      store_reminder_finish(f->s, f->id, c2, REMINDER_RETRY, T0 + 300, "503", NULL, T0 + 203, &st),
      0);
  assert_int_equal(st, REMINDER_RETRY);
  m = get(f);
  assert_int_equal(m.status, REMINDER_RETRY);
  assert_int_equal(m.next_attempt_at, T0 + 300);
  assert_string_equal(m.last_error, "503");
  assert_null(m.provider_id);
  reminder_clear(&m);
  /* a finished row takes no second result, not even under its claim */
  assert_int_equal(
      store_reminder_finish(f->s, f->id, c2, REMINDER_SENT, 0, NULL, NULL, T0 + 204, NULL),
      -ESTALE);
  assert_int_equal(
      store_reminder_finish(f->s, f->id, c2, REMINDER_SENDING, 0, NULL, NULL, T0, NULL), -EINVAL);
}

/* An answer while the row is in flight: the attempt is recorded, the row
 * ends cancelled, and nothing brings it back. */
static void test_cancel_in_flight(void **state) {
  struct fixture *f = *state;
  int64_t c = claim(f, T0);
  /* K2 has no rows; K1's row is in flight: marked, not finished */
  assert_int_equal(store_reminder_cancel_contract(f->s, "K2", -1, NULL, T0 + 1), 0);
  assert_int_equal(store_reminder_cancel_contract(f->s, "K1", 1, "customer", T0 + 1), 1);
  struct reminder m = get(f);
  assert_int_equal(m.status, REMINDER_SENDING);
  assert_true(m.cancel);
  reminder_clear(&m);
  /* marked once: a second answer counts nothing more */
  assert_int_equal(store_reminder_cancel_contract(f->s, "K1", -1, NULL, T0 + 1), 0);
  /* a claim never takes it while it is in flight */
  struct got g = {0};
  assert_int_equal(store_reminder_claim(f->s, NULL, T0 + DAY, 10, got_cb, &g), 0);

  /* the attempt delivered: still cancelled, with the provider id and sent_at */
  enum reminder_status st;
  assert_int_equal(
      store_reminder_finish(f->s, f->id, c, REMINDER_SENT, 0, NULL, "msg-1", T0 + 2, &st), 0);
  assert_int_equal(st, REMINDER_CANCELLED);
  m = get(f);
  assert_int_equal(m.status, REMINDER_CANCELLED);
  assert_int_equal(m.attempts, 1);
  assert_string_equal(m.provider_id, "msg-1");
  assert_int_equal(m.sent_at, T0 + 2);
  assert_string_equal(m.last_error,
                      "cancelled by an answer while in flight; the attempt: delivered");
  reminder_clear(&m);
  /* late results, recovery, guarded changes: none resurrects it */
  assert_int_equal(
      store_reminder_finish(f->s, f->id, c, REMINDER_RETRY, T0 + 9, "x", NULL, T0 + 3, NULL),
      -ESTALE);
  assert_int_equal(store_reminder_recover_row(f->s, f->id, c, REMINDER_RETRY, T0, NULL, T0),
                   -ESTALE);
  assert_int_equal(store_reminder_recover(f->s, T0 + 4), 0);
  assert_int_equal(store_reminder_set_status_if(f->s, f->id, REMINDER_RETRY, REMINDER_PENDING, 0,
                                                NULL, NULL, T0 + 5),
                   -ESTALE);
  m = get(f);
  assert_int_equal(m.status, REMINDER_CANCELLED);
  reminder_clear(&m);
}

/* A failed attempt of a marked row: the failure is what last_error keeps. */
static void test_cancel_in_flight_failed(void **state) {
  struct fixture *f = *state;
  int64_t c = claim(f, T0);
  assert_int_equal(store_reminder_cancel_contract(f->s, "K1", -1, NULL, T0 + 1), 1);
  enum reminder_status st;
  assert_int_equal(
      store_reminder_finish(f->s, f->id, c, REMINDER_RETRY, T0 + 60, "HTTP 503", NULL, T0 + 2, &st),
      0);
  assert_int_equal(st, REMINDER_CANCELLED);
  struct reminder m = get(f);
  assert_int_equal(m.next_attempt_at, 0);
  assert_int_equal(m.sent_at, 0);
  assert_string_equal(m.last_error,
                      "cancelled by an answer while in flight; the attempt: HTTP 503");
  reminder_clear(&m);
}

/* A marked row whose lease ends (crash): cancelled, not retried. */
static void test_cancel_then_crash(void **state) {
  struct fixture *f = *state;
  int64_t c = claim(f, T0);
  assert_int_equal(store_reminder_cancel_contract(f->s, "K1", -1, NULL, T0 + 1), 1);
  struct got g = {0};
  assert_int_equal(store_reminder_foreach_expired(f->s, TIME_NEVER, 0, got_cb, &g), 1);
  assert_int_equal(store_reminder_recover_row(f->s, f->id, c, REMINDER_RETRY, T0 + 5, NULL, T0 + 5),
                   0);
  struct reminder m = get(f);
  assert_int_equal(m.status, REMINDER_CANCELLED);
  assert_non_null(strstr(m.last_error, "outcome unknown"));
  reminder_clear(&m);
}

/* An answer cancels pending rows at once; an 'unknown' row stays for ops. */
static void test_cancel_pending_and_unknown(void **state) {
  struct fixture *f = *state;
  assert_int_equal(store_reminder_cancel_contract(f->s, "K1", -1, NULL, T0 + 1), 1);
  struct reminder m = get(f);
  assert_int_equal(m.status, REMINDER_CANCELLED);
  assert_false(m.cancel);
  reminder_clear(&m);

  /* an 'unknown' row stays for ops: never resent, not cancelled away */
  struct reminder r2 = {.contract_id = "K2",
                        .term = 1,
                        .tier = "T-30",
                        .channel = "sms",
                        .audience = "customer",
                        .recipient = "+41791234567",
                        .due_at = T0};
  int64_t id2;
  assert_int_equal(store_reminder_insert(f->s, &r2, T0, &id2), 0);
  struct got g = {0};
  assert_int_equal(store_reminder_claim(f->s, "sms", T0, 10, got_cb, &g), 1);
  assert_int_equal(
      store_reminder_recover_row(f->s, id2, g.claim, REMINDER_UNKNOWN, T0, "crashed mid-SMS", T0),
      0);
  assert_int_equal(store_reminder_cancel_contract(f->s, "K2", -1, NULL, T0 + 1), 0);
  g = (struct got){0};
  assert_int_equal(store_reminder_claim(f->s, NULL, T0 + DAY, 10, got_cb, &g), 0);
  /* ops decide: back to retry, guarded on 'unknown' */
  assert_int_equal(store_reminder_set_status_if(f->s, id2, REMINDER_UNKNOWN, REMINDER_RETRY, T0 + 9,
                                                "retry requested", NULL, T0 + 9),
                   0);
  assert_int_equal(
      store_reminder_set_status_if(f->s, 9999, REMINDER_UNKNOWN, REMINDER_RETRY, 0, NULL, NULL, T0),
      -ENOENT);
  assert_int_equal(
      store_reminder_set_status_if(f->s, id2, REMINDER_SENDING, REMINDER_RETRY, 0, NULL, NULL, T0),
      -EINVAL);
}

/* The old-terms statement (a new term by import) marks rows in flight. */
static void test_new_term_marks_in_flight(void **state) {
  struct fixture *f = *state;
  int64_t c = claim(f, T0);
  /* an import moving the expiry: term 2, through the store's own upsert */
  struct contract k = {0};
  assert_int_equal(store_contract_get(f->s, "K1", &k), 0);
  k.expires_at += 365 * DAY;
  assert_true(store_contract_upsert(f->s, &k, T0 + 1) >= 0);
  contract_clear(&k);
  assert_int_equal(store_contract_get(f->s, "K1", &k), 0);
  assert_int_equal(k.term, 2);
  contract_clear(&k);
  struct reminder m = get(f);
  assert_int_equal(m.status, REMINDER_SENDING);
  assert_true(m.cancel);
  reminder_clear(&m);
  enum reminder_status st;
  assert_int_equal(
      store_reminder_finish(f->s, f->id, c, REMINDER_DEAD, 0, "HTTP 400", NULL, T0 + 2, &st), 0);
  assert_int_equal(st, REMINDER_CANCELLED); /* no fallback, no alert follow a cancelled row */
}

/* An unknown outcome on a channel that can look it up: due again as a
 * lookup; the next result clears the mark; a marked row ends cancelled. */
static void test_reconcile_later(void **state) {
  struct fixture *f = *state;
  int64_t c = claim(f, T0);
  enum reminder_status st;
  assert_int_equal(store_reminder_reconcile_later(f->s, f->id, c + 1, T0 + 30, "?", T0, &st),
                   -ESTALE);
  assert_int_equal(store_reminder_reconcile_later(f->s, f->id, c, T0 + 30, "timeout", T0, &st), 0);
  assert_int_equal(st, REMINDER_RETRY);
  struct reminder m = get(f);
  assert_true(m.reconcile);
  assert_int_equal(m.next_attempt_at, T0 + 30);
  reminder_clear(&m);
  /* the next claim carries the mark; its result clears it */
  struct got g = {0};
  assert_int_equal(store_reminder_claim(f->s, NULL, T0 + 30, 10, got_cb, &g), 1);
  m = get(f);
  assert_true(m.reconcile);
  reminder_clear(&m);
  assert_int_equal(
      store_reminder_finish(f->s, f->id, g.claim, REMINDER_SENT, 0, NULL, "SM1", T0 + 31, &st), 0);
  m = get(f);
  assert_int_equal(m.status, REMINDER_SENT);
  assert_false(m.reconcile);
  reminder_clear(&m);
}

static void test_reconcile_cancelled(void **state) {
  struct fixture *f = *state;
  int64_t c = claim(f, T0);
  assert_int_equal(store_reminder_cancel_contract(f->s, "K1", -1, NULL, T0 + 1), 1);
  enum reminder_status st;
  assert_int_equal(store_reminder_reconcile_later(f->s, f->id, c, T0 + 30, "timeout", T0, &st), 0);
  assert_int_equal(st, REMINDER_CANCELLED);
  struct reminder m = get(f);
  assert_false(m.reconcile);
  reminder_clear(&m);
}

/* Receipts by provider id, ranked: queued < sent < delivered, undelivered,
 * failed; a lower rank never overwrites a higher one. */
static void test_delivery_rank(void **state) {
  struct fixture *f = *state;
  int64_t c = claim(f, T0);
  assert_int_equal(
      store_reminder_finish(f->s, f->id, c, REMINDER_SENT, 0, NULL, "SM1", T0 + 1, NULL), 0);
  struct reminder m = get(f);
  assert_null(m.delivery_status);
  assert_int_equal(m.delivery_at, 0);
  reminder_clear(&m);

  assert_int_equal(store_reminder_set_delivery(f->s, "SM1", "queued", NULL, T0 + 2), 1);
  assert_int_equal(store_reminder_set_delivery(f->s, "SM1", "sent", NULL, T0 + 3), 1);
  m = get(f);
  assert_string_equal(m.delivery_status, "sent");
  assert_int_equal(m.delivery_at, T0 + 3);
  reminder_clear(&m);
  assert_int_equal(store_reminder_set_delivery(f->s, "SM1", "queued", NULL, T0 + 4), 0);
  assert_int_equal(store_reminder_set_delivery(f->s, "SM1", "undelivered", "30003", T0 + 5), 1);
  m = get(f);
  assert_string_equal(m.delivery_status, "undelivered");
  assert_string_equal(m.delivery_error, "30003");
  assert_int_equal(m.delivery_at, T0 + 5);
  assert_int_equal(m.status, REMINDER_SENT); /* the outbox status is the dispatcher's */
  reminder_clear(&m);
  /* late lower ranks change nothing */
  assert_int_equal(store_reminder_set_delivery(f->s, "SM1", "sent", NULL, T0 + 6), 0);
  assert_int_equal(store_reminder_set_delivery(f->s, "SM1", "queued", NULL, T0 + 7), 0);
  m = get(f);
  assert_string_equal(m.delivery_status, "undelivered");
  assert_string_equal(m.delivery_error, "30003");
  assert_int_equal(m.delivery_at, T0 + 5);
  reminder_clear(&m);
  /* final statuses share a rank: the later one is recorded */
  assert_int_equal(store_reminder_set_delivery(f->s, "SM1", "delivered", NULL, T0 + 8), 1);
  m = get(f);
  assert_string_equal(m.delivery_status, "delivered");
  assert_null(m.delivery_error);
  reminder_clear(&m);

  assert_int_equal(store_reminder_set_delivery(f->s, "SM-unknown", "delivered", NULL, T0), -ENOENT);
  assert_int_equal(store_reminder_set_delivery(f->s, "SM1", "read", NULL, T0), -EINVAL);
  assert_int_equal(store_reminder_set_delivery(f->s, "SM1", NULL, NULL, T0), -EINVAL);
  assert_int_equal(store_reminder_set_delivery(f->s, "", "sent", NULL, T0), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_claim_is_a_lease, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_in_flight_failed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_then_crash, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_pending_and_unknown, setup, teardown),
      cmocka_unit_test_setup_teardown(test_new_term_marks_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reconcile_later, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reconcile_cancelled, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delivery_rank, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
