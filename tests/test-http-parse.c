/* Unit tests for the HTTP listener's pure parts: the form parser, SMS
 * keywords, locale choice, HTML escaping (daemon/http*.c), the link key file
 * (notifiers/linkkey.c) and the metrics exposition (daemon/metrics.c). The
 * listener itself is tested end to end by tests/test-http.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "daemon/http_internal.h"
#include "daemon/metrics.h"
#include "notifiers/linkkey.h"

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

static void test_keywords(void **state) {
  static const struct {
    const char *body;
    enum http_sms_keyword kw;
  } cases[] = {
      {"STOP", SMS_KW_STOP},
      {"stop", SMS_KW_STOP},
      {"  Stop \r\n", SMS_KW_STOP},
      {"STOPALL", SMS_KW_STOP},
      {"unsubscribe", SMS_KW_STOP},
      {"Cancel", SMS_KW_STOP},
      {"end", SMS_KW_STOP},
      {"QUIT", SMS_KW_STOP},
      {"revoke", SMS_KW_STOP},
      {"OptOut", SMS_KW_STOP},
      {"退订", SMS_KW_STOP},
      {"START", SMS_KW_START},
      {"unstop", SMS_KW_START},
      {"help", SMS_KW_HELP},
      {"RENEW", SMS_KW_RENEW},
      {"yes", SMS_KW_RENEW},
      {" call ", SMS_KW_CALL},
      {"回电", SMS_KW_CALL},
      {"stop please", SMS_KW_NONE},
      {"STOP.", SMS_KW_NONE},
      {"s top", SMS_KW_NONE},
      {"", SMS_KW_NONE},
      {"   ", SMS_KW_NONE},
      {"renewal", SMS_KW_NONE},
      {"Can you call me tomorrow?", SMS_KW_NONE},
  };
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    print_message("%s\n", cases[i].body);
    assert_int_equal(http_sms_keyword(cases[i].body), cases[i].kw);
  }
  assert_int_equal(http_sms_keyword(NULL), SMS_KW_NONE);
}

static void test_locale(void **state) {
  assert_true(http_locale_is_zh("zh"));
  assert_true(http_locale_is_zh("zh-CN"));
  assert_true(http_locale_is_zh("zh_Hans"));
  assert_true(http_locale_is_zh("ZH"));
  assert_false(http_locale_is_zh("zhx"));
  assert_false(http_locale_is_zh("en"));
  assert_false(http_locale_is_zh(NULL));
  assert_false(http_locale_is_zh(""));
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
  assert_int_equal(linkkey_url(NULL, "", "C-1", 1, TOKEN_RENEW, 2000000000, &url), 0);
  assert_string_equal(url, "/r/unsigned");
  free(url);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_form),     cmocka_unit_test(test_keywords),
      cmocka_unit_test(test_locale),   cmocka_unit_test(test_escape),
      cmocka_unit_test(test_linkkeys), cmocka_unit_test(test_metrics),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
