/* Unit tests for core/ladder: deep copy, offset order, and the one-line
 * snapshot text (exact form, round trips, escaping, rejected inputs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/ladder.h"
#include "core/util.h"

static char **strv(size_t n, ...) {
  va_list ap;
  va_start(ap, n);
  char **v = calloc(n, sizeof(char *));
  assert_non_null(v);
  for (size_t i = 0; i < n; i++)
    assert_non_null(v[i] = strdup(va_arg(ap, const char *)));
  va_end(ap);
  return v;
}

static void set_repeat(struct tier *t, const char *rrule) {
  char err[256];
  assert_non_null(t->repeat = strdup(rrule));
  assert_int_equal(cal_rrule_parse(rrule, &t->rrule, err, sizeof err), 0);
}

/* standard: three tiers exercising every field, with names that need escaping. */
static struct policy *make_policy(void) {
  struct policy *p = calloc(1, sizeof *p);
  assert_non_null(p);
  p->name = strdup("standard");
  p->segments = strv(2, "smb", "*");
  p->n_segments = 2;
  p->catchup = CATCHUP_LATEST;
  p->callback_pause = 604800;
  p->lapse_grace = 2592000;
  p->fallback_owner = strdup("sales desk");
  p->owner_window = strdup("owners");
  p->n_tiers = 3;
  p->tiers = calloc(3, sizeof(struct tier));
  struct tier *t = p->tiers;
  t[0] = (struct tier){.name = strdup("notice"),
                       .offset = {.negative = true, .days = 60},
                       .channels = strv(1, "email"),
                       .n_channels = 1,
                       .template_name = strdup("notice")};
  t[1] = (struct tier){.name = strdup("reminder"),
                       .offset = {.negative = true, .days = 30},
                       .channels = strv(1, "email"),
                       .n_channels = 1,
                       .fallback = strv(2, "sms", "sink"),
                       .n_fallback = 2,
                       .template_name = strdup("reminder")};
  set_repeat(&t[1], "FREQ=WEEKLY;COUNT=3");
  t[2] = (struct tier){.name = strdup("escalation"),
                       .offset = {.negative = true, .seconds = 36 * 3600},
                       .channels = strv(1, "owner-email"),
                       .n_channels = 1,
                       .audience = AUDIENCE_OWNER,
                       .template_name = strdup("escalation"),
                       .escalate_after = 2,
                       .escalate_to = strdup("boss,100%")};
  return p;
}

static const char standard_text[] =
    "ladder/1 policy=standard catchup=latest callback-pause=604800 lapse-grace=2592000 "
    "fallback-owner=sales%20desk owner-window=owners "
    "tier=notice offset=-P60D channels=email audience=customer template=notice "
    "tier=reminder offset=-P30D repeat=FREQ=WEEKLY;COUNT=3 channels=email fallback=sms,sink "
    "audience=customer template=reminder "
    "tier=escalation offset=-PT36H channels=owner-email audience=owner template=escalation "
    "escalate-after=2 escalate-to=boss%2C100%25";

static void test_serialize_exact(void **state) {
  _cleanup_(policy_freep) struct policy *p = make_policy();
  _cleanup_free_ char *s = ladder_serialize(p);
  assert_non_null(s);
  assert_string_equal(s, standard_text);
  assert_null(ladder_serialize(NULL));
}

static void test_round_trip(void **state) {
  _cleanup_(policy_freep) struct policy *p = make_policy();
  _cleanup_free_ char *s = ladder_serialize(p);
  _cleanup_(policy_freep) struct policy *q = NULL;
  assert_int_equal(ladder_parse(s, &q), 0);
  assert_true(ladder_equal(p, q));
  /* Segments are not part of the snapshot. */
  assert_int_equal(q->n_segments, 0);
  /* Field by field, the RRULE re-parsed. */
  assert_string_equal(q->name, "standard");
  assert_string_equal(q->fallback_owner, "sales desk");
  assert_int_equal(q->n_tiers, 3);
  assert_non_null(q->tiers[1].rrule);
  assert_null(q->tiers[0].rrule);
  assert_null(q->tiers[0].repeat);
  assert_string_equal(q->tiers[1].fallback[1], "sink");
  assert_true(q->tiers[2].offset.negative);
  assert_int_equal(q->tiers[2].offset.days, 0);
  assert_int_equal(q->tiers[2].offset.seconds, 36 * 3600);
  assert_int_equal(q->tiers[2].audience, AUDIENCE_OWNER);
  assert_int_equal(q->tiers[2].escalate_after, 2);
  assert_string_equal(q->tiers[2].escalate_to, "boss,100%");
  _cleanup_free_ char *s2 = ladder_serialize(q);
  assert_string_equal(s, s2);
}

/* Names with every separator and odd bytes survive; nothing raw leaks. */
static void test_escaping(void **state) {
  _cleanup_(policy_freep) struct policy *p = make_policy();
  free(p->name);
  p->name = strdup("a b,c%d=e\tf\ng\x7fh/ü|;");
  free(p->tiers[0].channels[0]);
  p->tiers[0].channels[0] = strdup("e mail,x");
  free(p->tiers[0].name);
  p->tiers[0].name = strdup("tier=name with spaces");
  free(p->tiers[0].template_name);
  p->tiers[0].template_name = strdup("");
  _cleanup_free_ char *s = ladder_serialize(p);
  assert_non_null(s);
  assert_non_null(strstr(s, " policy=a%20b%2Cc%25d=e%09f%0Ag%7Fh/ü|; "));
  assert_non_null(strstr(s, " tier=tier=name%20with%20spaces "));
  assert_non_null(strstr(s, " channels=e%20mail%2Cx "));
  assert_non_null(strstr(s, " template= "));
  assert_null(strchr(s, '\n'));
  assert_null(strchr(s, '\t'));
  _cleanup_(policy_freep) struct policy *q = NULL;
  assert_int_equal(ladder_parse(s, &q), 0);
  assert_true(ladder_equal(p, q));
  assert_string_equal(q->tiers[0].name, "tier=name with spaces");
  assert_string_equal(q->tiers[0].template_name, "");
}

/* Offsets: every shape of duration formats canonically and parses back. */
static void test_offsets(void **state) {
  static const struct {
    struct cal_duration d;
    const char *text;
  } cases[] = {
      {{false, 0, 0}, "PT0S"},
      {{true, 60, 0}, "-P60D"},
      {{false, 1, 0}, "P1D"},
      {{false, 14, 0}, "P14D"},
      {{true, 0, 12 * 3600}, "-PT12H"},
      {{false, 0, 36 * 3600}, "PT36H"},
      {{false, 1, 2 * 3600 + 30 * 60}, "P1DT2H30M"},
      {{false, 0, 90}, "PT1M30S"},
      {{true, 3, 5}, "-P3DT5S"},
      {{false, 0, 7200 + 1}, "PT2H1S"},
  };
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    struct tier t = {.name = (char *)"t", .offset = cases[i].d};
    struct policy p = {.tiers = &t, .n_tiers = 1};
    _cleanup_free_ char *s = ladder_serialize(&p);
    _cleanup_free_ char *want =
        strprintf("ladder/1 catchup=latest callback-pause=0 lapse-grace=0 tier=t offset=%s "
                  "audience=customer",
                  cases[i].text);
    assert_string_equal(s, want);
    _cleanup_(policy_freep) struct policy *q = NULL;
    assert_int_equal(ladder_parse(s, &q), 0);
    assert_true(ladder_equal(&p, q));
  }
}

static void test_empty_policy(void **state) {
  struct policy p = {.catchup = CATCHUP_SKIP, .callback_pause = 1, .lapse_grace = 2};
  _cleanup_free_ char *s = ladder_serialize(&p);
  assert_string_equal(s, "ladder/1 catchup=skip callback-pause=1 lapse-grace=2");
  _cleanup_(policy_freep) struct policy *q = NULL;
  assert_int_equal(ladder_parse(s, &q), 0);
  assert_null(q->name);
  assert_int_equal(q->n_tiers, 0);
  assert_int_equal(q->catchup, CATCHUP_SKIP);
  assert_true(ladder_equal(&p, q));
  p.catchup = CATCHUP_ALL;
  assert_false(ladder_equal(&p, q));
}

static void test_parse_rejects(void **state) {
  static const char *const bad[] = {
      "",
      "ladder/2 catchup=latest",
      "ladder/1x catchup=latest",
      "ladder/1",                 /* catchup is required */
      "ladder/1  catchup=latest", /* empty token */
      "ladder/1 catchup=latest ", /* trailing space */
      "ladder/1 catchup=sometimes",
      "ladder/1 catchup=latest catchup=all", /* repeated key */
      "ladder/1 catchup=latest bogus=1",     /* unknown key */
      "ladder/1 catchup=latest =x",
      "ladder/1 catchup=latest noequals",
      "ladder/1 catchup=latest callback-pause=-5",
      "ladder/1 catchup=latest lapse-grace=12x",
      "ladder/1 catchup=latest policy=a policy=b",
      "ladder/1 catchup=latest tier=a", /* offset is required */
      "ladder/1 catchup=latest tier=a offset=-P1D tier=b",
      "ladder/1 catchup=latest tier=a offset=-P1D offset=-P2D",
      "ladder/1 catchup=latest tier=a offset=junk",
      "ladder/1 catchup=latest tier=a offset=-P1D repeat=FREQ=NEVER",
      "ladder/1 catchup=latest tier=a offset=-P1D channels=a,,b",
      "ladder/1 catchup=latest tier=a offset=-P1D channels=",
      "ladder/1 catchup=latest tier=a offset=-P1D channels=a%2",
      "ladder/1 catchup=latest tier=a offset=-P1D channels=a%zz",
      "ladder/1 catchup=latest tier=a offset=-P1D channels=a%00",
      "ladder/1 catchup=latest tier=a offset=-P1D channels=a\tb",
      "ladder/1 catchup=latest tier=a offset=-P1D audience=boss",
      "ladder/1 catchup=latest tier=a offset=-P1D escalate-after=0",
      "ladder/1 catchup=latest tier=a offset=-P1D escalate-after=-1",
      "ladder/1 catchup=latest tier=a offset=-P1D escalate-after=x",
      "ladder/1 catchup=latest tier=a offset=-P1D catchup=all", /* policy key in a tier */
      "ladder/1 catchup=latest tier=a offset=-P1D template=a template=b",
  };
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    struct policy *q = (struct policy *)0x1;
    int r = ladder_parse(bad[i], &q);
    if (r != -EINVAL)
      fail_msg("ladder_parse(\"%s\") = %d, expected -EINVAL", bad[i], r);
    assert_ptr_equal(q, (struct policy *)0x1); /* untouched on failure */
  }
  assert_int_equal(ladder_parse(NULL, NULL), -EINVAL);
}

static void test_copy(void **state) {
  _cleanup_(policy_freep) struct policy *p = make_policy();
  _cleanup_(policy_freep) struct policy *q = NULL;
  assert_int_equal(policy_copy(p, &q), 0);
  assert_true(ladder_equal(p, q));
  assert_int_equal(q->n_segments, 2);
  assert_string_equal(q->segments[1], "*");
  assert_ptr_not_equal(q->tiers[1].rrule, p->tiers[1].rrule);
  assert_non_null(q->tiers[1].rrule);
  assert_ptr_not_equal(q->tiers[1].fallback, p->tiers[1].fallback);
  /* Deep: changing the copy leaves the original alone. */
  q->tiers[0].channels[0][0] = 'X';
  assert_string_equal(p->tiers[0].channels[0], "email");
  assert_false(ladder_equal(p, q));
  assert_int_equal(policy_copy(NULL, &q), -EINVAL);

  struct tier t = {0};
  assert_int_equal(tier_copy(&p->tiers[2], &t), 0);
  assert_string_equal(t.escalate_to, "boss,100%");
  tier_done(&t);
  assert_null(t.name);
  tier_done(&t); /* twice is fine: zeroed */
  assert_null(policy_free(NULL));
}

static void test_offset_cmp(void **state) {
  struct cal_duration m60d = {true, 60, 0}, m30d = {true, 30, 0}, m36h = {true, 0, 36 * 3600},
                      m1d12h = {true, 1, 12 * 3600}, p1d = {false, 1, 0}, z = {false, 0, 0},
                      mz = {true, 0, 0};
  assert_true(ladder_offset_cmp(&m60d, &m30d) < 0);
  assert_true(ladder_offset_cmp(&m30d, &m60d) > 0);
  assert_true(ladder_offset_cmp(&m36h, &m30d) > 0);
  assert_int_equal(ladder_offset_cmp(&m36h, &m1d12h), 0);
  assert_true(ladder_offset_cmp(&m36h, &p1d) < 0);
  assert_int_equal(ladder_offset_cmp(&z, &mz), 0);
  assert_true(ladder_offset_cmp(&p1d, &z) > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_serialize_exact),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_escaping),
      cmocka_unit_test(test_offsets),
      cmocka_unit_test(test_empty_policy),
      cmocka_unit_test(test_parse_rejects),
      cmocka_unit_test(test_copy),
      cmocka_unit_test(test_offset_cmp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
