/* linkkey: the answer-link keys of [Daemon] LinkKeyFile= and the links made
 * with them.
 *
 * The key file holds one key per line (raw bytes of the line, at least
 * SIGN_KEY_MIN of them; a CR before the LF is dropped; empty lines and lines
 * starting with '#' are skipped). The FIRST key signs new links; every key
 * verifies, so a rotation is: put the new key on the first line, keep the old
 * one below it until the links signed with it have expired, then remove it.
 * A one-line file is read exactly as before rotation support (the whole line
 * is the key).
 *
 * Links are PublicURL + "/r/<token>" (answers) or "/u/<token>" (one-click
 * unsubscribe), tokens from notifiers/sign.h. A link stays valid until
 * linkkey_expiry(): the contract's expiry plus the larger of LapseGrace= and
 * 90 days, and at least 30 days after it was made.
 *
 * Links are never made without a key: customer email and SMS carry answer and
 * unsubscribe links, so a configuration whose customer tiers use a channel
 * other than a webhook needs a readable key (linkkeys_check_config()).
 *
 * Owns: the key bytes (wiped on free). linkkeys_load() and
 * linkkeys_check_config() read a file; the rest is pure. Never logs. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "notifiers/sign.h"

/* Most keys a file may list. */
#define LINKKEY_MAX 8

struct linkkeys {
  char *text; /* the file's bytes, keys point into it; wiped on free */
  size_t text_len;
  struct sign_key keys[LINKKEY_MAX]; /* [0] signs; all verify */
  size_t n;                          /* >= 1 */
};

/* Parses key file text (see above). Returns 0 and *ret (caller frees with
 * linkkeys_free()), -ENOKEY with a message in err when the text holds no key,
 * -EINVAL (a key line shorter than SIGN_KEY_MIN bytes, or more than
 * LINKKEY_MAX keys; the message names the line) or -ENOMEM. */
int linkkeys_parse(const char *text, size_t len, struct linkkeys **ret, char *err, size_t errlen);
/* Reads path_or_credential with read_secret() (a name without '/' is a
 * systemd credential) and parses it. Same returns, plus -errno of the read
 * (message in err). */
int linkkeys_load(const char *path_or_credential, struct linkkeys **ret, char *err, size_t errlen);
/* Wipes and frees. Accepts NULL; returns NULL. */
struct linkkeys *linkkeys_free(struct linkkeys *k);
static inline void linkkeys_freep(struct linkkeys **k) {
  linkkeys_free(*k);
}

/* The instant a link for a contract expiring at expires_at stops working:
 * max(expires_at + max(lapse_grace, 90 days), now + 30 days). */
int64_t linkkey_expiry(int64_t expires_at, int64_t lapse_grace, int64_t now);

/* "/u/" for the unsubscribe actions, "/r/" for the others. */
const char *linkkey_prefix(enum token_action action);

/* Builds base + prefix + token, the token signed with keys->keys[0]. base
 * may be NULL or "" (a relative link). Caller frees *ret. Returns 0, -ENOKEY
 * (keys NULL or empty: a link is never made unsigned), -EINVAL (bad id,
 * action or expiry) or -ENOMEM. */
int linkkey_url(const struct linkkeys *keys, const char *base, const char *contract_id,
                uint32_t term, enum token_action action, int64_t expires_at, char **ret);

/* The configuration check of [Daemon] LinkKeyFile= (part of
 * dispatcher_check_config(), so run by both check-configs and at start and
 * reload): when set, the file (or $CREDENTIALS_DIRECTORY credential) must
 * hold valid keys, reported at LinkKeyFile='s file:line; when not set, no
 * customer tier may send through a channel that is not a webhook (email, SMS
 * and the sink carry signed links), reported at that channel's section.
 * Errors are appended to errs. 0, -EINVAL or -ENOMEM. */
int linkkeys_check_config(const struct config *cfg, struct config_errors *errs);
