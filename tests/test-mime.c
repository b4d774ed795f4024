/* Unit tests for notifiers/mime: encoded-word headers, folding, address
 * headers, Date, Message-ID, email syntax.
 *
 * The exact header texts below were produced by this module and checked with
 * python3: the unfolded value decodes back to the input with
 * str(email.header.make_header(email.header.decode_header(v))), address
 * headers parse to the same (display name, address) pairs with
 * email.message_from_bytes(..., policy=email.policy.default), every line is
 * <= 76 characters and every encoded-word decodes to whole UTF-8 on its own.
 * Python's own Header("王小明", "utf-8").encode() gives the same base64
 * ("=?utf-8?b?546L5bCP5piO?="), and email.utils.format_datetime() the same
 * dates. A C round-trip decoder below repeats the checks on generated text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/util.h"
#include "notifiers/mime.h"

/* ---- a small RFC 2047 "B" decoder for round trips ---- */

static int b64v(char c) {
  const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const char *p = c ? strchr(a, c) : NULL;
  return p ? (int)(p - a) : -1;
}

/* Checks the line rules of a folded header "Name: ..." and returns its
 * unfolded value with encoded-words decoded (caller frees). */
static char *unfold_decode(const char *hdr, const char *name) {
  /* Lines: <= 76 characters, CRLF always followed by SP and more text. */
  for (const char *l = hdr;;) {
    const char *e = strstr(l, "\r\n");
    size_t len = e ? (size_t)(e - l) : strlen(l);
    assert_true(len <= MIME_LINE_MAX);
    assert_null(memchr(l, '\r', len));
    assert_null(memchr(l, '\n', len));
    if (l != hdr) {
      assert_int_equal(l[0], ' ');
      assert_true(len > 1);
    }
    if (!e)
      break;
    l = e + 2;
  }
  size_t nlen = strlen(name);
  assert_memory_equal(hdr, name, nlen);
  assert_memory_equal(hdr + nlen, ": ", 2);

  struct buf out = {0};
  bool prev_word = false;
  for (const char *p = hdr + nlen + 2; *p;) {
    if (strncmp(p, "\r\n", 2) == 0) {
      p += 2;
      continue;
    }
    const char *sp = p;
    while (*p == ' ')
      p++;
    if (strncmp(p, "=?UTF-8?B?", 10) == 0) {
      const char *end = strstr(p + 10, "?=");
      assert_non_null(end);
      assert_true(end + 2 - p <= MIME_WORD_MAX);
      if (!prev_word) /* whitespace between two encoded-words is dropped */
        assert_int_equal(buf_append(&out, sp, (size_t)(p - sp)), 0);
      uint32_t acc = 0;
      int bits = 0;
      size_t start = out.len;
      for (const char *q = p + 10; q < end; q++) {
        if (*q == '=')
          break;
        int v = b64v(*q);
        assert_true(v >= 0);
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
          bits -= 8;
          char c = (char)(acc >> bits);
          assert_int_equal(buf_append(&out, &c, 1), 0);
        }
      }
      /* Each word holds whole characters: it starts on a lead byte and its
       * last sequence is complete. */
      if (out.len > start) {
        assert_true(((unsigned char)out.data[start] & 0xC0) != 0x80);
        size_t k = out.len - 1;
        while (k > start && ((unsigned char)out.data[k] & 0xC0) == 0x80)
          k--;
        unsigned char lead = (unsigned char)out.data[k];
        size_t need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
        assert_int_equal(out.len - k, need);
      }
      p = end + 2;
      prev_word = true;
    } else {
      const char *e = p + strcspn(p, " \r");
      assert_int_equal(buf_append(&out, sp, (size_t)(e - sp)), 0);
      p = e;
      prev_word = false;
    }
  }
  return buf_steal(&out);
}

static void roundtrip(const char *name, const char *value) {
  _cleanup_free_ char *h = NULL;
  assert_int_equal(mime_header(name, value, &h), 0);
  _cleanup_free_ char *v = unfold_decode(h, name);
  assert_string_equal(v, value);
}

/* ---- unstructured headers ---- */

static void test_header_vectors(void **state) {
  static const struct {
    const char *name, *value, *expect;
  } v[] = {
      {"Subject", "Your contract expires on 1 March 2027",
       "Subject: Your contract expires on 1 March 2027"},
      {"Subject", "Ihr Vertrag läuft am 1. März 2027 ab – jetzt verlängern und 10 % sparen",
       "Subject: =?UTF-8?B?SWhyIFZlcnRyYWcgbMOkdWZ0IGFtIDEuIE3DpHJ6IDIwMjcgYWIg?=\r\n"
       " =?UTF-8?B?4oCTIGpldHp0IHZlcmzDpG5nZXJuIHVuZCAxMCAlIHNwYXJlbg==?="},
      {"Subject",
       "续约提醒：您的合同将于2027年3月1日到期，请在到期前完成续约，以免服务中断。感谢您一直以来的"
       "支持！",
       "Subject: =?UTF-8?B?57ut57qm5o+Q6YaS77ya5oKo55qE5ZCI5ZCM5bCG5LqOMjAyNw==?=\r\n"
       " =?UTF-8?B?5bm0M+aciDHml6XliLDmnJ/vvIzor7flnKjliLDmnJ/liY3lrozmiJDnu60=?=\r\n"
       " =?UTF-8?B?57qm77yM5Lul5YWN5pyN5Yqh5Lit5pat44CC5oSf6LCi5oKo5LiA55u05Lul?=\r\n"
       " =?UTF-8?B?5p2l55qE5pSv5oyB77yB?="},
      {"Subject", "Renewal 😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀",
       "Subject: =?UTF-8?B?UmVuZXdhbCDwn5iA8J+YgPCfmIDwn5iA8J+YgPCfmIDwn5iA?=\r\n"
       " =?UTF-8?B?8J+YgPCfmIDwn5iA8J+YgPCfmIDwn5iA8J+YgPCfmIDwn5iA8J+YgPCfmIA=?=\r\n"
       " =?UTF-8?B?8J+YgPCfmIDwn5iA8J+YgPCfmIDwn5iA?="},
      /* ASCII folds at an existing space. */
      {"Subject",
       "A rather long but entirely ASCII subject line that has to be folded somewhere near the end",
       "Subject: A rather long but entirely ASCII subject line that has to be folded\r\n"
       " somewhere near the end"},
      /* ASCII that a reader would decode is encoded instead. */
      {"Subject", "Looks like =?UTF-8?B?Zm9v?= but is plain",
       "Subject: =?UTF-8?B?TG9va3MgbGlrZSA9P1VURi04P0I/Wm05dj89IGJ1dCBpcyBwbGFp?=\r\n"
       " =?UTF-8?B?bg==?="},
      {"X-Renewd-Contract-Reference-Long-Header-Name", "überall",
       "X-Renewd-Contract-Reference-Long-Header-Name: =?UTF-8?B?w7xiZXJhbGw=?="},
      {"Subject", "two  spaces and\ttab", "Subject: two  spaces and\ttab"},
      {"Subject", "", "Subject: "},
      {"Subject", "王小明", "Subject: =?UTF-8?B?546L5bCP5piO?="},
  };
  for (size_t i = 0; i < ELEMENTSOF(v); i++) {
    _cleanup_free_ char *h = NULL;
    assert_int_equal(mime_header(v[i].name, v[i].value, &h), 0);
    assert_string_equal(h, v[i].expect);
    _cleanup_free_ char *d = unfold_decode(h, v[i].name);
    assert_string_equal(d, v[i].value);
  }
}

static void test_header_roundtrip(void **state) {
  /* Characters of every UTF-8 length, at every offset against the 45-byte
   * word payload, after header names of many lengths. */
  static const char *pieces[] = {"a", "ä", "€", "😀", " ", "续"};
  char name[40];
  for (size_t nl = 1; nl < 30; nl += 7) {
    memset(name, 'X', nl);
    name[nl] = 0;
    for (size_t k = 0; k < ELEMENTSOF(pieces); k++)
      for (size_t n = 1; n < 70; n += 3) {
        struct buf b = {0};
        for (size_t i = 0; i < n; i++)
          assert_int_equal(buf_puts(&b, pieces[(k + i * (i % 3 + 1)) % ELEMENTSOF(pieces)]), 0);
        _cleanup_free_ char *s = buf_steal(&b);
        roundtrip(name, s);
      }
  }
  /* A single over-long ASCII word is encoded so that it can be folded. */
  char longword[101];
  memset(longword, 'x', 100);
  longword[100] = 0;
  roundtrip("Subject", longword);
}

static void test_header_invalid(void **state) {
  static const char *bad_values[] = {
      "a\r\nBcc: victim@example.com",
      "a\nb",
      "a\rb",
      "bell\a",
      "del\x7f",
      "\xC3(",
      "\xED\xA0\x80",
      "\xC0\xAF",
  };
  char *h = (char *)"untouched";
  for (size_t i = 0; i < ELEMENTSOF(bad_values); i++)
    assert_int_equal(mime_header("Subject", bad_values[i], &h), -EINVAL);
  assert_int_equal(mime_header("Sub ject", "x", &h), -EINVAL);
  assert_int_equal(mime_header("Subject:", "x", &h), -EINVAL);
  assert_int_equal(mime_header("", "x", &h), -EINVAL);
  assert_int_equal(mime_header(NULL, "x", &h), -EINVAL);
  assert_int_equal(mime_header("Subject", NULL, &h), -EINVAL);
  assert_string_equal(h, "untouched");
}

/* ---- address headers ---- */

static void test_addresses(void **state) {
  static const struct {
    const char *hname;
    struct mime_address a[3];
    size_t n;
    const char *expect;
  } v[] = {
      {"To", {{"王小明", "wang@example.cn"}}, 1, "To: =?UTF-8?B?546L5bCP5piO?= <wang@example.cn>"},
      {"From",
       {{"Acme Renewals", "renewals@acme.example"}},
       1,
       "From: Acme Renewals <renewals@acme.example>"},
      {"To", {{"Smith, John", "john@example.com"}}, 1, "To: \"Smith, John\" <john@example.com>"},
      {"To",
       {{"J. \"Jo\" O'Brien\\x", "jo@example.ie"}},
       1,
       "To: \"J. \\\"Jo\\\" O'Brien\\\\x\" <jo@example.ie>"},
      {"To", {{NULL, "bare@example.com"}}, 1, "To: bare@example.com"},
      {"To", {{"", "bare@example.com"}}, 1, "To: bare@example.com"},
      {"Cc",
       {{"Müller-Lüdenscheidt, Hans-Jürgen", "hj@example.de"},
        {NULL, "ops@example.com"},
        {"李四", "li@example.cn"}},
       3,
       "Cc: =?UTF-8?B?TcO8bGxlci1Mw7xkZW5zY2hlaWR0LCBIYW5zLUrDvHJnZW4=?=\r\n"
       " <hj@example.de>, ops@example.com, =?UTF-8?B?5p2O5Zub?= <li@example.cn>"},
  };
  for (size_t i = 0; i < ELEMENTSOF(v); i++) {
    _cleanup_free_ char *h = NULL;
    assert_int_equal(mime_header_addresses(v[i].hname, v[i].a, v[i].n, &h), 0);
    assert_string_equal(h, v[i].expect);
  }

  char *h = (char *)"untouched";
  struct mime_address bad[] = {
      {"x", "not-an-email"},
      {"x", "a@example.com>, evil@example.com"},
      {"bad\nname", "a@example.com"},
      {"x", NULL},
  };
  for (size_t i = 0; i < ELEMENTSOF(bad); i++)
    assert_int_equal(mime_header_addresses("To", &bad[i], 1, &h), -EINVAL);
  assert_int_equal(mime_header_addresses("To", bad, 0, &h), -EINVAL);
  assert_string_equal(h, "untouched");
}

/* ---- Date, Message-ID ---- */

static void test_date(void **state) {
  /* python: email.utils.format_datetime(datetime.fromtimestamp(t, timezone.utc)) */
  static const struct {
    int64_t t;
    const char *s;
  } v[] = {
      {0, "Thu, 01 Jan 1970 00:00:00 +0000"},
      {1795379487, "Sun, 22 Nov 2026 20:31:27 +0000"},
      {951782400, "Tue, 29 Feb 2000 00:00:00 +0000"},
      {4102444799, "Thu, 31 Dec 2099 23:59:59 +0000"},
      {253402300799, "Fri, 31 Dec 9999 23:59:59 +0000"},
  };
  char out[MIME_DATE_MAX];
  for (size_t i = 0; i < ELEMENTSOF(v); i++) {
    assert_int_equal(mime_date(v[i].t, out), 0);
    assert_string_equal(out, v[i].s);
  }
  strcpy(out, "untouched");
  assert_int_equal(mime_date(253402300800, out), -ERANGE); /* year 10000 */
  assert_int_equal(mime_date(-2208988801, out), -ERANGE);  /* 1899 */
  assert_string_equal(out, "untouched");
}

static void test_message_id(void **state) {
  static const struct {
    const char *key, *host, *expect;
  } v[] = {
      {"c1042-t3-early-0", "renew.example.com", "<rk-c1042-t3-early-0@renew.example.com>"},
      {"01HZX3K9_a", "localhost", "<rk-01HZX3K9_a@localhost>"},
      {"C 7/term.2@x", "mx1.example.org", "<rk-C=207=2Fterm=2E2=40x@mx1.example.org>"},
      {"a=b", "h.example", "<rk-a=3Db@h.example>"}, /* '=' escaped: escaping stays injective */
      {"ü", "h.example", "<rk-=C3=BC@h.example>"},
  };
  for (size_t i = 0; i < ELEMENTSOF(v); i++) {
    _cleanup_free_ char *id = NULL;
    assert_int_equal(mime_message_id(v[i].key, v[i].host, &id), 0);
    assert_string_equal(id, v[i].expect);
  }
  char *id = (char *)"untouched";
  assert_int_equal(mime_message_id("", "h.example", &id), -EINVAL);
  assert_int_equal(mime_message_id(NULL, "h.example", &id), -EINVAL);
  assert_int_equal(mime_message_id("k", "", &id), -EINVAL);
  assert_int_equal(mime_message_id("k", "bad host", &id), -EINVAL);
  assert_int_equal(mime_message_id("k", "h..example", &id), -EINVAL);
  assert_int_equal(mime_message_id("k", ".h.example", &id), -EINVAL);
  assert_int_equal(mime_message_id("k", "h.example.", &id), -EINVAL);
  assert_int_equal(mime_message_id("k", "-h.example", &id), -EINVAL);
  assert_int_equal(mime_message_id("k", "h>evil", &id), -EINVAL);
  char big[202];
  memset(big, 'k', 201);
  big[201] = 0;
  assert_int_equal(mime_message_id(big, "h.example", &id), -EINVAL);
  assert_string_equal(id, "untouched");
  big[200] = 0;
  assert_int_equal(mime_message_id(big, "h.example", &id), 0);
  free(id);
}

/* ---- email syntax ---- */

static void test_valid_email(void **state) {
  static const struct {
    const char *s;
    bool ok;
  } v[] = {
      {"wang@example.cn", true},
      {"first.last+tag@sub.example.co.uk", true},
      {"o'brien@example.ie", true},
      {"x@a-b.example", true},
      {"user@xn--80ak6aa92e.com", true},
      {"müller@bücher.de", true}, /* SMTPUTF8 / IDN */
      {"a@b.c1", true},
      {"", false},
      {"plain", false},
      {"@example.com", false},
      {"bob@", false},
      {"bob@localhost", false}, /* one label */
      {"bob@example", false},
      {"bob@127.0.0.1", false}, /* last label all digits */
      {"bob@[127.0.0.1]", false},
      {"a b@example.com", false},
      {"ab@exa mple.com", false},
      {"a@b@example.com", false},
      {".a@example.com", false},
      {"a.@example.com", false},
      {"a..b@example.com", false},
      {"a@example..com", false},
      {"a@.example.com", false},
      {"a@example.com.", false},
      {"a@-example.com", false},
      {"a@example-.com", false},
      {"\"a\"@example.com", false},
      {"a(b)@example.com", false},
      {"a<b>@example.com", false},
      {"a@example.com\n", false},
      {"a\t@example.com", false},
      {"\xC3(@example.com", false},
      {NULL, false},
  };
  for (size_t i = 0; i < ELEMENTSOF(v); i++)
    assert_int_equal(mime_valid_email(v[i].s), v[i].ok);

  /* Lengths: local part 64, total 254. */
  char s[300];
  memset(s, 'a', 64);
  strcpy(s + 64, "@example.com");
  assert_true(mime_valid_email(s));
  memset(s, 'a', 65);
  strcpy(s + 65, "@example.com");
  assert_false(mime_valid_email(s));
  /* 11 + 3 * 64 + 47 + 4 = 254 */
  char *p = s;
  p += sprintf(p, "0123456789@");
  for (int i = 0; i < 3; i++) {
    memset(p, 'd', 63);
    p += 63;
    *p++ = '.';
  }
  memset(p, 'e', 47);
  strcpy(p + 47, ".com");
  assert_int_equal(strlen(s), 254);
  assert_true(mime_valid_email(s));
  strcpy(p + 47, ".comx");
  assert_false(mime_valid_email(s));
  /* Label of 63 ok, 64 not. */
  memset(s, 0, sizeof s);
  strcpy(s, "a@");
  memset(s + 2, 'l', 63);
  strcpy(s + 65, ".com");
  assert_true(mime_valid_email(s));
  memset(s + 2, 'l', 64);
  strcpy(s + 66, ".com");
  assert_false(mime_valid_email(s));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_header_vectors), cmocka_unit_test(test_header_roundtrip),
      cmocka_unit_test(test_header_invalid), cmocka_unit_test(test_addresses),
      cmocka_unit_test(test_date),           cmocka_unit_test(test_message_id),
      cmocka_unit_test(test_valid_email),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
