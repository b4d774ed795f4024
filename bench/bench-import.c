/* bench-import: `renewctl import` against the sqlite3 shell's `.import --csv`.
 *
 *   bench-import [ROWS] [--keep] [--runs N]   (default 1000000 rows, 1 run)
 *
 * Generates a deterministic CSV of ROWS contracts (mixed zones, segments,
 * dates, quoted and CJK names; about 3 contracts per customer) in a fresh
 * temporary directory, then in the same run times
 *   1. sqlite3 fresh.db  ".import --csv FILE t"  (a plain table, no indexes),
 *   2. renewctl --db store.db import FILE         (validation, two passes,
 *      upserts into the real store with its indexes, change counters),
 *   3. the same renewctl import again (every row unchanged),
 * and prints the times, rows/s, the ratio renewctl/sqlite3 (target <= 2.0)
 * and renewctl's peak RSS (from wait4(); target < 100 MB). With --runs N the
 * three are repeated N times in turn (fresh databases each time) and the
 * fastest run of each is shown: on a shared machine the minimum is the figure
 * least disturbed by other load. Not a ctest test: run it by hand on an
 * otherwise idle machine. --keep leaves the directory. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef RENEWCTL_PATH
#define RENEWCTL_PATH "renewctl"
#endif

static uint64_t rnd(uint64_t *state) { /* splitmix64: deterministic across runs */
  uint64_t z = (*state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}
static uint64_t mix(uint64_t x) { /* per-customer attributes: stable for an index */
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdu;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53u;
  return x ^ (x >> 33);
}

static const char *const zones[] = {
    "Europe/Berlin", "Europe/London",     "America/New_York",    "America/Los_Angeles",
    "Asia/Shanghai", "Asia/Tokyo",        "Asia/Kolkata",        "Australia/Sydney",
    "UTC",           "America/Sao_Paulo", "Africa/Johannesburg", "",
};
static const char *const locales[] = {"en", "de-DE", "zh-CN", "ja", "en-GB", "pt-BR", "fr"};
static const char *const segments[] = {"enterprise", "smb", "high-value", "mid-market", ""};
static const char *const products[] = {"Pro", "Basic", "Enterprise Suite", "Support \"Gold\"",
                                       "Add-on, storage"};
static const char *const given[] = {"Anna", "Ben", "Chloé", "David", "Emma", "王", "李", "佐藤"};
static const char *const family[] = {"Smith", "Müller", "Garcia",  "小明",
                                     "Jones", "健",     "O'Brien", "Nguyen"};

static void csv_field(FILE *f, const char *s) {
  if (!strpbrk(s, ",\"\n")) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"')
      fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

static int generate(const char *path, uint64_t rows) {
  FILE *f = fopen(path, "we");
  if (!f)
    return -errno;
  fputs("contract_id,customer_id,customer_name,email,phone,timezone,locale,segment,owner,"
        "product,starts_on,expires_on,value,currency\n",
        f);
  uint64_t customers = rows / 3 + 1, rng = 0x9e3779b97f4a7c15u;
  for (uint64_t i = 0; i < rows; i++) {
    uint64_t cu = rnd(&rng) % customers, h = mix(cu + 1);
    char name[96], email[96], phone[32], exp[16], start[16], value[32], owner[16];
    snprintf(name, sizeof(name), "%s %s%s", given[h % 8], family[(h >> 3) % 8],
             (h >> 6) % 5 == 0 ? ", Ltd" : "");
    snprintf(email, sizeof(email), "c%" PRIu64 "@example%u.com", cu, (unsigned)((h >> 9) % 50));
    if ((h >> 15) % 3 == 0)
      snprintf(phone, sizeof(phone), "+4930%08u", (unsigned)((h >> 17) % 100000000));
    else
      phone[0] = 0;
    snprintf(owner, sizeof(owner), "owner%u", (unsigned)((h >> 40) % 200));
    uint64_t r = rnd(&rng);
    int y = 2026 + (int)(r % 4), m = 1 + (int)((r >> 8) % 12), d = 1 + (int)((r >> 16) % 28);
    snprintf(exp, sizeof(exp), "%04d-%02d-%02d", y, m, d);
    snprintf(start, sizeof(start), "%04d-%02d-%02d", y - 1, m, d);
    snprintf(value, sizeof(value), "%u.%02u", (unsigned)((r >> 24) % 100000),
             (unsigned)((r >> 44) % 100));
    fprintf(f, "K%08" PRIu64 ",CU%07" PRIu64 ",", i, cu);
    csv_field(f, name);
    fprintf(f, ",%s,%s,%s,%s,%s,%s,", email, phone, zones[(h >> 20) % 12], locales[(h >> 24) % 7],
            segments[(h >> 28) % 5], owner);
    csv_field(f, products[(r >> 52) % 5]);
    fprintf(f, ",%s,%s,%s,%s\n", (r >> 58) % 2 ? start : "", exp, value,
            (h >> 32) % 2 ? "EUR" : "USD");
  }
  if (fclose(f) != 0)
    return -errno;
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct result {
  double wall; /* seconds */
  double cpu;  /* user + system seconds of the child */
  long rss_kb; /* peak resident set of the child */
};

/* Runs argv with stdin from in_path (or /dev/null) and stdout to /dev/null;
 * returns the exit status and fills *ret from wait4(). */
static int run(char *const argv[], const char *in_path, struct result *ret) {
  double t0 = now_s();
  pid_t pid = fork();
  if (pid < 0)
    return -errno;
  if (pid == 0) {
    int in = open(in_path ? in_path : "/dev/null", O_RDONLY | O_CLOEXEC);
    int out = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0)
      _exit(127);
    execvp(argv[0], argv);
    _exit(127);
  }
  int status;
  struct rusage ru;
  if (wait4(pid, &status, 0, &ru) < 0)
    return -errno;
  ret->wall = now_s() - t0;
  ret->cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
             ru.ru_stime.tv_usec / 1e6;
  ret->rss_kb = ru.ru_maxrss;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Keeps the faster run (the CPU time and RSS shown are that run's). */
static void keep_best(struct result *best, const struct result *x) {
  if (x->wall < best->wall)
    *best = *x;
}

static void remove_db(const char *path) {
  const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
  for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
    char p[300];
    snprintf(p, sizeof(p), "%s%s", path, suffixes[i]);
    unlink(p);
  }
}

int main(int argc, char **argv) {
  uint64_t rows = 1000000;
  bool keep = false;
  int runs = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--keep") == 0)
      keep = true;
    else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
      runs = atoi(argv[++i]);
    else
      rows = strtoull(argv[i], NULL, 10);
  }
  if (rows == 0 || runs < 1) {
    fprintf(stderr, "usage: bench-import [ROWS] [--keep] [--runs N]\n");
    return 64;
  }

  char dir[] = "/tmp/bench-import-XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  char csv[256], sqlite_db[256], store_db[256], script[256];
  snprintf(csv, sizeof(csv), "%s/contracts.csv", dir);
  snprintf(sqlite_db, sizeof(sqlite_db), "%s/plain.db", dir);
  snprintf(store_db, sizeof(store_db), "%s/store.db", dir);
  snprintf(script, sizeof(script), "%s/import.sql", dir);

  double t0 = now_s();
  int r = generate(csv, rows);
  if (r < 0) {
    fprintf(stderr, "generate: %s\n", strerror(-r));
    return 1;
  }
  struct stat st;
  stat(csv, &st);
  printf("rows: %" PRIu64 ", file: %.1f MB (generated in %.2f s), dir %s\n", rows, st.st_size / 1e6,
         now_s() - t0, dir);

  FILE *f = fopen(script, "we");
  fprintf(f, ".import --csv %s t\n", csv);
  fclose(f);

  struct result sq_r = {.wall = 1e9}, rc_r = {.wall = 1e9}, rc2_r = {.wall = 1e9}, x, y, z;
  char *sq[] = {"sqlite3", sqlite_db, NULL};
  char *rc[] = {RENEWCTL_PATH, "--db", store_db, "import", csv, NULL};
  for (int k = 0; k < runs; k++) {
    remove_db(sqlite_db);
    remove_db(store_db);
    r = run(sq, script, &x);
    if (r != 0) {
      fprintf(stderr, "sqlite3 .import failed (exit %d)\n", r);
      return 1;
    }
    keep_best(&sq_r, &x);
    r = run(rc, NULL, &y);
    if (r != 0) {
      fprintf(stderr, "renewctl import failed (exit %d)\n", r);
      return 1;
    }
    keep_best(&rc_r, &y);
    r = run(rc, NULL, &z);
    if (r != 0) {
      fprintf(stderr, "renewctl re-import failed (exit %d)\n", r);
      return 1;
    }
    keep_best(&rc2_r, &z);
    if (runs > 1)
      fprintf(stderr, "run %d/%d: sqlite3 %.2f s, renewctl %.2f s (ratio %.2f), re-import %.2f s\n",
              k + 1, runs, x.wall, y.wall, y.wall / x.wall, z.wall);
  }

  const struct {
    const char *what;
    const struct result *r;
  } lines[] = {
      {"sqlite3 .import --csv (plain table)", &sq_r},
      {"renewctl import (fresh store)", &rc_r},
      {"renewctl re-import (all unchanged)", &rc2_r},
  };
  printf("%-38s %9s %9s %11s %9s\n", "", "wall s", "cpu s", "rows/s", "peak RSS");
  for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
    printf("%-38s %9.2f %9.2f %11.0f %6.1f MB\n", lines[i].what, lines[i].r->wall, lines[i].r->cpu,
           rows / lines[i].r->wall, lines[i].r->rss_kb / 1024.0);
  double ratio = rc_r.wall / sq_r.wall;
  printf("ratio renewctl/sqlite3: %.2f wall, %.2f cpu (target <= 2.00)%s\n", ratio,
         rc_r.cpu / sq_r.cpu, ratio <= 2.0 ? "" : "  MISSED");
  printf("renewctl peak RSS: %.1f MB (target < 100 MB)%s\n", rc_r.rss_kb / 1024.0,
         rc_r.rss_kb / 1024.0 < 100 ? "" : "  MISSED");

  if (!keep) {
    const char *files[] = {csv, sqlite_db, store_db, script};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
      unlink(files[i]);
    char extra[300];
    snprintf(extra, sizeof(extra), "%s-wal", store_db);
    unlink(extra);
    snprintf(extra, sizeof(extra), "%s-shm", store_db);
    unlink(extra);
    rmdir(dir);
  }
  return 0;
}
