/* Unit tests for core/store_suppress.c: address normalization, add (first
 * row wins, events), check, remove (opt-outs only, clearing customers'
 * opt-out bits), listing with a cursor, a customer's suppressions, and the v6
 * migration copying the opt-out bits of an older store. Every test works in
 * its own mkdtemp() directory, removed afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <unistd.h>

#include "core/store.h"
#include "core/util.h"
#include "storetmp.h"

#define T0 INT64_C(1790000000)

struct fixture {
  struct store_tmp tmp;
  struct store *s;
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  store_tmp_open(&f->tmp, "suppress", &f->s);
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

static void test_normalize(void **state) {
  (void)state;
  char out[STORE_ADDRESS_MAX + 1];
  assert_int_equal(store_address_normalize(SUPPRESS_EMAIL, "  Ann.Lee@Example.COM ", out), 0);
  assert_string_equal(out, "ann.lee@example.com");
  assert_int_equal(store_address_normalize(SUPPRESS_SMS, "+49 (151) 123-456.78", out), 0);
  assert_string_equal(out, "+4915112345678");
  static const char *const bad_email[] = {"",      "ann",     "@example.com", "ann@",
                                          "a@b@c", "a b@c.d", "a\x01@b.c"};
  for (size_t i = 0; i < ELEMENTSOF(bad_email); i++)
    assert_int_equal(store_address_normalize(SUPPRESS_EMAIL, bad_email[i], out), -EINVAL);
  static const char *const bad_phone[] = {"",
                                          "4915112345678",
                                          "+0151123456",
                                          "+1234567",
                                          "+1234567890123456",
                                          "+49x15112345678",
                                          "+-4915112345"};
  for (size_t i = 0; i < ELEMENTSOF(bad_phone); i++)
    assert_int_equal(store_address_normalize(SUPPRESS_SMS, bad_phone[i], out), -EINVAL);
  assert_int_equal(store_address_normalize((enum suppress_kind)7, "a@b.c", out), -EINVAL);
  assert_string_equal(suppress_kind_to_string(SUPPRESS_SMS), "sms");
  assert_int_equal(suppress_kind_from_string("email"), SUPPRESS_EMAIL);
  assert_int_equal(suppress_kind_from_string("webhook"), -EINVAL);
  assert_true(store_suppression_word_valid("hard-bounce"));
  assert_false(store_suppression_word_valid("Stop"));
  assert_false(store_suppression_word_valid("a b"));
  assert_false(store_suppression_word_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 33 */
}

struct events {
  char kinds[8][32];
  char details[8][160];
  size_t n;
};

static int event_cb(const struct event *e, void *ud) {
  struct events *ev = ud;
  if (ev->n < 8) {
    snprintf(ev->kinds[ev->n], sizeof ev->kinds[0], "%s", e->kind);
    snprintf(ev->details[ev->n], sizeof ev->details[0], "%s", e->detail ? e->detail : "");
  }
  ev->n++;
  return 0;
}

static void test_add_check_remove(void **state) {
  struct fixture *f = *state;
  struct store *s = f->s;
  assert_int_equal(
      store_suppression_add(s, SUPPRESS_SMS, "+49 151 1234 5678", "stop", "sms-inbound", NULL, T0),
      1);
  /* the first row wins: a second STOP (or an unsubscribe) changes nothing */
  assert_int_equal(
      store_suppression_add(s, SUPPRESS_SMS, "+4915112345678", "unsubscribe", "link", "x", T0 + 1),
      0);
  struct suppression sp = {0};
  assert_int_equal(store_suppression_check(s, SUPPRESS_SMS, "+4915112345678", &sp), 1);
  assert_string_equal(sp.address, "+4915112345678");
  assert_int_equal(sp.kind, SUPPRESS_SMS);
  assert_string_equal(sp.reason, "stop");
  assert_string_equal(sp.source, "sms-inbound");
  assert_null(sp.note);
  assert_int_equal(sp.created_at, T0);
  suppression_clear(&sp);
  /* the same digits as an email address, or another kind: not suppressed */
  assert_int_equal(store_suppression_check(s, SUPPRESS_EMAIL, "+4915112345678", NULL), 0);
  assert_int_equal(store_suppression_check(s, SUPPRESS_SMS, "+4915112345679", NULL), 0);
  assert_int_equal(store_suppression_check(s, SUPPRESS_SMS, NULL, NULL), 0);

  assert_int_equal(store_suppression_add(s, SUPPRESS_EMAIL, "Ann@Example.com", "hard-bounce", NULL,
                                         "550 5.1.1 user unknown", T0 + 2),
                   1);
  assert_int_equal(store_suppression_check(s, SUPPRESS_EMAIL, "ann@example.COM", NULL), 1);
  /* a START lifts an opt-out, not a bounce */
  assert_int_equal(
      store_suppression_remove(s, SUPPRESS_EMAIL, "ann@example.com", true, "link", NULL, T0 + 3),
      0);
  assert_int_equal(store_suppression_check(s, SUPPRESS_EMAIL, "ann@example.com", NULL), 1);
  assert_int_equal(store_suppression_remove(s, SUPPRESS_EMAIL, "ann@example.com", false, "renewctl",
                                            "asked by phone", T0 + 4),
                   1);
  assert_int_equal(store_suppression_check(s, SUPPRESS_EMAIL, "ann@example.com", NULL), 0);
  assert_int_equal(store_suppression_remove(s, SUPPRESS_SMS, "+4915112345678", true, "sms-inbound",
                                            NULL, T0 + 5),
                   1);
  assert_int_equal(store_suppression_check(s, SUPPRESS_SMS, "+4915112345678", NULL), 0);
  assert_int_equal(
      store_suppression_remove(s, SUPPRESS_SMS, "+4915112345678", true, NULL, NULL, T0), 0);

  struct events ev = {0};
  assert_int_equal(store_event_foreach_contract(s, NULL, event_cb, &ev), 4);
  assert_string_equal(ev.kinds[0], "suppression.added");
  assert_string_equal(ev.details[0],
                      "kind=sms address=+4915112345678 reason=stop source=sms-inbound");
  assert_string_equal(ev.details[1],
                      "kind=email address=ann@example.com reason=hard-bounce source=-");
  assert_string_equal(ev.kinds[2], "suppression.removed");
  assert_string_equal(ev.details[2],
                      "kind=email address=ann@example.com reason=hard-bounce source=renewctl "
                      "why=asked by phone");
  assert_string_equal(ev.details[3],
                      "kind=sms address=+4915112345678 reason=stop source=sms-inbound");
}

static void test_invalid(void **state) {
  struct fixture *f = *state;
  struct store *s = f->s;
  assert_int_equal(
      store_suppression_add(NULL, SUPPRESS_SMS, "+4915112345678", "stop", NULL, NULL, T0), -EINVAL);
  assert_int_equal(store_suppression_add(s, SUPPRESS_SMS, "0151", "stop", NULL, NULL, T0), -EINVAL);
  assert_int_equal(store_suppression_add(s, SUPPRESS_SMS, "+4915112345678", "", NULL, NULL, T0),
                   -EINVAL);
  assert_int_equal(
      store_suppression_add(s, SUPPRESS_SMS, "+4915112345678", "stop", "SMS", NULL, T0), -EINVAL);
  assert_int_equal(
      store_suppression_add(s, SUPPRESS_SMS, "+4915112345678", "stop", NULL, "line\nbreak", T0),
      -EINVAL);
  assert_int_equal(store_suppression_remove(s, SUPPRESS_EMAIL, "nope", false, NULL, NULL, T0),
                   -EINVAL);
  assert_int_equal(store_suppression_check(s, (enum suppress_kind)5, "a@b.c", NULL), -EINVAL);
  struct store_suppression_filter bad = {.kind = -1, .address = "a@b.c"};
  assert_int_equal(store_suppression_foreach(s, &bad, NULL, NULL), -EINVAL);
}

/* Removing a suppression clears the opt-out bit of every customer with that
 * address (a shared number), and their contracts are re-planned. */
static void test_remove_clears_bits(void **state) {
  struct fixture *f = *state;
  struct store *s = f->s;
  struct customer a = {.id = (char *)"A", .phone = (char *)"+4915112345678", .optout = OPTOUT_SMS};
  struct customer b = {.id = (char *)"B",
                       .phone = (char *)"+4915112345678",
                       .email = (char *)"b@example.com",
                       .optout = OPTOUT_SMS | OPTOUT_EMAIL | OPTOUT_WEBHOOK};
  struct customer c = {.id = (char *)"C", .phone = (char *)"+4915100000000", .optout = OPTOUT_SMS};
  assert_int_equal(store_customer_upsert(s, &a, T0), STORE_INSERTED);
  assert_int_equal(store_customer_upsert(s, &b, T0), STORE_INSERTED);
  assert_int_equal(store_customer_upsert(s, &c, T0), STORE_INSERTED);
  struct contract k = {.id = (char *)"K", .customer_id = (char *)"B", .expires_at = T0 + 86400};
  assert_int_equal(store_contract_upsert(s, &k, T0), STORE_INSERTED);
  int64_t seq0 = 0, seq1 = 0;
  assert_int_equal(store_contract_max_change_seq(s, &seq0), 0);

  /* no row, but bits: still "removed" */
  assert_int_equal(store_suppression_remove(s, SUPPRESS_SMS, "+4915112345678", true, "sms-inbound",
                                            NULL, T0 + 1),
                   1);
  struct customer g = {0};
  assert_int_equal(store_customer_get(s, "A", &g), 0);
  assert_int_equal(g.optout, 0);
  customer_clear(&g);
  assert_int_equal(store_customer_get(s, "B", &g), 0);
  assert_int_equal(g.optout, OPTOUT_EMAIL | OPTOUT_WEBHOOK);
  customer_clear(&g);
  assert_int_equal(store_customer_get(s, "C", &g), 0);
  assert_int_equal(g.optout, OPTOUT_SMS);
  customer_clear(&g);
  assert_int_equal(store_contract_max_change_seq(s, &seq1), 0);
  assert_true(seq1 > seq0);

  /* email addresses compare case-insensitively with what the customer has */
  assert_int_equal(
      store_suppression_remove(s, SUPPRESS_EMAIL, "B@EXAMPLE.com", true, NULL, NULL, T0 + 2), 1);
  assert_int_equal(store_customer_get(s, "B", &g), 0);
  assert_int_equal(g.optout, OPTOUT_WEBHOOK);
  customer_clear(&g);
  assert_int_equal(
      store_suppression_remove(s, SUPPRESS_EMAIL, "b@example.com", true, NULL, NULL, T0 + 3), 0);
}

struct list {
  int64_t ids[8];
  char addr[8][64];
  size_t n;
};

static int list_cb(const struct suppression *sp, void *ud) {
  struct list *l = ud;
  if (l->n < 8) {
    l->ids[l->n] = sp->id;
    snprintf(l->addr[l->n], sizeof l->addr[0], "%s", sp->address);
  }
  l->n++;
  return 0;
}

static void test_foreach(void **state) {
  struct fixture *f = *state;
  struct store *s = f->s;
  assert_int_equal(store_suppression_add(s, SUPPRESS_SMS, "+4915112345678", "stop", NULL, NULL, T0),
                   1);
  assert_int_equal(
      store_suppression_add(s, SUPPRESS_EMAIL, "a@example.com", "unsubscribe", "link", NULL, T0),
      1);
  assert_int_equal(
      store_suppression_add(s, SUPPRESS_EMAIL, "b@example.com", "manual", "renewctl", "asked", T0),
      1);
  struct list l = {0};
  assert_int_equal(store_suppression_foreach(s, NULL, list_cb, &l), 3);
  assert_string_equal(l.addr[0], "+4915112345678");
  assert_string_equal(l.addr[2], "b@example.com");

  l = (struct list){0};
  struct store_suppression_filter fl = {.kind = SUPPRESS_EMAIL, .limit = 1};
  assert_int_equal(store_suppression_foreach(s, &fl, list_cb, &l), 1);
  assert_string_equal(l.addr[0], "a@example.com");
  fl.after_id = l.ids[0];
  assert_int_equal(store_suppression_foreach(s, &fl, list_cb, &l), 1);
  assert_string_equal(l.addr[1], "b@example.com");
  fl.after_id = l.ids[1];
  assert_int_equal(store_suppression_foreach(s, &fl, list_cb, &l), 0);

  l = (struct list){0};
  fl = (struct store_suppression_filter){.kind = -1, .reason = "stop"};
  assert_int_equal(store_suppression_foreach(s, &fl, list_cb, &l), 1);
  fl = (struct store_suppression_filter){.kind = SUPPRESS_EMAIL, .address = "b@example.com"};
  assert_int_equal(store_suppression_foreach(s, &fl, list_cb, &l), 1);
  assert_string_equal(l.addr[1], "b@example.com");

  l = (struct list){0};
  assert_int_equal(
      store_suppression_foreach_contact(s, "A@example.com", "+4915112345678", list_cb, &l), 2);
  assert_string_equal(l.addr[0], "a@example.com");
  assert_string_equal(l.addr[1], "+4915112345678");
  assert_int_equal(store_suppression_foreach_contact(s, NULL, "+4915199999999", list_cb, &l), 0);
}

static int64_t path_int(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

/* A store at schema v4 with opt-out bits: v6 copies them in as suppressions
 * of the customers' current addresses and keeps the bits. */
static void test_migrate_optout_bits(void **state) {
  struct fixture *f = *state;
  struct customer a = {.id = (char *)"A",
                       .email = (char *)"Ann@Example.com",
                       .phone = (char *)"+4915112345678",
                       .optout = OPTOUT_EMAIL | OPTOUT_SMS};
  struct customer b = {.id = (char *)"B", .phone = (char *)"+4915112345678", .optout = OPTOUT_SMS};
  struct customer c = {.id = (char *)"C", .optout = OPTOUT_EMAIL}; /* no address: bit only */
  struct customer d = {.id = (char *)"D", .email = (char *)"d@example.com"};
  assert_int_equal(store_customer_upsert(f->s, &a, T0), STORE_INSERTED);
  assert_int_equal(store_customer_upsert(f->s, &b, T0 + 1), STORE_INSERTED);
  assert_int_equal(store_customer_upsert(f->s, &c, T0), STORE_INSERTED);
  assert_int_equal(store_customer_upsert(f->s, &d, T0), STORE_INSERTED);
  f->s = store_free(f->s);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(f->tmp.path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "DROP TABLE suppressions; DROP INDEX customers_optout; "
                                "PRAGMA user_version = 4;",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);

  char err[256];
  assert_int_equal(store_open(f->tmp.path, 0, &f->s, err, sizeof err), 0);
  assert_int_equal(path_int(f->tmp.path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
  assert_int_equal(path_int(f->tmp.path, "SELECT count(*) FROM suppressions"), 2);
  struct suppression sp = {0};
  assert_int_equal(store_suppression_check(f->s, SUPPRESS_EMAIL, "ann@example.com", &sp), 1);
  assert_string_equal(sp.reason, "unsubscribe");
  assert_string_equal(sp.source, "migration");
  assert_string_equal(sp.note, "opt-out of customer A");
  assert_int_equal(sp.created_at, T0);
  suppression_clear(&sp);
  assert_int_equal(store_suppression_check(f->s, SUPPRESS_SMS, "+4915112345678", &sp), 1);
  assert_string_equal(sp.reason, "stop");
  assert_string_equal(sp.note, "opt-out of customer A"); /* the oldest opt-out */
  suppression_clear(&sp);
  struct customer g = {0};
  assert_int_equal(store_customer_get(f->s, "A", &g), 0);
  assert_int_equal(g.optout, OPTOUT_EMAIL | OPTOUT_SMS);
  customer_clear(&g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_normalize),
      cmocka_unit_test_setup_teardown(test_add_check_remove, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_remove_clears_bits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migrate_optout_bits, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
