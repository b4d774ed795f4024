/* fuzz-form: the request-body parsing of the HTTP listener (daemon/http.c
 * http_form_parse(), daemon/http_sms.c http_sms_keyword()) and the inbound
 * SMS signature check it feeds (notifiers/sign.c, Twilio), the way
 * POST /sms/inbound and the answer pages' POST /r/<token> use them.
 *
 * The input is "<X-Twilio-Signature>\n<form body>" (the body keeps every
 * further byte, NULs included). Checked beyond the sanitizers:
 *  - http_form_parse() answers 0, -EBADMSG (and then holds no field) or
 *    -ENOMEM; every decoded name and value is UTF-8 without control
 *    characters other than TAB, CR and LF (so no NUL), and http_form_get()
 *    returns the first value of each name;
 *  - the Twilio signature computed over the parsed fields verifies, the
 *    input's own signature verifies exactly when it equals that one, and a
 *    signature with a byte appended never verifies;
 *  - the SMS keyword of Body= and the E.164 check of From= run on any value. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/validate.h"
#include "daemon/http_internal.h"
#include "fuzz/fuzz.h"
#include "notifiers/sign.h"
#include "notifiers/templates.h"

static const char auth_token[] = "renewd-fuzz-twilio-auth-token-32";
static const char url[] = "https://renew.example.com/sms/inbound";

/* UTF-8 without NUL or control characters except TAB, CR, LF (the parser's
 * contract, written independently of its code). */
static bool text_ok(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned char c = *p;
    size_t n = c < 0x80                 ? 0
               : c >= 0xc2 && c <= 0xdf ? 1
               : c >= 0xe0 && c <= 0xef ? 2
               : c >= 0xf0 && c <= 0xf4 ? 3
                                        : 4;
    if (n == 4 || (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
      return false;
    uint32_t cp = n == 0 ? c : c & (0x3f >> n);
    for (size_t k = 1; k <= n; k++) {
      if ((p[k] & 0xc0) != 0x80)
        return false;
      cp = cp << 6 | (p[k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    p += n + 1;
  }
  return true;
}

static void check_fields(const struct http_form *f) {
  for (size_t i = 0; i < f->n; i++) {
    FUZZ_CHECK(f->names[i] && f->values[i]);
    FUZZ_CHECK(text_ok(f->names[i]) && text_ok(f->values[i]));
    size_t first = 0;
    while (strcmp(f->names[first], f->names[i]) != 0)
      first++;
    FUZZ_CHECK(http_form_get(f, f->names[i]) == f->values[first]);
  }
}

static void check_twilio(const struct http_form *f, const char *signature) {
  struct sign_param *params = calloc(f->n ? f->n : 1, sizeof *params);
  FUZZ_CHECK(params);
  for (size_t i = 0; i < f->n; i++)
    params[i] = (struct sign_param){.name = f->names[i], .value = f->values[i]};
  char *expected = NULL;
  int r = sign_twilio(auth_token, url, params, f->n, &expected);
  FUZZ_CHECK(r == 0 || r == -ENOMEM);
  if (r == 0) {
    FUZZ_CHECK(sign_twilio_verify(auth_token, url, params, f->n, expected) == 0);
    r = sign_twilio_verify(auth_token, url, params, f->n, signature);
    FUZZ_CHECK(r == (strcmp(signature, expected) == 0 ? 0 : -EKEYREJECTED) || r == -ENOMEM);
    size_t len = strlen(expected);
    char *longer = malloc(len + 2);
    FUZZ_CHECK(longer);
    memcpy(longer, expected, len);
    memcpy(longer + len, "=", 2);
    r = sign_twilio_verify(auth_token, url, params, f->n, longer);
    FUZZ_CHECK(r == -EKEYREJECTED || r == -ENOMEM);
    free(longer);
  }
  free(expected);
  free(params);
}

/* The built-in sms.po (its kw_* keywords), made once and kept. */
static struct templates *builtin_sms(void) {
  static struct templates *t;
  if (!t && templates_new_empty(&t) >= 0)
    (void)templates_add_builtin_catalogue(t, "sms", templates_builtin_sms_po, NULL, 0);
  return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nl = memchr(data, '\n', size);
  size_t sig_len = nl ? (size_t)(nl - data) : 0;
  const char *body = nl ? (const char *)nl + 1 : (const char *)data;
  size_t body_len = nl ? size - sig_len - 1 : size;
  char *signature = fuzz_strndup(data, sig_len);

  struct http_form f = {0};
  int r = http_form_parse(body, body_len, &f);
  FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM);
  if (r < 0) {
    FUZZ_CHECK(f.n == 0);
  } else {
    check_fields(&f);
    check_twilio(&f, signature);
    const char *sms = http_form_get(&f, "Body");
    enum http_sms_keyword kw = http_sms_keyword(builtin_sms(), NULL, true, sms);
    FUZZ_CHECK(kw == SMS_KW_NONE || (sms && sms[0]));
    char phone[17];
    const char *from = http_form_get(&f, "From");
    if (from && validate_e164(from, phone) == 0)
      FUZZ_CHECK(phone[0] == '+' && strlen(phone) <= 16);
  }
  http_form_clear(&f);
  free(signature);
  return 0;
}
