/* sign: message authentication for delivery and answer links.
 *
 * Three signature schemes plus the base64 codecs they need:
 *  - Standard Webhooks (spec/standard-webhooks.md): outgoing webhook requests
 *    carry "webhook-signature: v1,<base64 HMAC-SHA256>" over
 *    "<webhook-id>.<webhook-timestamp>.<body>", one entry per configured
 *    secret so receivers can rotate.
 *  - Twilio request signatures (X-Twilio-Signature): base64 HMAC-SHA1 over
 *    the full URL followed by the POST parameters sorted by name, each name
 *    immediately followed by its value. Checked on inbound SMS webhooks.
 *  - Answer-link tokens: "v1.<base64url payload>.<base64url tag>", the
 *    payload naming a contract, term, action, expiry and key id, the tag a
 *    HMAC-SHA256 over "v1.<base64url payload>" truncated to 128 bits (short
 *    enough for an SMS, still far beyond guessing).
 *
 * Pure functions: no I/O, no clock reads (the caller passes "now"), no global
 * state, never blocks, never logs. Secrets are borrowed, never kept; decoded
 * key material is wiped before it is freed. All comparisons of MACs are
 * constant-time. Thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- base64 (RFC 4648) ---------------------------------------------------- */

/* Standard alphabet with '=' padding (§4). Returns a NUL-terminated string the
 * caller frees, or NULL on OOM. data may be NULL when len is 0. */
char *sign_base64_encode(const void *data, size_t len);
/* URL-safe alphabet ('-', '_'), no padding (§5). Caller frees; NULL on OOM. */
char *sign_base64url_encode(const void *data, size_t len);
/* Strict decoders: the first len bytes of s must be exactly one canonical
 * encoding (standard: padded to a multiple of 4; url: unpadded), nothing
 * else, no whitespace, unused trailing bits zero. On success *ret is a heap
 * buffer (caller frees; one extra NUL byte follows the data) and *ret_len
 * its length. Returns 0, -EINVAL (not base64) or -ENOMEM. */
int sign_base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len);
int sign_base64url_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len);

/* ---- Standard Webhooks ---------------------------------------------------- */

/* Bounds the spec puts on the decoded "whsec_" key. */
#define SIGN_WEBHOOK_KEY_MIN 24
#define SIGN_WEBHOOK_KEY_MAX 64

/* Signs one webhook request. secrets[0..n) are "whsec_<base64 key>" strings
 * (n >= 1, oldest and newest both during a rotation); msg_id is the
 * webhook-id header value (printable ASCII, no spaces, <= 256 bytes);
 * timestamp the webhook-timestamp (seconds since the epoch, >= 0); body the
 * exact bytes sent (may be NULL when body_len is 0).
 * On success *ret_header_value is "v1,<sig1> v1,<sig2> ..." in secret order
 * (caller frees). Returns 0, -EINVAL with a message in err (malformed secret
 * or argument), or -ENOMEM. err may be NULL. */
int sign_webhook(const char *const *secrets, size_t n, const char *msg_id, int64_t timestamp,
                 const char *body, size_t body_len, char **ret_header_value, char *err,
                 size_t errlen);

/* Verifies a received webhook the way a consumer does: timestamp is the raw
 * webhook-timestamp header (decimal seconds), signature_header the raw
 * webhook-signature header (space-separated "version,base64" entries; entries
 * of other versions such as v1a are ignored). Accepts when any v1 entry
 * matches any of the secrets, compared in constant time, and then only if
 * |now - timestamp| <= tolerance (seconds; the spec suggests 300).
 * Returns 0 when authentic and fresh, -EBADMSG when a header is malformed or
 * holds no v1 entry, -EKEYREJECTED when no entry matches, -ETIME when
 * authentic but outside the tolerance, -EINVAL (message in err) for a
 * malformed secret or argument, -ENOMEM. */
int sign_webhook_verify(const char *const *secrets, size_t n, const char *msg_id,
                        const char *timestamp, const char *body, size_t body_len,
                        const char *signature_header, int64_t now, int64_t tolerance, char *err,
                        size_t errlen);

/* ---- Twilio request signatures -------------------------------------------- */

/* One decoded POST parameter (application/x-www-form-urlencoded field). */
struct sign_param {
  const char *name;  /* decoded name, borrowed */
  const char *value; /* decoded value, borrowed; NULL is treated as "" */
};

/* Computes X-Twilio-Signature for a request: url is the full URL Twilio
 * requested (scheme, host, port if any, path and query exactly as
 * configured at Twilio); params[0..n) the POST parameters in any order
 * (sorted here by name, then value, bytewise; repeated names allowed).
 * *ret_signature is base64 (caller frees). Returns 0, -EINVAL or -ENOMEM.
 * params may be NULL when n is 0. */
int sign_twilio(const char *auth_token, const char *url, const struct sign_param *params, size_t n,
                char **ret_signature);
/* Returns 0 when signature matches (constant-time), -EKEYREJECTED when not,
 * -EINVAL for missing arguments, -ENOMEM. */
int sign_twilio_verify(const char *auth_token, const char *url, const struct sign_param *params,
                       size_t n, const char *signature);

/* ---- answer-link tokens ---------------------------------------------------- */

/* A token key: raw bytes (read from a file by the caller), borrowed. */
struct sign_key {
  const uint8_t *data;
  size_t len; /* >= SIGN_KEY_MIN */
};

#define SIGN_KEY_MIN 16
/* Longest contract id a token carries, in bytes. */
#define TOKEN_CONTRACT_ID_MAX 128
/* Longest token token_sign() produces; longer input is rejected unread. */
#define TOKEN_MAX 256

/* What following the link answers. Values are part of the token format:
 * never renumber, only append. */
enum token_action {
  TOKEN_RENEW = 1,
  TOKEN_DECLINE = 2,
  TOKEN_SNOOZE = 3,
  TOKEN_CALLBACK = 4,
  TOKEN_UNSUBSCRIBE_EMAIL = 5,
  TOKEN_UNSUBSCRIBE_SMS = 6,
  TOKEN_OWNER_RENEWED = 7,
  TOKEN_OWNER_LOST = 8,
  TOKEN_OWNER_SNOOZE = 9,
};

/* "renew", "decline", "snooze", "callback", "unsubscribe-email",
 * "unsubscribe-sms", "owner-renewed", "owner-lost", "owner-snooze";
 * NULL for an unknown value. Static strings. */
const char *token_action_to_string(enum token_action a);
/* Inverse of token_action_to_string(): 0 and *ret set, or -EINVAL. */
int token_action_from_string(const char *s, enum token_action *ret);

/* The key id written into tokens: the first 4 bytes of SHA-256(key), big
 * endian. Stable across restarts and config order; reveals nothing usable
 * about a high-entropy key. 0 for an invalid key. */
uint32_t sign_key_id(const struct sign_key *key);

/* A verified token. */
struct token {
  char contract_id[TOKEN_CONTRACT_ID_MAX + 1]; /* NUL-terminated */
  uint32_t term;                               /* contract term the link was sent for */
  enum token_action action;
  int64_t expires_at; /* instant (UTC seconds) from which the link is refused */
  uint32_t key_id;    /* sign_key_id() of the key that signed it */
};

/* Signs an answer link with key (the current one; older keys are only given
 * to token_verify()). contract_id is 1..TOKEN_CONTRACT_ID_MAX bytes.
 * *ret_token is URL-safe ([A-Za-z0-9._-]), at most TOKEN_MAX bytes; caller
 * frees. Returns 0, -EINVAL (bad key, id, action or expiry <= 0) or -ENOMEM. */
int token_sign(const struct sign_key *key, const char *contract_id, uint32_t term,
               enum token_action action, int64_t expires_at, char **ret_token);

/* Verifies token against keys[0..n): every key whose id matches the token's
 * key id is tried, so keys may be listed in any order during a rotation.
 * Errors, checked in this order:
 *   -EBADMSG       malformed: wrong version prefix, bad base64, bad lengths,
 *                  or (after the tag matched) an unknown action code;
 *   -EKEYREJECTED  no configured key has the token's key id, or the tag does
 *                  not match (a tampered payload lands here);
 *   -ETIME         authentic but now >= expires_at.
 * Also -EINVAL when n is 0, a key is shorter than SIGN_KEY_MIN or an argument
 * is NULL, and -ENOMEM. *ret is filled only on success. */
int token_verify(const struct sign_key *keys, size_t n, const char *token, int64_t now,
                 struct token *ret);
