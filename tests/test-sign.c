/* Unit tests for notifiers/sign: base64 codecs, Standard Webhooks signatures,
 * Twilio request signatures and answer-link tokens.
 *
 * Expected signatures were computed independently with python3's hmac,
 * hashlib and base64 modules (the snippets are quoted next to each vector);
 * the Standard Webhooks and Twilio vectors are also the ones their own
 * documentation uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/util.h"
#include "notifiers/sign.h"

/* ---- base64 ---- */

static void test_base64_vectors(void **state) {
  /* RFC 4648 §10, plus the URL alphabet. */
  static const struct {
    const char *in, *std, *url;
  } v[] = {
      {"", "", ""},
      {"f", "Zg==", "Zg"},
      {"fo", "Zm8=", "Zm8"},
      {"foo", "Zm9v", "Zm9v"},
      {"foob", "Zm9vYg==", "Zm9vYg"},
      {"fooba", "Zm9vYmE=", "Zm9vYmE"},
      {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
      {"\xfb\xff\xfe", "+//+", "-__-"},
  };
  for (size_t i = 0; i < ELEMENTSOF(v); i++) {
    size_t len = strlen(v[i].in);
    _cleanup_free_ char *s = sign_base64_encode(v[i].in, len);
    _cleanup_free_ char *u = sign_base64url_encode(v[i].in, len);
    assert_string_equal(s, v[i].std);
    assert_string_equal(u, v[i].url);
    _cleanup_free_ uint8_t *d1 = NULL, *d2 = NULL;
    size_t l1 = 99, l2 = 99;
    assert_int_equal(sign_base64_decode(s, strlen(s), &d1, &l1), 0);
    assert_int_equal(sign_base64url_decode(u, strlen(u), &d2, &l2), 0);
    assert_int_equal(l1, len);
    assert_int_equal(l2, len);
    assert_memory_equal(d1, v[i].in, len);
    assert_memory_equal(d2, v[i].in, len);
    assert_int_equal(d1[len], 0); /* NUL after the data */
  }
}

static void test_base64_roundtrip(void **state) {
  uint8_t all[256];
  for (int i = 0; i < 256; i++)
    all[i] = (uint8_t)i;
  for (size_t len = 0; len <= sizeof all; len += 37) {
    _cleanup_free_ char *s = sign_base64_encode(all, len);
    _cleanup_free_ char *u = sign_base64url_encode(all, len);
    assert_int_equal(strlen(s), (len + 2) / 3 * 4);
    assert_null(strpbrk(u, "+/="));
    _cleanup_free_ uint8_t *a = NULL, *b = NULL;
    size_t la, lb;
    assert_int_equal(sign_base64_decode(s, strlen(s), &a, &la), 0);
    assert_int_equal(sign_base64url_decode(u, strlen(u), &b, &lb), 0);
    assert_int_equal(la, len);
    assert_int_equal(lb, len);
    assert_memory_equal(a, all, len);
    assert_memory_equal(b, all, len);
  }
}

static void test_base64_strict(void **state) {
  static const char *bad_std[] = {
      "Zg=",      /* padding incomplete */
      "Zg",       /* padding missing */
      "Zh==",     /* unused bits set: non-canonical */
      "Zm9=",     /* unused bits set */
      "Z===",     /* one character cannot encode a byte */
      "Zg==Zg==", /* padding in the middle */
      "Zm9v\n",   /* whitespace */
      "Zm-v",     /* URL alphabet in standard */
      "====",
  };
  static const char *bad_url[] = {"Zg==", "Zh", "Z", "Zm+v", "Zm9v Y", "Zm9vYmE="};
  uint8_t *d = (uint8_t *)"untouched";
  size_t l = 42;
  for (size_t i = 0; i < ELEMENTSOF(bad_std); i++)
    assert_int_equal(sign_base64_decode(bad_std[i], strlen(bad_std[i]), &d, &l), -EINVAL);
  for (size_t i = 0; i < ELEMENTSOF(bad_url); i++)
    assert_int_equal(sign_base64url_decode(bad_url[i], strlen(bad_url[i]), &d, &l), -EINVAL);
  assert_string_equal((char *)d, "untouched");
  assert_int_equal(l, 42);
  /* len bounds the input: a prefix of a longer string decodes. */
  _cleanup_free_ uint8_t *p = NULL;
  assert_int_equal(sign_base64url_decode("Zm9vYmFy.tail", 8, &p, &l), 0);
  assert_int_equal(l, 6);
  assert_memory_equal(p, "foobar", 6);
}

/* ---- Standard Webhooks ---- */

/* The example from spec/standard-webhooks.md; recomputed with
 * hmac.new(b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
 *          b'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}', sha256). */
static const char spec_secret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
static const char spec_id[] = "msg_p5jXN8AQM9LWM0D4loKWxJek";
static const char spec_body[] = "{\"test\": 2432232314}";
static const char spec_sig[] = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

/* Second secret: "whsec_" + b64encode(bytes(range(100, 132))). */
static const char rot_secret[] = "whsec_ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=";
static const char rot_id[] = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
static const char rot_body[] = "{\"event\":\"reminder.sent\",\"contract\":\"C-1042\"}";
#define ROT_TS 1795379487
/* python: the same message signed with the spec key, then with range(100,132). */
static const char rot_sig_spec[] = "v1,bdPAEd5yqLWsPtt5cXDwRJ1saOqyzfifrEeJMoUUJOo=";
static const char rot_sig_new[] = "v1,N/IYRmGJyB/vZ8smQM3CJyk+Tcpw2uQ8LyLwB99+stQ=";

static void test_webhook_spec_vector(void **state) {
  const char *secrets[] = {spec_secret};
  _cleanup_free_ char *h = NULL;
  char err[128] = "";
  assert_int_equal(sign_webhook(secrets, 1, spec_id, 1614265330, spec_body, strlen(spec_body), &h,
                                err, sizeof err),
                   0);
  assert_string_equal(h, spec_sig);
  assert_string_equal(err, "");
  assert_int_equal(sign_webhook_verify(secrets, 1, spec_id, "1614265330", spec_body,
                                       strlen(spec_body), spec_sig, 1614265330 + 300, 300, err,
                                       sizeof err),
                   0);
}

static void test_webhook_rotation(void **state) {
  const char *both[] = {rot_secret, spec_secret};
  _cleanup_free_ char *h = NULL;
  assert_int_equal(sign_webhook(both, 2, rot_id, ROT_TS, rot_body, strlen(rot_body), &h, NULL, 0),
                   0);
  _cleanup_free_ char *expect = strprintf("%s %s", rot_sig_new, rot_sig_spec);
  assert_string_equal(h, expect);

  /* A consumer that knows only one of the secrets accepts the header. */
  const char *only_old[] = {spec_secret}, *only_new[] = {rot_secret};
  assert_int_equal(sign_webhook_verify(only_old, 1, rot_id, "1795379487", rot_body,
                                       strlen(rot_body), h, ROT_TS, 300, NULL, 0),
                   0);
  assert_int_equal(sign_webhook_verify(only_new, 1, rot_id, "1795379487", rot_body,
                                       strlen(rot_body), h, ROT_TS, 300, NULL, 0),
                   0);
  /* And a consumer with both accepts a header signed with one. */
  assert_int_equal(sign_webhook_verify(both, 2, rot_id, "1795379487", rot_body, strlen(rot_body),
                                       rot_sig_spec, ROT_TS, 300, NULL, 0),
                   0);
}

static void test_webhook_verify_errors(void **state) {
  const char *s[] = {spec_secret};
  const int64_t now = 1614265330;
#define V(id, ts, body, sig, t)                                                                    \
  sign_webhook_verify(s, 1, id, ts, body, strlen(body), sig, t, 300, NULL, 0)
  /* Tampered body, id, timestamp or signature. */
  assert_int_equal(V(spec_id, "1614265330", "{\"test\": 2432232315}", spec_sig, now),
                   -EKEYREJECTED);
  assert_int_equal(V("msg_p5jXN8AQM9LWM0D4loKWxJeK", "1614265330", spec_body, spec_sig, now),
                   -EKEYREJECTED);
  assert_int_equal(V(spec_id, "1614265331", spec_body, spec_sig, now), -EKEYREJECTED);
  assert_int_equal(
      V(spec_id, "1614265330", spec_body, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=", now),
      -EKEYREJECTED);
  /* Freshness is checked after authenticity, both directions, inclusive bound. */
  assert_int_equal(V(spec_id, "1614265330", spec_body, spec_sig, now + 300), 0);
  assert_int_equal(V(spec_id, "1614265330", spec_body, spec_sig, now - 300), 0);
  assert_int_equal(V(spec_id, "1614265330", spec_body, spec_sig, now + 301), -ETIME);
  assert_int_equal(V(spec_id, "1614265330", spec_body, spec_sig, now - 301), -ETIME);
  /* Other versions are ignored; several entries and extra spaces are fine. */
  assert_int_equal(V(spec_id, "1614265330", spec_body,
                     "v1a,AAAA  v1,Zm9v v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= ", now),
                   0);
  /* Malformed headers. */
  assert_int_equal(V(spec_id, "1614265330", spec_body, "", now), -EBADMSG);
  assert_int_equal(
      V(spec_id, "1614265330", spec_body, "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", now),
      -EBADMSG);
  assert_int_equal(
      V(spec_id, "1614265330", spec_body, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", now),
      -EBADMSG);
  assert_int_equal(V(spec_id, "+1614265330", spec_body, spec_sig, now), -EBADMSG);
  assert_int_equal(V(spec_id, " 1614265330", spec_body, spec_sig, now), -EBADMSG);
  assert_int_equal(V(spec_id, "", spec_body, spec_sig, now), -EBADMSG);
  assert_int_equal(V("", "1614265330", spec_body, spec_sig, now), -EBADMSG);
  assert_int_equal(V("msg with space", "1614265330", spec_body, spec_sig, now), -EBADMSG);
#undef V
}

static void test_webhook_bad_secrets(void **state) {
  static const struct {
    const char *secret, *msg;
  } v[] = {
      {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "webhook secret 2 does not start with \"whsec_\""},
      {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
       "webhook secret 2 is not valid base64 after \"whsec_\""},
      {"whsec_c2hvcnQ=", "webhook secret 2 decodes to 5 bytes, must be 24..64"},
      {"whsec_", "webhook secret 2 decodes to 0 bytes, must be 24..64"},
  };
  for (size_t i = 0; i < ELEMENTSOF(v); i++) {
    const char *secrets[] = {spec_secret, v[i].secret};
    char *h = (char *)"untouched";
    char err[128] = "";
    assert_int_equal(sign_webhook(secrets, 2, spec_id, 1, "x", 1, &h, err, sizeof err), -EINVAL);
    assert_string_equal(err, v[i].msg);
    assert_string_equal(h, "untouched");
    err[0] = 0;
    assert_int_equal(sign_webhook_verify(secrets, 2, spec_id, "1614265330", spec_body,
                                         strlen(spec_body), spec_sig, 1614265330, 300, err,
                                         sizeof err),
                     -EINVAL);
    assert_string_equal(err, v[i].msg);
  }
  char err[128];
  char *h = NULL;
  assert_int_equal(sign_webhook(NULL, 0, spec_id, 1, "x", 1, &h, err, sizeof err), -EINVAL);
  assert_string_equal(err, "no webhook secret configured");
  const char *s[] = {spec_secret};
  assert_int_equal(sign_webhook(s, 1, "id\r\nX-Evil: 1", 1, "x", 1, &h, err, sizeof err), -EINVAL);
  assert_int_equal(sign_webhook(s, 1, spec_id, -1, "x", 1, &h, err, sizeof err), -EINVAL);
  assert_null(h);
  /* An empty body is allowed (signs "<id>.<ts>."). */
  assert_int_equal(sign_webhook(s, 1, spec_id, 1, NULL, 0, &h, NULL, 0), 0);
  assert_int_equal(sign_webhook_verify(s, 1, spec_id, "1", NULL, 0, h, 1, 0, NULL, 0), 0);
  free(h);
}

/* ---- Twilio ---- */

/* The example from Twilio's security documentation; python:
 * b64encode(hmac.new(b"12345", (url + "".join(k+v for k,v in sorted(p))).encode(), sha1)) */
static const struct sign_param twilio_doc_params[] = {
    {"To", "+18005551212"},     {"CallSid", "CA1234567890ABCDE"}, {"Digits", "1234"},
    {"Caller", "+12349013030"}, {"From", "+12349013030"},
};
static const char twilio_doc_url[] = "https://mycompany.com/myapp.php?foo=1&bar=2";

static void test_twilio(void **state) {
  _cleanup_free_ char *sig = NULL;
  assert_int_equal(
      sign_twilio("12345", twilio_doc_url, twilio_doc_params, ELEMENTSOF(twilio_doc_params), &sig),
      0);
  assert_string_equal(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
  assert_int_equal(sign_twilio_verify("12345", twilio_doc_url, twilio_doc_params,
                                      ELEMENTSOF(twilio_doc_params),
                                      "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
                   0);

  /* Inbound SMS with UTF-8 and a repeated name (sorted by name, then value):
   * python gives qPcNSRuYlsHHamv1V0fmN2MFOCM= for these parameters. */
  const char *tok = "e3b0c44298fc1c149afbf4c8996fb924";
  const char *url = "https://renew.example.com/sms/inbound";
  const struct sign_param p[] = {
      {"To", "+15005550006"},
      {"Body", "Ja, verl\xc3\xa4ngern \xf0\x9f\x91\x8d"},
      {"From", "+491701234567"},
      {"MessageSid", "SM0123456789abcdef0123456789abcdef"},
      {"AccountSid", "AC00000000000000000000000000000000"},
      {"Media", "b"},
      {"Media", "a"},
  };
  assert_int_equal(sign_twilio_verify(tok, url, p, ELEMENTSOF(p), "qPcNSRuYlsHHamv1V0fmN2MFOCM="),
                   0);
  assert_int_equal(sign_twilio_verify(tok, url, NULL, 0, "q1PTzYmWSsQkIgm8A325sLGWumc="), 0);

  /* Any change is rejected. */
  struct sign_param q[ELEMENTSOF(p)];
  memcpy(q, p, sizeof p);
  q[1].value = "Nein";
  assert_int_equal(sign_twilio_verify(tok, url, q, ELEMENTSOF(q), "qPcNSRuYlsHHamv1V0fmN2MFOCM="),
                   -EKEYREJECTED);
  assert_int_equal(sign_twilio_verify(tok, "http://renew.example.com/sms/inbound", p, ELEMENTSOF(p),
                                      "qPcNSRuYlsHHamv1V0fmN2MFOCM="),
                   -EKEYREJECTED);
  assert_int_equal(sign_twilio_verify("e3b0c44298fc1c149afbf4c8996fb925", url, p, ELEMENTSOF(p),
                                      "qPcNSRuYlsHHamv1V0fmN2MFOCM="),
                   -EKEYREJECTED);
  assert_int_equal(sign_twilio_verify(tok, url, p, ELEMENTSOF(p), "qPcNSRuYlsHHamv1V0fmN2MFOCM"),
                   -EKEYREJECTED);
  assert_int_equal(sign_twilio_verify(tok, url, p, ELEMENTSOF(p), ""), -EKEYREJECTED);
  assert_int_equal(sign_twilio_verify("", url, p, ELEMENTSOF(p), "x"), -EINVAL);
  assert_int_equal(sign_twilio_verify(tok, url, p, ELEMENTSOF(p), NULL), -EINVAL);
}

/* ---- tokens ---- */

static uint8_t key_a[32], key_b[32];
static struct sign_key ka = {key_a, sizeof key_a}, kb = {key_b, sizeof key_b};

static int setup_keys(void **state) {
  for (int i = 0; i < 32; i++) {
    key_a[i] = (uint8_t)(i + 1);   /* bytes(range(1, 33)) */
    key_b[i] = (uint8_t)(200 - i); /* another key */
  }
  return 0;
}

/* python:
 *   key = bytes(range(1, 33)); kid = sha256(key).digest()[:4]        # ae216c2e
 *   payload = kid + b"\x01" + pack(">I", 3) + pack(">q", 1798761600) + b"C-1042"
 *   sp = "v1." + urlsafe_b64encode(payload).rstrip("=")
 *   sp + "." + urlsafe_b64encode(hmac.new(key, sp.encode(), sha256).digest()[:16]).rstrip("=") */
static const char token_vector[] = "v1.riFsLgEAAAADAAAAAGs27IBDLTEwNDI.vmxWPxTEao0enmP6IpThvw";

static void test_token_vector(void **state) {
  assert_int_equal(sign_key_id(&ka), 0xae216c2eu);
  _cleanup_free_ char *t = NULL;
  assert_int_equal(token_sign(&ka, "C-1042", 3, TOKEN_RENEW, 1798761600, &t), 0);
  assert_string_equal(t, token_vector);
  struct token tk;
  assert_int_equal(token_verify(&ka, 1, t, 1798761599, &tk), 0);
  assert_string_equal(tk.contract_id, "C-1042");
  assert_int_equal(tk.term, 3);
  assert_int_equal(tk.action, TOKEN_RENEW);
  assert_int_equal(tk.expires_at, 1798761600);
  assert_int_equal(tk.key_id, 0xae216c2eu);
}

static void test_token_actions(void **state) {
  static const char *names[] = {"renew",         "decline",           "snooze",
                                "callback",      "unsubscribe-email", "unsubscribe-sms",
                                "owner-renewed", "owner-lost",        "owner-snooze"};
  for (size_t i = 0; i < ELEMENTSOF(names); i++) {
    enum token_action a;
    assert_int_equal(token_action_from_string(names[i], &a), 0);
    assert_int_equal(a, (int)i + 1);
    assert_string_equal(token_action_to_string(a), names[i]);

    _cleanup_free_ char *t = NULL;
    assert_int_equal(token_sign(&kb, "c/ü 42", UINT32_MAX - (uint32_t)i, a, INT64_MAX, &t), 0);
    assert_int_equal(strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
                     strlen(t));
    struct token tk;
    assert_int_equal(token_verify(&kb, 1, t, 0, &tk), 0);
    assert_int_equal(tk.action, a);
    assert_int_equal(tk.term, UINT32_MAX - (uint32_t)i);
    assert_string_equal(tk.contract_id, "c/ü 42");
    assert_int_equal(tk.expires_at, INT64_MAX);
  }
  enum token_action a = TOKEN_RENEW;
  assert_int_equal(token_action_from_string("Renew", &a), -EINVAL);
  assert_int_equal(token_action_from_string("", &a), -EINVAL);
  assert_int_equal(a, TOKEN_RENEW);
  assert_null(token_action_to_string(0));
  assert_null(token_action_to_string(10));
}

static void test_token_rotation(void **state) {
  _cleanup_free_ char *old = NULL, *new = NULL;
  assert_int_equal(token_sign(&ka, "C-7", 1, TOKEN_DECLINE, 2000000000, &old), 0);
  assert_int_equal(token_sign(&kb, "C-7", 1, TOKEN_DECLINE, 2000000000, &new), 0);
  struct sign_key both[] = {kb, ka}, both_rev[] = {ka, kb}, only_b[] = {kb};
  struct token tk;
  assert_int_equal(token_verify(both, 2, old, 1, &tk), 0);
  assert_int_equal(tk.key_id, sign_key_id(&ka));
  assert_int_equal(token_verify(both_rev, 2, old, 1, &tk), 0);
  assert_int_equal(token_verify(both, 2, new, 1, &tk), 0);
  assert_int_equal(tk.key_id, sign_key_id(&kb));
  /* Once the old key is retired its links are refused. */
  assert_int_equal(token_verify(only_b, 1, old, 1, &tk), -EKEYREJECTED);
}

static void test_token_errors(void **state) {
  struct token tk = {.contract_id = "untouched", .term = 77};
  const int64_t exp = 1798761600;
  /* Expiry: refused from the expiry instant on, after authenticity. */
  assert_int_equal(token_verify(&ka, 1, token_vector, exp, &tk), -ETIME);
  assert_int_equal(token_verify(&ka, 1, token_vector, exp + 86400, &tk), -ETIME);
  assert_int_equal(token_verify(&kb, 1, token_vector, exp + 86400, &tk), -EKEYREJECTED);

  static const char *malformed[] = {
      "",
      "v1.",
      "v1..",
      "v2.riFsLgEAAAADAAAAAGs27IBDLTEwNDI.vmxWPxTEao0enmP6IpThvw",
      "V1.riFsLgEAAAADAAAAAGs27IBDLTEwNDI.vmxWPxTEao0enmP6IpThvw",
      "v1.riFsLgEAAAADAAAAAGs27IBDLTEwNDI",
      "v1.riFsLgEAAAADAAAAAGs27IBDLTEwNDI.vmxWPxTEao0enmP6IpThvw.",
      "v1.riFsLgEAAAADAAAAAGs27IBDLTEwNDI.vmxWPxTEao0enmP6IpThvw==",
      "v1.riFsLgEAAAADAAAAAGs27IBDLTEwNDI=.vmxWPxTEao0enmP6IpThvw",
      "v1.riFsLgEAAAADAAAAAGs27IBDLTEwNDI.vmxWPxTEao0enmP6IpTh",   /* short tag */
      "v1.riFsLgEAAAADAAAAAGs27IA.vmxWPxTEao0enmP6IpThvw",         /* no contract id */
      "v1.riFsLgEAAAADAAAAAGs27IBDLTEwNDI.vmxWPxTEao0enmP6IpThvx", /* non-canonical */
      "v1.riFsLgEAAAADAAAAAGs27IBDLTEwNDI.vmxWPxTEao0enmP6IpThv+",
      " v1.riFsLgEAAAADAAAAAGs27IBDLTEwNDI.vmxWPxTEao0enmP6IpThvw",
  };
  for (size_t i = 0; i < ELEMENTSOF(malformed); i++)
    assert_int_equal(token_verify(&ka, 1, malformed[i], 0, &tk), -EBADMSG);
  char huge[TOKEN_MAX + 2];
  memset(huge, 'A', sizeof huge - 1);
  huge[sizeof huge - 1] = 0;
  memcpy(huge, "v1.", 3);
  assert_int_equal(token_verify(&ka, 1, huge, 0, &tk), -EBADMSG);

  /* Every single-character change of a valid token is refused. */
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
  char t[sizeof token_vector];
  for (size_t pos = 0; pos < strlen(token_vector); pos++)
    for (const char *c = alphabet; *c; c++) {
      if (*c == token_vector[pos])
        continue;
      memcpy(t, token_vector, sizeof t);
      t[pos] = *c;
      int r = token_verify(&ka, 1, t, 0, &tk);
      assert_true(r == -EBADMSG || r == -EKEYREJECTED);
    }
  /* Tampering with the payload keeps it well-formed but breaks the tag;
   * changing the key id makes the key unknown. Both are -EKEYREJECTED. */
  memcpy(t, token_vector, sizeof t);
  t[4] = 'r'; /* "riFs" -> "rrFs": key id changes */
  assert_int_equal(token_verify(&ka, 1, t, 0, &tk), -EKEYREJECTED);
  memcpy(t, token_vector, sizeof t);
  t[20] = 'B'; /* inside the expiry field */
  assert_int_equal(token_verify(&ka, 1, t, 0, &tk), -EKEYREJECTED);

  /* Output untouched on every failure. */
  assert_string_equal(tk.contract_id, "untouched");
  assert_int_equal(tk.term, 77);

  /* Argument checks. */
  struct sign_key weak = {key_a, SIGN_KEY_MIN - 1};
  assert_int_equal(token_verify(&ka, 0, token_vector, 0, &tk), -EINVAL);
  assert_int_equal(token_verify(&weak, 1, token_vector, 0, &tk), -EINVAL);
  assert_int_equal(token_verify(&ka, 1, NULL, 0, &tk), -EINVAL);
  char *out = NULL;
  assert_int_equal(token_sign(&weak, "C-1", 1, TOKEN_RENEW, 1, &out), -EINVAL);
  assert_int_equal(token_sign(&ka, "", 1, TOKEN_RENEW, 1, &out), -EINVAL);
  assert_int_equal(token_sign(&ka, "C-1", 1, 0, 1, &out), -EINVAL);
  assert_int_equal(token_sign(&ka, "C-1", 1, 10, 1, &out), -EINVAL);
  assert_int_equal(token_sign(&ka, "C-1", 1, TOKEN_RENEW, 0, &out), -EINVAL);
  assert_null(out);
  assert_int_equal(sign_key_id(&weak), 0);
}

static void test_token_lengths(void **state) {
  char id[TOKEN_CONTRACT_ID_MAX + 2];
  memset(id, 'x', sizeof id - 1);
  id[sizeof id - 1] = 0;
  char *t = NULL;
  assert_int_equal(token_sign(&ka, id, 1, TOKEN_RENEW, 1, &t), -EINVAL); /* 129 bytes */
  id[TOKEN_CONTRACT_ID_MAX] = 0;
  assert_int_equal(token_sign(&ka, id, 1, TOKEN_OWNER_SNOOZE, INT64_MAX, &t), 0);
  assert_true(strlen(t) <= TOKEN_MAX);
  struct token tk;
  assert_int_equal(token_verify(&ka, 1, t, 0, &tk), 0);
  assert_string_equal(tk.contract_id, id);
  free(t);
  /* A typical token stays short enough for an SMS link. */
  assert_int_equal(token_sign(&ka, "C-1042", 3, TOKEN_RENEW, 1798761600, &t), 0);
  assert_int_equal(strlen(t), 57);
  free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_base64_vectors),      cmocka_unit_test(test_base64_roundtrip),
      cmocka_unit_test(test_base64_strict),       cmocka_unit_test(test_webhook_spec_vector),
      cmocka_unit_test(test_webhook_rotation),    cmocka_unit_test(test_webhook_verify_errors),
      cmocka_unit_test(test_webhook_bad_secrets), cmocka_unit_test(test_twilio),
      cmocka_unit_test(test_token_vector),        cmocka_unit_test(test_token_actions),
      cmocka_unit_test(test_token_rotation),      cmocka_unit_test(test_token_errors),
      cmocka_unit_test(test_token_lengths),
  };
  return cmocka_run_group_tests(tests, setup_keys, NULL);
}
