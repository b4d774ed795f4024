/* Unit tests for core/validate: every rule of an import row, the normalised
 * records a valid row yields, and the single-value checks. Expected instants
 * were computed independently (Python zoneinfo). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/util.h"
#include "core/validate.h"

/* 2027-02-28 valid through, Europe/Berlin: expires 2027-03-01T00:00+01:00 */
#define BERLIN_2027_03_01 INT64_C(1803855600)
#define BERLIN_2026_03_01 INT64_C(1772319600)
#define BERLIN_2028_03_01 INT64_C(1835478000)
#define NEWYORK_2027_03_01 INT64_C(1803877200)

static struct cal *cal;
static struct validate *v;

static int setup(void **state) {
  assert_int_equal(cal_new(&cal), 0);
  assert_int_equal(validate_new(cal, "America/New_York", &v), 0);
  return 0;
}

static int teardown(void **state) {
  v = validate_free(v);
  cal = cal_free(cal);
  return 0;
}

/* A valid row; a test case overrides some columns. */
static void base_row(const char *f[_VCOL_MAX]) {
  f[VCOL_CONTRACT_ID] = "C1";
  f[VCOL_CUSTOMER_ID] = "CU1";
  f[VCOL_CUSTOMER_NAME] = "王小明";
  f[VCOL_EMAIL] = "xm@example.com";
  f[VCOL_PHONE] = NULL;
  f[VCOL_TIMEZONE] = "Europe/Berlin";
  f[VCOL_LOCALE] = "zh-CN";
  f[VCOL_SEGMENT] = "smb";
  f[VCOL_OWNER] = "alice";
  f[VCOL_PRODUCT] = "Pro plan";
  f[VCOL_STARTS_ON] = "2026-03-01";
  f[VCOL_EXPIRES_ON] = "2027-02-28";
  f[VCOL_VALUE] = "1200.50";
  f[VCOL_CURRENCY] = "EUR";
}

/* Validates base_row with up to 3 overrides and renders the problems as
 * "col: message\n" lines. */
struct override {
  int col; /* -1 = unused */
  const char *value;
};

#define END                                                                                        \
  { -1, NULL }

static int run(const struct override *o, size_t n, char *out, size_t outlen, struct customer *cu,
               struct contract *co) {
  const char *f[_VCOL_MAX];
  struct validate_problems ps;
  base_row(f);
  for (size_t i = 0; i < n && o[i].col >= 0; i++) /* {-1} ends a shorter list */
    f[o[i].col] = o[i].value;
  int r = validate_row(v, f, cu, co, &ps);
  assert_true(r >= 0);
  assert_int_equal((size_t)r, ps.n);
  out[0] = 0;
  for (size_t i = 0; i < ps.n; i++) {
    size_t l = strlen(out);
    snprintf(out + l, outlen - l, "%s: %s\n", validate_col_name(ps.p[i].col), ps.p[i].message);
  }
  return r;
}

static void test_valid_row(void **state) {
  struct customer cu;
  struct contract co;
  char out[1024];
  assert_int_equal(run(NULL, 0, out, sizeof(out), &cu, &co), 0);
  assert_string_equal(out, "");
  assert_string_equal(co.id, "C1");
  assert_string_equal(co.customer_id, "CU1");
  assert_string_equal(co.product, "Pro plan");
  assert_string_equal(co.currency, "EUR");
  assert_int_equal(co.value_minor, 120050);
  assert_int_equal(co.expires_at, BERLIN_2027_03_01);
  assert_int_equal(co.starts_at, BERLIN_2026_03_01);
  assert_int_equal(co.rowid, 0);
  assert_string_equal(cu.id, "CU1");
  assert_string_equal(cu.name, "王小明");
  assert_string_equal(cu.email, "xm@example.com");
  assert_null(cu.phone);
  assert_string_equal(cu.tz, "Europe/Berlin");
  assert_string_equal(cu.locale, "zh-CN");
  assert_string_equal(cu.segment, "smb");
  assert_string_equal(cu.owner_id, "alice");
  assert_int_equal(cu.optout, 0);
}

static void test_normalised(void **state) {
  struct customer cu;
  struct contract co;
  char out[1024];
  /* trimming, default zone, E.164 separators, no value, timestamp expiry */
  const struct override o[] = {
      {VCOL_CONTRACT_ID, "  C2\t"},
      {VCOL_TIMEZONE, " "},
      {VCOL_PHONE, "+44 20 7946-0958"},
      {VCOL_VALUE, NULL},
      {VCOL_CURRENCY, NULL},
      {VCOL_STARTS_ON, ""},
      {VCOL_EMAIL, ""},
      {VCOL_EXPIRES_ON, "2027-03-01T10:00:00+05:30"},
  };
  assert_int_equal(run(o, ELEMENTSOF(o), out, sizeof(out), &cu, &co), 0);
  assert_string_equal(co.id, "C2");
  assert_string_equal(cu.tz, "America/New_York");
  assert_string_equal(cu.phone, "+442079460958");
  assert_null(cu.email);
  assert_null(co.currency);
  assert_int_equal(co.value_minor, 0);
  assert_int_equal(co.starts_at, 0);
  assert_int_equal(co.expires_at, INT64_C(1803875400));

  /* default zone applies to dates */
  const struct override o2[] = {{VCOL_TIMEZONE, NULL}, {VCOL_STARTS_ON, NULL}};
  assert_int_equal(run(o2, ELEMENTSOF(o2), out, sizeof(out), &cu, &co), 0);
  assert_int_equal(co.expires_at, NEWYORK_2027_03_01);

  /* leap day */
  const struct override o3[] = {{VCOL_EXPIRES_ON, "2028-02-29"}};
  assert_int_equal(run(o3, 1, out, sizeof(out), &cu, &co), 0);
  assert_int_equal(co.expires_at, BERLIN_2028_03_01);

  /* amounts */
  static const struct {
    const char *in;
    int64_t minor;
  } amounts[] = {{"0", 0}, {"12.5", 1250}, {"12.05", 1205}, {"007", 700}, {"999999", 99999900}};
  for (size_t i = 0; i < ELEMENTSOF(amounts); i++) {
    const struct override oa[] = {{VCOL_VALUE, amounts[i].in}};
    assert_int_equal(run(oa, 1, out, sizeof(out), &cu, &co), 0);
    assert_int_equal(co.value_minor, amounts[i].minor);
  }
}

static void test_problems(void **state) {
  static const struct {
    struct override o[3];
    const char *expect;
  } cases[] = {
      /* required */
      {{{VCOL_CONTRACT_ID, ""}, END}, "contract_id: required\n"},
      {{{VCOL_CUSTOMER_ID, "   "}, END}, "customer_id: required\n"},
      {{{VCOL_EXPIRES_ON, NULL}, END}, "expires_on: required\n"},
      {{{VCOL_EMAIL, NULL}, {VCOL_PHONE, ""}, END}, "email: email or phone required\n"},
      /* dates */
      {{{VCOL_EXPIRES_ON, "2027-02-30"}, END}, "expires_on: invalid date '2027-02-30'\n"},
      {{{VCOL_EXPIRES_ON, "2027-02-29"}, END}, "expires_on: invalid date '2027-02-29'\n"},
      {{{VCOL_EXPIRES_ON, "2027-13-01"}, END}, "expires_on: invalid date '2027-13-01'\n"},
      {{{VCOL_EXPIRES_ON, "12/31/2027"}, END},
       "expires_on: expected YYYY-MM-DD or RFC 3339, got '12/31/2027'\n"},
      {{{VCOL_EXPIRES_ON, "2027-3-1"}, END},
       "expires_on: expected YYYY-MM-DD or RFC 3339, got '2027-3-1'\n"},
      {{{VCOL_EXPIRES_ON, "2027-03-01T25:00:00Z"}, END},
       "expires_on: invalid timestamp '2027-03-01T25:00:00Z'\n"},
      {{{VCOL_STARTS_ON, "2026-02-30"}, END}, "starts_on: invalid date '2026-02-30'\n"},
      {{{VCOL_STARTS_ON, "2027-03-01"}, END},
       "starts_on: '2027-03-01' is not before expires_on '2027-02-28'\n"},
      /* zone: the dates are still checked for syntax */
      {{{VCOL_TIMEZONE, "Mars/Olympus"}, END}, "timezone: unknown time zone 'Mars/Olympus'\n"},
      {{{VCOL_TIMEZONE, "Mars/Olympus"}, {VCOL_EXPIRES_ON, "2027-02-30"}, END},
       "timezone: unknown time zone 'Mars/Olympus'\nexpires_on: invalid date '2027-02-30'\n"},
      /* contact */
      {{{VCOL_EMAIL, "bob@"}, END}, "email: invalid email 'bob@'\n"},
      {{{VCOL_EMAIL, "bob@localhost"}, END}, "email: invalid email 'bob@localhost'\n"},
      {{{VCOL_EMAIL, "a..b@example.com"}, END}, "email: invalid email 'a..b@example.com'\n"},
      {{{VCOL_EMAIL, "a b@example.com"}, END}, "email: invalid email 'a b@example.com'\n"},
      {{{VCOL_PHONE, "0044 20 7946"}, END}, "phone: not E.164: '0044 20 7946'\n"},
      {{{VCOL_PHONE, "+1234567"}, END}, "phone: not E.164: '+1234567'\n"},
      {{{VCOL_PHONE, "+1234567890123456"}, END}, "phone: not E.164: '+1234567890123456'\n"},
      {{{VCOL_PHONE, "+0123456789"}, END}, "phone: not E.164: '+0123456789'\n"},
      {{{VCOL_PHONE, "+49 30 x12345"}, END}, "phone: not E.164: '+49 30 x12345'\n"},
      /* money */
      {{{VCOL_VALUE, "-5"}, END}, "value: negative value '-5'\n"},
      {{{VCOL_VALUE, "-0.01"}, END}, "value: negative value '-0.01'\n"},
      {{{VCOL_VALUE, "1.234"}, END}, "value: more than 2 decimals: '1.234'\n"},
      {{{VCOL_VALUE, "1,000"}, END}, "value: invalid value '1,000' (want e.g. 1200.50)\n"},
      {{{VCOL_VALUE, "1."}, END}, "value: invalid value '1.' (want e.g. 1200.50)\n"},
      {{{VCOL_VALUE, ".5"}, END}, "value: invalid value '.5' (want e.g. 1200.50)\n"},
      {{{VCOL_VALUE, "10000000000000.01"}, END}, "value: value too large: '10000000000000.01'\n"},
      {{{VCOL_CURRENCY, ""}, END}, "currency: required when value is given\n"},
      {{{VCOL_CURRENCY, "eur"}, END},
       "currency: invalid currency 'eur' (want 3 uppercase letters, e.g. EUR)\n"},
      {{{VCOL_CURRENCY, "EURO"}, END},
       "currency: invalid currency 'EURO' (want 3 uppercase letters, e.g. EUR)\n"},
      /* locale */
      {{{VCOL_LOCALE, "en_US"}, END}, "locale: invalid locale 'en_US' (want e.g. en, zh-CN)\n"},
      {{{VCOL_LOCALE, "e"}, END}, "locale: invalid locale 'e' (want e.g. en, zh-CN)\n"},
      {{{VCOL_LOCALE, "en-"}, END}, "locale: invalid locale 'en-' (want e.g. en, zh-CN)\n"},
      /* text */
      {{{VCOL_SEGMENT, "12345678901234567890123456789012345678901234567890123456789012345"}, END},
       "segment: longer than 64 characters\n"},
      {{{VCOL_OWNER, "al\x1b[31mice"}, END}, "owner: contains a control character\n"},
      {{{VCOL_CUSTOMER_NAME, "bad \xff name"}, END}, "customer_name: not valid UTF-8\n"},
      {{{VCOL_CUSTOMER_NAME, "overlong \xc0\xaf"}, END}, "customer_name: not valid UTF-8\n"},
      {{{VCOL_PRODUCT, "surrogate \xed\xa0\x80"}, END}, "product: not valid UTF-8\n"},
      /* several problems in one row, all reported, in column order */
      {{{VCOL_CURRENCY, "xx"}, {VCOL_CONTRACT_ID, ""}, {VCOL_PHONE, "12"}},
       "contract_id: required\nphone: not E.164: '12'\n"
       "currency: invalid currency 'xx' (want 3 uppercase letters, e.g. EUR)\n"},
      /* long values are shortened in messages */
      {{{VCOL_EMAIL, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@"}, END},
       "email: invalid email 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'\n"},
  };
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    char out[1024];
    struct customer cu = {.id = (char *)"untouched"};
    print_message("case %zu\n", i);
    assert_true(run(cases[i].o, 3, out, sizeof(out), &cu, NULL) > 0);
    assert_string_equal(out, cases[i].expect);
    assert_string_equal(cu.id, "untouched");
  }
}

static void test_text_limits(void **state) {
  char out[1024];
  struct customer cu;
  /* 64 CJK characters (192 bytes) are fine, 65 are not */
  char seg[65 * 3 + 1] = "";
  for (int i = 0; i < 64; i++)
    strcat(seg, "区");
  const struct override ok[] = {{VCOL_SEGMENT, seg}};
  assert_int_equal(run(ok, 1, out, sizeof(out), &cu, NULL), 0);
  assert_string_equal(cu.segment, seg);
  strcat(seg, "区");
  assert_int_equal(run(ok, 1, out, sizeof(out), &cu, NULL), 1);
  assert_string_equal(out, "segment: longer than 64 characters\n");

  char id[130];
  memset(id, 'x', 129);
  id[129] = 0;
  const struct override longid[] = {{VCOL_CONTRACT_ID, id}};
  assert_int_equal(run(longid, 1, out, sizeof(out), &cu, NULL), 1);
  assert_string_equal(out, "contract_id: longer than 128 bytes\n");
  id[128] = 0;
  assert_int_equal(run(longid, 1, out, sizeof(out), &cu, NULL), 0);

  /* a value cut in the middle of a multi-byte character is cut before it */
  char tz[80] = "Asia/";
  for (int i = 0; i < 30; i++)
    strcat(tz, "é");
  const struct override badtz[] = {{VCOL_TIMEZONE, tz}};
  assert_int_equal(run(badtz, 1, out, sizeof(out), &cu, NULL), 1);
  assert_string_equal(out, "timezone: unknown time zone "
                           "'Asia/ééééééééééééééééééééé...'\n"); /* 21 x é */
}

static void test_single_values(void **state) {
  static const struct {
    const char *s;
    bool ok;
  } emails[] = {
      {"a@example.com", true},      {"first.last+tag@sub.example.co.uk", true},
      {"o'brien@example.ie", true}, {"zoë@exämple.de", true},
      {"@example.com", false},      {".a@example.com", false},
      {"a.@example.com", false},    {"a@b@example.com", false},
      {"a@-example.com", false},    {"a@example-.com", false},
      {"a@example..com", false},    {"a@example.123", false},
      {"a@example", false},         {"", false},
  };
  for (size_t i = 0; i < ELEMENTSOF(emails); i++) {
    print_message("email %s\n", emails[i].s);
    assert_int_equal(validate_email(emails[i].s), emails[i].ok);
  }
  char out[17];
  assert_int_equal(validate_e164("+14155552671", out), 0);
  assert_string_equal(out, "+14155552671");
  assert_int_equal(validate_e164("+1 (415) 555-2671", out), 0);
  assert_string_equal(out, "+14155552671");
  assert_int_equal(validate_e164("+123456789012345", out), 0);
  assert_int_equal(validate_e164("+12345678", out), 0);
  assert_int_equal(validate_e164("14155552671", out), -EINVAL);
  assert_int_equal(validate_e164("+ 14155552671", out), -EINVAL);
  assert_int_equal(validate_e164("+", out), -EINVAL);

  assert_true(validate_locale("en"));
  assert_true(validate_locale("de-CH"));
  assert_true(validate_locale("zh-Hans-CN"));
  assert_true(validate_locale("es-419"));
  assert_false(validate_locale("english"));
  assert_false(validate_locale("en--US"));
  assert_false(validate_locale("en-abcdefghi"));

  assert_true(validate_currency("JPY"));
  assert_false(validate_currency("JP"));
  assert_false(validate_currency("Jpy"));

  int64_t m = -1;
  assert_int_equal(validate_amount("0.99", &m), 0);
  assert_int_equal(m, 99);
  assert_int_equal(validate_amount("10000000000000", &m), 0);
  assert_int_equal(m, INT64_C(1000000000000000));
  assert_int_equal(validate_amount("10000000000000.01", &m), -ERANGE);
  assert_int_equal(validate_amount("99999999999999999999999", &m), -ERANGE);
  assert_int_equal(validate_amount("-1", &m), -EDOM);
  assert_int_equal(validate_amount("1.001", &m), -E2BIG);
  assert_int_equal(validate_amount("1e3", &m), -EINVAL);
  assert_int_equal(validate_amount("+1", &m), -EINVAL);
  assert_int_equal(m, INT64_C(1000000000000000));

  size_t n;
  assert_true(validate_text("王小明", strlen("王小明"), &n));
  assert_int_equal(n, 3);
  assert_true(validate_text("\xf0\x9f\x98\x80", 4, &n)); /* emoji */
  assert_int_equal(n, 1);
  assert_false(validate_text("\xf0\x9f\x98", 3, NULL)); /* truncated */
  assert_false(validate_text("a\tb", 3, NULL));
}

static void test_columns(void **state) {
  assert_int_equal(validate_col_from_name(" Contract_ID ", 13), VCOL_CONTRACT_ID);
  assert_int_equal(validate_col_from_name("EXPIRES_ON", 10), VCOL_EXPIRES_ON);
  assert_int_equal(validate_col_from_name("currency\t", 9), VCOL_CURRENCY);
  assert_int_equal(validate_col_from_name("contract", 8), -EINVAL);
  assert_int_equal(validate_col_from_name("", 0), -EINVAL);
  assert_string_equal(validate_col_name(VCOL_TIMEZONE), "timezone");
  assert_null(validate_col_name(_VCOL_MAX));
  for (int c = 0; c < _VCOL_MAX; c++)
    assert_int_equal(validate_col_from_name(validate_col_name(c), strlen(validate_col_name(c))), c);

  struct validate *bad = NULL;
  assert_int_equal(validate_new(cal, "Mars/Olympus", &bad), -EINVAL);
  assert_null(bad);
  assert_int_equal(validate_row(NULL, NULL, NULL, NULL, NULL), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_row),     cmocka_unit_test(test_normalised),
      cmocka_unit_test(test_problems),      cmocka_unit_test(test_text_limits),
      cmocka_unit_test(test_single_values), cmocka_unit_test(test_columns),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
