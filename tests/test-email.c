/* Tests for notifiers/email (the message serializer), the Type=smtp
 * backend's pure parts (notifiers/smtp.c: settings check, queue ids, the
 * formatted message with its calendar part) and the templates shipped in
 * notifiers/templates/ (every file compiles, every partial exists, every
 * template renders in en and zh, and templates_check() names broken files).
 *
 * The exact message below was checked with python3's email package
 * (email.policy.default): it parses back to the same headers and texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cal.h"
#include "core/util.h"
#include "notifiers/email.h"
#include "notifiers/render.h"
#include "notifiers/mail.h"
#include "notifiers/smtp.h"
#include "notifiers/templates.h"

#define SHIPPED TEST_SRC_DIR "/../notifiers/templates"

/* ---- small decoders for round trips ---- */

static int b64v(char c) {
  const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const char *p = c ? strchr(a, c) : NULL;
  return p ? (int)(p - a) : -1;
}

/* Decodes base64 with CRLF line breaks. Caller frees. */
static char *b64_decode(const char *s, size_t n) {
  struct buf b = {0};
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '=')
      continue;
    int v = b64v(s[i]);
    assert_true(v >= 0);
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      char c = (char)(acc >> bits & 0xFF);
      assert_int_equal(buf_append(&b, &c, 1), 0);
    }
  }
  return buf_steal(&b);
}

/* Decodes quoted-printable; CRLF becomes LF. Caller frees. */
static char *qp_decode(const char *s, size_t n) {
  struct buf b = {0};
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '=' && i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
      i += 2;
      continue;
    }
    if (c == '=') {
      assert_true(i + 2 < n);
      char hex[3] = {s[i + 1], s[i + 2], 0};
      c = (char)strtol(hex, NULL, 16);
      i += 2;
    } else if (c == '\r')
      continue;
    assert_int_equal(buf_append(&b, &c, 1), 0);
  }
  return buf_steal(&b);
}

/* The body of the MIME part whose headers contain `header`, decoded by its
 * Content-Transfer-Encoding. Caller frees. */
static char *part_body(const char *msg, const char *header) {
  const char *h = strstr(msg, header);
  assert_non_null(h);
  const char *start = strstr(h, "\r\n\r\n");
  assert_non_null(start);
  const char *enc = strstr(h, "base64");
  bool b64 = enc && enc < start;
  start += 4;
  const char *end = strstr(start, "\r\n--=_renewd");
  assert_non_null(end);
  return b64 ? b64_decode(start, (size_t)(end - start)) : qp_decode(start, (size_t)(end - start));
}

/* Every line ends in CRLF, is at most 78 characters (List-Unsubscribe
 * aside) and 7-bit. */
static void check_lines(const char *msg) {
  for (const char *l = msg; *l;) {
    const char *e = strstr(l, "\r\n");
    assert_non_null(e);
    size_t len = (size_t)(e - l);
    assert_null(memchr(l, '\n', len));
    assert_null(memchr(l, '\r', len));
    if (strncmp(l, "List-Unsubscribe: ", 18) != 0 && len > 78)
      fail_msg("line of %zu characters: %.*s", len, (int)len, l);
    for (size_t i = 0; i < len; i++)
      assert_true((unsigned char)l[i] < 0x80);
    l = e + 2;
  }
}

/* ---- addresses ---- */

static void test_parse_address(void **state) {
  static const struct {
    const char *in, *name, *addr;
    int r;
  } cases[] = {
      {"Example Renewals <renewals@example.com>", "Example Renewals", "renewals@example.com", 0},
      {"\"Doe, Jane\" <jane@example.com>", "Doe, Jane", "jane@example.com", 0},
      {"  王小明 <wang@example.cn> ", "王小明", "wang@example.cn", 0},
      {"renewals@example.com", NULL, "renewals@example.com", 0},
      {"<renewals@example.com>", NULL, "renewals@example.com", 0},
      {" a@b.org ", NULL, "a@b.org", 0},
      {"Name <not-an-address>", NULL, NULL, -EINVAL},
      {"Name <a@b.org> trailing", NULL, NULL, -EINVAL},
      {"Name <a@b.org", NULL, NULL, -EINVAL},
      {"two words@example.com", NULL, NULL, -EINVAL},
      {"", NULL, NULL, -EINVAL},
  };
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    char *name = (char *)"untouched", *addr = (char *)"untouched";
    int r = email_parse_address(cases[i].in, &name, &addr);
    if (r != cases[i].r)
      fail_msg("'%s': %d, expected %d", cases[i].in, r, cases[i].r);
    if (r < 0) {
      assert_string_equal(name, "untouched");
      assert_string_equal(addr, "untouched");
      continue;
    }
    if (cases[i].name)
      assert_string_equal(name, cases[i].name);
    else
      assert_null(name);
    assert_string_equal(addr, cases[i].addr);
    free(name);
    free(addr);
  }
  assert_string_equal(email_domain("a@b.example.org"), "b.example.org");
  assert_null(email_domain("nodomain"));
  assert_null(email_domain("x@"));
}

/* ---- the serializer ---- */

static void test_format_plain_exact(void **state) {
  const struct email_header extra[] = {{"X-Renewd-Tier", "notice"}, {"X-Skipped", NULL}};
  struct email e = {
      .from_name = "Example Renewals",
      .from_addr = "renewals@example.com",
      .to_name = "Jane Doe",
      .to_addr = "jane@example.com",
      .subject = "Your plan expires",
      .date = 1800000000, /* Fri, 15 Jan 2027 08:00:00 +0000 */
      .idem_key = "rk-0123456789abcdef0123456789abcdef",
      .text = "Hello Jane,\nrenew = yes.\nFrom here\n",
      .unsubscribe_url = "https://renew.example.com/u/tok",
      .extra = extra,
      .n_extra = ELEMENTSOF(extra),
  };
  _cleanup_free_ char *m = NULL;
  size_t len = 0;
  assert_int_equal(email_format(&e, &m, &len), 0);
  assert_int_equal(len, strlen(m));
  assert_string_equal(m, "From: Example Renewals <renewals@example.com>\r\n"
                         "To: Jane Doe <jane@example.com>\r\n"
                         "Subject: Your plan expires\r\n"
                         "Date: Fri, 15 Jan 2027 08:00:00 +0000\r\n"
                         "Message-ID: <rk-0123456789abcdef0123456789abcdef@example.com>\r\n"
                         "MIME-Version: 1.0\r\n"
                         "List-Unsubscribe: <https://renew.example.com/u/tok>\r\n"
                         "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                         "X-Renewd-Tier: notice\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Transfer-Encoding: quoted-printable\r\n"
                         "\r\n"
                         "Hello Jane,\r\n"
                         "renew =3D yes.\r\n"
                         "From here\r\n");
  check_lines(m);
}

static void test_format_full(void **state) {
  /* Chinese text (base64), long English HTML (quoted-printable, soft breaks),
   * an owner alert (Auto-Submitted, Reply-To) with a REQUEST calendar */
  struct buf html = {0};
  for (int i = 0; i < 40; i++)
    assert_int_equal(
        buf_printf(&html, "<p style=\"margin:0\">line %d with trailing space </p>\n", i), 0);
  const char *cal = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nSUMMARY:回电 王小明\r\nEND:VCALENDAR\r\n";
  const char *text = "王小明，您好：\n您的合同 C-1 将于2027年3月1日到期。\n";
  struct email e = {
      .from_addr = "renewd@example.com",
      .reply_to = "Sales Desk <sales@example.com>",
      .to_name = "王小明",
      .to_addr = "wang@example.cn",
      .subject = "您的企业支持计划将于2027年3月1日到期",
      .date = 1800000000,
      .idem_key = "rk-00000000000000000000000000000001",
      .msgid_host = "mail.example.org",
      .text = text,
      .html = html.data,
      .calendar = cal,
      .calendar_method = "REQUEST",
      .calendar_filename = "invite.ics",
      .auto_submitted = true,
  };
  _cleanup_free_ char *m = NULL;
  assert_int_equal(email_format(&e, &m, NULL), 0);
  check_lines(m);
  /* headers */
  assert_non_null(strstr(m, "From: renewd@example.com\r\n"));
  assert_non_null(strstr(m, "Reply-To: Sales Desk <sales@example.com>\r\n"));
  assert_non_null(strstr(m, "To: =?UTF-8?B?546L5bCP5piO?= <wang@example.cn>\r\n"));
  assert_non_null(strstr(m, "Subject: =?UTF-8?B?"));
  assert_non_null(
      strstr(m, "Message-ID: <rk-00000000000000000000000000000001@mail.example.org>\r\n"));
  assert_non_null(strstr(m, "Auto-Submitted: auto-generated\r\n"));
  assert_null(strstr(m, "List-Unsubscribe"));
  /* structure: mixed(alternative(plain, html), calendar) in this order */
  const char *mixed =
      strstr(m, "Content-Type: multipart/mixed;\r\n\tboundary=\"=_renewd_mixed_rk-");
  const char *alt =
      strstr(m, "Content-Type: multipart/alternative;\r\n\tboundary=\"=_renewd_alt_rk-");
  const char *plain =
      strstr(m, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64");
  const char *htm = strstr(
      m, "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable");
  const char *ics =
      strstr(m, "Content-Type: text/calendar; charset=utf-8; method=REQUEST; name=invite.ics\r\n"
                "Content-Transfer-Encoding: base64\r\n"
                "Content-Disposition: attachment; filename=invite.ics\r\n");
  assert_true(mixed && alt && plain && htm && ics);
  assert_true(mixed < alt && alt < plain && plain < htm && htm < ics);
  assert_non_null(strstr(m, "--=_renewd_alt_rk-00000000000000000000000000000001--\r\n"));
  size_t n = strlen(m);
  assert_true(n > 40);
  assert_string_equal(m + n -
                          strlen("\r\n--=_renewd_mixed_rk-00000000000000000000000000000001--\r\n"),
                      "\r\n--=_renewd_mixed_rk-00000000000000000000000000000001--\r\n");
  /* round trips */
  _cleanup_free_ char *t = part_body(m, "Content-Type: text/plain");
  _cleanup_free_ char *h = part_body(m, "Content-Type: text/html");
  _cleanup_free_ char *c = part_body(m, "Content-Type: text/calendar");
  assert_string_equal(t, text);
  assert_string_equal(h, html.data);
  assert_string_equal(c, cal);
  buf_free(&html);
}

static void test_format_invalid(void **state) {
  struct email ok = {
      .from_addr = "a@example.com", .to_addr = "b@example.com", .idem_key = "rk-1", .text = "x"};
  _cleanup_free_ char *m = NULL;
  assert_int_equal(email_format(&ok, &m, NULL), 0);
  struct email e;
  char *out = (char *)"untouched";
  e = ok, e.from_addr = NULL;
  assert_int_equal(email_format(&e, &out, NULL), -EINVAL);
  e = ok, e.to_addr = "not an address";
  assert_int_equal(email_format(&e, &out, NULL), -EINVAL);
  e = ok, e.idem_key = "";
  assert_int_equal(email_format(&e, &out, NULL), -EINVAL);
  e = ok, e.text = "\xff\xfe broken";
  assert_int_equal(email_format(&e, &out, NULL), -EINVAL);
  e = ok, e.subject = "line\nbreak";
  assert_int_equal(email_format(&e, &out, NULL), -EINVAL);
  e = ok, e.calendar = "BEGIN:VCALENDAR\r\n", e.calendar_method = "REQUEST; x=y";
  assert_int_equal(email_format(&e, &out, NULL), -EINVAL);
  e = ok, e.unsubscribe_url = "mailto:x@y.org";
  assert_int_equal(email_format(&e, &out, NULL), -EINVAL);
  e = ok, e.unsubscribe_url = "https://x.org/u/a>b";
  assert_int_equal(email_format(&e, &out, NULL), -EINVAL);
  e = ok, e.reply_to = "nobody";
  assert_int_equal(email_format(&e, &out, NULL), -EINVAL);
  assert_string_equal(out, "untouched");

  /* an internationalized From domain cannot be a Message-ID host */
  e = ok, e.from_addr = "renewals@bücher.example";
  assert_int_equal(email_format(&e, &out, NULL), 0);
  assert_non_null(strstr(out, "\r\nMessage-ID: <rk-1@renewd>\r\n"));
  free(out);
}

/* ---- smtp backend ---- */

static void test_queue_id(void **state) {
  static const struct {
    const char *reply, *id;
  } cases[] = {
      {"250 2.0.0 Ok: queued as 4F3k2X0abcz", "4F3k2X0abcz"},
      {"250 2.0.0 Ok: queued as Q00002147X", "Q00002147X"},
      {"250 OK id=1tXyz-000abc-AB", "1tXyz-000abc-AB"},
      {"250 2.0.0 <20270115.abc@mx> Queued as <ABC123DEF>", "ABC123DEF"},
      {"250 Ok", ""},
      {"250 OK queued as", ""},
      {"250 2.0.0 Ok: queued as ab", ""}, /* too short to be an id */
      {"", ""},
      {NULL, ""},
  };
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    char out[64] = "x";
    smtp_reply_queue_id(cases[i].reply, out, sizeof out);
    if (!streq(out, cases[i].id))
      fail_msg("'%s': '%s', expected '%s'", cases[i].reply ? cases[i].reply : "(null)", out,
               cases[i].id);
  }
  char small[4];
  smtp_reply_queue_id("250 Ok: queued as 4F3k2X0abcz", small, sizeof small);
  assert_string_equal(small, "");
}

#define BASE "[Policy p]\nSegments=*\nTiers=notice\n[Tier notice]\nOffset=-P30D\nChannels=email\n"

static void check_channel_errors(const char *channels, const char *const *expected) {
  _cleanup_free_ char *text = strprintf(BASE "%s", channels);
  struct config *cfg = NULL;
  struct config_errors errs = {0};
  assert_int_equal(config_load_string("t.conf", text, NULL, &cfg, &errs), 0);
  const struct config_channel *ch = config_channel(cfg, "email");
  assert_non_null(ch);
  struct notify_env env = {.cfg = cfg};
  int r = notifier_smtp_ops.check_config(ch, &env, &errs);
  size_t n = 0;
  while (expected[n])
    n++;
  if (errs.n != n) {
    config_errors_print(&errs, stderr);
    fail_msg("%zu errors, expected %zu", errs.n, n);
  }
  assert_int_equal(r, n ? -EINVAL : 0);
  for (size_t i = 0; i < n; i++) {
    _cleanup_free_ char *got =
        strprintf("%s:%u: %s", errs.v[i].file, errs.v[i].line, errs.v[i].message);
    assert_string_equal(got, expected[i]);
  }
  config_errors_clear(&errs);
  config_free(cfg);
}

static void test_check_config(void **state) {
  /* lines: BASE is 6 lines, [Channel email] is line 7 */
  check_channel_errors("[Channel email]\nType=smtp\nURL=smtps://mail.example.com:465/relay\n"
                       "From=R <r@example.com>\nReplyTo=x@example.com\nUsername=u\n"
                       "PasswordFile=smtp-password\nRequireTLS=no\nCAFile=/etc/ca.pem\n"
                       "TLSVerify=yes\nCalendar=no\nCalendarAlarm=-PT15H\nMaxConcurrent=2\n",
                       (const char *const[]){NULL});
  check_channel_errors(
      "[Channel email]\nType=smtp\nURL=http://mail.example.com\nFrom=nobody\nReplyTo=<x>\n"
      "Username=u\nRequireTLS=maybe\nCAFile=ca.pem\nCalendarAlarm=yesterday\nFrobnicate=1\n",
      (const char *const[]){
          "t.conf:16: [Channel email] Frobnicate=: unknown key for Type=smtp",
          "t.conf:9: [Channel email] URL=: scheme http: is not smtp:// or smtps://",
          "t.conf:10: [Channel email] From=: expected an email address, e.g. Name "
          "<renewals@example.com>",
          "t.conf:11: [Channel email] ReplyTo=: expected an email address, e.g. Name "
          "<renewals@example.com>",
          "t.conf:15: [Channel email] CalendarAlarm=: expected an RFC 5545 duration relative to "
          "the start of the deadline day (e.g. -P1D, -PT15H) or none",
          "t.conf:12: [Channel email] Username=: needs PasswordFile=",
          "t.conf:13: [Channel email] RequireTLS=: expected yes or no",
          "t.conf:14: [Channel email] CAFile=: must be an absolute path", NULL});
  check_channel_errors(
      "[Channel email]\nType=smtp\nPasswordFile=a/b\n",
      (const char *const[]){"t.conf:7: [Channel email]: URL= is required for Type=smtp",
                            "t.conf:7: [Channel email]: From= is required for Type=smtp",
                            "t.conf:9: [Channel email] PasswordFile=: must be an absolute path or "
                            "a credential name",
                            "t.conf:9: [Channel email] PasswordFile=: needs Username=", NULL});
  /* ReturnPath=: one {key}, an addr-spec after substitution, local part <= 64 */
  check_channel_errors("[Channel email]\nType=smtp\nURL=smtp://m.example.com\nFrom=a@example.com\n"
                       "ReturnPath=bounces+{key}@example.com\n",
                       (const char *const[]){NULL});
  check_channel_errors(
      "[Channel email]\nType=smtp\nURL=smtp://m.example.com\nFrom=a@example.com\n"
      "ReturnPath=bounces@example.com\n",
      (const char *const[]){"t.conf:11: [Channel email] ReturnPath=: must hold {key} exactly once, "
                            "e.g. bounces+{key}@example.com",
                            NULL});
  check_channel_errors(
      "[Channel email]\nType=smtp\nURL=smtp://m.example.com\nFrom=a@example.com\n"
      "ReturnPath={key}+{key}@example.com\n",
      (const char *const[]){"t.conf:11: [Channel email] ReturnPath=: must hold {key} exactly once, "
                            "e.g. bounces+{key}@example.com",
                            NULL});
  check_channel_errors(
      "[Channel email]\nType=smtp\nURL=smtp://m.example.com\nFrom=a@example.com\n"
      "ReturnPath=bounces {key}@example.com\n",
      (const char *const[]){"t.conf:11: [Channel email] ReturnPath=: 'bounces "
                            "rk-00000000000000000000000000000000@example.com' is not an email "
                            "address (addr-spec)",
                            NULL});
  check_channel_errors(
      "[Channel email]\nType=smtp\nURL=smtp://m.example.com\nFrom=a@example.com\n"
      "ReturnPath=renewal-notices-bounce-handler+{key}@example.com\n",
      (const char *const[]){"t.conf:11: [Channel email] ReturnPath=: the local part of "
                            "'renewal-notices-bounce-handler+rk-00000000000000000000000000000000@"
                            "example.com' is longer than 64 characters",
                            NULL});
  check_channel_errors("[Channel email]\nType=smtp\nURL=not a url\nFrom=a@example.com\n",
                       (const char *const[]){"t.conf:9: [Channel email] URL=: expected "
                                             "smtp://HOST[:PORT] or smtps://HOST[:PORT]",
                                             NULL});
}

/* The VERP sender and the Feedback-ID value a row gets. */
static void test_return_path(void **state) {
  char tok[64], err[256] = "";
  assert_int_equal(mail_key_token("rk-0123456789abcdef0123456789abcdef", tok, sizeof tok), 0);
  assert_string_equal(tok, "rk-0123456789abcdef0123456789abcdef");
  assert_int_equal(mail_key_token("0a-b", tok, sizeof tok), 0);
  assert_string_equal(tok, "rk-0a-b");
  assert_int_equal(mail_key_token("rk-ABC", tok, sizeof tok), -EINVAL);
  assert_int_equal(mail_key_token("rk-a_b", tok, sizeof tok), -EINVAL);
  assert_int_equal(mail_key_token("rk-", tok, sizeof tok), -EINVAL);
  assert_int_equal(mail_key_token("rk-abcdef", tok, 8), -EINVAL);

  _cleanup_free_ char *a = NULL;
  assert_int_equal(mail_return_path("bounces+{key}@example.com",
                                    "rk-0123456789abcdef0123456789abcdef", &a, err, sizeof err),
                   0);
  assert_string_equal(a, "bounces+rk-0123456789abcdef0123456789abcdef@example.com");
  char *untouched = (char *)"x";
  assert_int_equal(mail_return_path("b+{key}@example.com", "rk-A", &untouched, err, sizeof err),
                   -EINVAL);
  assert_string_equal(untouched, "x");
  assert_int_equal(mail_return_path("b+{key}@localhost", "rk-a", &untouched, err, sizeof err),
                   -EINVAL);
  assert_int_equal(mail_return_path("{key}@{key}.example.com", "rk-a", &untouched, err, sizeof err),
                   -EINVAL);

  char fb[MAIL_FEEDBACK_ID_MAX];
  mail_feedback_id("standard", "notice", "smb", fb, sizeof fb);
  assert_string_equal(fb, "standard:notice:smb:renewd");
  mail_feedback_id("Enterprise EU", "last:call", NULL, fb, sizeof fb);
  assert_string_equal(fb, "Enterprise-EU:last-call:none:renewd");
  mail_feedback_id("",
                   "n\xc3\xa4"
                   "chste",
                   "a.b_c-d", fb, sizeof fb);
  assert_string_equal(fb, "none:n--chste:a.b_c-d:renewd");
  mail_feedback_id("0123456789012345678901234567890123456789-cut", "t", "s", fb, sizeof fb);
  assert_string_equal(fb, "0123456789012345678901234567890123456789:t:s:renewd");
}

/* The templates each tier of config/renewd.conf.example needs, checked by the
 * backend against a template directory. */
static void test_check_templates(void **state) {
  struct config *cfg = NULL;
  struct config_errors errs = {0};
  assert_int_equal(config_load(TEST_SRC_DIR "/../config/renewd.conf.example", NULL, &cfg, &errs),
                   0);
  struct templates *t = NULL;
  assert_int_equal(templates_open(SHIPPED, &t, NULL, 0), 0);
  struct notify_env env = {.cfg = cfg, .templates = t};
  for (size_t i = 0; i < cfg->n_channels; i++)
    if (streq(cfg->channels[i].type, "smtp"))
      assert_int_equal(notifier_smtp_ops.check_config(&cfg->channels[i], &env, &errs), 0);
  if (errs.n)
    config_errors_print(&errs, stderr);
  assert_int_equal(errs.n, 0);
  templates_free(t);

  /* a directory without reminder.subject and with a broken partial */
  char dir[] = "/tmp/renewd-test-email-XXXXXX";
  assert_non_null(mkdtemp(dir));
  _cleanup_free_ char *cmd = strprintf("cp -r %s/en %s/en && rm %s/en/reminder.subject.mustache && "
                                       "printf '{{#x}}\\n' > %s/en/partials/company.mustache",
                                       SHIPPED, dir, dir, dir);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(templates_open(dir, &t, NULL, 0), 0);
  env.templates = t;
  assert_int_equal(notifier_smtp_ops.check_config(config_channel(cfg, "email"), &env, &errs),
                   -EINVAL);
  assert_true(errs.n >= 2);
  _cleanup_free_ char *e0 =
      strprintf("%s:%u: %s", errs.v[0].file, errs.v[0].line, errs.v[0].message);
  assert_non_null(strstr(e0, "[Channel email]: tier 'reminder' sends template 'reminder' by "
                             "email, but there is no en/reminder.subject.mustache"));
  bool saw_partial = false;
  for (size_t i = 1; i < errs.n; i++)
    if (strstr(errs.v[i].file, "/en/partials/company.mustache") && errs.v[i].line == 1 &&
        strstr(errs.v[i].message, "not closed"))
      saw_partial = true;
  if (!saw_partial)
    config_errors_print(&errs, stderr);
  assert_true(saw_partial);
  config_errors_clear(&errs);
  templates_free(t);
  cmd = (free(cmd), strprintf("rm -rf %s", dir));
  assert_int_equal(system(cmd), 0);
  config_free(cfg);
}

/* ---- shipped templates ---- */

struct problems {
  struct buf text;
  unsigned n;
};

static void collect(void *ud, const char *file, unsigned line, const char *msg) {
  struct problems *p = ud;
  buf_printf(&p->text, "%s:%u: %s\n", file, line, msg);
  p->n++;
}

static void test_shipped_check(void **state) {
  struct templates *t = NULL;
  char err[256] = "";
  assert_int_equal(templates_open(SHIPPED, &t, err, sizeof err), 0);
  struct problems p = {0};
  int r = templates_check(t, collect, &p);
  if (p.n)
    fail_msg("%s", p.text.data);
  assert_int_equal(r, 0);
  templates_free(t);
  buf_free(&p.text);
}

static void test_check_broken_dir(void **state) {
  char dir[] = "/tmp/renewd-test-email-XXXXXX";
  assert_non_null(mkdtemp(dir));
  _cleanup_free_ char *cmd =
      strprintf("mkdir -p %s/en/partials %s/zh && cd %s && "
                "printf 'ok {{>footer}}\\n{{>nowhere}}\\n' > en/a.text.mustache && "
                "printf 'x\\n\\n{{#open}}\\n' > en/b.html.mustache && "
                "printf 'zh {{>footer}} {{<layout}}{{/layout}}' > zh/a.text.mustache && "
                "printf 'F' > en/partials/footer.mustache && "
                "printf 'x' > en/nopart.mustache && printf 'x' > en/README",
                dir, dir, dir);
  assert_int_equal(system(cmd), 0);
  struct templates *t = NULL;
  assert_int_equal(templates_open(dir, &t, NULL, 0), 0);
  struct problems p = {0};
  assert_int_equal(templates_check(t, collect, &p), -EINVAL);
  /* order within a directory is readdir's: compare as a set */
  const char *expected[] = {
      "/en/a.text.mustache:2: partial 'nowhere' not found (looked for partials/nowhere.mustache "
      "in en)\n",
      "/en/b.html.mustache:3: section 'open' is not closed\n",
      "/en/nopart.mustache:0: not named NAME.PART.mustache (e.g. notice.text.mustache)\n",
      "/zh/a.text.mustache:1: partial 'layout' not found (looked for partials/layout.mustache in "
      "zh and its fallbacks)\n",
  };
  for (size_t i = 0; i < ELEMENTSOF(expected); i++) {
    _cleanup_free_ char *line = strprintf("%s%s", dir, expected[i]);
    if (!strstr(p.text.data, line))
      fail_msg("missing: %s\nin:\n%s", line, p.text.data);
  }
  assert_int_equal(p.n, ELEMENTSOF(expected));
  templates_free(t);
  buf_free(&p.text);
  cmd = (free(cmd), strprintf("rm -rf %s", dir));
  assert_int_equal(system(cmd), 0);
}

/* A context like notifiers/render.c builds. */
static json_t *context(const char *locale, bool owner) {
  json_t *d = json_pack(
      "{s:{s:s, s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s, s:i, s:i}, s:{s:s, s:i, s:i, s:s},"
      " s:{s:s, s:s}, s:[{s:s, s:i, s:i, s:s, s:s, s:s, s:s}], s:[{s:s, s:s, s:s, s:s}],"
      " s:{s:i, s:s, s:s, s:s, s:s, s:i, s:s}}",
      "customer", "id", "K-1", "name", "Jane <Doe> & Co", "email", "jane@example.com", "phone",
      "+4915112345678", "locale", locale, "contract", "id", "C-1", "product", "Cloud Backup",
      "value", "1,200.50 EUR", "expiry", "14 February 2031", "expiry_iso", "2031-02-14",
      "days_left", 30, "term", 1, "tier", "name", "notice", "step", 0, "repeat", 1, "audience",
      owner ? "owner" : "customer", "owner", "name", "Alice Owner", "email", "alice@example.com",
      "history", "tier", "notice", "step", 0, "repeat", 1, "channel", "email", "audience",
      "customer", "status", "sent", "at", "2031-01-16T09:00:00Z", "responses", "kind", "callback",
      "at", "2031-01-17T10:00:00Z", "until", "2031-01-18T14:00:00Z", "detail", "after 2 pm please",
      "alert", "reminder_id", 4711, "tier", "notice", "channel", "email", "recipient",
      "jane@example.com", "error", "550 5.1.1 unknown user", "attempts", 1, "audience", "customer");
  assert_non_null(d);
  json_t *links = json_object();
  static const char *const keys[] = {"renew",       "decline", "snooze", "callback",
                                     "unsubscribe", "renewed", "lost"};
  for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
    _cleanup_free_ char *u = strprintf("https://renew.test/r/tok-%s", keys[i]);
    json_object_set_new(links, keys[i], json_string(u));
  }
  json_object_set_new(d, "links", links);
  return d;
}

static void test_shipped_render(void **state) {
  static const struct {
    const char *name;
    bool owner, html, sms;
    const char *en, *zh; /* a phrase of the text part */
  } tpl[] = {
      {"early-notice", false, true, false, "An early heads-up", "提前告知"},
      {"notice", false, true, false, "expires on 14 February 2031", "将于14 February 2031到期"},
      {"reminder", false, true, true, "A reminder that your", "提醒您"},
      {"final", false, true, true, "After that date the service stops", "到期后服务将停止"},
      {"lapsed-notice", false, true, false, "It is not too late", "现在续约仍不晚"},
      {"escalation", true, true, false, "has not renewed yet", "尚未续约"},
      {"callback", true, true, false, "asked to be called", "回电"},
      {"renew-intent", true, true, false, "clicked \"Renew\"", "点击了“续约”"},
      {"customer-message", true, true, false, "answered a renewal reminder", "回复了续约提醒"},
      {"ops-alert", true, false, true, "given up (dead letter)", "死信"},
  };
  struct templates *t = NULL;
  assert_int_equal(templates_open(SHIPPED, &t, NULL, 0), 0);
  static const char *const locales[] = {"en", "zh-CN"};
  for (size_t i = 0; i < ELEMENTSOF(tpl); i++)
    for (size_t l = 0; l < ELEMENTSOF(locales); l++) {
      const char *parts[] = {"subject", "text", tpl[i].html ? "html" : NULL,
                             tpl[i].sms ? "sms" : NULL};
      json_t *d = context(locales[l], tpl[i].owner);
      for (size_t p = 0; p < ELEMENTSOF(parts); p++) {
        if (!parts[p])
          continue;
        _cleanup_free_ char *out = NULL;
        const char *used = NULL;
        char err[256] = "";
        int r =
            templates_render(t, locales[l], tpl[i].name, parts[p], d, &out, &used, err, sizeof err);
        if (r < 0)
          fail_msg("%s %s.%s: %s", locales[l], tpl[i].name, parts[p], err);
        /* every locale has its own file of every part */
        assert_string_equal(used, l == 0 ? "en" : "zh");
        assert_null(strstr(out, "{{"));
        if (streq(parts[p], "subject")) /* one line (the file's final newline aside) */
          assert_true(!strchr(out, '\n') || strchr(out, '\n') == out + strlen(out) - 1);
        if (streq(parts[p], "text")) {
          if (!strstr(out, l == 0 ? tpl[i].en : tpl[i].zh))
            fail_msg("%s %s.text lacks '%s':\n%s", locales[l], tpl[i].name,
                     l == 0 ? tpl[i].en : tpl[i].zh, out);
          assert_non_null(strstr(out, "C-1"));
          if (!tpl[i].owner)
            assert_non_null(strstr(out, "https://renew.test/r/tok-unsubscribe"));
          else if (!streq(tpl[i].name, "ops-alert"))
            assert_non_null(strstr(out, "https://renew.test/r/tok-renewed"));
          if (strstr(tpl[i].name, "notice") || streq(tpl[i].name, "reminder") ||
              streq(tpl[i].name, "final"))
            assert_non_null(strstr(out, "Jane <Doe> & Co")); /* not escaped in text */
        }
        if (streq(parts[p], "html")) {
          assert_non_null(strstr(out, "<!DOCTYPE html>"));
          assert_non_null(strstr(out, l == 0 ? "<html lang=\"en\">" : "<html lang=\"zh-Hans\">"));
          assert_non_null(strstr(out, "Jane &lt;Doe&gt; &amp; Co"));
          assert_null(strstr(out, "Jane <Doe>"));
          assert_non_null(strstr(out, "name=\"viewport\""));
          assert_non_null(strstr(out, "Example Renewals")); /* company partial from en/ */
          assert_non_null(strstr(out, tpl[i].owner ? "href=\"https://renew.test/r/tok-renewed\""
                                                   : "href=\"https://renew.test/r/tok-renew\""));
        }
        if (streq(parts[p], "sms"))
          assert_true(strlen(out) < 200);
      }
      json_decref(d);
    }
  templates_free(t);
}

/* The message mail_format_channel() builds from a rendered sample: the same code the
 * backend sends with. */
static void test_smtp_format(void **state) {
  _cleanup_free_ char *conf = strprintf(
      "[Daemon]\nTemplates=%s\nPublicURL=https://renew.test\nTimeZone=UTC\n" BASE
      "[Channel email]\nType=smtp\nURL=smtp://127.0.0.1:25\n"
      "From=Example Renewals <renewals@example.com>\nReplyTo=renewals@example.com\n"
      "CalendarAlarm=-PT15H\n"
      "[Channel nocal]\nType=smtp\nURL=smtp://127.0.0.1:25\nFrom=a@example.com\nCalendar=no\n",
      SHIPPED);
  struct cal *cal = NULL;
  struct config *cfg = NULL;
  struct config_errors errs = {0};
  struct render *rd = NULL;
  assert_int_equal(cal_new(&cal), 0);
  assert_int_equal(config_load_string("t.conf", conf, cal, &cfg, &errs), 0);
  assert_int_equal(render_new(cfg, cal, &rd, NULL, 0), 0);
  const int64_t now = 1800000000;
  char err[256] = "";

  /* a customer notice: deadline event with the configured alarm */
  struct message m = {0};
  assert_int_equal(render_sample(rd, "notice", "notice", AUDIENCE_CUSTOMER, NOTIFY_EMAIL,
                                 "max@example.com", now, &m, err, sizeof err),
                   0);
  struct reminder row = {.contract_id = (char *)"C-2027-000123",
                         .term = 1,
                         .tier = (char *)"notice",
                         .channel = (char *)"email",
                         .audience = (char *)"customer",
                         .recipient = (char *)"max@example.com"};
  snprintf(row.idem_key, sizeof row.idem_key, "rk-%032x", 7);
  struct notify_request req = {.row = &row, .msg = &m, .kind = NOTIFY_EMAIL, .now = now};
  _cleanup_free_ char *out = NULL;
  size_t len = 0;
  assert_int_equal(
      mail_format_channel(config_channel(cfg, "email"), &req, &out, &len, err, sizeof err), 0);
  check_lines(out);
  assert_non_null(strstr(out, "Message-ID: <rk-00000000000000000000000000000007@example.com>\r\n"));
  assert_non_null(strstr(out, "Reply-To: renewals@example.com\r\n"));
  /* sample data is signed with a throwaway key, never unsigned */
  assert_non_null(strstr(out, "List-Unsubscribe: <https://renew.test/u/v1."));
  assert_null(strstr(out, "unsigned"));
  assert_non_null(strstr(out, "X-Renewd-Contract: C-2027-000123\r\n"));
  assert_null(strstr(out, "Auto-Submitted"));
  /* Gmail's feedback loop: policy:tier:segment (the sample customer is "smb") */
  assert_non_null(strstr(out, "\r\nFeedback-ID: p:notice:smb:renewd\r\n"));
  assert_null(strstr(out, "Return-Path"));
  _cleanup_free_ char *ics = part_body(out, "Content-Type: text/calendar");
  assert_non_null(strstr(ics, "METHOD:PUBLISH\r\n"));
  assert_non_null(strstr(ics, "UID:renewal-C-2027-000123-1@example.com\r\n"));
  assert_non_null(strstr(ics, "DTSTART;VALUE=DATE:20270214\r\n")); /* now + 30 days, last day */
  assert_non_null(strstr(ics, "TRIGGER:-PT15H\r\n"));
  _cleanup_free_ char *text = part_body(out, "Content-Type: text/plain");
  assert_string_equal(text, m.text);

  /* Calendar=no: no calendar part, just the alternative */
  free(out);
  out = NULL;
  assert_int_equal(
      mail_format_channel(config_channel(cfg, "nocal"), &req, &out, &len, err, sizeof err), 0);
  assert_null(strstr(out, "text/calendar"));
  assert_null(strstr(out, "multipart/mixed"));
  assert_non_null(strstr(out, "multipart/alternative"));
  message_clear(&m);

  /* owner callback: a meeting request at the preferred time (placeholder:
   * tomorrow at the next full hour); Auto-Submitted, no List-Unsubscribe */
  assert_int_equal(render_sample(rd, "callback", "callback", AUDIENCE_OWNER, NOTIFY_EMAIL,
                                 "sales@example.com", now, &m, err, sizeof err),
                   0);
  row.tier = (char *)"callback";
  row.audience = (char *)"owner";
  row.recipient = (char *)"sales@example.com";
  free(out);
  out = NULL;
  assert_int_equal(
      mail_format_channel(config_channel(cfg, "email"), &req, &out, &len, err, sizeof err), 0);
  assert_non_null(strstr(out, "Auto-Submitted: auto-generated\r\n"));
  assert_null(strstr(out, "List-Unsubscribe"));
  assert_null(strstr(out, "Feedback-ID"));
  assert_non_null(strstr(out, "method=REQUEST; name=invite.ics\r\n"));
  free(ics);
  ics = part_body(out, "Content-Type: text/calendar");
  assert_non_null(strstr(ics, "METHOD:REQUEST\r\n"));
  /* 1800000000 = 2027-01-15T08:00:00Z: +1 day, already a full hour */
  assert_non_null(strstr(ics, "DTSTART:20270116T080000Z\r\n"));
  assert_non_null(strstr(ics, "DTEND:20270116T083000Z\r\n"));
  assert_non_null(strstr(ics, "ORGANIZER;CN=Example Renewals:mailto:renewals@example.com\r\n"));
  message_clear(&m);

  /* ops alert: no calendar; an SMS recipient is refused */
  assert_int_equal(render_sample(rd, RENDER_OPS_TIER, RENDER_OPS_TIER, AUDIENCE_OWNER, NOTIFY_EMAIL,
                                 "ops@example.com", now, &m, err, sizeof err),
                   0);
  row.tier = (char *)RENDER_OPS_TIER;
  row.recipient = (char *)"ops@example.com";
  free(out);
  out = NULL;
  assert_int_equal(
      mail_format_channel(config_channel(cfg, "email"), &req, &out, &len, err, sizeof err), 0);
  assert_null(strstr(out, "text/calendar"));
  row.recipient = (char *)"+4915112345678";
  char *untouched = (char *)"x";
  assert_int_equal(
      mail_format_channel(config_channel(cfg, "email"), &req, &untouched, &len, err, sizeof err),
      -EINVAL);
  assert_string_equal(err, "recipient '+4915112345678' is not an email address");
  assert_string_equal(untouched, "x");
  message_clear(&m);

  render_free(rd);
  config_free(cfg);
  config_errors_clear(&errs);
  cal_free(cal);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_address),    cmocka_unit_test(test_format_plain_exact),
      cmocka_unit_test(test_format_full),      cmocka_unit_test(test_format_invalid),
      cmocka_unit_test(test_queue_id),         cmocka_unit_test(test_check_config),
      cmocka_unit_test(test_check_templates),  cmocka_unit_test(test_shipped_check),
      cmocka_unit_test(test_check_broken_dir), cmocka_unit_test(test_shipped_render),
      cmocka_unit_test(test_smtp_format),      cmocka_unit_test(test_return_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
