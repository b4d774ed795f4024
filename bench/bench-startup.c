/* bench-startup: renewd's start-up against the size of the book.
 *
 *   bench-startup [HOT] [BIG] [--runs N] [--keep]   (defaults 10000, 1000000, 3 runs)
 *
 * Two stores, generated with the sqlite3 shell (not timed):
 *   small: HOT contracts, each with its first tier due within the next 48 h
 *          (the horizon), between 2 h and 46 h from now;
 *   big:   the same HOT contracts plus BIG - HOT that expire 400 to 765 days
 *          from now (nothing due for almost a year).
 * renewd sees each store once (a first run to READY plans every contract and
 * settles the change counter; not timed). Then, alternating small and big,
 * N times each: renewd is started with a NOTIFY_SOCKET this program owns,
 * and measured are the time from spawn to READY=1, and VmHWM/VmRSS from
 * /proc/PID/status at that moment; renewd is stopped. Prints the medians and
 * the ratios big/small (targets <= 1.5 each). Run by hand on an otherwise idle
 * machine; --keep leaves the directory. BENCH_DIR= picks the parent directory;
 * RENEWD= another renewd binary to measure. */
#include "bench/bench-daemon.h"

#ifndef RENEWD_PATH
#define RENEWD_PATH "renewd"
#endif

#define DAY 86400

static const char config_fmt[] = "[Daemon]\n"
                                 "Database=%s\n"
                                 "LinkKeyFile=%s/link-key\n"
                                 "Listen=127.0.0.1:%d\n"
                                 "TimeZone=UTC\n"
                                 "Horizon=48h\n"
                                 "\n"
                                 "[SendWindow]\n"
                                 "Hours=00:00-24:00\n"
                                 "Days=Mon..Sun\n"
                                 "\n"
                                 "[Policy standard]\n"
                                 "Segments=*\n"
                                 "CatchUp=skip\n"
                                 "Tiers=notice reminder final escalation\n"
                                 "FallbackOwner=owner0\n"
                                 "\n"
                                 "[Tier notice]\n"
                                 "Offset=-P60D\n"
                                 "Channels=email\n"
                                 "\n"
                                 "[Tier reminder]\n"
                                 "Offset=-P30D\n"
                                 "Repeat=FREQ=WEEKLY;COUNT=2\n"
                                 "Channels=email\n"
                                 "\n"
                                 "[Tier final]\n"
                                 "Offset=-P7D\n"
                                 "Channels=email\n"
                                 "\n"
                                 "[Tier escalation]\n"
                                 "Offset=-P3D\n"
                                 "Channels=email\n"
                                 "Audience=owner\n"
                                 "\n"
                                 "[Channel email]\n"
                                 "Type=sink\n"
                                 "Maildir=%s/maildir\n";

/* contracts 1..hot: first tier (-P60D) due 2 h .. 46 h from now; hot+1..n:
 * expiring 400 .. 765 days from now. */
static void generate(const char *db, long n, long hot, int64_t now) {
  char *sql = NULL;
  long customers = n / 3 > 0 ? n / 3 : 1;
  if (asprintf(&sql,
               "BEGIN;\n"
               "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 49)\n"
               "INSERT INTO owners(id, name, email, tz, created_at, updated_at)\n"
               "  SELECT 'owner' || i, 'Owner ' || i, 'owner' || i || '@sales.example.com',\n"
               "  'Europe/Berlin', %" PRId64 ", %" PRId64 " FROM k;\n"
               "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < %ld)\n"
               "INSERT INTO customers(id, name, email, tz, locale, segment, owner_id,\n"
               "  created_at, updated_at)\n"
               "  SELECT 'K' || i, 'Customer ' || i, 'c' || i || '@example.com',\n"
               "  CASE i %% 3 WHEN 0 THEN 'Europe/Berlin' WHEN 1 THEN 'America/New_York'\n"
               "  ELSE 'Asia/Tokyo' END, 'en', 'smb', 'owner' || (i %% 50),\n"
               "  %" PRId64 ", %" PRId64 " FROM k;\n"
               "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < %ld)\n"
               "INSERT INTO contracts(rowid, id, customer_id, product, expires_at, change_seq,\n"
               "  created_at, updated_at)\n"
               "  SELECT i, 'C' || i, 'K' || (i %% %ld), 'Pro',\n"
               "  CASE WHEN i <= %ld THEN %" PRId64
               " + 60 * %d + 7200 + (i * 7919) %% (44 * 3600)\n"
               "  ELSE %" PRId64 " + 400 * %d + (i * 7919) %% (365 * %d) END,\n"
               "  i, %" PRId64 ", %" PRId64 " FROM k;\n"
               "COMMIT;\n",
               now, now, customers - 1, now, now, n, customers, hot, now, DAY, now, DAY, DAY, now,
               now) < 0)
    die("out of memory");
  sqlite3_run(db, sql);
  free(sql);
}

struct store_case {
  const char *name;
  long contracts;
  char db[512], conf[512], log[512];
  double ready_ms[16];
  long hwm[16], rss[16];
  char ready_line[512];
};

/* Customer email needs a link key: renewd refuses to start without one. */
static void write_link_key(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/link-key", dir);
  FILE *f = fopen(path, "we");
  if (!f)
    die("cannot write %s: %m", path);
  fputs("bench-link-key-0123456789abcdef0123\n", f);
  fclose(f);
}

static void write_config(struct store_case *c, const char *dir) {
  FILE *f = fopen(c->conf, "we");
  if (!f)
    die("cannot write %s: %m", c->conf);
  fprintf(f, config_fmt, c->db, dir, free_port(), dir);
  fclose(f);
  write_link_key(dir);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return x < y ? -1 : x > y;
}

static double median_d(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static long median_l(long *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_long);
  return v[n / 2];
}

/* The last line of the file at path containing needle (empty when none). */
static void last_line_with(const char *path, const char *needle, char *out, size_t n) {
  FILE *f = fopen(path, "re");
  char line[1024];
  out[0] = 0;
  if (!f)
    return;
  while (fgets(line, sizeof line, f))
    if (strstr(line, needle)) {
      line[strcspn(line, "\n")] = 0;
      copy_truncated(out, n, line);
    }
  fclose(f);
}

/* One start to READY=1: time and memory at that moment. */
static void measure(struct store_case *c, const char *dir, int run) {
  char sock[600];
  snprintf(sock, sizeof sock, "%s/notify.sock", dir);
  int fd = notify_socket(sock);
  char env_sock[700];
  snprintf(env_sock, sizeof env_sock, "NOTIFY_SOCKET=%s", sock);
  const char *const env[] = {env_sock, NULL};
  struct renewd d;
  renewd_start(&d, RENEWD_PATH, c->conf, c->log, env);
  double t = notify_wait_ready(fd, &d, 600e3);
  c->ready_ms[run] = t - d.started_ms;
  proc_memory(d.pid, &c->hwm[run], &c->rss[run]);
  if (renewd_stop(&d, NULL, 0) != 0)
    die("renewd exited with an error (see %s)", c->log);
  last_line_with(c->log, "ready:", c->ready_line, sizeof c->ready_line);
  close(fd);
  unlink(sock);
}

int main(int argc, char **argv) {
  long hot = 10000, big = 1000000;
  int runs = 3, pos = 0;
  bool keep = false;
  for (int k = 1; k < argc; k++) {
    if (strcmp(argv[k], "--keep") == 0)
      keep = true;
    else if (strcmp(argv[k], "--runs") == 0 && k + 1 < argc)
      runs = atoi(argv[++k]);
    else if (pos == 0 && (hot = strtol(argv[k], NULL, 10)) > 0)
      pos++;
    else if (pos == 1 && (big = strtol(argv[k], NULL, 10)) > 0)
      pos++;
    else
      die("usage: bench-startup [HOT] [BIG] [--runs N] [--keep]");
  }
  if (runs < 1 || runs > 16 || big <= hot)
    die("usage: bench-startup [HOT] [BIG] [--runs 1..16] [--keep] (BIG > HOT)");
  char *dir = scratch_dir("bench-startup");
  struct store_case cases[2] = {{.name = "small", .contracts = hot},
                                {.name = "big", .contracts = big}};
  int64_t now = time(NULL);
  printf("bench-startup: %ld contracts due within the horizon; small store %ld, big store %ld "
         "contracts; in %s\n",
         hot, hot, big, dir);
  fflush(stdout);
  for (int k = 0; k < 2; k++) {
    struct store_case *c = &cases[k];
    snprintf(c->db, sizeof c->db, "%s/%s.db", dir, c->name);
    snprintf(c->conf, sizeof c->conf, "%s/%s.conf", dir, c->name);
    snprintf(c->log, sizeof c->log, "%s/%s.log", dir, c->name);
    write_config(c, dir);
    double t = now_ms();
    create_store(c->db);
    generate(c->db, c->contracts, hot, now);
    double g = now_ms() - t;
    /* renewd sees the store once */
    struct renewd d;
    t = now_ms();
    renewd_start(&d, RENEWD_PATH, c->conf, c->log, NULL);
    renewd_wait_line(&d, "ready:", 3600e3, NULL, 0);
    renewd_stop(&d, NULL, 0);
    printf("  %s: generated in %.1f s, first renewd run in %.1f s (not measured)\n", c->name,
           g / 1e3, (now_ms() - t) / 1e3);
    fflush(stdout);
  }
  for (int run = 0; run < runs; run++)
    for (int k = 0; k < 2; k++)
      measure(&cases[k], dir, run);

  double ready[2];
  long hwm[2], rss[2];
  for (int k = 0; k < 2; k++) {
    struct store_case *c = &cases[k];
    ready[k] = median_d(c->ready_ms, runs);
    hwm[k] = median_l(c->hwm, runs);
    rss[k] = median_l(c->rss, runs);
    const char *p = strstr(c->ready_line, "ready:");
    printf("  %-5s %8ld contracts: time to READY %8.1f ms, VmHWM %7ld kB, VmRSS %7ld kB  (%s)\n",
           c->name, c->contracts, ready[k], hwm[k], rss[k], p ? p : "?");
  }
  double rt = ready[1] / ready[0], rh = (double)hwm[1] / (double)hwm[0],
         rr = (double)rss[1] / (double)rss[0];
  printf("  ratio big/small: time to READY %.2f (target <= 1.5) %s; VmHWM %.2f, VmRSS %.2f "
         "(target <= 1.5) %s\n",
         rt, rt <= 1.5 ? "ok" : "MISSED", rh, rr, rh <= 1.5 && rr <= 1.5 ? "ok" : "MISSED");
  printf("  (median of %d runs each)\n", runs);
  if (keep)
    printf("  kept %s\n", dir);
  else
    remove_dir(dir);
  free(dir);
  return 0;
}
