/* Unit tests for notifiers/dispatch (and the shared notifier helpers): the
 * dispatcher on a real store with the Maildir sink (synchronous) and, for the
 * curl path, a tiny poll() loop implementing struct dispatch_loop_ops.
 * Time is a simulated clock; every test has its own mkdtemp() directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <poll.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/cal.h"
#include "core/clock.h"
#include "core/ladder.h"
#include "core/store.h"
#include "core/util.h"
#include "notifiers/dispatch.h"
#include "notifiers/notifier.h"
#include "notifiers/mail.h"
#include "notifiers/render.h"
#include "notifiers/sink.h"

#define T0 INT64_C(1926288000) /* 2031-01-16T00:00:00Z */
#define DAY INT64_C(86400)

struct fx {
  char dir[64];
  char db[128];
  char maildir[128];
  char maildir2[128];
  struct cal *cal;
  struct config *cfg;
  struct store *s;
  struct clock clock;
  struct dispatcher *d;
  /* the test loop */
  struct pollfd fds[16];
  int what[16];
  size_t n_fds;
  long timer_ms; /* -1 = off */
  /* reports */
  int reports[16];
};

static int loop_watch(void *loop, int fd, int what) {
  struct fx *f = loop;
  size_t k;
  for (k = 0; k < f->n_fds; k++)
    if (f->fds[k].fd == fd)
      break;
  if (what == CURL_POLL_REMOVE) {
    if (k < f->n_fds) {
      f->fds[k] = f->fds[--f->n_fds];
      f->what[k] = f->what[f->n_fds];
    }
    return 0;
  }
  if (k == f->n_fds) {
    assert_true(f->n_fds < 16);
    f->n_fds++;
  }
  f->fds[k] = (struct pollfd){
      .fd = fd,
      .events = (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0))};
  f->what[k] = what;
  return 0;
}

static int loop_timer(void *loop, long ms) {
  struct fx *f = loop;
  f->timer_ms = ms;
  return 0;
}

static const struct dispatch_loop_ops loop_ops = {.watch = loop_watch, .timer = loop_timer};

static void on_report(void *ud, const struct dispatch_report *r) {
  struct fx *f = ud;
  f->reports[r->outcome]++;
}

/* Runs the curl loop until nothing is in flight (bounded). */
static void run_loop(struct fx *f) {
  for (int rounds = 0; rounds < 2000 && dispatcher_in_flight(f->d) > 0; rounds++) {
    int timeout = f->timer_ms < 0 ? 100 : (int)MIN(f->timer_ms, 100L);
    int n = poll(f->fds, f->n_fds, timeout);
    assert_true(n >= 0);
    if (n == 0) {
      f->timer_ms = -1;
      dispatcher_timeout(f->d);
      continue;
    }
    struct pollfd ready[16];
    size_t m = f->n_fds;
    memcpy(ready, f->fds, m * sizeof *ready);
    for (size_t k = 0; k < m; k++) {
      int ev = (ready[k].revents & POLLIN ? CURL_CSELECT_IN : 0) |
               (ready[k].revents & POLLOUT ? CURL_CSELECT_OUT : 0) |
               (ready[k].revents & (POLLERR | POLLHUP) ? CURL_CSELECT_ERR : 0);
      if (ev)
        dispatcher_socket_ready(f->d, ready[k].fd, ev);
    }
  }
  assert_int_equal(dispatcher_in_flight(f->d), 0);
}

static const char base_config[] = "[Daemon]\n"
                                  "LinkKeyFile=%s/link-key\n"
                                  "Database=%s\n"
                                  "Templates=%s/templates\n"
                                  "TimeZone=UTC\n"
                                  "PublicURL=https://renew.test\n"
                                  "[SendWindow]\n"
                                  "Hours=00:00-24:00\n"
                                  "Days=Mon..Sun\n"
                                  "[Policy p]\n"
                                  "Segments=*\n"
                                  "Tiers=notice\n"
                                  "[Tier notice]\n"
                                  "Offset=-P30D\n"
                                  "Channels=mail\n"
                                  "Fallback=mail2\n"
                                  "[Channel mail]\n"
                                  "Type=sink\n"
                                  "Maildir=%s\n"
                                  "%s\n"
                                  "[Channel mail2]\n"
                                  "Type=sink\n"
                                  "Maildir=%s\n"
                                  "%s\n";

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->dir, sizeof f->dir, "/tmp/renewd-test-dispatch-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->db, sizeof f->db, "%s/renewd.db", f->dir);
  snprintf(f->maildir, sizeof f->maildir, "%s/maildir", f->dir);
  snprintf(f->maildir2, sizeof f->maildir2, "%s/maildir2", f->dir);
  assert_int_equal(cal_new(&f->cal), 0);
  char err[256];
  assert_int_equal(store_open(f->db, 0, &f->s, err, sizeof err), 0);
  clock_init_simulated(&f->clock, T0, 0);
  f->timer_ms = -1;
  char key[160];
  snprintf(key, sizeof key, "%s/link-key", f->dir);
  FILE *kf = fopen(key, "w");
  assert_non_null(kf);
  fputs("0123456789abcdef0123456789abcdef\n", kf);
  fclose(kf);
  *state = f;
  return 0;
}

static void rm_rf(const char *path) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  assert_int_equal(system(cmd), 0);
}

static int teardown(void **state) {
  struct fx *f = *state;
  f->d = dispatcher_free(f->d);
  f->s = store_free(f->s);
  f->cfg = config_free(f->cfg);
  f->cal = cal_free(f->cal);
  rm_rf(f->dir);
  free(f);
  return 0;
}

/* Loads the base config plus extra keys for [Channel mail] and a tail. */
static void start(struct fx *f, const char *mail_extra, const char *tail) {
  char *text = strprintf(base_config, f->dir, f->db, f->dir, f->maildir,
                         mail_extra ? mail_extra : "", f->maildir2, tail ? tail : "");
  assert_non_null(text);
  struct config_errors errs = {0};
  int r = config_load_string("test.conf", text, f->cal, &f->cfg, &errs);
  if (r < 0)
    config_errors_print(&errs, stderr);
  assert_int_equal(r, 0);
  free(text);
  struct dispatch_callbacks cbs = {.report = on_report, .userdata = f};
  r = dispatcher_new(f->s, f->cal, f->cfg, &f->clock, &loop_ops, f, &cbs, &f->d, &errs);
  if (r < 0)
    config_errors_print(&errs, stderr);
  assert_int_equal(r, 0);
  config_errors_clear(&errs);
}

static void add_contract(struct fx *f, const char *id, const char *email) {
  char cid[32];
  snprintf(cid, sizeof cid, "K-%s", id);
  struct customer cu = {.id = cid,
                        .name = (char *)"Ada Lovelace",
                        .email = (char *)email,
                        .phone = (char *)"+4915112345678",
                        .tz = (char *)"UTC",
                        .locale = (char *)"en"};
  assert_true(store_customer_upsert(f->s, &cu, T0) >= 0);
  struct contract c = {.id = (char *)id,
                       .customer_id = cid,
                       .product = (char *)"Cloud Backup",
                       .currency = (char *)"EUR",
                       .expires_at = T0 + 30 * DAY,
                       .value_minor = 120050};
  assert_true(store_contract_upsert(f->s, &c, T0) >= 0);
}

static int64_t add_row(struct fx *f, const char *contract, const char *channel,
                       const char *recipient, enum reminder_status st, int64_t next) {
  struct reminder r = {.contract_id = (char *)contract,
                       .term = 1,
                       .tier = (char *)"notice",
                       .channel = (char *)channel,
                       .audience = (char *)"customer",
                       .recipient = (char *)recipient,
                       .due_at = T0,
                       .status = st,
                       .next_attempt_at = next};
  int64_t id = 0;
  assert_int_equal(store_reminder_insert(f->s, &r, T0, &id), 0);
  return id;
}

static struct reminder get_row(struct fx *f, int64_t id) {
  struct reminder r = {0};
  assert_int_equal(store_reminder_get(f->s, id, &r), 0);
  return r;
}

static size_t count_files(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  size_t n = 0;
  for (struct dirent *e; (e = readdir(d));)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_sink_send(void **state) {
  struct fx *f = *state;
  start(f, NULL, NULL);
  add_contract(f, "C-1", "ada@example.com");
  int64_t id = add_row(f, "C-1", "mail", "ada@example.com", REMINDER_PENDING, 0);
  dispatcher_kick(f->d);
  struct reminder r = get_row(f, id);
  assert_int_equal(r.status, REMINDER_SENT);
  assert_int_equal(r.attempts, 1);
  assert_int_equal(r.sent_at, T0);
  assert_non_null(r.provider_id);
  char path[512];
  snprintf(path, sizeof path, "%s/new/%s", f->maildir, r.provider_id);
  char *text = NULL;
  assert_int_equal(read_full_file(path, 1 << 20, &text, NULL), 0);
  char want[128];
  snprintf(want, sizeof want, "\r\nMessage-ID: <%s@localhost.localdomain>\r\n", r.idem_key);
  assert_non_null(strstr(text, want));
  assert_non_null(strstr(text, "\r\nTo: Ada Lovelace <ada@example.com>\r\n"));
  assert_non_null(strstr(text, "\r\nX-Renewd-Contract: C-1\r\n"));
  assert_non_null(strstr(text, "\r\nDate: Thu, 16 Jan 2031 00:00:00 +0000\r\n"));
  assert_non_null(strstr(text, "1,200.50"));    /* ICU: "€1,200.50" (€ quoted-printable) */
  assert_int_equal(count_files(f->maildir), 3); /* tmp new cur */
  free(text);
  reminder_clear(&r);
  assert_int_equal(f->reports[DISPATCH_SENT], 1);
  assert_int_equal(dispatcher_next_wakeup(f->d), TIME_NEVER);
}

static void test_optout_skipped(void **state) {
  struct fx *f = *state;
  start(f, NULL, NULL);
  add_contract(f, "C-1", "ada@example.com");
  int64_t id = add_row(f, "C-1", "mail", "ada@example.com", REMINDER_PENDING, 0);
  /* the customer opts out after the row was planned */
  assert_int_equal(store_customer_set_optout(f->s, "K-C-1", OPTOUT_EMAIL, T0), 0);
  dispatcher_kick(f->d);
  struct reminder r = get_row(f, id);
  assert_int_equal(r.status, REMINDER_SKIPPED);
  assert_non_null(strstr(r.last_error, "opted out"));
  reminder_clear(&r);
  assert_int_equal(f->reports[DISPATCH_SKIPPED], 1);
  char newdir[160];
  snprintf(newdir, sizeof newdir, "%s/new", f->maildir);
  assert_int_equal(count_files(newdir), 0);
}

/* At the claim the contract is read again: a row of a declined contract or
 * of a term that is over is skipped with the reason, nothing is written. */
static void test_answered_term_skipped(void **state) {
  struct fx *f = *state;
  start(f, NULL, NULL);
  add_contract(f, "C-1", "ada@example.com");
  add_contract(f, "C-2", "bob@example.com");
  int64_t id1 = add_row(f, "C-1", "mail", "ada@example.com", REMINDER_PENDING, 0);
  int64_t id2 = add_row(f, "C-2", "mail", "bob@example.com", REMINDER_PENDING, 0);
  /* foreign writers: C-1 declined, C-2 in its next term, rows left pending */
  struct contract c = {0};
  assert_int_equal(store_contract_get(f->s, "C-1", &c), 0);
  c.state = CONTRACT_DECLINED;
  assert_int_equal(store_contract_set_state(f->s, &c, NULL, NULL, T0), 0);
  contract_clear(&c);
  assert_int_equal(store_contract_get(f->s, "C-2", &c), 0);
  c.term = 2;
  assert_int_equal(store_contract_set_state(f->s, &c, NULL, NULL, T0), 0);
  contract_clear(&c);
  assert_int_equal(store_reminder_set_status(f->s, id2, REMINDER_PENDING, T0, NULL, NULL, T0), 0);
  dispatcher_kick(f->d);
  struct reminder r = get_row(f, id1);
  assert_int_equal(r.status, REMINDER_SKIPPED);
  assert_string_equal(r.last_error, "contract C-1 is declined");
  reminder_clear(&r);
  r = get_row(f, id2);
  assert_int_equal(r.status, REMINDER_SKIPPED);
  assert_string_equal(r.last_error, "term 1 is over: contract C-2 is in term 2");
  reminder_clear(&r);
  assert_int_equal(f->reports[DISPATCH_SKIPPED], 2);
  char newdir[160];
  snprintf(newdir, sizeof newdir, "%s/new", f->maildir);
  assert_int_equal(count_files(newdir), 0);
}

/* A suppressed address gets nothing, whichever contract the row belongs to;
 * other addresses are not affected. */
static void test_suppressed_skipped(void **state) {
  struct fx *f = *state;
  start(f, NULL, NULL);
  add_contract(f, "C-1", "ada@example.com");
  add_contract(f, "C-2", "bob@example.com");
  int64_t id = add_row(f, "C-1", "mail", "Ada@Example.com", REMINDER_PENDING, 0);
  int64_t other = add_row(f, "C-2", "mail", "bob@example.com", REMINDER_PENDING, 0);
  assert_int_equal(store_suppression_add(f->s, SUPPRESS_EMAIL, "ada@example.com", "unsubscribe",
                                         "link", NULL, T0),
                   1);
  dispatcher_kick(f->d);
  struct reminder r = get_row(f, id);
  assert_int_equal(r.status, REMINDER_SKIPPED);
  assert_non_null(strstr(r.last_error, "ada@example.com is suppressed (unsubscribe, source link"));
  reminder_clear(&r);
  r = get_row(f, other);
  assert_int_equal(r.status, REMINDER_SENT);
  reminder_clear(&r);
  assert_int_equal(f->reports[DISPATCH_SKIPPED], 1);
  assert_int_equal(f->reports[DISPATCH_SENT], 1);
}

static void test_rate_limit(void **state) {
  struct fx *f = *state;
  start(f, "RatePerSecond=2", NULL);
  int64_t ids[5];
  for (int i = 0; i < 5; i++) {
    char c[16];
    snprintf(c, sizeof c, "C-%d", i);
    add_contract(f, c, "ada@example.com");
    ids[i] = add_row(f, c, "mail", "ada@example.com", REMINDER_PENDING, 0);
  }
  dispatcher_kick(f->d);
  assert_int_equal(f->reports[DISPATCH_SENT], 2);
  assert_int_equal(dispatcher_next_wakeup(f->d), T0 + 1);
  dispatcher_kick(f->d); /* no tokens yet */
  assert_int_equal(f->reports[DISPATCH_SENT], 2);
  clock_advance_to(&f->clock, T0 + 1);
  dispatcher_kick(f->d);
  assert_int_equal(f->reports[DISPATCH_SENT], 4);
  clock_advance_to(&f->clock, T0 + 2);
  dispatcher_kick(f->d);
  assert_int_equal(f->reports[DISPATCH_SENT], 5);
  for (int i = 0; i < 5; i++) {
    struct reminder r = get_row(f, ids[i]);
    assert_int_equal(r.status, REMINDER_SENT);
    assert_int_equal(r.sent_at, T0 + i / 2);
    reminder_clear(&r);
  }
  assert_int_equal(dispatcher_next_wakeup(f->d), TIME_NEVER);
}

static void test_retry_wakeup(void **state) {
  struct fx *f = *state;
  start(f, NULL, NULL);
  add_contract(f, "C-1", "ada@example.com");
  add_contract(f, "C-2", "bob@example.com");
  int64_t later = add_row(f, "C-1", "mail", "ada@example.com", REMINDER_RETRY, T0 + 100);
  int64_t stuck = add_row(f, "C-2", "mail", "bob@example.com", REMINDER_PENDING, 0);
  /* pending rows come with a kick; the retry row wants one at T0 + 100 */
  dispatcher_kick(f->d);
  struct reminder r = get_row(f, stuck);
  assert_int_equal(r.status, REMINDER_SENT);
  reminder_clear(&r);
  assert_int_equal(dispatcher_next_wakeup(f->d), T0 + 100);
  clock_advance_to(&f->clock, T0 + 100);
  dispatcher_kick(f->d);
  r = get_row(f, later);
  assert_int_equal(r.status, REMINDER_SENT);
  assert_int_equal(r.attempts, 1);
  reminder_clear(&r);
  assert_int_equal(dispatcher_next_wakeup(f->d), TIME_NEVER);
}

/* Another process holds the write lock: the claim fails at once (busy
 * timeout 0, as on the daemon's loop), is retried from the dispatcher's
 * timer, warned about once, and goes through once the lock is free. */
static void test_claim_busy_retried(void **state) {
  struct fx *f = *state;
  start(f, NULL, NULL);
  add_contract(f, "C-1", "ada@example.com");
  int64_t id = add_row(f, "C-1", "mail", "ada@example.com", REMINDER_PENDING, 0);
  assert_int_equal(store_set_busy_timeout(f->s, 0), 0);
  sqlite3 *other = NULL;
  assert_int_equal(sqlite3_open(f->db, &other), SQLITE_OK);
  assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  dispatcher_kick(f->d);
  struct reminder r = get_row(f, id);
  assert_int_equal(r.status, REMINDER_PENDING);
  reminder_clear(&r);
  assert_true(f->timer_ms >= 0);                              /* retried from the timer ... */
  assert_int_equal(dispatcher_next_wakeup(f->d), TIME_NEVER); /* ... not by kicks in a loop */
  for (int i = 0; i < 3; i++) { /* still locked: retries, no more warnings */
    usleep((useconds_t)(f->timer_ms + 2) * 1000);
    f->timer_ms = -1;
    dispatcher_timeout(f->d);
    assert_true(f->timer_ms >= 0);
  }
  assert_int_equal(f->reports[DISPATCH_STORE_BUSY], 1);
  assert_int_equal(f->reports[DISPATCH_STORE_FREE], 0);
  assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(other);
  usleep((useconds_t)(f->timer_ms + 2) * 1000);
  f->timer_ms = -1;
  dispatcher_timeout(f->d);
  r = get_row(f, id);
  assert_int_equal(r.status, REMINDER_SENT);
  assert_int_equal(r.attempts, 1);
  reminder_clear(&r);
  assert_int_equal(f->reports[DISPATCH_SENT], 1);
  assert_int_equal(f->reports[DISPATCH_STORE_FREE], 1);
  assert_int_equal(f->timer_ms, -1);
}

static int ignore_cb(const struct reminder *r, void *ud) {
  return 0;
}

static void test_recover_sending(void **state) {
  struct fx *f = *state;
  start(f, NULL, NULL);
  add_contract(f, "C-1", "ada@example.com");
  int64_t id = add_row(f, "C-1", "mail", "ada@example.com", REMINDER_PENDING, 0);
  assert_int_equal(store_reminder_claim(f->s, NULL, T0, 10, ignore_cb, NULL), 1);
  dispatcher_kick(f->d); /* 'sending' rows are not due */
  struct reminder r = get_row(f, id);
  assert_int_equal(r.status, REMINDER_SENDING);
  reminder_clear(&r);
  assert_int_equal(dispatcher_recover(f->d), 1);
  assert_int_equal(dispatcher_next_wakeup(f->d), T0);
  dispatcher_kick(f->d);
  r = get_row(f, id);
  assert_int_equal(r.status, REMINDER_SENT);
  assert_int_equal(r.attempts, 2);
  reminder_clear(&r);
}

static void test_dead_fallback_and_ops_alert(void **state) {
  struct fx *f = *state;
  char tail[256];
  snprintf(tail, sizeof tail, "[Channel ops]\nType=sink\nMaildir=%s/ops\n[Ops]\nAlertChannel=ops\n",
           f->dir);
  start(f, NULL, tail);
  add_contract(f, "C-1", "ada@example.com");
  /* no recipient: permanent */
  int64_t id = add_row(f, "C-1", "mail", NULL, REMINDER_PENDING, 0);
  dispatcher_kick(f->d);
  struct reminder r = get_row(f, id);
  assert_int_equal(r.status, REMINDER_DEAD);
  assert_string_equal(r.last_error, "no recipient address");
  reminder_clear(&r);
  assert_int_equal(f->reports[DISPATCH_DEAD], 1);
  assert_int_equal(f->reports[DISPATCH_FALLBACK], 1);
  /* the fallback and the alert are due now */
  assert_int_equal(dispatcher_next_wakeup(f->d), T0);
  dispatcher_kick(f->d);
  assert_int_equal(f->reports[DISPATCH_SENT], 2);
  r = get_row(f, id + 1);
  assert_string_equal(r.channel, "mail2");
  assert_string_equal(r.recipient, "ada@example.com");
  assert_string_equal(r.tier, "notice");
  assert_int_equal(r.status, REMINDER_SENT);
  reminder_clear(&r);
  r = get_row(f, id + 2);
  assert_string_equal(r.channel, "ops");
  assert_string_equal(r.tier, RENDER_OPS_TIER);
  assert_int_equal(r.step, (int)id);
  assert_int_equal(r.status, REMINDER_SENT);
  reminder_clear(&r);
  char newdir[160];
  snprintf(newdir, sizeof newdir, "%s/ops/new", f->dir);
  assert_int_equal(count_files(newdir), 1);
  assert_int_equal(dispatcher_next_wakeup(f->d), TIME_NEVER);
}

static void test_webhook_private_refused_and_backoff(void **state) {
  struct fx *f = *state;
  start(f, NULL,
        "[Channel hook]\nType=webhook\nURL=http://127.0.0.1:9/x\n"
        "[Channel hook2]\nType=webhook\nURL=http://127.0.0.1:9/x\nAllowPrivate=yes\n"
        "RetryBase=10s\nConnectTimeout=2s\n");
  add_contract(f, "C-1", "ada@example.com");
  add_contract(f, "C-2", "bob@example.com");
  int64_t a = add_row(f, "C-1", "hook", "http://127.0.0.1:9/x", REMINDER_PENDING, 0);
  int64_t b = add_row(f, "C-2", "hook2", "http://127.0.0.1:9/x", REMINDER_PENDING, 0);
  dispatcher_kick(f->d);
  assert_int_equal(dispatcher_in_flight(f->d), 2);
  run_loop(f);
  struct reminder r = get_row(f, a);
  assert_int_equal(r.status, REMINDER_DEAD);
  assert_non_null(strstr(r.last_error, "private or local address"));
  reminder_clear(&r);
  /* port 9 (discard) is closed: connection refused is transient */
  r = get_row(f, b);
  assert_int_equal(r.status, REMINDER_RETRY);
  assert_true(r.next_attempt_at >= T0 + 1 && r.next_attempt_at <= T0 + 10);
  int64_t next = r.next_attempt_at;
  reminder_clear(&r);
  assert_int_equal(dispatcher_next_wakeup(f->d), next);
}

/* The webhook event is written directly (not through json_dumps()); it must
 * be byte for byte what jansson makes of the same tree: a tricky customer
 * name (quotes, backslash, control characters, non-ASCII, U+2028, '/')
 * survives a parse and a compact re-dump unchanged. Email rows get none. */
static void test_webhook_event_json(void **state) {
  struct fx *f = *state;
  start(f, NULL, "[Channel hook]\nType=webhook\nURL=https://hooks.example.com/x\n");
  static const char name[] = "Ada \"Q\" \\ Love\tlace\n\x01\x1f 客户 / \xe2\x80\xa8 end";
  struct customer cu = {.id = (char *)"K-1",
                        .name = (char *)name,
                        .email = (char *)"ada@example.com",
                        .tz = (char *)"Europe/Berlin",
                        .locale = (char *)"de",
                        .segment = (char *)"smb"};
  assert_true(store_customer_upsert(f->s, &cu, T0) >= 0);
  struct contract c = {.id = (char *)"C-1",
                       .customer_id = (char *)"K-1",
                       .product = (char *)"Backup \"Pro\"",
                       .currency = (char *)"EUR",
                       .expires_at = T0 + 30 * DAY,
                       .value_minor = -120050};
  assert_true(store_contract_upsert(f->s, &c, T0) >= 0);
  int64_t id = add_row(f, "C-1", "hook", "https://hooks.example.com/x", REMINDER_PENDING, 0);
  struct reminder row = get_row(f, id);
  struct render *rd = NULL;
  char err[256] = "";
  assert_int_equal(render_new(f->cfg, f->cal, &rd, err, sizeof err), 0);
  struct message m = {0};
  assert_int_equal(render_message(rd, f->s, &row, NOTIFY_WEBHOOK, T0, &m, err, sizeof err), 0);
  assert_non_null(m.event);
  json_error_t jerr;
  json_t *ev = json_loads(m.event, 0, &jerr);
  assert_non_null(ev);
  char *again = json_dumps(ev, JSON_COMPACT);
  assert_string_equal(again, m.event);
  free(again);
  /* the members, in order */
  static const char prefix[] = "{\"type\":\"reminder.due\",\"timestamp\":\"2031-01-16T00:00:00Z\","
                               "\"data\":{\"contract\":{\"id\":\"C-1\",";
  assert_memory_equal(m.event, prefix, strlen(prefix));
  assert_non_null(strstr(m.event, "\\u001F 客户 / \xe2\x80\xa8 end\""));
  json_t *data = json_object_get(ev, "data");
  static const char *const keys[] = {"contract", "customer",    "owner",   "tier",   "links",
                                     "id",       "reminder_id", "attempt", "channel"};
  const char *key;
  json_t *v;
  size_t k = 0;
  json_object_foreach(data, key, v) {
    assert_true(k < ELEMENTSOF(keys));
    assert_string_equal(key, keys[k]);
    k++;
  }
  assert_int_equal(k, ELEMENTSOF(keys));
  assert_string_equal(json_string_value(json_object_get(json_object_get(data, "customer"), "name")),
                      name);
  assert_string_equal(json_string_value(json_object_get(data, "id")), row.idem_key);
  assert_int_equal(json_integer_value(json_object_get(data, "reminder_id")), id);
  assert_string_equal(json_string_value(json_object_get(data, "channel")), "hook");
  json_decref(ev);
  message_clear(&m);
  /* email and SMS rows carry no event */
  assert_int_equal(render_message(rd, f->s, &row, NOTIFY_EMAIL, T0, &m, err, sizeof err), 0);
  assert_null(m.event);
  assert_non_null(m.text);
  message_clear(&m);
  render_free(rd);
  reminder_clear(&row);
}

/* A contract walking a ladder snapshot is rendered with the snapshot's tier
 * (here: its Template= differs from the config's), parsed once and then
 * taken from the renderer's cache. */
static void test_render_ladder_snapshot(void **state) {
  struct fx *f = *state;
  start(f, NULL, NULL);
  add_contract(f, "C-1", "ada@example.com");
  struct policy *p = NULL;
  assert_int_equal(policy_copy(f->cfg->policies[0], &p), 0);
  free(p->tiers[0].template_name);
  p->tiers[0].template_name = strdup("snapshot-template");
  char *text = ladder_serialize(p);
  assert_non_null(text);
  int64_t lid = 0;
  assert_int_equal(store_ladder_intern(f->s, text, &lid), 0);
  free(text);
  policy_free(p);
  struct contract c = {0};
  assert_int_equal(store_contract_get(f->s, "C-1", &c), 0);
  c.ladder_id = lid;
  assert_int_equal(store_contract_set_state(f->s, &c, NULL, NULL, T0), 0);
  contract_clear(&c);
  int64_t id = add_row(f, "C-1", "mail", "ada@example.com", REMINDER_PENDING, 0);
  struct reminder row = get_row(f, id);
  struct render *rd = NULL;
  char err[256] = "";
  assert_int_equal(render_new(f->cfg, f->cal, &rd, err, sizeof err), 0);
  for (int i = 0; i < 2; i++) { /* the second time from the cache */
    struct message m = {0};
    assert_int_equal(render_message(rd, f->s, &row, NOTIFY_EMAIL, T0, &m, err, sizeof err), 0);
    json_t *tier = json_object_get(m.data, "tier");
    assert_string_equal(json_string_value(json_object_get(tier, "template")), "snapshot-template");
    assert_string_equal(json_string_value(json_object_get(tier, "name")), "notice");
    message_clear(&m);
  }
  render_free(rd);
  reminder_clear(&row);
}

static void test_check_config_errors(void **state) {
  struct fx *f = *state;
  char *text = strprintf("[Daemon]\nDatabase=%s\nTemplates=%s/templates\n"
                         "[Policy p]\nSegments=*\nTiers=t\n[Tier t]\nOffset=-P1D\nChannels=a\n"
                         "[Channel a]\nType=sink\nColour=blue\nMaxConcurrent=0\n"
                         "[Channel b]\nType=webhook\nURL=ftp://x\nAllowPrivate=maybe\n"
                         "[Channel c]\nType=sms\nURL=https://x.test/\nProvider=twilio\n",
                         f->db, f->dir);
  struct config_errors errs = {0};
  assert_int_equal(config_load_string("t.conf", text, f->cal, &f->cfg, &errs), 0);
  free(text);
  assert_int_equal(dispatcher_check_config(f->cfg, &errs), -EINVAL);
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  config_errors_print(&errs, m);
  fclose(m);
  assert_non_null(strstr(buf, "t.conf:12: [Channel a] Colour=: unknown key for Type=sink"));
  assert_non_null(
      strstr(buf, "t.conf:13: [Channel a] MaxConcurrent=: expected a whole number 1..1024"));
  assert_non_null(strstr(buf, "t.conf:10: [Channel a]: Maildir= is required for Type=sink"));
  assert_non_null(strstr(buf, "t.conf:16: [Channel b] URL=: expected an http:// or https:// URL"));
  assert_non_null(strstr(buf, "t.conf:17: [Channel b] AllowPrivate=: expected yes or no"));
  assert_non_null(strstr(buf, "[Channel c]: From= is required for Provider=twilio"));
  assert_non_null(strstr(buf, "[Channel c]: AuthTokenFile= is required for Provider=twilio"));
  assert_non_null(strstr(buf, "t.conf:10: [Channel a]: customer tier 't' sends email through this "
                              "channel, but [Daemon] LinkKeyFile= is not set"));
  free(buf);
  config_errors_clear(&errs);
}

/* Errors of dispatcher_check_config() for a config text (NULL = valid). */
static char *link_key_errors(struct fx *f, const char *daemon_extra, const char *channel_type) {
  char *text = strprintf("[Daemon]\nDatabase=%s\nTemplates=%s/templates\n%s\n"
                         "[Policy p]\nSegments=*\nTiers=t\n[Tier t]\nOffset=-P1D\nChannels=a\n"
                         "[Channel a]\nType=%s\n%s\n",
                         f->db, f->dir, daemon_extra, channel_type,
                         streq(channel_type, "sink") ? "Maildir=/tmp" : "URL=https://hooks.test/x");
  struct config_errors errs = {0};
  struct config *cfg = NULL;
  assert_int_equal(config_load_string("t.conf", text, f->cal, &cfg, &errs), 0);
  free(text);
  int r = dispatcher_check_config(cfg, &errs);
  config_free(cfg);
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  config_errors_print(&errs, m);
  fclose(m);
  config_errors_clear(&errs);
  assert_int_equal(r<0, len> 0);
  if (r >= 0) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* A link key must be readable wherever customer email or SMS go out; a
 * webhook-only ladder needs none. */
static void test_link_key_config(void **state) {
  struct fx *f = *state;
  char line[256];
  assert_null(link_key_errors(f, "", "webhook"));
  snprintf(line, sizeof line, "LinkKeyFile=%s/link-key", f->dir);
  assert_null(link_key_errors(f, line, "sink"));

  char *e = link_key_errors(f, "", "sink");
  assert_non_null(strstr(e, "t.conf:11: [Channel a]: customer tier 't' sends email"));
  free(e);
  snprintf(line, sizeof line, "LinkKeyFile=%s/nope", f->dir);
  e = link_key_errors(f, line, "webhook"); /* set: must be readable, used or not */
  char want[256];
  snprintf(want, sizeof want, "t.conf:4: LinkKeyFile=%s/nope: cannot read the key file: No such",
           f->dir);
  assert_non_null(strstr(e, want));
  free(e);
  char shortkey[160];
  snprintf(shortkey, sizeof shortkey, "%s/short-key", f->dir);
  FILE *kf = fopen(shortkey, "w");
  assert_non_null(kf);
  fputs("# rotated 2027-01\nshort\n", kf);
  fclose(kf);
  snprintf(line, sizeof line, "LinkKeyFile=%s", shortkey);
  e = link_key_errors(f, line, "sink");
  assert_non_null(strstr(e, "t.conf:4: LinkKeyFile="));
  assert_non_null(strstr(e, "line 2: a link key needs at least"));
  free(e);
  /* a credential name outside the service */
  const char *saved = getenv("CREDENTIALS_DIRECTORY");
  char *keep = saved ? strdup(saved) : NULL;
  unsetenv("CREDENTIALS_DIRECTORY");
  e = link_key_errors(f, "LinkKeyFile=link-key", "sink");
  assert_non_null(strstr(e, "t.conf:4: LinkKeyFile=link-key: a credential name, but "
                            "$CREDENTIALS_DIRECTORY is not set"));
  free(e);
  setenv("CREDENTIALS_DIRECTORY", f->dir, 1);
  assert_null(link_key_errors(f, "LinkKeyFile=link-key", "sink"));
  if (keep)
    setenv("CREDENTIALS_DIRECTORY", keep, 1);
  else
    unsetenv("CREDENTIALS_DIRECTORY");
  free(keep);
}

/* Without a key a customer email is never sent with unsigned links: the row
 * is retried with the reason, then dead-lettered. */
static void test_no_link_key_dead(void **state) {
  struct fx *f = *state;
  char key[160];
  snprintf(key, sizeof key, "%s/link-key", f->dir);
  assert_int_equal(unlink(key), 0); /* LinkKeyFile= names a file that is gone */
  start(f, "MaxAttempts=2\nRetryBase=1s", NULL);
  add_contract(f, "C-1", "ada@example.com");
  int64_t id = add_row(f, "C-1", "mail", "ada@example.com", REMINDER_PENDING, 0);
  dispatcher_kick(f->d);
  struct reminder r = get_row(f, id);
  assert_int_equal(r.status, REMINDER_RETRY);
  assert_non_null(strstr(r.last_error, "rendering failed: no link key"));
  reminder_clear(&r);
  clock_init_simulated(&f->clock, T0 + 3600, 0);
  dispatcher_kick(f->d);
  r = get_row(f, id);
  assert_int_equal(r.status, REMINDER_DEAD);
  assert_non_null(strstr(r.last_error, "gave up after 2 attempts: rendering failed: no link key"));
  reminder_clear(&r);
  char newdir[160];
  snprintf(newdir, sizeof newdir, "%s/new", f->maildir);
  assert_int_equal(count_files(newdir), 0);
}

static void test_helpers(void **state) {
  int64_t v = -1;
  assert_int_equal(notify_parse_retry_after("120", 0, &v), 0);
  assert_int_equal(v, 120);
  assert_int_equal(notify_parse_retry_after(" 7 ", 0, &v), 0);
  assert_int_equal(v, 7);
  assert_int_equal(notify_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 10, &v),
                   0);
  assert_int_equal(v, 10);
  assert_int_equal(notify_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 10, &v),
                   0);
  assert_int_equal(v, 0);
  assert_int_equal(notify_parse_retry_after("soon", 0, &v), -EINVAL);
  assert_int_equal(notify_parse_retry_after("-5", 0, &v), -EINVAL);

  static const struct {
    long status;
    enum notify_status want;
  } http[] = {{200, NOTIFY_SENT},      {204, NOTIFY_SENT},      {400, NOTIFY_PERMANENT},
              {404, NOTIFY_PERMANENT}, {408, NOTIFY_TRANSIENT}, {429, NOTIFY_TRANSIENT},
              {500, NOTIFY_TRANSIENT}, {503, NOTIFY_TRANSIENT}, {301, NOTIFY_PERMANENT}};
  for (size_t i = 0; i < ELEMENTSOF(http); i++) {
    struct notify_result res = {0};
    notify_classify_http(http[i].status, NULL, 30, "oops", &res);
    assert_int_equal(res.status, http[i].want);
    assert_int_equal(res.retry_after, http[i].want == NOTIFY_TRANSIENT ? 30 : 0);
  }
  long ok[] = {202, 0};
  struct notify_result res = {0};
  notify_classify_http(200, ok, 0, NULL, &res);
  assert_int_equal(res.status, NOTIFY_PERMANENT);
  assert_string_equal(res.error, "HTTP 200");
  notify_classify_http(202, ok, 0, NULL, &res);
  assert_int_equal(res.status, NOTIFY_SENT);
  notify_classify_smtp(451, "try later", &res);
  assert_int_equal(res.status, NOTIFY_TRANSIENT);
  notify_classify_smtp(550, "no such user", &res);
  assert_int_equal(res.status, NOTIFY_PERMANENT);
  notify_classify_curl(CURLE_COULDNT_CONNECT, NULL, &res);
  assert_int_equal(res.status, NOTIFY_TRANSIENT);
  notify_classify_curl(CURLE_OPERATION_TIMEDOUT, NULL, &res);
  assert_int_equal(res.status, NOTIFY_TRANSIENT);
  notify_classify_curl(CURLE_PEER_FAILED_VERIFICATION, NULL, &res);
  assert_int_equal(res.status, NOTIFY_PERMANENT);

  char out[64];
  const char *j = "{\"a\":{\"b\":[{\"id\":\"x1\"},{\"id\":42}]}}";
  assert_int_equal(notify_json_path(j, strlen(j), "a.b.0.id", out, sizeof out), 0);
  assert_string_equal(out, "x1");
  assert_int_equal(notify_json_path(j, strlen(j), "a.b.1.id", out, sizeof out), 0);
  assert_string_equal(out, "42");
  assert_int_equal(notify_json_path(j, strlen(j), "a.c", out, sizeof out), -ENOENT);
  assert_int_equal(notify_json_path("nope", 4, "a", out, sizeof out), -EINVAL);

  assert_int_equal(notify_kind_of_recipient("+4915112345678"), NOTIFY_SMS);
  assert_int_equal(notify_kind_of_recipient("https://x.test/"), NOTIFY_WEBHOOK);
  assert_int_equal(notify_kind_of_recipient("a@b.test"), NOTIFY_EMAIL);
}

/* The sink writes each kind as what it stands for: the email mail_format()
 * builds, the SMS as the provider gets it, the webhook as the request. */
static void test_sink_format_kinds(void **state) {
  json_t *data = json_pack("{s:{s:s}}", "tier", "audience", "customer");
  struct message m = {.subject = (char *)"Grüße",
                      .text = (char *)"line one\nline two=3\n",
                      .sms = (char *)"short text",
                      .event = (char *)"{\"type\":\"x\"}",
                      .event_type = "reminder.due",
                      .data = data,
                      .to_name = (char *)"Ada"};
  struct reminder row = {.id = 7,
                         .contract_id = (char *)"C-1",
                         .tier = (char *)"notice",
                         .channel = (char *)"mail",
                         .audience = (char *)"customer",
                         .recipient = (char *)"ada@example.com"};
  snprintf(row.idem_key, sizeof row.idem_key, "rk-0123456789abcdef0123456789abcdef");
  struct config_kv kv[] = {
      {.key = (char *)"Maildir", .value = (char *)"/tmp/unused"},
      {.key = (char *)"From", .value = (char *)"Example Renewals <renewals@example.com>"},
      {.key = (char *)"OptOutFooter", .value = (char *)"Reply STOP to opt out"},
  };
  struct config_channel ch = {
      .name = (char *)"sink", .type = (char *)"sink", .options = kv, .n_options = 2};
  struct notify_request req = {.row = &row, .msg = &m, .kind = NOTIFY_EMAIL, .now = T0};
  char *t = NULL, err[256] = "";
  size_t len = 0;
  assert_int_equal(sink_format(&ch, &req, &t, &len, err, sizeof err), 0);
  assert_int_equal(len, strlen(t));
  assert_true(
      strncmp(t,
              "From: Example Renewals <renewals@example.com>\r\nTo: Ada <ada@example.com>\r\n"
              "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n",
              100) == 0);
  assert_non_null(strstr(t, "Message-ID: <rk-0123456789abcdef0123456789abcdef@example.com>\r\n"));
  assert_non_null(strstr(t, "\r\n\r\nline one\r\nline two=3D3\r\n"));
  /* byte for byte what an SMTP channel with the same From= sends */
  struct config_kv smtp_kv[] = {
      {.key = (char *)"URL", .value = (char *)"smtp://127.0.0.1:25"},
      kv[1],
  };
  struct config_channel smtp = {
      .name = (char *)"mail", .type = (char *)"smtp", .options = smtp_kv, .n_options = 2};
  char *sent = NULL;
  assert_int_equal(mail_format_channel(&smtp, &req, &sent, NULL, err, sizeof err), 0);
  assert_string_equal(sent, t);
  free(sent);
  free(t);

  /* Kind=sms: From= is the sender, not an email address */
  kv[1].value = (char *)"+15005550006";
  struct config_kv kinds[] = {kv[0], kv[1], kv[2], {.key = (char *)"Kind", .value = (char *)"sms"}};
  ch.options = kinds;
  ch.n_options = 4;
  row.recipient = (char *)"+4915112345678";
  req.kind = NOTIFY_SMS;
  assert_int_equal(sink_format(&ch, &req, &t, &len, err, sizeof err), 0);
  assert_string_equal(t,
                      "To: +4915112345678\nFrom: +15005550006\n"
                      "Segments: 1 (GSM-7, 32 characters)\n\nshort text\nReply STOP to opt out\n");
  free(t);

  row.recipient = (char *)"https://crm.example.com/hook";
  req.kind = NOTIFY_WEBHOOK;
  assert_int_equal(sink_format(&ch, &req, &t, &len, err, sizeof err), 0);
  assert_string_equal(t, "POST https://crm.example.com/hook HTTP/1.1\r\n"
                         "Content-Type: application/json\r\n"
                         "webhook-id: rk-0123456789abcdef0123456789abcdef\r\n"
                         "webhook-timestamp: 1926288000\r\nContent-Length: 12\r\n\r\n"
                         "{\"type\":\"x\"}\n");
  free(t);
  json_decref(data);
  assert_true(mail_address_valid("Renewals <renewals@example.com>"));
  assert_true(mail_address_valid("renewals@example.com"));
  assert_false(mail_address_valid("Renewals <nobody>"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_sink_send, setup, teardown),
      cmocka_unit_test_setup_teardown(test_optout_skipped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_answered_term_skipped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_suppressed_skipped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_link_key_config, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_link_key_dead, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retry_wakeup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_recover_sending, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dead_fallback_and_ops_alert, setup, teardown),
      cmocka_unit_test_setup_teardown(test_webhook_private_refused_and_backoff, setup, teardown),
      cmocka_unit_test_setup_teardown(test_webhook_event_json, setup, teardown),
      cmocka_unit_test_setup_teardown(test_render_ladder_snapshot, setup, teardown),
      cmocka_unit_test_setup_teardown(test_check_config_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_claim_busy_retried, setup, teardown),
      cmocka_unit_test(test_helpers),
      cmocka_unit_test(test_sink_format_kinds),
  };
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int r = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return r;
}
