/* bench-daemon: helpers shared by the benchmarks that run the real renewd
 * (bench-reload, bench-startup): a scratch directory, stores generated with
 * the sqlite3 shell, renewd started with its console log on a pipe (read
 * line by line, every line also copied to a log file), a NOTIFY_SOCKET the
 * benchmark owns, and /proc/PID/status memory figures.
 *
 * Header-only (static functions): each benchmark is one executable. Errors
 * print "bench: ..." and exit(1): a benchmark that cannot run must not print
 * figures. */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/store.h"
#include "core/util.h"

extern char **environ;

/* The renewd a benchmark is running, stopped by die() (bench state, not product code). */
static pid_t bench_child;

static _unused_ void _printf_(1, 2) die(const char *fmt, ...) {
  va_list ap;
  if (bench_child > 0)
    kill(bench_child, SIGTERM);
  fputs("bench: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

static _unused_ double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Creates the store schema at path (renewd's own store_open()). */
/* Copies the start of s into out[n] (n > 0), cut at n - 1 bytes: a log line
 * kept for a report, where a long line's start is what is wanted. */
static _unused_ void copy_truncated(char *out, size_t n, const char *s) {
  size_t len = strnlen(s, n - 1);
  memcpy(out, s, len);
  out[len] = 0;
}

static _unused_ void create_store(const char *path) {
  struct store *s = NULL;
  char err[256] = "";
  if (store_open(path, 0, &s, err, sizeof err) < 0)
    die("cannot create %s: %s", path, err);
  store_free(s);
}

/* Runs the sqlite3 shell on db with script on stdin; returns the wall time in
 * ms (process start-up included: a few ms). */
static _unused_ double sqlite3_run(const char *db, const char *script) {
  char tmpl[] = "/tmp/bench-sql-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0)
    die("mkstemp: %m");
  FILE *f = fdopen(fd, "w");
  fprintf(f, ".bail on\n.timeout 60000\n%s\n", script);
  fclose(f);
  char *cmd = NULL;
  if (asprintf(&cmd, "sqlite3 -batch '%s' < '%s' > /dev/null", db, tmpl) < 0)
    die("out of memory");
  double t0 = now_ms();
  int rc = system(cmd);
  double ms = now_ms() - t0;
  unlink(tmpl);
  free(cmd);
  if (rc != 0)
    die("sqlite3 %s failed (status %d)", db, rc);
  return ms;
}

static _unused_ void copy_file(const char *from, const char *to) {
  char *cmd = NULL;
  if (asprintf(&cmd, "cp '%s' '%s'", from, to) < 0 || system(cmd) != 0)
    die("cannot copy %s", from);
  free(cmd);
}

/* ---- renewd ------------------------------------------------------------------ */

struct renewd {
  pid_t pid;
  int err_fd;      /* read end of its stderr */
  FILE *log;       /* every line read, appended */
  char buf[65536]; /* partial line */
  size_t len;
  double started_ms;
};

/* Starts renewd with its console log on a pipe; extra_env (NULL-terminated,
 * may be NULL) is added to the environment. */
static _unused_ void renewd_start(struct renewd *d, const char *renewd, const char *config,
                                  const char *log_path, const char *const *extra_env) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    die("pipe: %m");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  size_t n = 0;
  while (environ[n])
    n++;
  size_t m = 0;
  while (extra_env && extra_env[m])
    m++;
  char **env = calloc(n + m + 1, sizeof *env);
  if (!env)
    die("out of memory");
  for (size_t k = 0; k < n; k++)
    env[k] = environ[k];
  for (size_t k = 0; k < m; k++)
    env[n + k] = (char *)extra_env[k];
  const char *override = getenv("RENEWD"); /* measure another build of renewd */
  if (override && *override)
    renewd = override;
  char *argv[] = {(char *)renewd,         (char *)"--config", (char *)config,
                  (char *)"--log-target", (char *)"console",  NULL};
  *d = (struct renewd){.err_fd = p[0]};
  d->started_ms = now_ms();
  int r = posix_spawn(&d->pid, renewd, &fa, NULL, argv, env);
  if (r != 0)
    die("cannot start %s: %s", renewd, strerror(r));
  bench_child = d->pid;
  posix_spawn_file_actions_destroy(&fa);
  free(env);
  close(p[1]);
  if (!(d->log = fopen(log_path, "ae")))
    die("cannot open %s: %m", log_path);
}

/* Reads log lines until one contains needle (copied to out, if not NULL) or
 * timeout_ms passes. Returns the monotonic ms when the line was read, or dies
 * (renewd exited, timeout). */
static _unused_ double renewd_wait_line(struct renewd *d, const char *needle, double timeout_ms,
                                        char *out, size_t outlen) {
  double deadline = now_ms() + timeout_ms;
  for (;;) {
    char *nl;
    while ((nl = memchr(d->buf, '\n', d->len))) {
      *nl = 0;
      fprintf(d->log, "%s\n", d->buf);
      bool hit = strstr(d->buf, needle) != NULL;
      if (hit && out)
        copy_truncated(out, outlen, d->buf);
      size_t used = (size_t)(nl - d->buf) + 1;
      memmove(d->buf, nl + 1, d->len - used);
      d->len -= used;
      if (hit)
        return now_ms();
    }
    double left = deadline - now_ms();
    if (left <= 0)
      die("timed out waiting for renewd to log '%s'", needle);
    struct pollfd pfd = {.fd = d->err_fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)left + 1);
    if (r < 0 && errno != EINTR)
      die("poll: %m");
    if (r <= 0)
      continue;
    if (d->len == sizeof d->buf) /* an absurdly long line: flush it */
      d->len = 0;
    ssize_t k = read(d->err_fd, d->buf + d->len, sizeof d->buf - d->len);
    if (k < 0 && errno != EINTR)
      die("read: %m");
    if (k == 0)
      die("renewd exited while we waited for '%s' (see the log)", needle);
    if (k > 0)
      d->len += (size_t)k;
  }
}

/* SIGTERM, drains the log until exit; returns the exit status. */
static _unused_ int renewd_stop(struct renewd *d, char *loop_line, size_t n) {
  kill(d->pid, SIGTERM);
  if (loop_line) {
    loop_line[0] = 0;
    renewd_wait_line(d, "event loop:", 120000, loop_line, n);
  }
  char b[4096];
  ssize_t k;
  while ((k = read(d->err_fd, b, sizeof b)) > 0)
    fwrite(b, 1, (size_t)k, d->log);
  int st = 0;
  waitpid(d->pid, &st, 0);
  bench_child = 0;
  close(d->err_fd);
  fclose(d->log);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* VmHWM / VmRSS of pid in kB (0 when unknown). */
static _unused_ void proc_memory(pid_t pid, long *ret_hwm, long *ret_rss) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "re");
  *ret_hwm = *ret_rss = 0;
  if (!f)
    return;
  while (fgets(line, sizeof line, f)) {
    sscanf(line, "VmHWM: %ld", ret_hwm);
    sscanf(line, "VmRSS: %ld", ret_rss);
  }
  fclose(f);
}

/* ---- NOTIFY_SOCKET ------------------------------------------------------------ */

/* A datagram socket bound at path, for sd_notify(). */
static _unused_ int notify_socket(const char *path) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (fd < 0 || strlen(path) >= sizeof sa.sun_path)
    die("notify socket: %m");
  strcpy(sa.sun_path, path);
  unlink(path);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    die("bind %s: %m", path);
  return fd;
}

/* Waits for a datagram containing "READY=1"; returns the monotonic ms then. */
static _unused_ double notify_wait_ready(int fd, struct renewd *d, double timeout_ms) {
  double deadline = now_ms() + timeout_ms;
  char b[4096];
  for (;;) {
    double left = deadline - now_ms();
    if (left <= 0)
      die("timed out waiting for READY=1");
    struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = d->err_fd, .events = POLLIN}};
    if (poll(pfd, 2, (int)left + 1) <= 0)
      continue;
    if (pfd[1].revents) { /* keep the log pipe drained */
      ssize_t k = read(d->err_fd, b, sizeof b);
      if (k == 0)
        die("renewd exited before READY=1");
      if (k > 0)
        fwrite(b, 1, (size_t)k, d->log);
    }
    if (pfd[0].revents) {
      ssize_t k = recv(fd, b, sizeof b - 1, 0);
      if (k > 0) {
        b[k] = 0;
        if (strstr(b, "READY=1"))
          return now_ms();
      }
    }
  }
}

/* A TCP port on 127.0.0.1 that was free a moment ago. */
static _unused_ int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
    die("cannot find a free port: %m");
  close(fd);
  return ntohs(sa.sin_port);
}

/* Creates a fresh directory under /tmp (or $BENCH_DIR). */
static _unused_ char *scratch_dir(const char *name) {
  const char *base = getenv("BENCH_DIR");
  char *p = NULL;
  if (asprintf(&p, "%s/%s-XXXXXX", base ? base : "/tmp", name) < 0 || !mkdtemp(p))
    die("cannot create a scratch directory: %m");
  return p;
}

static _unused_ void remove_dir(const char *dir) {
  char *cmd = NULL;
  if (asprintf(&cmd, "rm -rf '%s'", dir) >= 0 && system(cmd) != 0)
    fprintf(stderr, "bench: could not remove %s\n", dir);
  free(cmd);
}
