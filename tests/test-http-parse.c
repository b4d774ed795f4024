/* Unit tests for the HTTP listener's pure parts: the form parser, SMS
 * keywords, locale choice, HTML escaping (daemon/http*.c), the link key file
 * (notifiers/linkkey.c), the metrics exposition (daemon/metrics.c), and the
 * request head checks and accept self-check of daemon/http_guard.c. The
 * listener itself is tested end to end by tests/test-http.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "daemon/http_internal.h"
#include "daemon/metrics.h"
#include "notifiers/linkkey.h"
#include "notifiers/templates.h"

#define SHIPPED TEST_SRC_DIR "/../notifiers/templates"

static void test_form(void **state) {
  struct http_form f = {0};
  const char *body =
      "confirm=yes&reason=switched-provider&note=a+b%20c%0D%0Ad%E4%BD%A0&empty=&flag";
  assert_int_equal(http_form_parse(body, strlen(body), &f), 0);
  assert_int_equal(f.n, 5);
  assert_string_equal(http_form_get(&f, "confirm"), "yes");
  assert_string_equal(http_form_get(&f, "reason"), "switched-provider");
  assert_string_equal(http_form_get(&f, "note"), "a b c\r\nd\xe4\xbd\xa0");
  assert_string_equal(http_form_get(&f, "empty"), "");
  assert_string_equal(http_form_get(&f, "flag"), "");
  assert_null(http_form_get(&f, "missing"));
  http_form_clear(&f);

  /* the first of repeated names; empty pairs skipped */
  assert_int_equal(http_form_parse("a=1&&a=2&", 9, &f), 0);
  assert_int_equal(f.n, 2);
  assert_string_equal(http_form_get(&f, "a"), "1");
  http_form_clear(&f);
  assert_int_equal(http_form_parse("", 0, &f), 0);
  assert_int_equal(f.n, 0);
  http_form_clear(&f);

  static const char *const bad[] = {
      "a=%",      "a=%4",        "a=%zz",          "a=%00",    "a=%01",    "a=%7F",
      "a=%C3%28", "a=%ED%A0%80", "a=%F5%80%80%80", "a=%E4%BD", "%C0%AF=1",
  };
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    struct http_form g = {0};
    assert_int_equal(http_form_parse(bad[i], strlen(bad[i]), &g), -EBADMSG);
    assert_int_equal(g.n, 0);
  }
  /* NUL inside the raw body is a control character too */
  assert_int_equal(http_form_parse("a=b\0c", 5, &f), -EBADMSG);
}

/* The inbound keywords: the carriers' English words for everyone (also
 * with no catalogue), the kw_* words of the shipped sms.po along the
 * sender's locale chain (case folded, Ä too), every locale's for a sender
 * of unknown language. */
static void test_keywords(void **state) {
  static const struct {
    const char *locale;
    const char *body;
    enum http_sms_keyword kw;
  } cases[] = {
      {"en", "STOP", SMS_KW_STOP},
      {"en", "stop", SMS_KW_STOP},
      {"en", "  Stop \r\n", SMS_KW_STOP},
      {"en", "STOPALL", SMS_KW_STOP},
      {"en", "unsubscribe", SMS_KW_STOP},
      {"en", "Cancel", SMS_KW_STOP},
      {"en", "end", SMS_KW_STOP},
      {"en", "QUIT", SMS_KW_STOP},
      {"en", "revoke", SMS_KW_STOP},
      {"en", "OptOut", SMS_KW_STOP},
      {"en", "START", SMS_KW_START},
      {"en", "unstop", SMS_KW_START},
      {"en", "help", SMS_KW_HELP},
      {"en", "RENEW", SMS_KW_RENEW},
      {"en", "yes", SMS_KW_RENEW},
      {"en", " call ", SMS_KW_CALL},
      {"en", "stopp", SMS_KW_NONE}, /* German words are for German readers */
      {"en", "退订", SMS_KW_NONE},
      {"zh-CN", "退订", SMS_KW_STOP},
      {"zh-CN", "td", SMS_KW_STOP},
      {"zh-CN", "订阅", SMS_KW_START},
      {"zh-CN", " 帮助\n", SMS_KW_HELP},
      {"zh-CN", "续约", SMS_KW_RENEW},
      {"zh-CN", "回电", SMS_KW_CALL},
      {"zh-CN", "STOP", SMS_KW_STOP},
      {"zh-CN", "renew", SMS_KW_RENEW},
      {"de", "STOPP", SMS_KW_STOP},
      {"de-AT", "Abmelden", SMS_KW_STOP},
      {"de", "anmelden", SMS_KW_START},
      {"de", "Hilfe", SMS_KW_HELP},
      {"de", "VERLÄNGERN", SMS_KW_RENEW},
      {"de", "verlängern", SMS_KW_RENEW},
      {"de", "ja", SMS_KW_RENEW},
      {"de", "Rückruf", SMS_KW_CALL},
      {"de", "RUECKRUF", SMS_KW_CALL},
      {"de", "STOP", SMS_KW_STOP},
      {"de", "CALL", SMS_KW_CALL},
      {"de", "stop please", SMS_KW_NONE},
      {"en", "STOP.", SMS_KW_NONE},
      {"en", "s top", SMS_KW_NONE},
      {"en", "", SMS_KW_NONE},
      {"en", "   ", SMS_KW_NONE},
      {"en", "renewal", SMS_KW_NONE},
      {"en", "|", SMS_KW_NONE},
      {"en", "STOP|START", SMS_KW_NONE},
      {"en", "Can you call me tomorrow?", SMS_KW_NONE},
  };
  struct templates *t = NULL;
  assert_int_equal(templates_open(SHIPPED, &t, NULL, 0), 0);
  assert_int_equal(templates_add_builtin_catalogue(t, "sms", templates_builtin_sms_po, NULL, 0), 0);
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    print_message("%s %s\n", cases[i].locale, cases[i].body);
    assert_int_equal(http_sms_keyword(t, cases[i].locale, false, cases[i].body), cases[i].kw);
  }
  /* an unknown number: the words of every locale */
  assert_int_equal(http_sms_keyword(t, NULL, true, "退订"), SMS_KW_STOP);
  assert_int_equal(http_sms_keyword(t, NULL, true, "hilfe"), SMS_KW_HELP);
  assert_int_equal(http_sms_keyword(t, NULL, false, "hilfe"), SMS_KW_NONE);
  assert_int_equal(http_sms_keyword(t, NULL, true, "hello"), SMS_KW_NONE);
  /* no catalogue at all: the carriers' words still */
  assert_int_equal(http_sms_keyword(NULL, "de", true, "Stop"), SMS_KW_STOP);
  assert_int_equal(http_sms_keyword(NULL, NULL, true, "info"), SMS_KW_HELP);
  assert_int_equal(http_sms_keyword(NULL, NULL, true, "RENEW"), SMS_KW_NONE);
  assert_int_equal(http_sms_keyword(t, "en", true, NULL), SMS_KW_NONE);
  templates_free(t);
}

static void test_escape(void **state) {
  struct buf b = {0};
  assert_int_equal(http_html_escape(&b, "<a href=\"x\">Tom & 'Jerry'</a>"), 0);
  assert_string_equal(b.data, "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;");
  buf_free(&b);
}

static void test_linkkeys(void **state) {
  struct linkkeys *k = NULL;
  char err[128];
  const char *text = "# rotated 2026-11\r\nnew-key-0123456789abcdef\r\n\nold-key-0123456789abcdef";
  assert_int_equal(linkkeys_parse(text, strlen(text), &k, err, sizeof err), 0);
  assert_int_equal(k->n, 2);
  assert_int_equal(k->keys[0].len, 24);
  assert_memory_equal(k->keys[0].data, "new-key-0123456789abcdef", 24);
  assert_memory_equal(k->keys[1].data, "old-key-0123456789abcdef", 24);

  /* links signed with the old key verify against the file; the first key signs */
  struct linkkeys *old = NULL;
  assert_int_equal(linkkeys_parse("old-key-0123456789abcdef", 24, &old, err, sizeof err), 0);
  char *url = NULL;
  assert_int_equal(linkkey_url(old, "https://r.example", "C-1", 2, TOKEN_SNOOZE, 2000000000, &url),
                   0);
  assert_true(!strncmp(url, "https://r.example/r/v1.", 23));
  struct token t;
  assert_int_equal(token_verify(k->keys, k->n, url + 20, 1900000000, &t), 0);
  assert_string_equal(t.contract_id, "C-1");
  assert_int_equal(t.term, 2);
  assert_int_equal(t.action, TOKEN_SNOOZE);
  assert_int_equal(t.key_id, sign_key_id(&old->keys[0]));
  free(url);
  assert_int_equal(linkkey_url(k, NULL, "C-1", 1, TOKEN_UNSUBSCRIBE_SMS, 2000000000, &url), 0);
  assert_true(!strncmp(url, "/u/v1.", 6));
  assert_int_equal(token_verify(k->keys, 1, url + 3, 1900000000, &t), 0);
  free(url);
  url = NULL; /* never a link without a key */
  assert_int_equal(linkkey_url(NULL, "", "C-1", 1, TOKEN_RENEW, 2000000000, &url), -ENOKEY);
  assert_null(url);
  linkkeys_free(old);
  linkkeys_free(k);

  assert_int_equal(linkkeys_parse("short\n", 6, &k, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "line 1"));
  assert_int_equal(linkkeys_parse("# only a comment\n\n", 18, &k, err, sizeof err), -ENOKEY);
  assert_int_equal(linkkey_expiry(1000000000, 30 * 86400, 900000000), 1000000000 + 90 * 86400);
  assert_int_equal(linkkey_expiry(1000000000, 200 * 86400, 900000000), 1000000000 + 200 * 86400);
  assert_int_equal(linkkey_expiry(1000000000, 0, 1000000000 + 80 * 86400),
                   1000000000 + 110 * 86400);
  assert_string_equal(linkkey_prefix(TOKEN_UNSUBSCRIBE_EMAIL), "/u/");
  assert_string_equal(linkkey_prefix(TOKEN_OWNER_LOST), "/r/");
}

static void test_metrics(void **state) {
  struct metrics *m = NULL;
  assert_int_equal(metrics_new("1.2.3", 1700000000, &m), 0);
  struct dispatch_report rep = {.outcome = DISPATCH_SENT, .channel = "email", .latency_ms = 30};
  metrics_report(m, &rep);
  rep.latency_ms = 2000;
  metrics_report(m, &rep);
  rep = (struct dispatch_report){.outcome = DISPATCH_RETRY, .channel = "sms\"x", .latency_ms = 5};
  metrics_report(m, &rep);
  rep.outcome = DISPATCH_CIRCUIT_OPEN;
  metrics_report(m, &rep);
  metrics_http(m, METRICS_EP_ANSWER, 200);
  metrics_http(m, METRICS_EP_ANSWER, 409);
  struct buf b = {0};
  assert_int_equal(metrics_render(m, NULL, NULL, 0, &b), 0);
  const char *want[] = {
      "renewd_build_info{version=\"1.2.3\"} 1\n",
      "renewd_start_time_seconds 1700000000\n",
      "renewd_store_up 0\n",
      "renewd_deliveries_total{channel=\"email\",outcome=\"sent\"} 2\n",
      ("renewd_delivery_duration_seconds_bucket{channel=\"email\",outcome=\"sent\",le=\"0.025\"} "
       "0\n"),
      "renewd_delivery_duration_seconds_bucket{channel=\"email\",outcome=\"sent\",le=\"0.05\"} 1\n",
      "renewd_delivery_duration_seconds_bucket{channel=\"email\",outcome=\"sent\",le=\"2.5\"} 2\n",
      "renewd_delivery_duration_seconds_bucket{channel=\"email\",outcome=\"sent\",le=\"+Inf\"} 2\n",
      "renewd_delivery_duration_seconds_sum{channel=\"email\",outcome=\"sent\"} 2.03\n",
      "renewd_delivery_duration_seconds_count{channel=\"email\",outcome=\"sent\"} 2\n",
      "renewd_delivery_retries_total{channel=\"sms\\\"x\"} 1\n",
      "renewd_channel_circuit_open{channel=\"sms\\\"x\"} 1\n",
      "renewd_channel_circuit_open{channel=\"email\"} 0\n",
      "renewd_http_requests_total{endpoint=\"answer\",code=\"2xx\"} 1\n",
      "renewd_http_requests_total{endpoint=\"answer\",code=\"4xx\"} 1\n",
      "# TYPE renewd_delivery_duration_seconds histogram\n",
  };
  for (size_t i = 0; i < ELEMENTSOF(want); i++) {
    print_message("%s", want[i]);
    assert_non_null(strstr(b.data, want[i]));
  }
  buf_free(&b);
  metrics_free(m);
}

/* ---- request head checks (http_guard.c) ---- */

/* Parses the header lines of head[0..len) in place as libmicrohttpd 0.9
 * does: each line end (CR LF or LF) and the first ':' become NULs, the value
 * starts after blanks and ends at its first NUL (strlen). Returns the number
 * of fields; *ret_end is the end of the head (after the empty line). */
static size_t mhd_parse(char *head, size_t len, struct http_field *f, size_t max,
                        const char **ret_end) {
  size_t n = 0, i = 0;
  while (i < len) {
    size_t start = i;
    while (i < len && head[i] != '\n')
      i++;
    size_t eol = i > start && head[i - 1] == '\r' ? i - 1 : i;
    for (size_t k = eol; k <= i && k < len; k++)
      head[k] = 0;
    i++;
    if (eol == start) /* the empty line */
      break;
    char *colon = strchr(head + start, ':');
    assert_non_null(colon);
    *colon = 0;
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
      v++;
    assert_true(n < max);
    f[n++] = (struct http_field){head + start, strlen(head + start), v, strlen(v)};
  }
  *ret_end = head + i;
  return n;
}

static bool intact(const char *text, size_t len) {
  char buf[512];
  struct http_field f[16];
  const char *end;
  assert_true(len < sizeof buf);
  memcpy(buf, text, len);
  buf[len] = 'B'; /* a body byte after the head */
  size_t n = mhd_parse(buf, len, f, 16, &end);
  return http_fields_intact(f, n, end);
}

#define INTACT(lit) intact(lit, sizeof(lit) - 1)

static void test_fields_intact(void **state) {
  assert_true(INTACT("Host: x\r\nAuthorization: Bearer tok\r\n\r\n"));
  assert_true(INTACT("Host: x\nAuthorization: Bearer tok\n\n"));
  assert_true(INTACT("Host: x\r\nX-Empty:\r\nX-Blank: \r\nX-Trail: a  \r\n\r\n"));
  assert_true(INTACT("Host:x\r\n\n"));
  assert_true(INTACT(""));
  /* a NUL inside a value: MHD's value ends there, the line does not */
  assert_false(INTACT("Authorization: Bearer tok\0garbage\r\nHost: x\r\n\r\n"));
  assert_false(INTACT("Host: x\r\nAuthorization: Bearer tok\0garbage\r\n\r\n"));
  assert_false(INTACT("Host: x\r\nAuthorization: Bearer tok\0\r\n\r\n"));
  assert_false(INTACT("Host: x\r\nAuthorization: Bearer tok\0\0\r\n\r\n"));
  assert_false(INTACT("Authorization: Bearer tok\0\r\nHost: x\r\n\r\n"));
  /* the one case the layout cannot tell: with bare LF line ends, NULs where a
   * CR could be (one per LF) look like CR LF; nothing but those NULs is lost */
  assert_true(INTACT("Host: x\nAuthorization: Bearer tok\0\n\n"));
  assert_true(INTACT("Host: x\nAuthorization: Bearer tok\0\0\n\n"));
  assert_false(INTACT("Host: x\nAuthorization: Bearer tok\0\0\0\n\n"));
  assert_false(INTACT("Host: x\nAuthorization: Bearer tok\0x\n\n"));
  /* a value MHD copied elsewhere (folded lines) */
  char buf[] = "X-A\0 a\0\0Host\0 x\0\0\0\0";
  struct http_field f[] = {{buf, 3, "a b", 3}, {buf + 8, 4, buf + 14, 1}};
  assert_false(http_fields_intact(f, 2, buf + sizeof buf - 1));
  f[0].value = buf + 5;
  f[0].value_len = 1;
  assert_true(http_fields_intact(f, 2, buf + sizeof buf - 1));
}

static void test_value_and_uri(void **state) {
  assert_true(http_value_ok("Bearer abc\tdef \x80\xff", 17));
  assert_false(http_value_ok("abc\0def", 7));
  assert_false(http_value_ok("abc\x01", 4));
  assert_false(http_value_ok("abc\x7f", 4));
  assert_false(http_value_ok("a\rb", 3));
  static const char *const good[] = {
      "/r/v1.abc_-.def", "/report?from=2026-01-01&to=x%20y", "/a%2Fb", "/%", "/%4", "/%zz",
      "/%e4%bd%a0"};
  for (size_t i = 0; i < ELEMENTSOF(good); i++)
    assert_true(http_uri_ok(good[i], strlen(good[i])));
  static const char *const bad[] = {"/r/tok%00junk", "/r/tok%0a",      "/r/tok%0D%0A", "/u/x%7F",
                                    "/r/tok%1f",     "/report?by=%00", "/r/\x01",      "/r/\t"};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++)
    assert_false(http_uri_ok(bad[i], strlen(bad[i])));
  assert_false(http_uri_ok("/r/tok\0junk", 11));
}

static unsigned framing(const char *text, bool http11, const char **why) {
  static char buf[512];
  static struct http_field f[16];
  const char *end;
  size_t len = strlen(text);
  memcpy(buf, text, len + 1);
  size_t n = mhd_parse(buf, len, f, 16, &end);
  *why = "";
  return http_framing_check(f, n, http11, why);
}

static void test_framing(void **state) {
  const char *why;
  assert_int_equal(framing("Host: x\r\nContent-Length: 3\r\n\r\n", true, &why), 0);
  assert_int_equal(framing("Content-Length: 3\r\n\r\n", false, &why), 0); /* HTTP/1.0 */
  assert_int_equal(framing("Content-Length: 3\r\n\r\n", true, &why), 400);
  assert_string_equal(why, "HTTP/1.1 request without Host");
  assert_int_equal(framing("Host: a\r\nhost: b\r\n\r\n", true, &why), 400);
  assert_int_equal(framing("Host: a\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n", true, &why),
                   0);
  assert_int_equal(
      framing("Host: a\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\n", true, &why), 400);
  assert_string_equal(why, "conflicting Content-Length");
  assert_int_equal(framing("Host: a\r\nTransfer-Encoding: Chunked \r\n\r\n", true, &why), 0);
  assert_int_equal(framing("Host: a\r\nTransfer-Encoding: gzip\r\n\r\n", true, &why), 501);
  assert_int_equal(framing("Host: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", true, &why), 501);
  assert_int_equal(
      framing("Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", true,
              &why),
      501);
  assert_int_equal(
      framing("Host: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", true, &why),
      400);
  assert_int_equal(framing("Transfer-Encoding: chunked\r\n\r\n", false, &why), 400);
}

static void test_stall(void **state) {
  struct http_stall st = {0};
  const uint64_t lim = 15;
  /* nothing waits, or accept() makes progress: never a stall */
  assert_int_equal(http_stall_step(&st, false, 0, 1, lim), HTTP_STALL_NONE);
  assert_int_equal(http_stall_step(&st, true, 1, 2, lim), HTTP_STALL_NONE);
  assert_int_equal(http_stall_step(&st, true, 2, 100, lim), HTTP_STALL_NONE);
  /* waiting without progress: reported once after the limit */
  assert_int_equal(http_stall_step(&st, true, 2, 101, lim), HTTP_STALL_WAITING);
  assert_int_equal(http_stall_step(&st, true, 2, 115, lim), HTTP_STALL_WAITING);
  assert_int_equal(http_stall_step(&st, true, 2, 116, lim), HTTP_STALL_DEAF);
  assert_true(st.deaf);
  assert_int_equal(http_stall_step(&st, true, 2, 200, lim), HTTP_STALL_WAITING);
  assert_true(st.deaf);
  assert_int_equal(http_stall_step(&st, true, 3, 201, lim), HTTP_STALL_RECOVERED);
  assert_false(st.deaf);
  /* a short wait is forgotten once the backlog is empty */
  assert_int_equal(http_stall_step(&st, true, 3, 300, lim), HTTP_STALL_WAITING);
  assert_int_equal(http_stall_step(&st, false, 3, 301, lim), HTTP_STALL_NONE);
  assert_int_equal(http_stall_step(&st, true, 3, 310, lim), HTTP_STALL_WAITING);
  assert_int_equal(http_stall_step(&st, true, 3, 320, lim), HTTP_STALL_WAITING);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_form),          cmocka_unit_test(test_keywords),
      cmocka_unit_test(test_escape),        cmocka_unit_test(test_linkkeys),
      cmocka_unit_test(test_metrics),       cmocka_unit_test(test_fields_intact),
      cmocka_unit_test(test_value_and_uri), cmocka_unit_test(test_framing),
      cmocka_unit_test(test_stall),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
