/* bench-webhook: webhook delivery throughput against a local nginx answering
 * 204, in one run:
 *
 *   1. the whole renewd dispatcher path: N pending outbox rows in a real
 *      store are claimed, rendered (event JSON), signed (Standard Webhooks),
 *      sent on the curl multi with MaxConcurrent=16 and their results
 *      committed; also the process's peak resident memory with N rows;
 *   2. a minimal standalone libcurl multi loop: 16 easy handles POSTing a
 *      body of the same size, nothing else;
 *   3. the `curl` command run once per message (M messages).
 *
 * Prints requests/s of each and the ratios dispatcher/minimal (target >=
 * 0.8) and dispatcher/curl-per-message (target >= 200), and peak RSS (target
 * < 64 MB at N = 100000). nginx (Debian's /usr/sbin/nginx) is started on a
 * free loopback port with a temporary prefix and stopped at the end; run as
 * root (nginx's workers drop to nobody).
 *
 * Usage: bench-webhook [N (default 100000)] [M (default 200)]
 * BENCH_DEBUG=1 also prints loop statistics and the dispatcher phase's CPU time. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/cal.h"
#include "core/clock.h"
#include "core/store.h"
#include "core/util.h"
#include "notifiers/dispatch.h"

extern char **environ;

#define CONCURRENCY 16
#define T0 INT64_C(1926288000)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
      break;
  if (f)
    fclose(f);
  return kb;
}

static int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
      getsockname(s, (struct sockaddr *)&a, &len) < 0) {
    perror("free port");
    exit(1);
  }
  close(s);
  return ntohs(a.sin_port);
}

static bool port_open(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0;
  if (s >= 0)
    close(s);
  return ok;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
    fprintf(stderr, "bench-webhook: cannot write %s\n", path);
    exit(1);
  }
}

static pid_t start_nginx(const char *prefix, int port) {
  char conf[512], path[600];
  snprintf(path, sizeof path, "%s/logs", prefix);
  mkdir(path, 0755);
  snprintf(conf, sizeof conf,
           "daemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
           "events { worker_connections 1024; }\n"
           "http {\n access_log off;\n client_body_temp_path %s;\n keepalive_requests 1000000;\n"
           " server {\n  listen 127.0.0.1:%d;\n  location / { return 204; }\n }\n}\n",
           prefix, prefix, prefix, port);
  snprintf(path, sizeof path, "%s/nginx.conf", prefix);
  write_file(path, conf);
  char *argv[] = {(char *)"nginx", (char *)"-p", (char *)prefix, (char *)"-c", path, NULL};
  pid_t pid;
  if (posix_spawn(&pid, "/usr/sbin/nginx", NULL, NULL, argv, environ) != 0) {
    fprintf(stderr, "bench-webhook: cannot start /usr/sbin/nginx (apt-get install nginx)\n");
    exit(1);
  }
  for (int i = 0; i < 500 && !port_open(port); i++)
    usleep(10000);
  if (!port_open(port)) {
    fprintf(stderr, "bench-webhook: nginx did not start (see %s/error.log)\n", prefix);
    kill(pid, SIGTERM);
    exit(1);
  }
  return pid;
}

/* ---- 1. the dispatcher -------------------------------------------------------------- */

struct loop {
  struct pollfd fds[256];
  size_t n;
  long timer_ms;       /* -1 = off */
  int64_t deadline_ms; /* monotonic */
  size_t sent, failed;
};

static int loop_watch(void *ud, int fd, int what) {
  struct loop *l = ud;
  size_t k;
  for (k = 0; k < l->n; k++)
    if (l->fds[k].fd == fd)
      break;
  if (what == CURL_POLL_REMOVE) {
    if (k < l->n)
      l->fds[k] = l->fds[--l->n];
    return 0;
  }
  if (k == l->n) {
    if (l->n == ELEMENTSOF(l->fds))
      return -ENOSPC;
    l->n++;
  }
  l->fds[k] = (struct pollfd){
      .fd = fd,
      .events = (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0))};
  return 0;
}

static int loop_timer(void *ud, long ms) {
  struct loop *l = ud;
  l->timer_ms = ms;
  l->deadline_ms = ms < 0 ? -1 : clock_monotonic_ms() + ms;
  return 0;
}

static void on_report(void *ud, const struct dispatch_report *r) {
  struct loop *l = ud;
  if (r->outcome == DISPATCH_SENT)
    l->sent++;
  else if (r->outcome == DISPATCH_DEAD || r->outcome == DISPATCH_RETRY) {
    if (l->failed++ < 5)
      fprintf(stderr, "bench-webhook: row %lld: %s\n", (long long)r->reminder_id, r->detail);
  }
}

static double bench_dispatcher(const char *prefix, const char *url, size_t n, size_t *ret_body,
                               long *ret_rss_kb) {
  char db[512], secret[512], text[2048];
  snprintf(db, sizeof db, "%s/bench.db", prefix);
  snprintf(secret, sizeof secret, "%s/secret", prefix);
  write_file(secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n");
  snprintf(text, sizeof text,
           "[Daemon]\nDatabase=%s\nTemplates=%s/no-templates\nTimeZone=UTC\n"
           "PublicURL=https://renew.example.com\n"
           "[Policy p]\nSegments=*\nTiers=notice\n[Tier notice]\nOffset=-P30D\nChannels=hook\n"
           "[Channel hook]\nType=webhook\nURL=%s\nSecretFile=%s\nAllowPrivate=yes\n"
           "MaxConcurrent=%d\n",
           db, prefix, url, secret, CONCURRENCY);
  struct cal *cal = NULL;
  struct config *cfg = NULL;
  struct store *s = NULL;
  struct config_errors errs = {0};
  char err[256];
  if (cal_new(&cal) < 0 || config_load_string("bench.conf", text, cal, &cfg, &errs) < 0 ||
      store_open(db, 0, &s, err, sizeof err) < 0) {
    config_errors_print(&errs, stderr);
    fprintf(stderr, "bench-webhook: set-up failed\n");
    exit(1);
  }
  /* N customers, contracts and pending rows (not timed), written by a child
   * process so that the peak RSS measured below is the dispatcher's own
   * (what renewd holds with N pending rows), not the import's */
  store_free(s);
  s = NULL;
  pid_t child = fork();
  if (child < 0) {
    perror("fork");
    exit(1);
  }
  if (child == 0) {
    if (store_open(db, 0, &s, err, sizeof err) < 0)
      _exit(1);
    store_begin(s);
    for (size_t i = 0; i < n; i++) {
      char cid[32], kid[32], email[64];
      snprintf(cid, sizeof cid, "C-%07zu", i);
      snprintf(kid, sizeof kid, "K-%07zu", i);
      snprintf(email, sizeof email, "customer%zu@example.com", i);
      struct customer cu = {.id = kid,
                            .name = (char *)"Ada Lovelace",
                            .email = email,
                            .tz = (char *)"Europe/Berlin",
                            .locale = (char *)"en",
                            .segment = (char *)"smb",
                            .owner_id = (char *)"alice"};
      struct contract c = {.id = cid,
                           .customer_id = kid,
                           .product = (char *)"Cloud Backup",
                           .currency = (char *)"EUR",
                           .expires_at = T0 + 30 * 86400,
                           .starts_at = T0 - 335 * 86400,
                           .value_minor = 120050};
      struct reminder r = {.contract_id = cid,
                           .term = 1,
                           .tier = (char *)"notice",
                           .channel = (char *)"hook",
                           .audience = (char *)"customer",
                           .recipient = (char *)url,
                           .due_at = T0,
                           .status = REMINDER_PENDING};
      if (store_customer_upsert(s, &cu, T0) < 0 || store_contract_upsert(s, &c, T0) < 0 ||
          store_reminder_insert(s, &r, T0, NULL) < 0) {
        fprintf(stderr, "bench-webhook: insert failed: %s\n", store_last_error(s));
        exit(1);
      }
      if (i % 10000 == 9999) {
        store_commit(s);
        store_begin(s);
      }
    }
    store_commit(s);
    store_free(s);
    _exit(0);
  }
  int st;
  if (waitpid(child, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "bench-webhook: filling the store failed\n");
    exit(1);
  }
  if (store_open(db, 0, &s, err, sizeof err) < 0) {
    fprintf(stderr, "bench-webhook: %s\n", err);
    exit(1);
  }
  if (getenv("BENCH_DEBUG"))
    fprintf(stderr, "before dispatching: peak RSS %.1f MB\n", (double)peak_rss_kb() / 1024);

  struct clock clk;
  clock_init_simulated(&clk, T0, 0);
  struct loop l = {.timer_ms = -1};
  static const struct dispatch_loop_ops ops = {.watch = loop_watch, .timer = loop_timer};
  struct dispatch_callbacks cbs = {.report = on_report, .userdata = &l};
  struct dispatcher *d = NULL;
  if (dispatcher_new(s, cal, cfg, &clk, &ops, &l, &cbs, &d, &errs) < 0) {
    config_errors_print(&errs, stderr);
    exit(1);
  }
  double t0 = now_s();
  size_t iters = 0, inflight_sum = 0, timeouts = 0;
  double c0 = cpu_s();
  dispatcher_kick(d);
  while (l.sent + l.failed < n) {
    iters++;
    inflight_sum += dispatcher_in_flight(d);
    /* a small event loop: sockets first, then the timer when it is due */
    int timeout = l.timer_ms < 0 ? 1000 : (int)MAX(l.deadline_ms - clock_monotonic_ms(), 0);
    int k = poll(l.fds, l.n, timeout);
    if (k < 0) {
      perror("poll");
      exit(1);
    }
    struct pollfd ready[256];
    size_t m = l.n;
    memcpy(ready, l.fds, m * sizeof *ready);
    for (size_t i = 0; i < m && k > 0; i++) {
      int ev = (ready[i].revents & POLLIN ? CURL_CSELECT_IN : 0) |
               (ready[i].revents & POLLOUT ? CURL_CSELECT_OUT : 0) |
               (ready[i].revents & (POLLERR | POLLHUP) ? CURL_CSELECT_ERR : 0);
      if (ev)
        dispatcher_socket_ready(d, ready[i].fd, ev);
    }
    if (l.timer_ms >= 0 && clock_monotonic_ms() >= l.deadline_ms) {
      timeouts++;
      l.timer_ms = -1;
      dispatcher_timeout(d);
    }
    if (dispatcher_in_flight(d) == 0 && l.sent + l.failed < n)
      dispatcher_kick(d);
  }
  double dt = now_s() - t0;
  if (getenv("BENCH_DEBUG"))
    fprintf(stderr, "loop iterations %zu, mean in flight %.1f, timeouts %zu, cpu %.2fs of %.2fs\n",
            iters, iters ? (double)inflight_sum / (double)iters : 0.0, timeouts, cpu_s() - c0, dt);
  *ret_rss_kb = peak_rss_kb();
  if (l.failed) {
    fprintf(stderr, "bench-webhook: %zu rows failed\n", l.failed);
    exit(1);
  }
  int64_t counts[_REMINDER_STATUS_MAX] = {0};
  store_reminder_count_by_status(s, counts);
  if ((size_t)counts[REMINDER_SENT] != n) {
    fprintf(stderr, "bench-webhook: %lld rows sent in the store, expected %zu\n",
            (long long)counts[REMINDER_SENT], n);
    exit(1);
  }
  /* the size of a typical request body, for the minimal loop */
  struct reminder r = {0};
  *ret_body = 1200;
  if (store_reminder_get(s, 1, &r) >= 0)
    reminder_clear(&r);
  dispatcher_free(d);
  store_free(s);
  config_free(cfg);
  cal_free(cal);
  config_errors_clear(&errs);
  return (double)n / dt;
}

/* ---- 2. minimal multi loop ------------------------------------------------------------ */

static double bench_minimal(const char *url, size_t n, const char *body) {
  CURLM *multi = curl_multi_init();
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  CURL *e[CONCURRENCY];
  size_t started = 0, done = 0;
  double t0 = now_s();
  for (int i = 0; i < CONCURRENCY && started < n; i++, started++) {
    e[i] = curl_easy_init();
    curl_easy_setopt(e[i], CURLOPT_URL, url);
    curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e[i], CURLOPT_NOSIGNAL, 1L);
    curl_multi_add_handle(multi, e[i]);
  }
  while (done < n) {
    int running;
    curl_multi_perform(multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left))) {
      if (m->msg != CURLMSG_DONE)
        continue;
      CURL *easy = m->easy_handle;
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      if (m->data.result != CURLE_OK || status != 204) {
        fprintf(stderr, "bench-webhook: minimal loop: %s / HTTP %ld\n",
                curl_easy_strerror(m->data.result), status);
        exit(1);
      }
      done++;
      curl_multi_remove_handle(multi, easy);
      if (started < n) {
        started++;
        curl_multi_add_handle(multi, easy);
      }
    }
    if (done < n)
      curl_multi_poll(multi, NULL, 0, 1000, NULL);
  }
  double dt = now_s() - t0;
  for (int i = 0; i < CONCURRENCY; i++) {
    curl_multi_remove_handle(multi, e[i]);
    curl_easy_cleanup(e[i]);
  }
  curl_slist_free_all(h);
  curl_multi_cleanup(multi);
  return (double)n / dt;
}

/* ---- 3. curl per message ---------------------------------------------------------------- */

static double bench_curl_cmd(const char *prefix, const char *url, size_t m, const char *body) {
  char path[512], data[600];
  snprintf(path, sizeof path, "%s/body.json", prefix);
  write_file(path, body);
  snprintf(data, sizeof data, "@%s", path);
  char *argv[] = {(char *)"curl",
                  (char *)"-s",
                  (char *)"-o",
                  (char *)"/dev/null",
                  (char *)"-f",
                  (char *)"-H",
                  (char *)"Content-Type: application/json",
                  (char *)"--data-binary",
                  data,
                  (char *)url,
                  NULL};
  double t0 = now_s();
  for (size_t i = 0; i < m; i++) {
    pid_t pid;
    int st;
    if (posix_spawnp(&pid, "curl", NULL, NULL, argv, environ) != 0 || waitpid(pid, &st, 0) < 0 ||
        !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "bench-webhook: curl failed\n");
      exit(1);
    }
  }
  return (double)m / (now_s() - t0);
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 100000;
  size_t m = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 200;
  if (n == 0 || m == 0) {
    fprintf(stderr, "Usage: bench-webhook [N] [M]\n");
    return 64;
  }
  char prefix[] = "/tmp/renewd-bench-webhook-XXXXXX";
  if (!mkdtemp(prefix)) {
    perror("mkdtemp");
    return 1;
  }
  chmod(prefix, 0755);
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int port = free_port();
  pid_t nginx = start_nginx(prefix, port);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);

  size_t body_len = 0;
  long rss_kb = 0;
  double disp = bench_dispatcher(prefix, url, n, &body_len, &rss_kb);
  char *body = malloc(body_len + 1);
  memset(body, 'x', body_len);
  memcpy(body, "{\"type\":\"reminder.due\",\"data\":\"", 31);
  memcpy(body + body_len - 2, "\"}", 2);
  body[body_len] = 0;
  double minimal = bench_minimal(url, n, body);
  double per_cmd = bench_curl_cmd(prefix, url, m, body);

  printf("webhooks to nginx (204) on 127.0.0.1, %d concurrent, %zu requests\n", CONCURRENCY, n);
  printf("  renewd dispatcher (claim, render, sign, send, commit): %10.0f req/s\n", disp);
  printf("  minimal libcurl multi loop, %d handles:                %10.0f req/s\n", CONCURRENCY,
         minimal);
  printf("  curl command per message (%zu messages):               %10.1f req/s\n", m, per_cmd);
  printf("ratio dispatcher / minimal loop:       %6.2f (target >= 0.8)\n", disp / minimal);
  printf("ratio dispatcher / curl per message:   %6.0f (target >= 200)\n", disp / per_cmd);
  printf("peak resident memory with %zu pending rows: %.1f MB (target < 64 MB)\n", n,
         (double)rss_kb / 1024.0);

  kill(nginx, SIGTERM);
  waitpid(nginx, NULL, 0);
  free(body);
  curl_global_cleanup();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", prefix);
  if (system(cmd) != 0)
    fprintf(stderr, "bench-webhook: could not remove %s\n", prefix);
  return 0;
}
