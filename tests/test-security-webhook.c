/* Security regression tests for webhook destinations (AllowPrivate=no).
 *
 *  - notify_ip_private()/notify_addr_private(): the address table, including
 *    the ranges the first version missed (240/4, 198.18/15, 192.0.0/24, the
 *    documentation nets) and IPv4 hidden in NAT64 and 6to4 addresses.
 *  - A connection that is already open: the dispatcher's curl multi shares
 *    one connection cache between channels, so a keep-alive connection to a
 *    loopback address (opened by an SMS gateway channel, or a webhook
 *    channel with AllowPrivate=yes) used to carry a webhook request of an
 *    AllowPrivate=no channel: the open-socket check never ran for it. The
 *    test opens such a connection on a curl handle, then lets the webhook
 *    backend prepare the same handle: the request must be refused.
 *
 * A tiny keep-alive HTTP server runs in a thread on 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/util.h"
#include "notifiers/dispatch_internal.h"
#include "notifiers/notifier.h"
#include "notifiers/render.h"

static void test_ip_table(void **state) {
  static const struct {
    const char *ip;
    bool private;
  } t[] = {
      {"127.0.0.1", true},
      {"10.1.2.3", true},
      {"172.16.0.1", true},
      {"172.31.255.255", true},
      {"172.32.0.1", false},
      {"192.168.1.1", true},
      {"169.254.169.254", true},
      {"100.64.0.1", true},
      {"100.128.0.1", false},
      {"0.0.0.0", true},
      {"192.0.0.8", true},
      {"192.0.2.1", true},
      {"198.18.0.1", true},
      {"198.19.255.1", true},
      {"198.20.0.1", false},
      {"198.51.100.7", true},
      {"203.0.113.9", true},
      {"224.0.0.1", true},
      {"240.0.0.1", true},
      {"255.255.255.255", true},
      {"8.8.8.8", false},
      {"93.184.216.34", false},
      {"::", true},
      {"::1", true},
      {"fe80::1", true},
      {"fe80::1%eth0", true},
      {"fec0::1", true},
      {"fc00::1", true},
      {"fd12:3456::1", true},
      {"ff02::1", true},
      {"::ffff:127.0.0.1", true},
      {"::ffff:10.0.0.1", true},
      {"::ffff:8.8.8.8", false},
      {"::127.0.0.1", true},
      {"64:ff9b::7f00:1", true},
      {"64:ff9b::a9fe:a9fe", true},
      {"64:ff9b::808:808", false},
      {"64:ff9b:1::1", true},
      {"2002:7f00:1::1", true},
      {"2002:c0a8:101::1", true},
      {"2002:808:808::1", false},
      {"2001:db8::1", true},
      {"2001:0:4136:e378::1", true},
      {"100::1", true},
      {"2606:4700::1111", false},
      {"2a00:1450:4001::200e", false},
      {"", true},
      {"not-an-ip", true},
      {"127.0.0.1.evil", true},
  };
  for (size_t i = 0; i < ELEMENTSOF(t); i++) {
    bool got = notify_ip_private(t[i].ip);
    if (got != t[i].private)
      fail_msg("%s: expected %s", t[i].ip, t[i].private ? "private" : "public");
  }
  assert_true(notify_ip_private(NULL));

  struct sockaddr_in v4 = {.sin_family = AF_INET};
  inet_pton(AF_INET, "198.18.3.4", &v4.sin_addr);
  assert_true(notify_addr_private((struct sockaddr *)&v4));
  inet_pton(AF_INET, "1.1.1.1", &v4.sin_addr);
  assert_false(notify_addr_private((struct sockaddr *)&v4));
  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
  inet_pton(AF_INET6, "64:ff9b::c0a8:0101", &v6.sin6_addr);
  assert_true(notify_addr_private((struct sockaddr *)&v6));
  struct sockaddr un = {.sa_family = AF_UNIX};
  assert_true(notify_addr_private(&un));
  assert_true(notify_addr_private(NULL));
}

/* ---- a keep-alive HTTP server ------------------------------------------------------ */

struct server {
  int fd;
  uint16_t port;
  pthread_t thread;
  int requests; /* requests answered (read after the thread ended) */
  int accepts;  /* connections accepted */
};

/* Answers every request on a connection with 200 and an empty body (the
 * test's requests are small: one read holds a whole request). */
static void *serve(void *ud) {
  struct server *s = ud;
  for (;;) {
    int c = accept(s->fd, NULL, NULL);
    if (c < 0)
      return NULL;
    s->accepts++;
    char buf[8192];
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) {
      if (!memmem(buf, (size_t)n, "\r\n\r\n", 4))
        continue;
      s->requests++;
      static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
      if (write(c, ok, sizeof ok - 1) < 0)
        break;
    }
    close(c);
  }
}

static void server_start(struct server *s) {
  *s = (struct server){0};
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(s->fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
  s->port = ntohs(a.sin_port);
  assert_int_equal(listen(s->fd, 8), 0);
  assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(struct server *s) {
  shutdown(s->fd, SHUT_RDWR);
  close(s->fd);
  pthread_join(s->thread, NULL);
}

static size_t discard(char *p, size_t size, size_t n, void *ud) {
  return size * n;
}

/* Prepares one webhook request of an AllowPrivate=no channel on easy. */
static void prepare_webhook(const char *url, CURL *easy, void **ret_state, struct notify_xfer *nx) {
  struct config_kv opts[] = {{.key = (char *)"URL", .value = (char *)url}};
  struct config_channel ch = {
      .name = (char *)"hook", .type = (char *)"webhook", .options = opts, .n_options = 1};
  assert_int_equal(notifier_webhook_ops.new(&ch, NULL, ret_state, NULL), 0);
  struct reminder row = {.id = 1, .recipient = (char *)url, .idem_key = "rk-test"};
  struct message msg = {.event = (char *)"{}"};
  struct notify_request req = {.row = &row, .msg = &msg, .kind = NOTIFY_WEBHOOK, .now = 1};
  struct notify_result res = {0};
  assert_int_equal(notifier_webhook_ops.prepare(*ret_state, &req, easy, nx, &res), 0);
  dispatch_easy_wire(easy, nx); /* headers, and the pre-request hook the backend set */
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 10000L);
}

static void xfer_done(void *st, struct notify_xfer *nx) {
  curl_slist_free_all(nx->headers);
  buf_free(&nx->request);
  buf_free(&nx->response);
  notifier_webhook_ops.free(st);
}

static void test_new_connection_refused(void **state) {
  struct server s;
  server_start(&s);
  _cleanup_free_ char *url = strprintf("http://127.0.0.1:%u/hook", s.port);
  CURL *easy = curl_easy_init();
  assert_non_null(easy);
  struct notify_xfer nx = {0};
  void *st = NULL;
  prepare_webhook(url, easy, &st, &nx);
  CURLcode code = curl_easy_perform(easy);
  assert_int_not_equal(code, CURLE_OK);
  assert_true(nx.refused);
  assert_non_null(strstr(nx.refused_why, "127.0.0.1"));
  xfer_done(st, &nx);
  curl_easy_cleanup(easy);
  server_stop(&s);
  assert_int_equal(s.requests, 0);
}

static void test_reused_connection_refused(void **state) {
  struct server s;
  server_start(&s);
  _cleanup_free_ char *url = strprintf("http://127.0.0.1:%u/hook", s.port);
  _cleanup_free_ char *gw = strprintf("http://127.0.0.1:%u/sms", s.port);
  CURL *easy = curl_easy_init();
  assert_non_null(easy);

  /* another channel (no private-address check) leaves a keep-alive
   * connection to the loopback server in the handle's cache */
  curl_easy_setopt(easy, CURLOPT_URL, gw);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 10000L);
  assert_int_equal(curl_easy_perform(easy), CURLE_OK);
  long n_conn = -1;
  curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &n_conn);
  assert_int_equal(n_conn, 1);

  /* the dispatcher resets a handle between transfers; live connections stay */
  curl_easy_reset(easy);
  struct notify_xfer nx = {0};
  void *st = NULL;
  prepare_webhook(url, easy, &st, &nx);
  CURLcode code = curl_easy_perform(easy);
  assert_int_equal(code, CURLE_ABORTED_BY_CALLBACK);
  assert_true(nx.refused);
  assert_non_null(strstr(nx.refused_why, "private or local address"));
  curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &n_conn);
  assert_int_equal(n_conn, 0); /* it really was the reused connection */
  xfer_done(st, &nx);
  curl_easy_cleanup(easy);
  server_stop(&s);
  assert_int_equal(s.requests, 1); /* the gateway's only: the webhook sent nothing */
}

/* Secrets never sit in renewd.conf: a URL= with a password is refused, and
 * the error does not quote it. */
static void test_url_password_refused(void **state) {
  assert_true(notify_url_has_password("https://u:s3cr3t@h.example/x"));
  assert_true(notify_url_has_password("smtp://u:s3cr3t@mail.example:587"));
  assert_true(notify_url_has_password("http://:s3cr3t@h.example"));
  assert_false(notify_url_has_password("https://u@h.example/x"));
  assert_false(notify_url_has_password("https://h.example/a:b@c"));
  assert_false(notify_url_has_password("https://h.example:8443/x?u=a:b@c"));
  assert_false(notify_url_has_password("https://[::1]:8443/x"));
  assert_false(notify_url_has_password(NULL));

  static const struct {
    const struct notifier_ops *ops;
    const char *type, *url;
  } t[] = {
      {&notifier_webhook_ops, "webhook", "https://u:s3cr3t@h.example/x"},
      {&notifier_sms_ops, "sms", "https://u:s3cr3t@sms.example/send"},
      {&notifier_smtp_ops, "smtp", "smtp://u:s3cr3t@mail.example:587"},
  };
  for (size_t i = 0; i < ELEMENTSOF(t); i++) {
    struct config_kv opts[] = {
        {.key = (char *)"URL", .value = (char *)t[i].url, .file = "t.conf", .line = 2},
        {.key = (char *)"From", .value = (char *)"a@b.example", .file = "t.conf", .line = 3},
        {.key = (char *)"Provider", .value = (char *)"generic", .file = "t.conf", .line = 4},
    };
    struct config_channel ch = {.name = (char *)"c",
                                .type = (char *)t[i].type,
                                .options = opts,
                                .n_options = streq(t[i].type, "webhook") ? 1
                                             : streq(t[i].type, "sms")   ? 3
                                                                         : 2,
                                .file = "t.conf",
                                .line = 1};
    struct config_errors errs = {0};
    assert_int_equal(t[i].ops->check_config(&ch, NULL, &errs), -EINVAL);
    bool found = false;
    for (size_t k = 0; k < errs.n; k++) {
      assert_null(strstr(errs.v[k].message, "s3cr3t"));
      found |= strstr(errs.v[k].message, "URL=: holds a password") != NULL;
    }
    if (!found)
      fail_msg("%s: no \"holds a password\" error", t[i].type);
    config_errors_clear(&errs);
  }
}

/* Credentials for request headers come from HeadersFile= (a secret file),
 * never from renewd.conf; a bad line is reported without quoting it. */
static void test_headers_file(void **state) {
  char dir[] = "/tmp/renewd-test-hdr-XXXXXX";
  assert_non_null(mkdtemp(dir));
  _cleanup_free_ char *path = strprintf("%s/h", dir);
  FILE *f = fopen(path, "we");
  assert_non_null(f);
  fputs("# credentials\nAuthorization: Bearer t0ps3cret\r\n\nX-Api-Key: k3y\n", f);
  fclose(f);
  struct config_kv opts[] = {
      {.key = (char *)"URL", .value = (char *)"https://h.example/x", .file = "t.conf", .line = 2},
      {.key = (char *)"HeadersFile", .value = path, .file = "t.conf", .line = 3},
  };
  struct config_channel ch = {.name = (char *)"c",
                              .type = (char *)"webhook",
                              .options = opts,
                              .n_options = 2,
                              .file = "t.conf",
                              .line = 1};
  struct config_errors errs = {0};
  assert_int_equal(notifier_webhook_ops.check_config(&ch, NULL, &errs), 0);
  struct curl_slist *l = NULL;
  assert_int_equal(notify_append_secret_headers(&ch, &l, &errs), 0);
  assert_non_null(l);
  assert_string_equal(l->data, "Authorization: Bearer t0ps3cret");
  assert_non_null(l->next);
  assert_string_equal(l->next->data, "X-Api-Key: k3y");
  assert_null(l->next->next);
  notify_headers_free(l);
  /* the backend reads it too */
  void *st = NULL;
  assert_int_equal(notifier_webhook_ops.new(&ch, NULL, &st, &errs), 0);
  notifier_webhook_ops.free(st);

  /* a malformed line: error names the line, never its text */
  f = fopen(path, "we");
  fputs("Authorization Bearer t0ps3cret\n", f);
  fclose(f);
  l = NULL;
  assert_int_equal(notify_append_secret_headers(&ch, &l, &errs), -EINVAL);
  notify_headers_free(l);
  assert_int_equal(errs.n, 1);
  assert_string_equal(errs.v[0].message,
                      "[Channel c] HeadersFile=: line 1: expected \"Name: value\"");
  config_errors_clear(&errs);
  /* a relative path with '/' is refused at check time */
  opts[1].value = (char *)"secrets/h";
  assert_int_equal(notifier_webhook_ops.check_config(&ch, NULL, &errs), -EINVAL);
  assert_int_equal(errs.n, 1);
  assert_null(strstr(errs.v[0].message, "secrets/h"));
  config_errors_clear(&errs);
  unlink(path);
  rmdir(dir);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ip_table),
      cmocka_unit_test(test_url_password_refused),
      cmocka_unit_test(test_headers_file),
      cmocka_unit_test(test_new_connection_refused),
      cmocka_unit_test(test_reused_connection_refused),
  };
  int r = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return r;
}
