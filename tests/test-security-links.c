/* Security regression tests for answer links (notifiers/linkkey):
 *  - linkkey_expiry() with a huge LapseGrace= used to overflow int64 (undefined
 *    behaviour; in practice a link that expired in the past): it saturates.
 *  - the key rotation procedure of docs/security.md, step by step: links
 *    signed before the rotation keep working while the old key is listed,
 *    new links use the new key, and removing the old key revokes its links. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/util.h"
#include "notifiers/linkkey.h"

#define DAY INT64_C(86400)
#define NOW INT64_C(1790000000)

static void test_expiry_saturates(void **state) {
  assert_int_equal(linkkey_expiry(INT64_C(253402300799), INT64_MAX, NOW), INT64_MAX);
  assert_int_equal(linkkey_expiry(INT64_MAX - DAY, 90 * DAY, NOW), INT64_MAX);
  assert_int_equal(linkkey_expiry(NOW, 0, INT64_MAX - DAY), INT64_MAX);
  /* ordinary values unchanged */
  assert_int_equal(linkkey_expiry(NOW + 10 * DAY, 30 * DAY, NOW), NOW + 100 * DAY);
}

static struct linkkeys *keys(const char *text) {
  struct linkkeys *k = NULL;
  char err[128];
  assert_int_equal(linkkeys_parse(text, strlen(text), &k, err, sizeof err), 0);
  return k;
}

static int verify(const struct linkkeys *k, const char *tok) {
  struct token t;
  return token_verify(k->keys, k->n, tok, NOW, &t);
}

static void test_rotation_procedure(void **state) {
  static const char old_key[] = "old-key-0123456789abcdef";
  static const char new_key[] = "new-key-fedcba9876543210";
  _cleanup_free_ char *f1 = strprintf("%s\n", old_key);
  _cleanup_free_ char *f2 = strprintf("# rotated\n%s\n%s\n", new_key, old_key);
  _cleanup_free_ char *f3 = strprintf("%s\n", new_key);

  /* before: links signed with the old key */
  _cleanup_(linkkeys_freep) struct linkkeys *k1 = keys(f1);
  _cleanup_free_ char *old_link = NULL, *new_link = NULL;
  assert_int_equal(
      linkkey_url(k1, "https://r.example", "C-1", 1, TOKEN_RENEW, NOW + 30 * DAY, &old_link), 0);
  const char *old_tok = strstr(old_link, "/r/") + 3;
  assert_int_equal(verify(k1, old_tok), 0);

  /* step 1: new key first, old key below: both verify, the new one signs */
  _cleanup_(linkkeys_freep) struct linkkeys *k2 = keys(f2);
  assert_int_equal(k2->n, 2);
  assert_int_equal(verify(k2, old_tok), 0);
  assert_int_equal(
      linkkey_url(k2, "https://r.example", "C-1", 1, TOKEN_RENEW, NOW + 30 * DAY, &new_link), 0);
  const char *new_tok = strstr(new_link, "/r/") + 3;
  assert_string_not_equal(new_tok, old_tok);
  assert_int_equal(verify(k2, new_tok), 0);
  assert_int_equal(verify(k1, new_tok), -EKEYREJECTED); /* not the old key's */

  /* step 2: old key removed: its links are refused, new ones work */
  _cleanup_(linkkeys_freep) struct linkkeys *k3 = keys(f3);
  assert_int_equal(verify(k3, old_tok), -EKEYREJECTED);
  assert_int_equal(verify(k3, new_tok), 0);

  /* a tampered token (another contract id, same tag) is refused */
  _cleanup_free_ char *forged = NULL;
  assert_int_equal(linkkey_url(k3, "", "C-2", 1, TOKEN_RENEW, NOW + 30 * DAY, &forged), 0);
  const char *f_tok = forged + 3;
  const char *dot = strrchr(new_tok, '.');
  _cleanup_free_ char *mixed = strprintf("%.*s%s", (int)(strrchr(f_tok, '.') - f_tok), f_tok, dot);
  assert_int_equal(verify(k3, mixed), -EKEYREJECTED);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_expiry_saturates),
      cmocka_unit_test(test_rotation_procedure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
