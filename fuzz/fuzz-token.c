/* fuzz-token: the answer-link token verifier (notifiers/sign.c, token_verify)
 * and the link key file parser (notifiers/linkkey.c, linkkeys_parse), the two
 * inputs behind GET/POST /r/<token> and /u/<token>.
 *
 * The input (up to its first NUL, as the listener hands a token over) is
 * verified as a token against two fixed keys (a rotation: the seeds in
 * corpus/token/ are real tokens signed with them), and is also parsed as the
 * text of a LinkKeyFile=. Checked beyond the sanitizers:
 *  - token_verify() answers only 0, -EBADMSG, -EKEYREJECTED, -ETIME or
 *    -ENOMEM; an accepted token names a known action, a known key and a
 *    1..TOKEN_CONTRACT_ID_MAX byte id, and signing its fields again with that
 *    key gives back exactly the input (one encoding per token);
 *  - a key file that parses has 1..LINKKEY_MAX keys of at least SIGN_KEY_MIN
 *    bytes inside its text, and a token signed with its first key verifies
 *    against all of them. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "notifiers/linkkey.h"
#include "notifiers/sign.h"

/* The instant tokens are checked at: 2027-01-01T00:00:00Z. The seeds expire
 * in 2030 (accepted) or in 2026 (-ETIME). */
#define FUZZ_NOW 1798761600

static const uint8_t key_new[] = "renewd fuzz link key (new, 32 B)";
static const uint8_t key_old[] = "renewd fuzz link key: old one";
static const struct sign_key keys[] = {
    {key_new, sizeof key_new - 1},
    {key_old, sizeof key_old - 1},
};

static void check_token(const char *text) {
  struct token t;
  int r = token_verify(keys, 2, text, FUZZ_NOW, &t);
  FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -EKEYREJECTED || r == -ETIME || r == -ENOMEM);
  if (r != 0)
    return;
  size_t id_len = strlen(t.contract_id);
  FUZZ_CHECK(id_len >= 1 && id_len <= TOKEN_CONTRACT_ID_MAX);
  FUZZ_CHECK(token_action_to_string(t.action) && t.expires_at > FUZZ_NOW);
  const struct sign_key *k = t.key_id == sign_key_id(&keys[0]) ? &keys[0] : &keys[1];
  FUZZ_CHECK(t.key_id == sign_key_id(k));
  char *again = NULL;
  r = token_sign(k, t.contract_id, t.term, t.action, t.expires_at, &again);
  FUZZ_CHECK(r == 0 || r == -ENOMEM);
  if (r == 0)
    FUZZ_CHECK(strcmp(again, text) == 0);
  free(again);
}

static void check_key_file(const uint8_t *data, size_t size) {
  struct linkkeys *lk = NULL;
  char err[256] = "";
  int r = linkkeys_parse((const char *)data, size, &lk, err, sizeof err);
  FUZZ_CHECK(r == 0 || r == -ENOKEY || r == -EINVAL || r == -ENOMEM);
  if (r < 0) {
    FUZZ_CHECK(!lk && (r == -ENOMEM || err[0]));
    return;
  }
  FUZZ_CHECK(lk->n >= 1 && lk->n <= LINKKEY_MAX);
  for (size_t i = 0; i < lk->n; i++) {
    const struct sign_key *k = &lk->keys[i];
    FUZZ_CHECK(k->len >= SIGN_KEY_MIN);
    FUZZ_CHECK((const char *)k->data >= lk->text &&
               (const char *)k->data + k->len <= lk->text + lk->text_len);
  }
  char *tok = NULL;
  r = token_sign(&lk->keys[0], "C-0001", 2, TOKEN_RENEW, FUZZ_NOW + 86400, &tok);
  FUZZ_CHECK(r == 0 || r == -ENOMEM);
  if (r == 0) {
    struct token t;
    FUZZ_CHECK(token_verify(lk->keys, lk->n, tok, FUZZ_NOW, &t) == 0);
    FUZZ_CHECK(strcmp(t.contract_id, "C-0001") == 0 && t.term == 2 && t.action == TOKEN_RENEW);
  }
  free(tok);
  linkkeys_free(lk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_strndup(data, size);
  check_token(text);
  free(text);
  check_key_file(data, size);
  return 0;
}
