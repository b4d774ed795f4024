/* bench-smtp: email throughput of the dispatcher's full path against a
 * minimal libcurl SMTP loop and Postfix's own smtp-source, all delivering
 * to Postfix's smtp-sink on 127.0.0.1 in the same run.
 *
 *   bench-smtp [-n MESSAGES] [-c CONCURRENCY] [-r ROUNDS] [--keep]
 *        (defaults: 2000 messages, 10 concurrent, 3 rounds)
 *
 * Contenders, alternating per round (the median round is reported):
 *  1. dispatcher: N pending outbox rows in a real store are claimed,
 *     rendered (shipped templates, signed links, .ics part), formatted and
 *     sent by the Type=smtp backend on the dispatcher's curl multi (socket
 *     API, driven by a poll() loop here) and committed, MaxConcurrent=C;
 *  2. minimal: a bare curl multi loop with C easy handles re-sending one
 *     pre-formatted message of the same size (the first row's real message);
 *  3. smtp-source -s C -m N -l SIZE (a new connection per message, its
 *     default) and with -d (one connection per session, as we do).
 * Printed: messages/s of each, dispatcher/minimal (target >= 0.8), the share
 * of messages sent on a reused connection (target >= 95%; minimal: from
 * CURLINFO_NUM_CONNECTS; dispatcher: from smtp-sink's session counter, -c),
 * and dispatcher/smtp-source.
 *
 * smtp-sink is started here (as root with -u nobody) and stopped by pid.
 * Not a ctest test: run by hand, ideally on an idle machine. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/cal.h"
#include "core/clock.h"
#include "core/store.h"
#include "core/util.h"
#include "notifiers/dispatch.h"
#include "notifiers/render.h"
#include "notifiers/mail.h"
#include "notifiers/smtp.h"

#ifndef RENEWD_SOURCE_DIR
#define RENEWD_SOURCE_DIR "."
#endif
#define SINK "/usr/sbin/smtp-sink"
#define SOURCE "/usr/sbin/smtp-source"

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds this process used so far. */
static double cpu_self(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, int r) {
  fprintf(stderr, "bench-smtp: %s: %s\n", what, strerror(r < 0 ? -r : r));
  exit(1);
}

/* ---- smtp-sink ---------------------------------------------------------------- */

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0)
    die("port", errno);
  close(fd);
  return ntohs(a.sin_port);
}

static bool port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

/* Starts smtp-sink -c with its counters going to out_path. Returns its pid. */
static pid_t sink_start(int port, const char *out_path) {
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  pid_t pid = fork();
  if (pid < 0)
    die("fork", errno);
  if (pid == 0) {
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
      _exit(127);
    if (geteuid() == 0)
      execl(SINK, SINK, "-c", "-u", "nobody", addr, "1024", (char *)NULL);
    else
      execl(SINK, SINK, "-c", addr, "1024", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 200 && !port_open(port); i++)
    usleep(10000);
  if (!port_open(port))
    die("smtp-sink did not start", ECONNREFUSED);
  return pid;
}

/* The latest "sess=N" in smtp-sink's counter output: sessions ended so far
 * (our port probe included). */
static long sink_sessions(const char *out_path) {
  usleep(300000); /* let closed sessions be counted */
  _cleanup_free_ char *text = NULL;
  if (read_full_file(out_path, 64 << 20, &text, NULL) < 0)
    return -1;
  const char *last = NULL;
  for (const char *p = text; (p = strstr(p, "sess=")); p++)
    last = p;
  return last ? strtol(last + 5, NULL, 10) : 0;
}

/* ---- the dispatcher's loop: poll() for the sockets, one timer ---------------- */

struct loop {
  struct pollfd fds[1024];
  size_t n;
  double deadline; /* monotonic seconds, 0 = disarmed */
};

static int loop_watch(void *ud, int fd, int what) {
  struct loop *l = ud;
  size_t i = 0;
  while (i < l->n && l->fds[i].fd != fd)
    i++;
  if (what == CURL_POLL_REMOVE) {
    if (i < l->n)
      l->fds[i] = l->fds[--l->n];
    return 0;
  }
  if (i == l->n) {
    if (l->n == ELEMENTSOF(l->fds))
      return -ENOBUFS;
    l->n++;
  }
  l->fds[i] = (struct pollfd){
      .fd = fd,
      .events = (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0))};
  return 0;
}

static int loop_timer(void *ud, long ms) {
  struct loop *l = ud;
  l->deadline = ms < 0 ? 0 : mono() + (double)ms / 1000.0;
  return 0;
}

static const struct dispatch_loop_ops loop_ops = {.watch = loop_watch, .timer = loop_timer};

struct tally {
  long sent, failed;
  char last_error[256];
};

static void on_report(void *ud, const struct dispatch_report *r) {
  struct tally *t = ud;
  if (r->outcome == DISPATCH_SENT)
    t->sent++;
  else if (r->outcome == DISPATCH_RETRY || r->outcome == DISPATCH_DEAD) {
    t->failed++;
    snprintf(t->last_error, sizeof t->last_error, "%s", r->detail ? r->detail : "?");
  }
}

/* Inserts n pending rows (step = round, so every round has fresh keys). */
static void add_rows(struct store *st, int n, int round, int64_t now) {
  int r = store_begin(st);
  if (r < 0)
    die("store_begin", r);
  for (int i = 0; i < n; i++) {
    char cid[32], mail[64];
    snprintf(cid, sizeof cid, "C-%06d", i);
    snprintf(mail, sizeof mail, "customer%d@example.com", i);
    struct reminder row = {.contract_id = cid,
                           .term = 1,
                           .tier = (char *)"notice",
                           .step = round,
                           .channel = (char *)"email",
                           .audience = (char *)"customer",
                           .recipient = mail,
                           .due_at = now,
                           .status = REMINDER_PENDING};
    if ((r = store_reminder_insert(st, &row, now, NULL)) < 0)
      die("store_reminder_insert", r);
  }
  if ((r = store_commit(st)) < 0)
    die("store_commit", r);
}

/* Returns wall seconds; *ret_cpu the CPU seconds this process used. */
static double run_dispatcher(struct store *st, struct cal *cal, const struct config *cfg, int n,
                             int round, double *ret_cpu) {
  struct clock clk;
  clock_init_real(&clk);
  add_rows(st, n, round, clock_now(&clk));
  struct loop l = {0};
  struct tally t = {0};
  struct dispatch_callbacks cbs = {.report = on_report, .userdata = &t};
  struct dispatcher *d = NULL;
  struct config_errors errs = {0};
  int r = dispatcher_new(st, cal, cfg, &clk, &loop_ops, &l, &cbs, &d, &errs);
  if (r < 0) {
    config_errors_print(&errs, stderr);
    die("dispatcher_new", r);
  }
  double t0 = mono(), c0 = cpu_self();
  dispatcher_kick(d);
  double sum_inflight = 0, iters = 0, polls_timeout = 0;
  while (t.sent + t.failed < n) {
    sum_inflight += (double)dispatcher_in_flight(d);
    iters++;
    if (t.failed) {
      fprintf(stderr, "bench-smtp: a message failed: %s\n", t.last_error);
      exit(1);
    }
    double now = mono();
    int timeout = l.deadline > 0 ? (int)MAX(0.0, (l.deadline - now) * 1000.0 + 0.5) : 1000;
    struct pollfd snap[ELEMENTSOF(l.fds)];
    size_t k = l.n;
    memcpy(snap, l.fds, k * sizeof *snap);
    int p = poll(snap, k, timeout);
    if (p == 0)
      polls_timeout++;
    if (p < 0 && errno != EINTR)
      die("poll", errno);
    for (size_t i = 0; p > 0 && i < k; i++) {
      if (!snap[i].revents)
        continue;
      int ev = (snap[i].revents & POLLIN ? CURL_CSELECT_IN : 0) |
               (snap[i].revents & POLLOUT ? CURL_CSELECT_OUT : 0) |
               (snap[i].revents & (POLLERR | POLLHUP) ? CURL_CSELECT_ERR : 0);
      dispatcher_socket_ready(d, snap[i].fd, ev);
    }
    if (l.deadline > 0 && mono() >= l.deadline) {
      l.deadline = 0;
      dispatcher_timeout(d);
    }
    if (dispatcher_next_wakeup(d) <= clock_now(&clk))
      dispatcher_kick(d);
  }
  double dt = mono() - t0;
  *ret_cpu = cpu_self() - c0;
  if (getenv("BENCH_DEBUG"))
    fprintf(stderr, "dispatcher: %.0f loop iterations, mean in flight %.2f, %.0f poll timeouts\n",
            iters, sum_inflight / iters, polls_timeout);
  dispatcher_free(d); /* closes the connections: smtp-sink counts the sessions */
  config_errors_clear(&errs);
  return dt;
}

/* ---- the minimal libcurl loop --------------------------------------------------- */

struct slot {
  CURL *e;
  struct curl_slist *rcpt;
  const char *msg;
  size_t len, off;
};

static size_t slot_read(char *buf, size_t size, size_t nitems, void *ud) {
  struct slot *s = ud;
  size_t n = MIN(size * nitems, s->len - s->off);
  memcpy(buf, s->msg + s->off, n);
  s->off += n;
  return n;
}

static void slot_start(CURLM *m, struct slot *s, const char *url, int i) {
  char rcpt[64];
  snprintf(rcpt, sizeof rcpt, "customer%d@example.com", i);
  curl_slist_free_all(s->rcpt);
  s->rcpt = curl_slist_append(NULL, rcpt);
  s->off = 0;
  curl_easy_setopt(s->e, CURLOPT_URL, url);
  curl_easy_setopt(s->e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(s->e, CURLOPT_MAIL_FROM, "bench@example.com");
  curl_easy_setopt(s->e, CURLOPT_MAIL_RCPT, s->rcpt);
  curl_easy_setopt(s->e, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(s->e, CURLOPT_READFUNCTION, slot_read);
  curl_easy_setopt(s->e, CURLOPT_READDATA, s);
  curl_easy_setopt(s->e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)s->len);
  curl_easy_setopt(s->e, CURLOPT_PRIVATE, s);
  curl_multi_add_handle(m, s->e);
}

static double run_minimal(const char *url, const char *msg, size_t len, int n, int c,
                          long *ret_connects, double *ret_cpu) {
  CURLM *m = curl_multi_init();
  curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)c);
  struct slot *slots = calloc((size_t)c, sizeof *slots);
  if (!m || !slots)
    die("curl", ENOMEM);
  double t0 = mono(), c0 = cpu_self();
  int started = 0, done = 0;
  long connects = 0;
  for (int i = 0; i < c && started < n; i++) {
    slots[i] = (struct slot){.e = curl_easy_init(), .msg = msg, .len = len};
    slot_start(m, &slots[i], url, started++);
  }
  while (done < n) {
    int running;
    curl_multi_perform(m, &running);
    CURLMsg *cm;
    int left;
    while ((cm = curl_multi_info_read(m, &left))) {
      if (cm->msg != CURLMSG_DONE)
        continue;
      struct slot *s;
      long code = 0, nc = 0;
      curl_easy_getinfo(cm->easy_handle, CURLINFO_PRIVATE, (char **)&s);
      curl_easy_getinfo(cm->easy_handle, CURLINFO_RESPONSE_CODE, &code);
      curl_easy_getinfo(cm->easy_handle, CURLINFO_NUM_CONNECTS, &nc);
      if (cm->data.result != CURLE_OK) {
        fprintf(stderr, "bench-smtp: minimal loop: %s (%ld)\n", curl_easy_strerror(cm->data.result),
                code);
        exit(1);
      }
      connects += nc;
      done++;
      curl_multi_remove_handle(m, s->e);
      if (started < n)
        slot_start(m, s, url, started++);
    }
    if (done < n)
      curl_multi_poll(m, NULL, 0, 1000, NULL);
  }
  double dt = mono() - t0;
  *ret_cpu = cpu_self() - c0;
  for (int i = 0; i < c; i++) {
    curl_slist_free_all(slots[i].rcpt);
    if (slots[i].e)
      curl_easy_cleanup(slots[i].e);
  }
  free(slots);
  curl_multi_cleanup(m);
  *ret_connects = connects;
  return dt;
}

/* ---- smtp-source ------------------------------------------------------------------ */

static double run_source(int port, int n, int c, size_t size, bool reuse) {
  char addr[64], ns[16], cs[16], ls[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  snprintf(ns, sizeof ns, "%d", n);
  snprintf(cs, sizeof cs, "%d", c);
  snprintf(ls, sizeof ls, "%zu", size);
  double t0 = mono();
  pid_t pid = fork();
  if (pid < 0)
    die("fork", errno);
  if (pid == 0) {
    if (reuse)
      execl(SOURCE, SOURCE, "-d", "-s", cs, "-m", ns, "-l", ls, addr, (char *)NULL);
    else
      execl(SOURCE, SOURCE, "-s", cs, "-m", ns, "-l", ls, addr, (char *)NULL);
    _exit(127);
  }
  int status;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    die("smtp-source failed", EIO);
  return mono() - t0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

int main(int argc, char **argv) {
  int n = 2000, c = 10, rounds = 3;
  bool keep = false;
  for (int i = 1; i < argc; i++) {
    if (streq(argv[i], "-n") && i + 1 < argc)
      n = atoi(argv[++i]);
    else if (streq(argv[i], "-c") && i + 1 < argc)
      c = atoi(argv[++i]);
    else if (streq(argv[i], "-r") && i + 1 < argc)
      rounds = atoi(argv[++i]);
    else if (streq(argv[i], "--keep"))
      keep = true;
    else {
      fprintf(stderr, "usage: bench-smtp [-n MESSAGES] [-c CONCURRENCY] [-r ROUNDS] [--keep]\n");
      return 64;
    }
  }
  if (n < 1 || c < 1 || rounds < 1 || rounds > 15)
    return 64;
  if (access(SINK, X_OK) < 0 || access(SOURCE, X_OK) < 0) {
    fprintf(stderr, "bench-smtp: needs Postfix's %s and %s (package postfix)\n", SINK, SOURCE);
    return 77;
  }
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);

  char dir[] = "/tmp/bench-smtp-XXXXXX";
  if (!mkdtemp(dir))
    die("mkdtemp", errno);
  char db[128], key[128], sinkout[128];
  snprintf(db, sizeof db, "%s/renewd.db", dir);
  snprintf(key, sizeof key, "%s/link-key", dir);
  snprintf(sinkout, sizeof sinkout, "%s/smtp-sink.out", dir);
  FILE *kf = fopen(key, "we");
  if (!kf || fputs("bench-link-key-0123456789abcdef\n", kf) < 0 || fclose(kf) != 0)
    die("link key", errno);

  int port = free_port();
  pid_t sink = sink_start(port, sinkout);
  char url[64];
  snprintf(url, sizeof url, "smtp://127.0.0.1:%d", port);

  _cleanup_free_ char *conf = strprintf(
      "[Daemon]\nDatabase=%s\nPublicURL=https://renew.example.com\nTimeZone=Europe/Berlin\n"
      "Templates=%s/notifiers/templates\nLinkKeyFile=%s\n"
      "[Policy p]\nSegments=*\nTiers=notice\n[Tier notice]\nOffset=-P30D\nChannels=email\n"
      "[Channel email]\nType=smtp\nURL=%s\nFrom=Example Renewals <renewals@example.com>\n"
      "ReplyTo=renewals@example.com\nMaxConcurrent=%d\nTimeout=120\n",
      db, RENEWD_SOURCE_DIR, key, url, c);
  struct cal *cal = NULL;
  struct config *cfg = NULL;
  struct config_errors errs = {0};
  struct store *st = NULL;
  char err[512] = "";
  int r;
  if ((r = cal_new(&cal)) < 0)
    die("cal_new", r);
  if ((r = config_load_string("bench.conf", conf, cal, &cfg, &errs)) < 0) {
    config_errors_print(&errs, stderr);
    die("config", r);
  }
  if ((r = store_open(db, 0, &st, err, sizeof err)) < 0) {
    fprintf(stderr, "%s\n", err);
    die("store_open", r);
  }
  /* the book: N customers (mixed locales) with one contract each */
  int64_t now = (int64_t)time(NULL);
  if ((r = store_begin(st)) < 0)
    die("store_begin", r);
  for (int i = 0; i < n; i++) {
    char cid[32], kid[32], name[64], mail[64];
    snprintf(cid, sizeof cid, "C-%06d", i);
    snprintf(kid, sizeof kid, "K-%06d", i);
    snprintf(name, sizeof name, i % 3 == 2 ? "客户 %d" : "Customer Number %d", i);
    snprintf(mail, sizeof mail, "customer%d@example.com", i);
    struct customer cu = {.id = kid,
                          .name = name,
                          .email = mail,
                          .tz = (char *)"Europe/Berlin",
                          .locale = (char *)(i % 3 == 2 ? "zh-CN" : "en"),
                          .segment = (char *)"smb"};
    struct contract k = {.id = cid,
                         .customer_id = kid,
                         .product = (char *)"Cloud Backup Pro",
                         .currency = (char *)"EUR",
                         .value_minor = 120050 + i,
                         .starts_at = now - 335 * 86400,
                         .expires_at = now + 30 * 86400};
    if ((r = store_customer_upsert(st, &cu, now)) < 0 ||
        (r = store_contract_upsert(st, &k, now)) < 0)
      die("store upsert", r);
  }
  if ((r = store_commit(st)) < 0)
    die("store_commit", r);

  /* the message the minimal loop and smtp-source send: row 1's real one */
  struct render *rd = NULL;
  struct message msg = {0};
  _cleanup_free_ char *sample = NULL;
  size_t size = 0;
  struct reminder row = {.contract_id = (char *)"C-000001",
                         .term = 1,
                         .tier = (char *)"notice",
                         .channel = (char *)"email",
                         .audience = (char *)"customer",
                         .recipient = (char *)"customer1@example.com"};
  store_idem_key(row.contract_id, 1, row.tier, 0, row.channel, row.audience, row.idem_key);
  if ((r = render_new(cfg, cal, &rd, err, sizeof err)) < 0 ||
      (r = render_message(rd, st, &row, NOTIFY_EMAIL, now, &msg, err, sizeof err)) < 0)
    die(err, r);
  struct notify_request req = {.row = &row, .msg = &msg, .kind = NOTIFY_EMAIL, .now = now};
  if ((r = mail_format_channel(config_channel(cfg, "email"), &req, &sample, &size, err,
                               sizeof err)) < 0)
    die(err, r);
  message_clear(&msg);

  /* the share of rendering + formatting: the same work without network or
   * outbox (render_message() + mail_format_channel() of every row's message) */
  double r0 = cpu_self(), fmt = 0;
  for (int i = 0; i < n; i++) {
    char cid[32], mail[64];
    snprintf(cid, sizeof cid, "C-%06d", i);
    snprintf(mail, sizeof mail, "customer%d@example.com", i);
    struct reminder rw = row;
    rw.contract_id = cid;
    rw.recipient = mail;
    store_idem_key(cid, 1, rw.tier, 0, rw.channel, rw.audience, rw.idem_key);
    struct message mm = {0};
    char *bytes = NULL;
    struct notify_request rq = {.row = &rw, .msg = &mm, .kind = NOTIFY_EMAIL, .now = now};
    if ((r = render_message(rd, st, &rw, NOTIFY_EMAIL, now, &mm, err, sizeof err)) < 0)
      die(err, r);
    double f0 = cpu_self();
    if ((r = mail_format_channel(config_channel(cfg, "email"), &rq, &bytes, NULL, err,
                                 sizeof err)) < 0)
      die(err, r);
    fmt += cpu_self() - f0;
    free(bytes);
    message_clear(&mm);
  }
  double us_render = 1e6 * (cpu_self() - r0) / n, us_format = 1e6 * fmt / n;
  render_free(rd);

  printf("bench-smtp: %d messages of %zu bytes (rendered: text + html + .ics), %d concurrent, "
         "%d round%s, to smtp-sink on %s\n",
         n, size, c, rounds, rounds == 1 ? "" : "s", url);
  double td[15], tm[15], ts[15], tsd[15], cd[15], cm[15];
  long sess_disp = 0, conn_min = 0;
  long sess = sink_sessions(sinkout);
  for (int k = 0; k < rounds; k++) {
    td[k] = run_dispatcher(st, cal, cfg, n, k, &cd[k]);
    long s2 = sink_sessions(sinkout);
    sess_disp += s2 - sess;
    sess = s2;
    long nc = 0;
    tm[k] = run_minimal(url, sample, size, n, c, &nc, &cm[k]);
    conn_min += nc;
    ts[k] = run_source(port, n, c, size, false);
    tsd[k] = run_source(port, n, c, size, true);
    sess = sink_sessions(sinkout);
    printf("  round %d: dispatcher %.0f msg/s (%.0f us CPU/msg), minimal %.0f msg/s (%.0f us "
           "CPU/msg), smtp-source %.0f msg/s, smtp-source -d %.0f msg/s\n",
           k + 1, n / td[k], 1e6 * cd[k] / n, n / tm[k], 1e6 * cm[k] / n, n / ts[k], n / tsd[k]);
  }
  double d = n / median(td, rounds), m = n / median(tm, rounds), s = n / median(ts, rounds),
         sd = n / median(tsd, rounds);
  double ucd = 1e6 * median(cd, rounds) / n, ucm = 1e6 * median(cm, rounds) / n;
  double reuse_disp = 100.0 * (1.0 - (double)sess_disp / ((double)n * rounds));
  double reuse_min = 100.0 * (1.0 - (double)conn_min / ((double)n * rounds));
  printf("dispatcher (claim, render, send, commit): %8.0f msg/s, %5.0f us CPU/msg\n", d, ucd);
  printf("minimal libcurl multi loop:               %8.0f msg/s, %5.0f us CPU/msg\n", m, ucm);
  printf("  of which render_message() + mail_format_channel() alone:  %5.0f us CPU/msg "
         "(smtp_format %.0f)\n",
         us_render, us_format);
  printf("smtp-source -s %d (connection per message): %6.0f msg/s\n", c, s);
  printf("smtp-source -s %d -d (reused connections): %7.0f msg/s\n", c, sd);
  printf("ratio dispatcher/minimal:    %.2f  (target >= 0.80) %s; CPU per message %.1fx\n", d / m,
         d / m >= 0.8 ? "ok" : "BELOW TARGET", ucd / ucm);
  printf("reused connections: dispatcher %.1f%% (%ld sessions for %d messages), minimal %.1f%% "
         "(target >= 95%%) %s\n",
         reuse_disp, sess_disp, n * rounds, reuse_min, reuse_disp >= 95.0 ? "ok" : "BELOW TARGET");
  printf("ratio dispatcher/smtp-source: %.2f   dispatcher/smtp-source -d: %.2f\n", d / s, d / sd);

  kill(sink, SIGTERM);
  waitpid(sink, NULL, 0);
  store_free(st);
  config_free(cfg);
  config_errors_clear(&errs);
  cal_free(cal);
  curl_global_cleanup();
  if (!keep) {
    _cleanup_free_ char *cmd = strprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
      fprintf(stderr, "bench-smtp: could not remove %s\n", dir);
  } else
    printf("kept %s\n", dir);
  return 0;
}
