/* bench-loop: does renewd's event loop keep answering while another process
 * writes a large import into its store?
 *
 *   bench-loop [CONTRACTS] [IMPORT_ROWS] [--keep]   (default 1000000 500000)
 *
 * Generates a store of CONTRACTS contracts (the sqlite3 shell, expiries over
 * the coming year; recorded as already seen by a daemon, as in steady state;
 * not timed) and a CSV of IMPORT_ROWS new contracts and customers. Starts
 * renewd on it, waits for READY, then in the same run:
 *   (a) idle: probes GET /healthz every 20 ms (a new TCP connection each
 *       time, like a health checker) for IDLE_S seconds;
 *   (b) import: starts `renewctl import` of the CSV against the same store
 *       and keeps probing every 20 ms until the import has exited and the
 *       daemon has re-planned what changed (renewd_changes_seen_total stays
 *       put for SETTLE_S seconds; at most SETTLE_MAX_S).
 * Prints p50/p99/max of each phase, the ratio of the import's p99 to the
 * idle p99, the longest loop iteration after READY (renewd's own counter,
 * logged at exit; renewd_loop_iteration_seconds in /metrics) and how many
 * iterations exceeded 50 ms during the import (histogram delta), against the
 * targets max < 50 ms and p99 < 5 ms. Run by hand; BENCH_DIR= the parent
 * directory (default /tmp), RENEWD=/RENEWCTL= other binaries to measure. */
#include "bench/bench-daemon.h"

#include <math.h>
#include <sys/time.h>

#ifndef RENEWD_PATH
#define RENEWD_PATH "renewd"
#endif
#ifndef RENEWCTL_PATH
#define RENEWCTL_PATH "renewctl"
#endif

#define DAY 86400
#define PROBE_MS 20
#define IDLE_S 10
#define SETTLE_S 5
#define SETTLE_MAX_S 300
#define PROBE_TIMEOUT_MS 10000

static const char config_fmt[] = "[Daemon]\n"
                                 "Database=%s/store.db\n"
                                 "LinkKeyFile=%s/link-key\n"
                                 "Listen=127.0.0.1:%d\n"
                                 "TimeZone=Europe/Berlin\n"
                                 "Horizon=48h\n"
                                 "RefillInterval=10min\n"
                                 "ChangePollInterval=1s\n"
                                 "\n"
                                 "[SendWindow]\n"
                                 "Hours=00:00-24:00\n"
                                 "Days=Mon..Sun\n"
                                 "\n"
                                 "[Policy standard]\n"
                                 "Segments=*\n"
                                 "CatchUp=skip\n"
                                 "Tiers=notice reminder final\n"
                                 "\n"
                                 "[Tier notice]\n"
                                 "Offset=-P60D\n"
                                 "Channels=email\n"
                                 "\n"
                                 "[Tier reminder]\n"
                                 "Offset=-P30D\n"
                                 "Channels=email\n"
                                 "\n"
                                 "[Tier final]\n"
                                 "Offset=-P7D\n"
                                 "Channels=email\n"
                                 "\n"
                                 "[Channel email]\n"
                                 "Type=sink\n"
                                 "Maildir=%s/maildir\n";

/* The book: n contracts expiring over the coming year, n/3 customers, and
 * the meta rows a daemon that has seen all of them would have left. */
static void generate_store(const char *db, long n, int64_t now) {
  char *sql = NULL;
  long customers = n / 3 > 0 ? n / 3 : 1;
  if (asprintf(&sql,
               "BEGIN;\n"
               "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < %ld)\n"
               "INSERT INTO customers(id, name, email, tz, locale, segment, created_at,\n"
               "  updated_at)\n"
               "  SELECT 'K' || i, 'Customer ' || i, 'c' || i || '@example.com',\n"
               "  CASE i %% 3 WHEN 0 THEN 'Europe/Berlin' WHEN 1 THEN 'America/New_York'\n"
               "  ELSE 'Asia/Tokyo' END, 'en', 'smb', %" PRId64 ", %" PRId64 " FROM k;\n"
               "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < %ld)\n"
               "INSERT INTO contracts(rowid, id, customer_id, product, expires_at, value_minor,\n"
               "  currency, change_seq, created_at, updated_at)\n"
               "  SELECT i, 'C' || i, 'K' || (i %% %ld), 'Pro',\n"
               "  %" PRId64 " + %d + (i * 7919) %% %d, 10000, 'EUR', i, %" PRId64 ", %" PRId64
               " FROM k;\n"
               "INSERT INTO meta(key, value) VALUES ('seen_change_seq', '%ld'),\n"
               "  ('fired_until', '%" PRId64 "');\n"
               "COMMIT;\n",
               customers - 1, now, now, n, customers, now, DAY, 365 * DAY, now, now, n, now) < 0)
    die("out of memory");
  sqlite3_run(db, sql);
  free(sql);
}

/* rows new contracts (new customers, 3 contracts each) expiring over the
 * coming year: what a CRM export adds. */
static void generate_csv(const char *path, long rows, int64_t now) {
  FILE *f = fopen(path, "we");
  if (!f)
    die("cannot write %s: %m", path);
  fputs("contract_id,customer_id,customer_name,email,phone,timezone,locale,segment,owner,"
        "product,starts_on,expires_on,value,currency\n",
        f);
  for (long i = 0; i < rows; i++) {
    int64_t exp = now + 3 * DAY + (i * 104729) % (360 * DAY);
    struct tm tm;
    time_t t = (time_t)exp;
    gmtime_r(&t, &tm);
    fprintf(f,
            "I%07ld,N%07ld,New Customer %ld,n%ld@example.com,,Europe/Berlin,en,smb,,Pro,,"
            "%04d-%02d-%02d,100.00,EUR\n",
            i, i / 3, i / 3, i / 3, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  }
  if (fclose(f) != 0)
    die("cannot write %s: %m", path);
}

/* ---- the probe -------------------------------------------------------------------- */

/* GET path on a new connection; returns the latency in ms, or -1 on failure.
 * If body is not NULL, the response is copied there (NUL-terminated). */
static double http_get(int port, const char *path, char *body, size_t n) {
  double t0 = now_ms();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct timeval tv = {.tv_sec = PROBE_TIMEOUT_MS / 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  char req[256];
  int len = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
  if (write(fd, req, (size_t)len) != len) {
    close(fd);
    return -1;
  }
  static char buf[1 << 20];
  size_t got = 0;
  ssize_t k;
  while ((k = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
    got += (size_t)k;
  close(fd);
  buf[got] = 0;
  double ms = now_ms() - t0;
  if (k < 0 || strncmp(buf, "HTTP/1.1 200", 12) != 0)
    return -1;
  if (body)
    snprintf(body, n, "%s", buf);
  return ms;
}

/* A metric's first sample value from a /metrics body (name followed by a
 * space or '{' labels...), or NAN. */
static double metric_value(const char *text, const char *sample) {
  size_t n = strlen(sample);
  for (const char *p = text; (p = strstr(p, sample)); p += n)
    if ((p == text || p[-1] == '\n') && p[n] == ' ')
      return strtod(p + n + 1, NULL);
  return NAN;
}

struct samples {
  double *v;
  size_t n, cap;
  size_t failed;
};

static void sample_add(struct samples *s, double ms) {
  if (ms < 0) {
    s->failed++;
    return;
  }
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 4096;
    if (!(s->v = realloc(s->v, s->cap * sizeof *s->v)))
      die("out of memory");
  }
  s->v[s->n++] = ms;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(struct samples *s, double p) {
  if (s->n == 0)
    return NAN;
  qsort(s->v, s->n, sizeof *s->v, cmp_double);
  size_t k = (size_t)ceil(p / 100.0 * (double)s->n);
  return s->v[k > 0 ? k - 1 : 0];
}

/* Sleeps until the next PROBE_MS tick after t (absolute, ms). */
static double next_tick(double t) {
  double next = t + PROBE_MS, now = now_ms();
  if (next > now) {
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)((next - now) * 1e6)};
    nanosleep(&ts, NULL);
  }
  return next;
}

static void drain_log(struct renewd *d) {
  char b[65536];
  struct pollfd pfd = {.fd = d->err_fd, .events = POLLIN};
  while (poll(&pfd, 1, 0) > 0) {
    ssize_t k = read(d->err_fd, b, sizeof b);
    if (k <= 0)
      break;
    fwrite(b, 1, (size_t)k, d->log);
  }
}

/* Iterations above 50 ms so far: +Inf count minus the le="0.05" bucket. */
static double slow_iterations(const char *metrics) {
  return metric_value(metrics, "renewd_loop_iteration_seconds_count") -
         metric_value(metrics, "renewd_loop_iteration_seconds_bucket{le=\"0.05\"}");
}

static void print_phase(const char *name, struct samples *s) {
  double p50 = pct(s, 50), p99 = pct(s, 99), max = s->n ? s->v[s->n - 1] : NAN;
  printf("  %-7s /healthz: %6zu probes, p50 %7.2f ms, p99 %7.2f ms, max %8.2f ms, %zu failed\n",
         name, s->n, p50, p99, max, s->failed);
}

int main(int argc, char **argv) {
  long n = 1000000, rows = 500000;
  bool keep = false;
  int pos = 0;
  for (int k = 1; k < argc; k++) {
    if (strcmp(argv[k], "--keep") == 0)
      keep = true;
    else if (pos == 0 && (n = strtol(argv[k], NULL, 10)) > 0)
      pos++;
    else if (pos == 1 && (rows = strtol(argv[k], NULL, 10)) > 0)
      pos++;
    else
      die("usage: bench-loop [CONTRACTS] [IMPORT_ROWS] [--keep]");
  }
  char *dir = scratch_dir("bench-loop");
  char db[512], conf[512], csv[512], log_path[512], import_log[512], loop_line[512] = "";
  snprintf(db, sizeof db, "%s/store.db", dir);
  snprintf(conf, sizeof conf, "%s/renewd.conf", dir);
  snprintf(csv, sizeof csv, "%s/import.csv", dir);
  snprintf(log_path, sizeof log_path, "%s/renewd.log", dir);
  snprintf(import_log, sizeof import_log, "%s/import.log", dir);
  int64_t now = time(NULL);
  int port = free_port();
  FILE *f = fopen(conf, "we");
  if (!f)
    die("cannot write %s: %m", conf);
  fprintf(f, config_fmt, dir, dir, port, dir);
  fclose(f);
  char key[512];
  snprintf(key, sizeof key, "%s/link-key", dir);
  if (!(f = fopen(key, "we")))
    die("cannot write %s: %m", key);
  fputs("bench-link-key-0123456789abcdef0123\n", f);
  fclose(f);

  printf("bench-loop: %ld contracts, import of %ld rows, in %s\n", n, rows, dir);
  fflush(stdout);
  double t = now_ms();
  create_store(db);
  generate_store(db, n, now);
  generate_csv(csv, rows, now);
  printf("  generated in %.1f s (not measured)\n", (now_ms() - t) / 1e3);
  fflush(stdout);

  struct renewd d;
  renewd_start(&d, RENEWD_PATH, conf, log_path, NULL);
  renewd_wait_line(&d, "ready:", 3600e3, NULL, 0);
  printf("  renewd ready after %.1f s\n", (now_ms() - d.started_ms) / 1e3);
  fflush(stdout);

  /* (a) idle */
  struct samples idle = {0}, busy = {0};
  double tick = now_ms(), end = tick + IDLE_S * 1e3;
  while (now_ms() < end) {
    sample_add(&idle, http_get(port, "/healthz", NULL, 0));
    drain_log(&d);
    tick = next_tick(tick);
  }

  /* (b) the import, and the re-planning after it */
  static char metrics[1 << 20];
  if (http_get(port, "/metrics", metrics, sizeof metrics) < 0)
    die("GET /metrics failed");
  double slow0 = slow_iterations(metrics);
  const char *renewctl = getenv("RENEWCTL");
  if (!renewctl || !*renewctl)
    renewctl = RENEWCTL_PATH;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, import_log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  char *iargv[] = {(char *)renewctl, (char *)"--config", conf, (char *)"import", csv, NULL};
  pid_t imp;
  double t_import = now_ms();
  if (posix_spawn(&imp, renewctl, &fa, NULL, iargv, environ) != 0)
    die("cannot start %s", renewctl);
  posix_spawn_file_actions_destroy(&fa);
  bool import_done = false;
  int import_status = 0;
  double import_ms = 0, changes = -1, changes_at = 0, settle_end = 0;
  tick = now_ms();
  for (;;) {
    sample_add(&busy, http_get(port, "/healthz", NULL, 0));
    drain_log(&d);
    if (!import_done && waitpid(imp, &import_status, WNOHANG) == imp) {
      import_done = true;
      import_ms = now_ms() - t_import;
      settle_end = now_ms() + SETTLE_MAX_S * 1e3;
    }
    if (import_done && busy.n % 25 == 0) { /* twice a second: has re-planning settled? */
      if (http_get(port, "/metrics", metrics, sizeof metrics) >= 0) {
        double c = metric_value(metrics, "renewd_changes_seen_total");
        if (c != changes) {
          changes = c;
          changes_at = now_ms();
        } else if (now_ms() - changes_at > SETTLE_S * 1e3)
          break;
      }
      if (now_ms() > settle_end)
        break;
    }
    tick = next_tick(tick);
  }
  double settle_ms = now_ms() - t_import;
  if (http_get(port, "/metrics", metrics, sizeof metrics) < 0)
    die("GET /metrics failed");
  double slow = slow_iterations(metrics) - slow0;
  double busy_backoffs = metric_value(metrics, "renewd_store_busy_total");
  double ckpt_max = metric_value(metrics, "renewd_wal_checkpoint_seconds_max");
  int rc = renewd_stop(&d, loop_line, sizeof loop_line);
  if (rc != 0)
    die("renewd exited with %d (see %s)", rc, log_path);
  if (!WIFEXITED(import_status) || WEXITSTATUS(import_status) != 0)
    die("renewctl import failed (see %s)", import_log);
  double longest = -1;
  const char *p = strstr(loop_line, "longest ");
  if (p)
    sscanf(p, "longest %lf ms", &longest);

  printf("  import: %.1f s; daemon settled (changes re-planned) %.1f s after the import started\n",
         import_ms / 1e3, settle_ms / 1e3);
  print_phase("idle", &idle);
  print_phase("import", &busy);
  double p99 = pct(&busy, 99), max = busy.n ? busy.v[busy.n - 1] : NAN;
  double p50 = pct(&busy, 50), idle50 = pct(&idle, 50), idle99 = pct(&idle, 99);
  printf("  ratio import/idle: p50 %.2f, p99 %.2f\n", p50 / idle50, p99 / idle99);
  printf("  /healthz during the import: max %.1f ms (target < 50)  %s; p99 %.2f ms (target < 5)  "
         "%s\n",
         max, max < 50 && busy.failed == 0 ? "ok" : "MISSED", p99, p99 < 5 ? "ok" : "MISSED");
  printf("  longest event-loop iteration after READY: %.1f ms (target < 50)  %s; iterations > 50 "
         "ms during the import: %.0f\n",
         longest, longest >= 0 && longest < 50 ? "ok" : "MISSED", slow);
  printf("  store busy back-offs: %.0f; longest WAL checkpoint (own thread): %.1f ms\n",
         busy_backoffs, ckpt_max * 1e3);
  if (keep)
    printf("  kept %s\n", dir);
  else
    remove_dir(dir);
  free(dir);
  free(idle.v);
  free(busy.v);
  return 0;
}
