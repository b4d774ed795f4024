/* Unit tests for core/planner: planning a contract against a real SQLite store
 * (a temporary file per test) with hand-built policies and send windows.
 *
 * Checked with exact values: the outbox rows a plan inserts (tier, step,
 * channel, audience, recipient, status, reason) and the next due instant (the
 * return value and contracts.next_due_at); re-planning inserts nothing new
 * (idempotent); the catch-up rule (superseded skips, a late send); the state
 * transitions at expiry and after the lapse grace with "expired" skips;
 * skipped rows with reasons (opted out, no phone number, channel not
 * configured, no sales owner); the fallback owner's zone for escalations when
 * the customer's owner is missing; the dry run (planner_simulate) writing
 * nothing; planner_rebase (replan) with and without --dry-run; and the
 * candidate expiry range.
 *
 * The ladder (customer zone UTC unless said otherwise, window Mon-Fri
 * 09:00-18:00, owners Mon-Fri 08:00-19:00, expiry 2030-03-01T00:00Z, a
 * Friday):
 *   notice      -P30D  email,sms   raw Wed 2030-01-30 00:00 -> due 09:00Z
 *   reminder    -P14D  email, FREQ=WEEKLY;COUNT=2: Fri 02-15, Fri 02-22, 09:00Z
 *   escalation  -P3D   owner email raw Tue 02-26 00:00Z (alice, New York:
 *                      Mon 19:00 local, window closed -> Tue 08:00 EST = 13:00Z)
 *   lapse at the expiry, closed 30 days later. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <time.h>
#include <unistd.h>

#include "core/planner.h"
#include "core/util.h"
#include "storetmp.h"

#define DAY INT64_C(86400)

static int64_t utc(int y, int mo, int d, int h, int mi) {
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
  return (int64_t)timegm(&tm);
}

#define EXPIRES utc(2030, 3, 1, 0, 0)
#define NOTICE_DUE utc(2030, 1, 30, 9, 0)
#define REMINDER0_DUE utc(2030, 2, 15, 9, 0)
#define REMINDER1_DUE utc(2030, 2, 22, 9, 0)
#define ESCALATION_DUE utc(2030, 2, 26, 13, 0)

/* ---- hand-built policies ---------------------------------------------------------- */

struct tier_spec {
  const char *name, *offset, *repeat, *channels;
  enum audience audience;
};

static char **split(const char *list, size_t *ret_n) {
  char **v = calloc(8, sizeof *v);
  size_t n = 0;
  _cleanup_free_ char *copy = strdup(list);
  char *save = NULL;
  assert_non_null(v);
  assert_non_null(copy);
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    assert_true(n < 8);
    assert_non_null(v[n++] = strdup(t));
  }
  *ret_n = n;
  return v;
}

static struct policy *make_policy(const char *name, enum catchup catchup, const char *fallback,
                                  const struct tier_spec *ts, size_t n) {
  struct policy *p = calloc(1, sizeof *p);
  assert_non_null(p);
  p->name = strdup(name);
  p->catchup = catchup;
  p->fallback_owner = fallback ? strdup(fallback) : NULL;
  p->owner_window = strdup("owners");
  p->lapse_grace = 30 * DAY;
  p->callback_pause = 7 * DAY;
  p->tiers = calloc(n, sizeof *p->tiers);
  assert_non_null(p->tiers);
  p->n_tiers = n;
  for (size_t i = 0; i < n; i++) {
    struct tier *t = &p->tiers[i];
    t->name = strdup(ts[i].name);
    assert_int_equal(cal_duration_parse(ts[i].offset, &t->offset), 0);
    if (ts[i].repeat) {
      char err[128];
      t->repeat = strdup(ts[i].repeat);
      assert_int_equal(cal_rrule_parse(ts[i].repeat, &t->rrule, err, sizeof err), 0);
    }
    t->channels = split(ts[i].channels, &t->n_channels);
    t->audience = ts[i].audience;
    t->template_name = strdup(ts[i].name);
  }
  return p;
}

static const struct tier_spec standard_tiers[] = {
    {"notice", "-P30D", NULL, "email,sms", AUDIENCE_CUSTOMER},
    {"reminder", "-P14D", "FREQ=WEEKLY;COUNT=2", "email", AUDIENCE_CUSTOMER},
    {"escalation", "-P3D", NULL, "email", AUDIENCE_OWNER},
};

/* the same, with the notice three weeks later and a final tier (a "new config") */
static const struct tier_spec standard_v2_tiers[] = {
    {"notice", "-P21D", NULL, "email,sms", AUDIENCE_CUSTOMER},
    {"reminder", "-P14D", "FREQ=WEEKLY;COUNT=2", "email", AUDIENCE_CUSTOMER},
    {"final", "-P7D", NULL, "email", AUDIENCE_CUSTOMER},
    {"escalation", "-P3D", NULL, "email", AUDIENCE_OWNER},
};

/* segment "odd": channels that cannot all be reached, no fallback owner */
static const struct tier_spec odd_tiers[] = {
    {"notice", "-P30D", NULL, "email,sms,fax,pigeon,hook", AUDIENCE_CUSTOMER},
    {"escalation", "-P3D", NULL, "email", AUDIENCE_OWNER},
};

/* ---- the environment ---------------------------------------------------------------- */

struct fixture {
  struct store_tmp tmp;
  struct store *s;
  struct cal *cal;
  struct policy *standard, *standard_v2, *odd;
  bool use_v2; /* policy_for_segment answers standard_v2 instead of standard */
  struct cal_window window, owners;
  struct planner_env env;
  /* reports */
  char events[64][128];
  size_t n_events;
};

static const struct policy *env_policy(void *ud, const char *segment) {
  struct fixture *f = ud;
  if (segment && streq(segment, "odd"))
    return f->odd;
  if (segment && streq(segment, "none"))
    return NULL;
  return f->use_v2 ? f->standard_v2 : f->standard;
}

static const struct cal_window *env_window(void *ud, const char *name) {
  struct fixture *f = ud;
  return name && streq(name, "owners") ? &f->owners : &f->window;
}

static int env_channel(void *ud, const char *name, struct planner_channel *ret) {
  if (streq(name, "email"))
    *ret = (struct planner_channel){.kind = PLANNER_ADDR_EMAIL, .optout = OPTOUT_EMAIL};
  else if (streq(name, "sms"))
    *ret = (struct planner_channel){.kind = PLANNER_ADDR_PHONE, .optout = OPTOUT_SMS};
  else if (streq(name, "hook"))
    *ret = (struct planner_channel){
        .kind = PLANNER_ADDR_URL, .optout = OPTOUT_WEBHOOK, .url = "https://hooks.example/x"};
  else if (streq(name, "fax"))
    return -EINVAL;
  else
    return -ENOENT;
  return 0;
}

static void env_report(void *ud, const struct planner_event *ev) {
  struct fixture *f = ud;
  assert_true(f->n_events < ELEMENTSOF(f->events));
  char *b = f->events[f->n_events++];
  switch (ev->kind) {
  case PLANNER_EVENT_REMINDER:
    snprintf(b, 128, "remind %s %s/%d %s %s%s", ev->contract_id, ev->tier, ev->step, ev->channel,
             ev->recipient, ev->catch_up ? " catch-up" : "");
    break;
  case PLANNER_EVENT_SKIPPED:
    snprintf(b, 128, "skip %s %s/%d %s: %s", ev->contract_id, ev->tier, ev->step, ev->channel,
             ev->reason);
    break;
  case PLANNER_EVENT_TRANSITION:
    snprintf(b, 128, "state %s %s->%s", ev->contract_id, contract_state_to_string(ev->from),
             contract_state_to_string(ev->to));
    break;
  case PLANNER_EVENT_NO_POLICY:
    snprintf(b, 128, "no-policy %s '%s'", ev->contract_id, ev->reason);
    break;
  case PLANNER_EVENT_REFUSED:
    snprintf(b, 128, "refused %s %d", ev->contract_id, ev->error);
    break;
  }
}

static void add_owner(struct store *s, const char *id, const char *tz) {
  char email[64];
  snprintf(email, sizeof email, "%s@sales.example.com", id);
  struct owner o = {.id = (char *)id, .name = (char *)id, .email = email, .tz = (char *)tz};
  assert_true(store_owner_upsert(s, &o, utc(2029, 1, 1, 0, 0)) >= 0);
}

/* Customer K<id> and contract <id> expiring at EXPIRES. */
static int64_t add_contract(struct store *s, const char *id, const char *tz, const char *email,
                            const char *phone, const char *segment, const char *owner,
                            unsigned optout) {
  char cid[32];
  snprintf(cid, sizeof cid, "K%s", id);
  struct customer cu = {.id = cid,
                        .name = (char *)id,
                        .email = (char *)email,
                        .phone = (char *)phone,
                        .tz = (char *)tz,
                        .segment = (char *)segment,
                        .owner_id = (char *)owner,
                        .optout = optout};
  assert_true(store_customer_upsert(s, &cu, utc(2029, 1, 1, 0, 0)) >= 0);
  struct contract c = {.id = (char *)id, .customer_id = cid, .expires_at = EXPIRES};
  assert_int_equal(store_contract_upsert(s, &c, utc(2029, 1, 1, 0, 0)), STORE_INSERTED);
  struct contract got = {0};
  assert_int_equal(store_contract_get(s, id, &got), 0);
  int64_t rowid = got.rowid;
  contract_clear(&got);
  return rowid;
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  store_tmp_open(&f->tmp, "planner", &f->s);
  assert_int_equal(cal_new(&f->cal), 0);
  f->standard =
      make_policy("standard", CATCHUP_LATEST, "desk", standard_tiers, ELEMENTSOF(standard_tiers));
  f->standard_v2 = make_policy("standard", CATCHUP_LATEST, "desk", standard_v2_tiers,
                               ELEMENTSOF(standard_v2_tiers));
  f->odd = make_policy("odd", CATCHUP_LATEST, NULL, odd_tiers, ELEMENTSOF(odd_tiers));
  f->window = (struct cal_window){.start_min = 9 * 60, .end_min = 18 * 60, .days = 0x3e};
  f->owners = (struct cal_window){.start_min = 8 * 60, .end_min = 19 * 60, .days = 0x3e};
  f->env = (struct planner_env){
      .store = f->s,
      .cal = f->cal,
      .policy_for_segment = env_policy,
      .window = env_window,
      .channel = env_channel,
      .default_tz = "UTC",
      .catchup_grace = PLANNER_CATCHUP_GRACE,
      .ud = f,
      .report = env_report,
      .report_ud = f,
  };
  add_owner(f->s, "alice", "America/New_York");
  add_owner(f->s, "desk", "Asia/Tokyo");
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  f->s = store_free(f->s);
  policy_free(f->standard);
  policy_free(f->standard_v2);
  policy_free(f->odd);
  cal_free(f->cal);
  store_tmp_remove(&f->tmp);
  free(f);
  return 0;
}

/* ---- helpers ------------------------------------------------------------------------- */

/* Plans rowid at now in a transaction; returns the next due instant. */
static int64_t plan(struct fixture *f, int64_t rowid, int64_t now) {
  int64_t next = 0;
  assert_int_equal(store_begin(f->s), 0);
  assert_int_equal(planner_plan_contract(&f->env, rowid, now, &next, NULL), 1);
  assert_int_equal(store_commit(f->s), 0);
  return next;
}

struct rows {
  char v[32][160];
  size_t n;
};

static int row_cb(const struct reminder *r, void *ud) {
  struct rows *rs = ud;
  assert_true(rs->n < ELEMENTSOF(rs->v));
  char due[21];
  snprintf(rs->v[rs->n++], 160, "%s/%d %s %s %s %s %s %s", r->tier, r->step, r->channel,
           r->audience, r->recipient ? r->recipient : "-", reminder_status_to_string(r->status),
           r->last_error ? r->last_error : "-", format_rfc3339(r->due_at, due));
  return 0;
}

/* Asserts the contract's reminder rows (in store order: due_at, id). */
static void expect_rows(struct fixture *f, const char *id, const char *const *want, size_t n) {
  struct rows rs = {0};
  assert_true(store_reminder_foreach_contract(f->s, id, -1, row_cb, &rs) >= 0);
  for (size_t k = 0; k < MIN(n, rs.n); k++)
    assert_string_equal(rs.v[k], want[k]);
  assert_int_equal(rs.n, n);
}

static void expect_events(struct fixture *f, const char *const *want, size_t n) {
  for (size_t k = 0; k < MIN(n, f->n_events); k++)
    assert_string_equal(f->events[k], want[k]);
  assert_int_equal(f->n_events, n);
  f->n_events = 0;
}

static void get_contract(struct fixture *f, const char *id, struct contract *ret) {
  assert_int_equal(store_contract_get(f->s, id, ret), 0);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_plan_inserts_rows_and_next_due(void **state) {
  struct fixture *f = *state;
  int64_t rowid =
      add_contract(f->s, "C1", "UTC", "anna@example.com", "+4915112345001", "smb", "alice", 0);
  struct contract c = {0};

  /* before the notice: nothing recorded, the notice is next */
  assert_int_equal(plan(f, rowid, NOTICE_DUE - 3600), NOTICE_DUE);
  expect_rows(f, "C1", NULL, 0);
  expect_events(f, NULL, 0);
  get_contract(f, "C1", &c);
  assert_int_equal(c.next_due_at, NOTICE_DUE);
  assert_int_equal(c.ladder_id, 0);
  assert_int_equal(c.state, CONTRACT_ACTIVE);
  contract_clear(&c);

  /* not in a ladder yet: its schedule follows the config */
  int64_t next = 0;
  bool in_ladder = true;
  assert_int_equal(planner_plan_contract(&f->env, rowid, NOTICE_DUE - 60, &next, &in_ladder), 1);
  assert_int_equal(next, NOTICE_DUE);
  assert_false(in_ladder);

  /* at the notice: one pending row per channel, the ladder is entered */
  assert_int_equal(store_begin(f->s), 0);
  assert_int_equal(planner_plan_contract(&f->env, rowid, NOTICE_DUE, &next, &in_ladder), 1);
  assert_int_equal(store_commit(f->s), 0);
  assert_int_equal(next, REMINDER0_DUE);
  assert_true(in_ladder);
  static const char *const rows1[] = {
      "notice/0 email customer anna@example.com pending - 2030-01-30T09:00:00Z",
      "notice/0 sms customer +4915112345001 pending - 2030-01-30T09:00:00Z",
  };
  expect_rows(f, "C1", rows1, ELEMENTSOF(rows1));
  static const char *const ev1[] = {
      "remind C1 notice/0 email anna@example.com",
      "remind C1 notice/0 sms +4915112345001",
  };
  expect_events(f, ev1, ELEMENTSOF(ev1));
  get_contract(f, "C1", &c);
  assert_int_equal(c.next_due_at, REMINDER0_DUE);
  assert_int_not_equal(c.ladder_id, 0);
  assert_int_equal(c.state, CONTRACT_REMINDING);
  contract_clear(&c);

  /* the owner tier goes to alice in her zone and window */
  assert_int_equal(plan(f, rowid, REMINDER0_DUE), REMINDER1_DUE);
  assert_int_equal(plan(f, rowid, REMINDER1_DUE), ESCALATION_DUE);
  assert_int_equal(plan(f, rowid, ESCALATION_DUE), EXPIRES);
  static const char *const ev2[] = {
      "remind C1 reminder/0 email anna@example.com",
      "remind C1 reminder/1 email anna@example.com",
      "remind C1 escalation/0 email alice@sales.example.com",
  };
  expect_events(f, ev2, ELEMENTSOF(ev2));
  get_contract(f, "C1", &c);
  assert_int_equal(c.next_due_at, EXPIRES);
  contract_clear(&c);
}

static void test_replan_is_idempotent(void **state) {
  struct fixture *f = *state;
  int64_t rowid =
      add_contract(f->s, "C1", "UTC", "anna@example.com", "+4915112345001", "smb", "alice", 0);
  assert_int_equal(plan(f, rowid, NOTICE_DUE + 60), REMINDER0_DUE);
  f->n_events = 0;
  struct contract before = {0}, after = {0};
  get_contract(f, "C1", &before);
  /* again, and again later the same day: nothing new */
  assert_int_equal(plan(f, rowid, NOTICE_DUE + 60), REMINDER0_DUE);
  assert_int_equal(plan(f, rowid, NOTICE_DUE + 7200), REMINDER0_DUE);
  expect_events(f, NULL, 0);
  static const char *const rows[] = {
      "notice/0 email customer anna@example.com pending - 2030-01-30T09:01:00Z",
      "notice/0 sms customer +4915112345001 pending - 2030-01-30T09:01:00Z",
  };
  expect_rows(f, "C1", rows, ELEMENTSOF(rows));
  get_contract(f, "C1", &after);
  assert_int_equal(after.change_seq, before.change_seq); /* no write at all */
  assert_int_equal(after.ladder_id, before.ladder_id);
  assert_int_equal(after.next_due_at, REMINDER0_DUE);
  contract_clear(&before);
  contract_clear(&after);

  /* a contract that no longer exists: 0, nothing due */
  int64_t next = 0;
  bool in_ladder = true;
  assert_int_equal(planner_plan_contract(&f->env, rowid + 1000, NOTICE_DUE, &next, &in_ladder), 0);
  assert_false(in_ladder);
  assert_true(next == TIME_NEVER);
}

static void test_catch_up_latest(void **state) {
  struct fixture *f = *state;
  int64_t rowid =
      add_contract(f->s, "C1", "UTC", "anna@example.com", "+4915112345001", "smb", "alice", 0);
  /* imported late, on Monday 2030-02-18 10:00: the notice and reminder/0 were
   * missed; the notice is superseded, reminder/0 goes out now (catch-up) */
  int64_t now = utc(2030, 2, 18, 10, 0);
  assert_int_equal(plan(f, rowid, now), REMINDER1_DUE);
  static const char *const rows[] = {
      "notice/0 email customer - skipped catch-up: superseded 2030-02-18T10:00:00Z",
      "notice/0 sms customer - skipped catch-up: superseded 2030-02-18T10:00:00Z",
      "reminder/0 email customer anna@example.com pending - 2030-02-18T10:00:00Z",
  };
  expect_rows(f, "C1", rows, ELEMENTSOF(rows));
  static const char *const ev[] = {
      "skip C1 notice/0 email: catch-up: superseded",
      "skip C1 notice/0 sms: catch-up: superseded",
      "remind C1 reminder/0 email anna@example.com catch-up",
  };
  expect_events(f, ev, ELEMENTSOF(ev));
}

static void test_transitions(void **state) {
  struct fixture *f = *state;
  int64_t rowid =
      add_contract(f->s, "C2", "UTC", "bob@example.com", "+4915112345002", "smb", "alice", 0);
  struct contract c = {0};
  /* first seen just after the expiry: lapsed first, then every "expires in"
   * tier is skipped as expired (the owner tier too) */
  assert_int_equal(plan(f, rowid, EXPIRES + 10), EXPIRES + 30 * DAY);
  static const char *const rows[] = {
      "notice/0 email customer - skipped expired 2030-03-01T00:00:10Z",
      "notice/0 sms customer - skipped expired 2030-03-01T00:00:10Z",
      "reminder/0 email customer - skipped expired 2030-03-01T00:00:10Z",
      "reminder/1 email customer - skipped expired 2030-03-01T00:00:10Z",
      "escalation/0 email owner - skipped expired 2030-03-01T00:00:10Z",
  };
  expect_rows(f, "C2", rows, ELEMENTSOF(rows));
  static const char *const ev[] = {
      "state C2 active->lapsed",           "skip C2 notice/0 email: expired",
      "skip C2 notice/0 sms: expired",     "skip C2 reminder/0 email: expired",
      "skip C2 reminder/1 email: expired", "skip C2 escalation/0 email: expired",
  };
  expect_events(f, ev, ELEMENTSOF(ev));
  get_contract(f, "C2", &c);
  assert_int_equal(c.state, CONTRACT_LAPSED);
  assert_int_equal(c.next_due_at, EXPIRES + 30 * DAY);
  contract_clear(&c);

  /* after the lapse grace: closed, nothing more */
  assert_true(plan(f, rowid, EXPIRES + 30 * DAY) == TIME_NEVER);
  static const char *const ev2[] = {"state C2 lapsed->closed"};
  expect_events(f, ev2, ELEMENTSOF(ev2));
  get_contract(f, "C2", &c);
  assert_int_equal(c.state, CONTRACT_CLOSED);
  assert_int_equal(c.next_due_at, 0);
  contract_clear(&c);
  assert_true(plan(f, rowid, EXPIRES + 31 * DAY) == TIME_NEVER);
  expect_events(f, NULL, 0);
}

static void test_skip_reasons(void **state) {
  struct fixture *f = *state;
  /* opted out of email, no phone, no owner and no fallback owner */
  int64_t rowid =
      add_contract(f->s, "C3", "UTC", "carol@example.com", NULL, "odd", NULL, OPTOUT_EMAIL);
  assert_int_equal(plan(f, rowid, NOTICE_DUE), utc(2030, 2, 26, 8, 0));
  assert_true(plan(f, rowid, utc(2030, 2, 26, 8, 0)) == EXPIRES);
  static const char *const rows[] = {
      "notice/0 email customer - skipped customer opted out of this channel 2030-01-30T09:00:00Z",
      "notice/0 sms customer - skipped no phone number 2030-01-30T09:00:00Z",
      "notice/0 fax customer - skipped channel not configured 2030-01-30T09:00:00Z",
      "notice/0 pigeon customer - skipped channel not configured 2030-01-30T09:00:00Z",
      "notice/0 hook customer https://hooks.example/x pending - 2030-01-30T09:00:00Z",
      "escalation/0 email owner - skipped no sales owner 2030-02-26T08:00:00Z",
  };
  expect_rows(f, "C3", rows, ELEMENTSOF(rows));
  /* security: the event (it goes to the log) shows the webhook URL's scheme
   * and host only; the row above keeps the whole URL */
  bool hook_event = false;
  for (size_t i = 0; i < f->n_events; i++) {
    assert_null(strstr(f->events[i], "hooks.example/x"));
    hook_event |= streq(f->events[i], "remind C3 notice/0 hook https://hooks.example/...");
  }
  assert_true(hook_event);

  /* no policy for the segment: reported, nothing planned */
  int64_t r2 = add_contract(f->s, "C4", "UTC", "dan@example.com", NULL, "none", NULL, 0);
  f->n_events = 0;
  assert_true(plan(f, r2, NOTICE_DUE) == TIME_NEVER);
  static const char *const ev[] = {"no-policy C4 'none'"};
  expect_events(f, ev, ELEMENTSOF(ev));
  expect_rows(f, "C4", NULL, 0);
}

/* The escalation of a customer whose owner is not in the store goes to the
 * fallback owner, in the fallback owner's zone and window. */
static void test_fallback_owner_zone(void **state) {
  struct fixture *f = *state;
  int64_t rowid = add_contract(f->s, "C5", "UTC", "eve@example.com", NULL, "smb", "ghost", 0);
  struct planner_contract pc = {0};
  assert_int_equal(planner_build_input(&f->env, rowid, NOTICE_DUE, &pc), 0);
  assert_true(pc.have_owner);
  assert_string_equal(pc.owner.id, "desk");
  assert_string_equal(cal_zone_name(pc.owner_zone), "Asia/Tokyo");
  struct planner_target t = {0};
  assert_int_equal(planner_resolve(&f->env, &pc, 2, 0, "email", &t), 0);
  assert_null(t.skip_reason);
  assert_string_equal(t.owner_id, "desk");
  assert_string_equal(t.recipient, "desk@sales.example.com");
  assert_string_equal(t.audience, "owner");
  planner_target_done(&t);
  assert_int_equal(planner_resolve(&f->env, &pc, 0, 0, "sms", &t), 0);
  assert_string_equal(t.skip_reason, "no phone number");
  assert_null(t.recipient);
  planner_target_done(&t);
  planner_contract_done(&pc);

  /* raw Tue 2030-02-26 00:00Z is 09:00 in Tokyo: inside the owners' window
   * there (in the customer's zone it would wait for 08:00Z) */
  int64_t escalation = utc(2030, 2, 26, 0, 0);
  assert_int_equal(plan(f, rowid, REMINDER1_DUE), escalation);
  assert_int_equal(plan(f, rowid, escalation), EXPIRES);
  static const char *const rows[] = {
      "reminder/1 email customer eve@example.com pending - 2030-02-22T09:00:00Z",
      "escalation/0 email owner desk@sales.example.com pending - 2030-02-26T00:00:00Z",
  };
  struct rows rs = {0};
  assert_true(store_reminder_foreach_contract(f->s, "C5", -1, row_cb, &rs) >= 0);
  /* notice x2 superseded; reminder/0's catch-up would go out at reminder/1's
   * instant, so the two are one message (reminder/1); then the escalation */
  assert_int_equal(rs.n, 4);
  assert_string_equal(rs.v[2], rows[0]);
  assert_string_equal(rs.v[3], rows[1]);
}

struct sim_log {
  char v[16][96];
  size_t n;
};

static int sim_cb(struct planner_contract *pc, const struct policy_action *a, void *ud) {
  struct sim_log *l = ud;
  char at[21];
  assert_true(l->n < ELEMENTSOF(l->v));
  if (a->kind == POLICY_TRANSITION)
    snprintf(l->v[l->n++], 96, "%s -> %s", format_rfc3339(a->due_at, at),
             contract_state_to_string(a->new_state));
  else
    snprintf(l->v[l->n++], 96, "%s %s %s/%d", format_rfc3339(MAX(a->due_at, pc->in.now), at),
             policy_action_kind_to_string(a->kind), pc->policy->tiers[a->tier].name, a->step);
  return 0;
}

static void test_simulate_writes_nothing(void **state) {
  struct fixture *f = *state;
  int64_t rowid =
      add_contract(f->s, "C6", "UTC", "fay@example.com", "+4915112345006", "smb", "alice", 0);
  struct planner_contract pc = {0};
  struct sim_log l = {0};
  int64_t now = utc(2030, 1, 1, 0, 0);
  assert_int_equal(planner_build_input(&f->env, rowid, now, &pc), 0);
  assert_int_equal(planner_simulate(&f->env, &pc, now, TIME_NEVER, sim_cb, &l), 6);
  static const char *const want[] = {
      "2030-01-30T09:00:00Z remind notice/0",   "2030-02-15T09:00:00Z remind reminder/0",
      "2030-02-22T09:00:00Z remind reminder/1", "2030-02-26T13:00:00Z remind escalation/0",
      "2030-03-01T00:00:00Z -> lapsed",         "2030-03-31T00:00:00Z -> closed",
  };
  assert_int_equal(l.n, ELEMENTSOF(want));
  for (size_t k = 0; k < l.n; k++)
    assert_string_equal(l.v[k], want[k]);
  planner_contract_done(&pc);

  /* a period that ends before the escalation */
  l.n = 0;
  assert_int_equal(planner_build_input(&f->env, rowid, now, &pc), 0);
  assert_int_equal(planner_simulate(&f->env, &pc, now, ESCALATION_DUE, sim_cb, &l), 3);
  planner_contract_done(&pc);

  expect_rows(f, "C6", NULL, 0);
  expect_events(f, NULL, 0);
  struct contract c = {0};
  get_contract(f, "C6", &c);
  assert_int_equal(c.state, CONTRACT_ACTIVE);
  assert_int_equal(c.ladder_id, 0);
  assert_int_equal(c.next_due_at, 0);
  contract_clear(&c);
}

static void test_rebase(void **state) {
  struct fixture *f = *state;
  int64_t rowid =
      add_contract(f->s, "C7", "UTC", "gus@example.com", "+4915112345007", "smb", "alice", 0);
  int64_t fresh = add_contract(f->s, "C8", "UTC", "hal@example.com", NULL, "smb", "alice", 0);
  assert_int_equal(plan(f, rowid, NOTICE_DUE), REMINDER0_DUE);
  struct contract before = {0}, after = {0};
  get_contract(f, "C7", &before);

  /* the config did not change: nothing to do */
  int64_t old_id = -1, new_id = -1;
  assert_int_equal(planner_rebase(&f->env, rowid, NOTICE_DUE, false, &old_id, &new_id), 0);
  assert_int_equal(old_id, before.ladder_id);
  assert_int_equal(new_id, before.ladder_id);
  /* not in a ladder: left alone */
  assert_int_equal(planner_rebase(&f->env, fresh, NOTICE_DUE, false, NULL, NULL), 0);

  f->use_v2 = true;
  /* dry run: would move, nothing written */
  assert_int_equal(planner_rebase(&f->env, rowid, NOTICE_DUE, true, &old_id, &new_id), 1);
  assert_int_equal(new_id, 0);
  get_contract(f, "C7", &after);
  assert_int_equal(after.ladder_id, before.ladder_id);
  assert_int_equal(after.change_seq, before.change_seq);
  contract_clear(&after);

  assert_int_equal(store_begin(f->s), 0);
  assert_int_equal(planner_rebase(&f->env, rowid, NOTICE_DUE, false, &old_id, &new_id), 1);
  assert_int_equal(store_commit(f->s), 0);
  assert_int_equal(old_id, before.ladder_id);
  get_contract(f, "C7", &after);
  assert_int_equal(after.ladder_id, new_id);
  assert_int_not_equal(new_id, before.ladder_id);
  assert_true(after.change_seq > before.change_seq);
  assert_int_equal(after.state, CONTRACT_REMINDING);
  contract_clear(&after);
  assert_int_equal(planner_rebase(&f->env, rowid, NOTICE_DUE, false, NULL, NULL), 0);

  /* the history is kept: the new ladder goes on after the notice sent; its
   * reminder/1 is cut by the new final tier at -P7D */
  f->use_v2 = false; /* the snapshot, not the config, decides now */
  f->n_events = 0;
  assert_int_equal(plan(f, rowid, NOTICE_DUE), REMINDER0_DUE);
  assert_int_equal(plan(f, rowid, REMINDER0_DUE), REMINDER1_DUE);
  assert_int_equal(plan(f, rowid, REMINDER1_DUE), ESCALATION_DUE);
  static const char *const ev[] = {
      "remind C7 reminder/0 email gus@example.com",
      "remind C7 final/0 email gus@example.com",
  };
  expect_events(f, ev, ELEMENTSOF(ev));
  contract_clear(&before);
}

static void test_expiry_range(void **state) {
  struct fixture *f = *state;
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  int64_t from = utc(2030, 1, 1, 0, 0), until = from + 10 * DAY;
  planner_expiry_range(f->standard, from, until, DAY, &lo, &hi);
  /* earliest: the escalation (-P3D; the reminder's repeats reach -P7D only),
   * one day of window slack and 3 h of DST margin; latest: the notice
   * (-P30D) + 3 h */
  assert_int_equal(lo, from - DAY + 3 * DAY - 3 * 3600);
  assert_int_equal(hi, until + 30 * DAY + 3 * 3600);
  planner_expiry_range(NULL, from, until, DAY, &lo, &hi); /* no-op */
  assert_int_equal(hi, until + 30 * DAY + 3 * 3600);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_plan_inserts_rows_and_next_due, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replan_is_idempotent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_catch_up_latest, setup, teardown),
      cmocka_unit_test_setup_teardown(test_transitions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_skip_reasons, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fallback_owner_zone, setup, teardown),
      cmocka_unit_test_setup_teardown(test_simulate_writes_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rebase, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expiry_range, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
