/* bench-reload: a config reload that moves every contract's schedule, renewd
 * against the cron-job way of keeping a due column.
 *
 *   bench-reload [CONTRACTS] [--keep]      (default 1000000)
 *
 * Generates a store of CONTRACTS contracts (the sqlite3 shell, one INSERT ...
 * SELECT; expiries spread over the coming year, six time zones, a third as
 * many customers, 50 owners; not timed) and lets renewd see it once (a first
 * run plans every contract and records contracts.next_due_at; not timed).
 * Then, in the same run:
 *   (a) the sqlite3 shell's single UPDATE contracts SET next_due_at = <the new
 *       first tier, SQL date arithmetic with a send-window correction> on every
 *       row (the indexed due column), on a copy of the same store: what a cron
 *       job recomputing a due column after a policy change does;
 *   (b) renewd reloading a config whose tier
 *       offsets all differ (-P60D/-P30D/-P7D/-P3D become -P90D/-P45D/-P20D/-P5D):
 *       from kill(SIGHUP) to its "refill done in N ms (M contracts planned)"
 *       log line, and the longest event-loop iteration after READY (the
 *       reload included), logged at exit.
 * Prints both times, the ratio (b)/(a) (target <= 1) and the longest
 * iteration (target < 50 ms). Run by hand on an otherwise idle machine;
 * --keep leaves the directory (logs, stores). BENCH_DIR= picks the parent
 * directory (default /tmp); RENEWD= another renewd binary to measure. */
#include "bench/bench-daemon.h"

#ifndef RENEWD_PATH
#define RENEWD_PATH "renewd"
#endif

#define DAY 86400

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
                                 "Hours=09:00-18:00\n"
                                 "Days=Mon..Fri\n"
                                 "\n"
                                 "[SendWindow owners]\n"
                                 "Hours=08:00-19:00\n"
                                 "Days=Mon..Fri\n"
                                 "\n"
                                 "[Policy standard]\n"
                                 "Segments=*\n"
                                 "CatchUp=skip\n"
                                 "Tiers=notice reminder final escalation\n"
                                 "FallbackOwner=owner0\n"
                                 "OwnerSendWindow=owners\n"
                                 "\n"
                                 "[Tier notice]\n"
                                 "Offset=-P%dD\n"
                                 "Channels=email\n"
                                 "\n"
                                 "[Tier reminder]\n"
                                 "Offset=-P%dD\n"
                                 "Repeat=FREQ=WEEKLY;COUNT=2\n"
                                 "Channels=email\n"
                                 "\n"
                                 "[Tier final]\n"
                                 "Offset=-P%dD\n"
                                 "Channels=email\n"
                                 "\n"
                                 "[Tier escalation]\n"
                                 "Offset=-P%dD\n"
                                 "Channels=owner-email\n"
                                 "Audience=owner\n"
                                 "\n"
                                 "[Channel email]\n"
                                 "Type=sink\n"
                                 "Maildir=%s/maildir\n"
                                 "\n"
                                 "[Channel owner-email]\n"
                                 "Type=sink\n"
                                 "Maildir=%s/maildir-owners\n";

static void write_config(const char *path, const char *dir, int port, const int offsets[4]) {
  FILE *f = fopen(path, "we");
  if (!f)
    die("cannot write %s: %m", path);
  fprintf(f, config_fmt, dir, dir, port, offsets[0], offsets[1], offsets[2], offsets[3], dir, dir);
  fclose(f);
  /* customer email needs a link key: renewd refuses to start without one */
  char key[512];
  snprintf(key, sizeof key, "%s/link-key", dir);
  if (!(f = fopen(key, "we")))
    die("cannot write %s: %m", key);
  fputs("bench-link-key-0123456789abcdef0123\n", f);
  fclose(f);
}

/* The book: n contracts expiring over the coming year (second resolution),
 * n/3 customers in six zones, 50 owners. change_seq = rowid (no trigger). */
static void generate(const char *db, long n, int64_t now) {
  char *sql = NULL;
  long customers = n / 3 > 0 ? n / 3 : 1;
  if (asprintf(&sql,
               "BEGIN;\n"
               "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 49)\n"
               "INSERT INTO owners(id, name, email, tz, created_at, updated_at)\n"
               "  SELECT 'owner' || i, 'Owner ' || i, 'owner' || i || '@sales.example.com',\n"
               "  CASE i %% 3 WHEN 0 THEN 'Europe/Berlin' WHEN 1 THEN 'America/New_York'\n"
               "  ELSE 'Asia/Tokyo' END, %" PRId64 ", %" PRId64 " FROM k;\n"
               "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < %ld)\n"
               "INSERT INTO customers(id, name, email, phone, tz, locale, segment, owner_id,\n"
               "  created_at, updated_at)\n"
               "  SELECT 'K' || i, 'Customer ' || i, 'c' || i || '@example.com',\n"
               "  CASE WHEN i %% 2 = 0 THEN '+49151' || (10000000 + i) END,\n"
               "  CASE i %% 6 WHEN 0 THEN 'Europe/Berlin' WHEN 1 THEN 'America/New_York'\n"
               "  WHEN 2 THEN 'Asia/Tokyo' WHEN 3 THEN 'Australia/Sydney'\n"
               "  WHEN 4 THEN 'America/Sao_Paulo' ELSE 'Asia/Kolkata' END, 'en',\n"
               "  CASE i %% 4 WHEN 0 THEN 'enterprise' ELSE 'smb' END, 'owner' || (i %% 50),\n"
               "  %" PRId64 ", %" PRId64 " FROM k;\n"
               "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < %ld)\n"
               "INSERT INTO contracts(rowid, id, customer_id, product, expires_at, value_minor,\n"
               "  currency, change_seq, created_at, updated_at)\n"
               "  SELECT i, 'C' || i, 'K' || (i %% %ld), 'Pro',\n"
               "  %" PRId64 " + %d + (i * 7919) %% %d, 10000, 'EUR', i, %" PRId64 ", %" PRId64
               " FROM k;\n"
               "COMMIT;\n",
               now, now, customers - 1, now, now, n, customers, now, DAY, 365 * DAY, now, now) < 0)
    die("out of memory");
  sqlite3_run(db, sql);
  free(sql);
}

int main(int argc, char **argv) {
  long n = 1000000;
  bool keep = false;
  for (int k = 1; k < argc; k++) {
    if (strcmp(argv[k], "--keep") == 0)
      keep = true;
    else if ((n = strtol(argv[k], NULL, 10)) <= 0)
      die("usage: bench-reload [CONTRACTS] [--keep]");
  }
  char *dir = scratch_dir("bench-reload");
  char db[512], cron_db[512], conf[512], conf_b[512], log_path[512], loop_line[512] = "",
                                                                     line[512] = "";
  snprintf(db, sizeof db, "%s/store.db", dir);
  snprintf(cron_db, sizeof cron_db, "%s/cron.db", dir);
  snprintf(conf, sizeof conf, "%s/renewd.conf", dir);
  snprintf(conf_b, sizeof conf_b, "%s/renewd.conf.b", dir);
  snprintf(log_path, sizeof log_path, "%s/renewd.log", dir);
  int64_t now = time(NULL);
  int port = free_port();
  static const int offsets_a[4] = {60, 30, 7, 3}, offsets_b[4] = {90, 45, 20, 5};
  write_config(conf, dir, port, offsets_a);
  write_config(conf_b, dir, port, offsets_b);

  printf("bench-reload: %ld contracts in %s\n", n, dir);
  fflush(stdout);
  double t = now_ms();
  create_store(db);
  generate(db, n, now);
  printf("  generated in %.1f s (not measured)\n", (now_ms() - t) / 1e3);
  fflush(stdout);

  /* renewd sees the store once: plans every contract, records next_due_at */
  struct renewd d;
  t = now_ms();
  renewd_start(&d, RENEWD_PATH, conf, log_path, NULL);
  renewd_wait_line(&d, "ready:", 3600e3, NULL, 0);
  renewd_stop(&d, NULL, 0);
  printf("  first renewd run (plans every contract) in %.1f s (not measured)\n",
         (now_ms() - t) / 1e3);
  fflush(stdout);

  /* (b) the reload */
  renewd_start(&d, RENEWD_PATH, conf, log_path, NULL);
  renewd_wait_line(&d, "ready:", 3600e3, NULL, 0);
  if (rename(conf_b, conf) < 0)
    die("rename: %m");
  double t0 = now_ms();
  kill(d.pid, SIGHUP);
  renewd_wait_line(&d, "configuration reloaded", 600e3, NULL, 0);
  double t1 = renewd_wait_line(&d, "refill done in", 3600e3, line, sizeof line);
  long daemon_ms = -1, planned = -1, slice = -1, commit = -1;
  const char *p = strstr(line, "refill done in");
  if (p)
    sscanf(p,
           "refill done in %ld ms (%ld contracts planned, longest slice %ld ms, longest commit %ld "
           "ms)",
           &daemon_ms, &planned, &slice, &commit);
  int rc = renewd_stop(&d, loop_line, sizeof loop_line);
  if (rc != 0)
    die("renewd exited with %d (see %s)", rc, log_path);
  double longest = -1;
  p = strstr(loop_line, "longest ");
  if (p)
    sscanf(p, "longest %lf ms", &longest);

  /* (a) the cron job's UPDATE, on a copy of the same rows */
  copy_file(db, cron_db);
  char *update = NULL;
  /* the new first tier (-P90D) in whole days before the expiry, moved to
   * 09:00 when it falls before the window opens (UTC days: the shell has no
   * zone data) */
  if (asprintf(&update, "UPDATE contracts SET next_due_at = (expires_at - 90 * 86400) +\n"
                        "  CASE WHEN (expires_at - 90 * 86400) %% 86400 < 9 * 3600\n"
                        "  THEN 9 * 3600 - (expires_at - 90 * 86400) %% 86400 ELSE 0 END;") < 0)
    die("out of memory");
  double update_ms = sqlite3_run(cron_db, update);
  free(update);

  double reload_ms = t1 - t0;
  printf("  (a) sqlite3 UPDATE contracts SET next_due_at = ... (%ld rows, indexed): %9.1f ms\n", n,
         update_ms);
  printf("  (b) renewd reload, SIGHUP -> refill done:                     %9.1f ms  "
         "(daemon: %ld ms, %ld contracts planned)\n",
         reload_ms, daemon_ms, planned);
  printf("  ratio reload / UPDATE: %.3f (target <= 1.0)  %s\n", reload_ms / update_ms,
         reload_ms <= update_ms ? "ok" : "MISSED");
  printf("  longest event-loop iteration after READY (reload included): %.1f ms "
         "(target < 50 ms)  %s\n",
         longest, longest >= 0 && longest < 50 ? "ok" : "MISSED");
  printf("  longest scheduler slice of the reload (sched_work): %ld ms, of which the longest "
         "commit: %ld ms\n",
         slice, commit);
  if (keep)
    printf("  kept %s\n", dir);
  else
    remove_dir(dir);
  free(dir);
  return 0;
}
