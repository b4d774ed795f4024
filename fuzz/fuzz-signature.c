/* fuzz-signature: the Standard Webhooks signature check and the base64
 * codecs under every signature (notifiers/sign.c).
 *
 * The input is "<webhook-id>\n<webhook-timestamp>\n<webhook-signature>\n<body>"
 * (the body keeps any further bytes, NULs included), verified as a consumer
 * of renewd's webhooks verifies it, against two fixed "whsec_" secrets (a
 * rotation; the seeds in corpus/signature/ are signed with them). Checked
 * beyond the sanitizers:
 *  - sign_webhook_verify() answers only 0, -EBADMSG, -EKEYREJECTED, -ETIME,
 *    -EINVAL or -ENOMEM;
 *  - what sign_webhook() signs for this id and body verifies (round trip);
 *  - the strict base64 decoders (standard and URL-safe) accept the whole input
 *    only if encoding the result gives back exactly the input. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "notifiers/sign.h"

/* 2027-01-01T00:00:00Z, the receiver's clock; tolerance as the spec suggests. */
#define FUZZ_NOW 1798761600
#define FUZZ_TOLERANCE 300

static const char *const secrets[] = {
    "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    "whsec_cmVuZXdkLWZ1enotd2ViaG9vay1rZXkh",
};

static void check_verify(const char *id, const char *ts, const char *sig, const char *body,
                         size_t body_len) {
  char err[256];
  int r = sign_webhook_verify(secrets, 2, id, ts, body, body_len, sig, FUZZ_NOW, FUZZ_TOLERANCE,
                              err, sizeof err);
  FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -EKEYREJECTED || r == -ETIME || r == -EINVAL ||
             r == -ENOMEM);
}

static void check_round_trip(const char *id, const char *body, size_t body_len) {
  char *header = NULL, err[256];
  int r = sign_webhook(secrets, 2, id, FUZZ_NOW, body, body_len, &header, err, sizeof err);
  FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
  if (r != 0)
    return;
  char ts[24];
  snprintf(ts, sizeof ts, "%" PRId64, (int64_t)FUZZ_NOW);
  r = sign_webhook_verify(secrets, 2, id, ts, body, body_len, header, FUZZ_NOW, FUZZ_TOLERANCE, err,
                          sizeof err);
  FUZZ_CHECK(r == 0 || r == -ENOMEM);
  /* each secret's entry alone verifies too: a receiver knowing only one */
  r = sign_webhook_verify(secrets + 1, 1, id, ts, body, body_len, header, FUZZ_NOW, FUZZ_TOLERANCE,
                          err, sizeof err);
  FUZZ_CHECK(r == 0 || r == -ENOMEM);
  free(header);
}

static void check_base64(const uint8_t *data, size_t size) {
  uint8_t *dec = NULL;
  size_t n = 0;
  int r = sign_base64_decode((const char *)data, size, &dec, &n);
  FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
  if (r == 0) {
    char *enc = sign_base64_encode(dec, n);
    FUZZ_CHECK(!enc || (strlen(enc) == size && memcmp(enc, data, size) == 0));
    free(enc);
    free(dec);
  }
  r = sign_base64url_decode((const char *)data, size, &dec, &n);
  FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
  if (r == 0) {
    char *enc = sign_base64url_encode(dec, n);
    FUZZ_CHECK(!enc || (strlen(enc) == size && memcmp(enc, data, size) == 0));
    free(enc);
    free(dec);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *copy = fuzz_strndup(data, size);
  char *f[4];
  fuzz_split(copy, '\n', f, 4);
  size_t body_off = (size_t)(f[3] - copy);
  const char *body = copy + body_off;
  size_t body_len = body_off <= size ? size - body_off : 0;
  check_verify(f[0], f[1], f[2], body, body_len);
  check_round_trip(f[0], body, body_len);
  free(copy);
  check_base64(data, size);
  return 0;
}
