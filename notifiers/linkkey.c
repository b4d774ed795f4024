/* linkkey: answer-link keys and links (see linkkey.h).
 *
 * Owns the key file's bytes (wiped on free). Pure except linkkeys_load(),
 * which reads one small file. */
#include "notifiers/linkkey.h"

#include "core/util.h"

#define DAY INT64_C(86400)

struct linkkeys *linkkeys_free(struct linkkeys *k) {
  if (!k)
    return NULL;
  if (k->text) {
    explicit_bzero(k->text, k->text_len);
    free(k->text);
  }
  explicit_bzero(k, sizeof *k);
  free(k);
  return NULL;
}

int linkkeys_parse(const char *text, size_t len, struct linkkeys **ret, char *err, size_t errlen) {
  char dummy[1];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof dummy;
  }
  err[0] = 0;
  if (!ret || (!text && len))
    return -EINVAL;
  struct linkkeys *k = calloc(1, sizeof *k);
  if (!k)
    return -ENOMEM;
  k->text = malloc(len + 1);
  if (!k->text) {
    free(k);
    return -ENOMEM;
  }
  if (len)
    memcpy(k->text, text, len);
  k->text[len] = 0;
  k->text_len = len;

  unsigned line = 0;
  for (size_t i = 0; i < len;) {
    size_t start = i;
    while (i < len && k->text[i] != '\n')
      i++;
    size_t end = i;
    if (i < len)
      i++; /* the LF */
    line++;
    if (end > start && k->text[end - 1] == '\r')
      end--;
    if (end == start || k->text[start] == '#')
      continue;
    if (end - start < SIGN_KEY_MIN) {
      snprintf(err, errlen, "line %u: a link key needs at least %d bytes, this one has %zu", line,
               SIGN_KEY_MIN, end - start);
      linkkeys_free(k);
      return -EINVAL;
    }
    if (k->n == LINKKEY_MAX) {
      snprintf(err, errlen, "line %u: at most %d link keys", line, LINKKEY_MAX);
      linkkeys_free(k);
      return -EINVAL;
    }
    k->keys[k->n++] =
        (struct sign_key){.data = (const uint8_t *)k->text + start, .len = end - start};
  }
  if (k->n == 0) {
    snprintf(err, errlen, "no link key in the file");
    linkkeys_free(k);
    return -ENOKEY;
  }
  *ret = k;
  return 0;
}

int linkkeys_load(const char *path_or_credential, struct linkkeys **ret, char *err, size_t errlen) {
  char *text = NULL;
  int r = read_secret(path_or_credential, &text);
  if (r < 0) {
    if (err && errlen)
      /* The caller names the setting; the value itself may be a misplaced secret. */
      snprintf(err, errlen, "cannot read the key file: %s", strerror(-r));
    return r;
  }
  size_t len = strlen(text);
  r = linkkeys_parse(text, len, ret, err, errlen);
  explicit_bzero(text, len);
  free(text);
  return r;
}

/* a + b, saturated at INT64_MAX (b >= 0): a huge LapseGrace= must not wrap
 * into a link that expired long ago (or be undefined behaviour) */
static int64_t add_sat(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}

int64_t linkkey_expiry(int64_t expires_at, int64_t lapse_grace, int64_t now) {
  int64_t grace = MAX(lapse_grace, 90 * DAY);
  return MAX(add_sat(expires_at, grace), add_sat(now, 30 * DAY));
}

const char *linkkey_prefix(enum token_action action) {
  return action == TOKEN_UNSUBSCRIBE_EMAIL || action == TOKEN_UNSUBSCRIBE_SMS ? "/u/" : "/r/";
}

int linkkey_url(const struct linkkeys *keys, const char *base, const char *contract_id,
                uint32_t term, enum token_action action, int64_t expires_at, char **ret) {
  if (!ret || isempty(contract_id) || !token_action_to_string(action))
    return -EINVAL;
  if (!keys || !keys->n)
    return -ENOKEY;
  _cleanup_free_ char *tok = NULL;
  int r = token_sign(&keys->keys[0], contract_id, term, action, expires_at, &tok);
  if (r < 0)
    return r;
  char *url = strprintf("%s%s%s", base ? base : "", linkkey_prefix(action), tok);
  if (!url)
    return -ENOMEM;
  *ret = url;
  return 0;
}

/* ---- configuration check ---------------------------------------------------------------- */

/* The first channel a customer tier sends signed links through (anything
 * but a webhook), with that tier; NULL when there is none. */
static const struct config_channel *links_channel(const struct config *cfg,
                                                  const struct tier **ret_tier) {
  for (size_t p = 0; p < cfg->n_policies; p++)
    for (size_t k = 0; k < cfg->policies[p]->n_tiers; k++) {
      const struct tier *t = &cfg->policies[p]->tiers[k];
      if (t->audience != AUDIENCE_CUSTOMER)
        continue;
      for (size_t i = 0; i < t->n_channels + t->n_fallback; i++) {
        const char *name = i < t->n_channels ? t->channels[i] : t->fallback[i - t->n_channels];
        const struct config_channel *ch = config_channel(cfg, name);
        if (ch && ch->type && !streq(ch->type, "webhook")) {
          *ret_tier = t;
          return ch;
        }
      }
    }
  return NULL;
}

int linkkeys_check_config(const struct config *cfg, struct config_errors *errs) {
  if (!cfg)
    return -EINVAL;
  const char *file = cfg->daemon.link_key_file;
  if (isempty(file)) {
    const struct tier *t = NULL;
    const struct config_channel *ch = links_channel(cfg, &t);
    if (!ch)
      return 0;
    config_errors_add(errs, ch->file ? ch->file : "?", ch->line,
                      "[Channel %s]: customer tier '%s' sends %s through this channel, but "
                      "[Daemon] LinkKeyFile= is not set: answer and unsubscribe links must be "
                      "signed (see renewd.conf(5), LinkKeyFile=)",
                      ch->name, t->name, streq(ch->type, "sms") ? "SMS" : "email");
    return -EINVAL;
  }
  _cleanup_(linkkeys_freep) struct linkkeys *k = NULL;
  char err[256] = "";
  int r = linkkeys_load(file, &k, err, sizeof err);
  if (r == -ENOMEM)
    return r;
  if (r >= 0)
    return 0;
  const char *src = cfg->daemon.link_key_src ? cfg->daemon.link_key_src : "?";
  unsigned line = cfg->daemon.link_key_line;
  if (!strchr(file, '/') && isempty(getenv("CREDENTIALS_DIRECTORY")))
    config_errors_add(errs, src, line,
                      "LinkKeyFile=%s: a credential name, but $CREDENTIALS_DIRECTORY is not "
                      "set (renewd reads it from LoadCredential=; to check a configuration "
                      "outside the service, set CREDENTIALS_DIRECTORY to a directory holding "
                      "the credential files)",
                      file);
  else
    config_errors_add(errs, src, line, "LinkKeyFile=%s: %s", file, err);
  return -EINVAL;
}
