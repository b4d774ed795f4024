/* sign: Standard Webhooks, Twilio and answer-link signatures (see sign.h).
 *
 * MACs go through OpenSSL's EVP_MAC interface so the message can be fed in
 * parts without concatenating the (possibly large) webhook body. Everything
 * here is stateless; the only allocations are result strings and short-lived
 * decoded keys, which are wiped with OPENSSL_cleanse() before free(). */
#include "notifiers/sign.h"

#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "core/util.h"

#define SHA256_LEN 32
#define SHA1_LEN 20
#define TOKEN_TAG_LEN 16    /* HMAC-SHA256 truncated to 128 bits */
#define TOKEN_HEADER_LEN 17 /* key id 4, action 1, term 4, expires_at 8 */
#define WEBHOOK_ID_MAX 256
#define WEBHOOK_HEADER_MAX 8192

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MAC *, EVP_MAC_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MAC_CTX *, EVP_MAC_CTX_free);

/* ---- base64 ---------------------------------------------------------------- */

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64_encode(const void *data, size_t len, const char *alphabet, bool pad) {
  const uint8_t *p = data;
  size_t full = len / 3, rest = len % 3;
  size_t outlen = full * 4 + (rest ? (pad ? 4 : rest + 1) : 0);
  char *out = malloc(outlen + 1);
  if (!out)
    return NULL;
  char *o = out;
  for (size_t i = 0; i < full; i++, p += 3) {
    uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    *o++ = alphabet[v >> 18 & 63];
    *o++ = alphabet[v >> 12 & 63];
    *o++ = alphabet[v >> 6 & 63];
    *o++ = alphabet[v & 63];
  }
  if (rest) {
    uint32_t v = (uint32_t)p[0] << 16 | (rest == 2 ? (uint32_t)p[1] << 8 : 0);
    *o++ = alphabet[v >> 18 & 63];
    *o++ = alphabet[v >> 12 & 63];
    if (rest == 2)
      *o++ = alphabet[v >> 6 & 63];
    else if (pad)
      *o++ = '=';
    if (pad)
      *o++ = '=';
  }
  *o = 0;
  return out;
}

char *sign_base64_encode(const void *data, size_t len) {
  return b64_encode(data, len, b64_std, true);
}

char *sign_base64url_encode(const void *data, size_t len) {
  return b64_encode(data, len, b64_url, false);
}

static int b64_value(char c, bool url) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == (url ? '-' : '+'))
    return 62;
  if (c == (url ? '_' : '/'))
    return 63;
  return -1;
}

static int b64_decode(const char *s, size_t len, bool url, uint8_t **ret, size_t *ret_len) {
  if (!ret || !ret_len || (!s && len))
    return -EINVAL;
  size_t body = len;
  if (!url) {
    if (len % 4)
      return -EINVAL;
    for (int i = 0; i < 2 && body > 0 && s[body - 1] == '='; i++)
      body--;
  }
  if (body % 4 == 1)
    return -EINVAL;
  size_t outlen = body / 4 * 3 + (body % 4 ? body % 4 - 1 : 0);
  _cleanup_free_ uint8_t *out = malloc(outlen + 1);
  if (!out)
    return -ENOMEM;
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < body; i++) {
    int v = b64_value(s[i], url);
    if (v < 0)
      return -EINVAL;
    acc = (acc << 6 | (uint32_t)v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
    }
  }
  if (acc & ((1u << bits) - 1)) /* non-canonical: unused bits set */
    return -EINVAL;
  out[o] = 0;
  *ret_len = o;
  *ret = TAKE_PTR(out);
  return 0;
}

int sign_base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len) {
  return b64_decode(s, len, false, ret, ret_len);
}

int sign_base64url_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len) {
  return b64_decode(s, len, true, ret, ret_len);
}

/* ---- MAC helpers ------------------------------------------------------------- */

struct part {
  const void *data;
  size_t len;
};

/* HMAC-<digest>(key, parts...) into out (at least the digest size). */
static int hmac_parts(const char *digest, const void *key, size_t key_len, const struct part *parts,
                      size_t n, uint8_t *out, size_t out_size) {
  _cleanup_(EVP_MAC_freep) EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  if (!mac)
    return -ENOMEM;
  _cleanup_(EVP_MAC_CTX_freep) EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
  if (!ctx)
    return -ENOMEM;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0),
      OSSL_PARAM_construct_end(),
  };
  static const uint8_t empty = 0;
  if (!EVP_MAC_init(ctx, key_len ? key : &empty, key_len, params))
    return -EIO;
  for (size_t i = 0; i < n; i++)
    if (parts[i].len && !EVP_MAC_update(ctx, parts[i].data, parts[i].len))
      return -EIO;
  size_t outl = 0;
  if (!EVP_MAC_final(ctx, out, &outl, out_size))
    return -EIO;
  return (int)outl;
}

static void cleanse_freep(uint8_t **p, size_t len) {
  if (*p) {
    OPENSSL_cleanse(*p, len);
    free(*p);
    *p = NULL;
  }
}

_printf_(3, 4) static int set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -EINVAL;
}

/* ---- Standard Webhooks ------------------------------------------------------- */

/* Decodes "whsec_<base64>" into *ret (caller cleanses and frees). */
static int webhook_key(const char *secret, size_t idx, uint8_t **ret, size_t *ret_len, char *err,
                       size_t errlen) {
  static const char prefix[] = "whsec_";
  if (!secret)
    return set_err(err, errlen, "webhook secret %zu is missing", idx + 1);
  if (strncmp(secret, prefix, sizeof prefix - 1) != 0)
    return set_err(err, errlen, "webhook secret %zu does not start with \"whsec_\"", idx + 1);
  const char *b = secret + sizeof prefix - 1;
  uint8_t *key = NULL;
  size_t len = 0;
  int r = sign_base64_decode(b, strlen(b), &key, &len);
  if (r == -ENOMEM)
    return r;
  if (r < 0)
    return set_err(err, errlen, "webhook secret %zu is not valid base64 after \"whsec_\"", idx + 1);
  if (len < SIGN_WEBHOOK_KEY_MIN || len > SIGN_WEBHOOK_KEY_MAX) {
    cleanse_freep(&key, len);
    return set_err(err, errlen, "webhook secret %zu decodes to %zu bytes, must be %d..%d", idx + 1,
                   len, SIGN_WEBHOOK_KEY_MIN, SIGN_WEBHOOK_KEY_MAX);
  }
  *ret = key;
  *ret_len = len;
  return 0;
}

static bool webhook_id_valid(const char *id) {
  size_t len = id ? strlen(id) : 0;
  if (len == 0 || len > WEBHOOK_ID_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] >= 0x7f)
      return false;
  return true;
}

/* HMAC-SHA256(key, "<id>.<ts>.<body>") into out[SHA256_LEN]. */
static int webhook_mac(const uint8_t *key, size_t key_len, const char *msg_id, const char *ts,
                       const char *body, size_t body_len, uint8_t out[static SHA256_LEN]) {
  const struct part parts[] = {
      {msg_id, strlen(msg_id)}, {".", 1}, {ts, strlen(ts)}, {".", 1}, {body, body_len},
  };
  int r = hmac_parts("SHA256", key, key_len, parts, ELEMENTSOF(parts), out, SHA256_LEN);
  return r < 0 ? r : 0;
}

int sign_webhook(const char *const *secrets, size_t n, const char *msg_id, int64_t timestamp,
                 const char *body, size_t body_len, char **ret_header_value, char *err,
                 size_t errlen) {
  if (!secrets || n == 0)
    return set_err(err, errlen, "no webhook secret configured");
  if (!webhook_id_valid(msg_id))
    return set_err(err, errlen, "webhook id must be 1..%d printable ASCII characters",
                   WEBHOOK_ID_MAX);
  if (timestamp < 0)
    return set_err(err, errlen, "webhook timestamp is negative");
  if (!body && body_len)
    return set_err(err, errlen, "webhook body is missing");
  if (!ret_header_value)
    return -EINVAL;

  char ts[24];
  snprintf(ts, sizeof ts, "%" PRId64, timestamp);
  struct buf out = {0};
  int r = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t *key = NULL;
    size_t key_len = 0;
    r = webhook_key(secrets[i], i, &key, &key_len, err, errlen);
    if (r < 0)
      goto fail;
    uint8_t mac[SHA256_LEN];
    r = webhook_mac(key, key_len, msg_id, ts, body, body_len, mac);
    cleanse_freep(&key, key_len);
    if (r < 0)
      goto fail;
    _cleanup_free_ char *b = sign_base64_encode(mac, sizeof mac);
    if (!b || buf_printf(&out, "%sv1,%s", i ? " " : "", b) < 0) {
      r = -ENOMEM;
      goto fail;
    }
  }
  *ret_header_value = buf_steal(&out);
  return *ret_header_value ? 0 : -ENOMEM;
fail:
  buf_free(&out);
  return r;
}

/* Strict decimal seconds: 1..18 digits, nothing else. */
static int parse_timestamp(const char *s, int64_t *ret) {
  size_t len = s ? strlen(s) : 0;
  if (len == 0 || len > 18)
    return -EBADMSG;
  int64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -EBADMSG;
    v = v * 10 + (s[i] - '0');
  }
  *ret = v;
  return 0;
}

int sign_webhook_verify(const char *const *secrets, size_t n, const char *msg_id,
                        const char *timestamp, const char *body, size_t body_len,
                        const char *signature_header, int64_t now, int64_t tolerance, char *err,
                        size_t errlen) {
  if (!secrets || n == 0)
    return set_err(err, errlen, "no webhook secret configured");
  if (!body && body_len)
    return set_err(err, errlen, "webhook body is missing");
  if (tolerance < 0)
    return set_err(err, errlen, "negative tolerance");
  if (!webhook_id_valid(msg_id) || !signature_header ||
      strlen(signature_header) > WEBHOOK_HEADER_MAX)
    return -EBADMSG;
  int64_t ts;
  int r = parse_timestamp(timestamp, &ts);
  if (r < 0)
    return r;

  /* Collect the decoded v1 signatures. */
  uint8_t cand[WEBHOOK_HEADER_MAX / 48 + 1][SHA256_LEN];
  size_t n_cand = 0;
  for (const char *p = signature_header; *p;) {
    if (*p == ' ') {
      p++;
      continue;
    }
    size_t len = strcspn(p, " ");
    if (len > 3 && memcmp(p, "v1,", 3) == 0 && n_cand < ELEMENTSOF(cand)) {
      _cleanup_free_ uint8_t *sig = NULL;
      size_t sig_len = 0;
      r = sign_base64_decode(p + 3, len - 3, &sig, &sig_len);
      if (r == -ENOMEM)
        return r;
      if (r == 0 && sig_len == SHA256_LEN)
        memcpy(cand[n_cand++], sig, SHA256_LEN);
    }
    p += len;
  }
  if (n_cand == 0)
    return -EBADMSG;

  bool ok = false;
  for (size_t i = 0; i < n; i++) {
    uint8_t *key = NULL;
    size_t key_len = 0;
    r = webhook_key(secrets[i], i, &key, &key_len, err, errlen);
    if (r < 0)
      return r;
    uint8_t mac[SHA256_LEN];
    r = webhook_mac(key, key_len, msg_id, timestamp, body, body_len, mac);
    cleanse_freep(&key, key_len);
    if (r < 0)
      return r;
    for (size_t j = 0; j < n_cand; j++)
      ok |= memeq_consttime(mac, SHA256_LEN, cand[j], SHA256_LEN);
  }
  if (!ok)
    return -EKEYREJECTED;
  int64_t skew = now > ts ? now - ts : ts - now;
  return skew > tolerance ? -ETIME : 0;
}

/* ---- Twilio ------------------------------------------------------------------ */

static int param_cmp(const void *a, const void *b) {
  const struct sign_param *x = *(const struct sign_param *const *)a;
  const struct sign_param *y = *(const struct sign_param *const *)b;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->value ? x->value : "", y->value ? y->value : "");
}

int sign_twilio(const char *auth_token, const char *url, const struct sign_param *params, size_t n,
                char **ret_signature) {
  if (isempty(auth_token) || isempty(url) || (!params && n) || !ret_signature)
    return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!params[i].name)
      return -EINVAL;
  _cleanup_free_ const struct sign_param **sorted = calloc(n ? n : 1, sizeof *sorted);
  _cleanup_free_ struct part *parts = calloc(1 + 2 * n, sizeof *parts);
  if (!sorted || !parts)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++)
    sorted[i] = &params[i];
  qsort(sorted, n, sizeof *sorted, param_cmp);
  parts[0] = (struct part){url, strlen(url)};
  for (size_t i = 0; i < n; i++) {
    const char *v = sorted[i]->value ? sorted[i]->value : "";
    parts[1 + 2 * i] = (struct part){sorted[i]->name, strlen(sorted[i]->name)};
    parts[2 + 2 * i] = (struct part){v, strlen(v)};
  }
  uint8_t mac[SHA1_LEN];
  int r = hmac_parts("SHA1", auth_token, strlen(auth_token), parts, 1 + 2 * n, mac, sizeof mac);
  if (r < 0)
    return r;
  char *s = sign_base64_encode(mac, sizeof mac);
  if (!s)
    return -ENOMEM;
  *ret_signature = s;
  return 0;
}

int sign_twilio_verify(const char *auth_token, const char *url, const struct sign_param *params,
                       size_t n, const char *signature) {
  if (!signature)
    return -EINVAL;
  _cleanup_free_ char *expected = NULL;
  int r = sign_twilio(auth_token, url, params, n, &expected);
  if (r < 0)
    return r;
  return memeq_consttime(expected, strlen(expected), signature, strlen(signature)) ? 0
                                                                                   : -EKEYREJECTED;
}

/* ---- answer-link tokens -------------------------------------------------------- */

static const char *const action_names[] = {
    [TOKEN_RENEW] = "renew",
    [TOKEN_DECLINE] = "decline",
    [TOKEN_SNOOZE] = "snooze",
    [TOKEN_CALLBACK] = "callback",
    [TOKEN_UNSUBSCRIBE_EMAIL] = "unsubscribe-email",
    [TOKEN_UNSUBSCRIBE_SMS] = "unsubscribe-sms",
    [TOKEN_OWNER_RENEWED] = "owner-renewed",
    [TOKEN_OWNER_LOST] = "owner-lost",
    [TOKEN_OWNER_SNOOZE] = "owner-snooze",
};

const char *token_action_to_string(enum token_action a) {
  if ((unsigned)a >= ELEMENTSOF(action_names))
    return NULL;
  return action_names[a];
}

int token_action_from_string(const char *s, enum token_action *ret) {
  if (!s || !ret)
    return -EINVAL;
  for (size_t i = 1; i < ELEMENTSOF(action_names); i++)
    if (streq(s, action_names[i])) {
      *ret = (enum token_action)i;
      return 0;
    }
  return -EINVAL;
}

static bool key_valid(const struct sign_key *k) {
  return k && k->data && k->len >= SIGN_KEY_MIN;
}

uint32_t sign_key_id(const struct sign_key *key) {
  if (!key_valid(key))
    return 0;
  uint8_t md[SHA256_LEN];
  unsigned len = 0;
  if (!EVP_Digest(key->data, key->len, md, &len, EVP_sha256(), NULL))
    return 0;
  return (uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 | (uint32_t)md[2] << 8 | md[3];
}

static void put_be(uint8_t *p, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++)
    v = v << 8 | p[i];
  return v;
}

/* The 128-bit tag over the signed prefix "v1.<payload>". */
static int token_tag(const struct sign_key *key, const char *signed_part, size_t len,
                     uint8_t tag[static TOKEN_TAG_LEN]) {
  uint8_t mac[SHA256_LEN];
  const struct part part = {signed_part, len};
  int r = hmac_parts("SHA256", key->data, key->len, &part, 1, mac, sizeof mac);
  if (r < 0)
    return r;
  memcpy(tag, mac, TOKEN_TAG_LEN);
  return 0;
}

int token_sign(const struct sign_key *key, const char *contract_id, uint32_t term,
               enum token_action action, int64_t expires_at, char **ret_token) {
  size_t id_len = contract_id ? strlen(contract_id) : 0;
  if (!key_valid(key) || id_len == 0 || id_len > TOKEN_CONTRACT_ID_MAX ||
      !token_action_to_string(action) || expires_at <= 0 || !ret_token)
    return -EINVAL;

  uint8_t payload[TOKEN_HEADER_LEN + TOKEN_CONTRACT_ID_MAX];
  put_be(payload, sign_key_id(key), 4);
  payload[4] = (uint8_t)action;
  put_be(payload + 5, term, 4);
  put_be(payload + 9, (uint64_t)expires_at, 8);
  memcpy(payload + TOKEN_HEADER_LEN, contract_id, id_len);

  _cleanup_free_ char *p64 = sign_base64url_encode(payload, TOKEN_HEADER_LEN + id_len);
  if (!p64)
    return -ENOMEM;
  _cleanup_free_ char *signed_part = strprintf("v1.%s", p64);
  if (!signed_part)
    return -ENOMEM;
  uint8_t tag[TOKEN_TAG_LEN];
  int r = token_tag(key, signed_part, strlen(signed_part), tag);
  if (r < 0)
    return r;
  _cleanup_free_ char *t64 = sign_base64url_encode(tag, sizeof tag);
  if (!t64)
    return -ENOMEM;
  char *t = strprintf("%s.%s", signed_part, t64);
  if (!t)
    return -ENOMEM;
  *ret_token = t;
  return 0;
}

int token_verify(const struct sign_key *keys, size_t n, const char *token, int64_t now,
                 struct token *ret) {
  if (!keys || n == 0 || !token || !ret)
    return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!key_valid(&keys[i]))
      return -EINVAL;

  size_t len = strnlen(token, TOKEN_MAX + 1);
  if (len > TOKEN_MAX || strncmp(token, "v1.", 3) != 0)
    return -EBADMSG;
  const char *p = token + 3;
  const char *dot = strchr(p, '.');
  if (!dot)
    return -EBADMSG;
  _cleanup_free_ uint8_t *payload = NULL, *tag = NULL;
  size_t payload_len = 0, tag_len = 0;
  int r = sign_base64url_decode(p, (size_t)(dot - p), &payload, &payload_len);
  if (r >= 0)
    r = sign_base64url_decode(dot + 1, strlen(dot + 1), &tag, &tag_len);
  if (r == -ENOMEM)
    return r;
  if (r < 0)
    return -EBADMSG; /* includes a third '.', which is not base64url */
  if (payload_len <= TOKEN_HEADER_LEN || payload_len > TOKEN_HEADER_LEN + TOKEN_CONTRACT_ID_MAX ||
      tag_len != TOKEN_TAG_LEN)
    return -EBADMSG;

  uint32_t kid = (uint32_t)get_be(payload, 4);
  bool ok = false;
  for (size_t i = 0; i < n; i++) {
    if (sign_key_id(&keys[i]) != kid)
      continue;
    uint8_t expect[TOKEN_TAG_LEN];
    r = token_tag(&keys[i], token, (size_t)(dot - token), expect);
    if (r < 0)
      return r;
    ok |= memeq_consttime(expect, sizeof expect, tag, tag_len);
  }
  if (!ok)
    return -EKEYREJECTED;

  enum token_action action = payload[4];
  const uint8_t *id = payload + TOKEN_HEADER_LEN;
  size_t id_len = payload_len - TOKEN_HEADER_LEN;
  if (!token_action_to_string(action) || memchr(id, 0, id_len))
    return -EBADMSG;
  int64_t expires_at = (int64_t)get_be(payload + 9, 8);
  if (now >= expires_at)
    return -ETIME;

  *ret = (struct token){
      .term = (uint32_t)get_be(payload + 5, 4),
      .action = action,
      .expires_at = expires_at,
      .key_id = kid,
  };
  memcpy(ret->contract_id, id, id_len);
  ret->contract_id[id_len] = 0;
  return 0;
}
