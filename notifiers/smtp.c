/* smtp: Type=smtp, email through an SMTP relay with libcurl (see smtp.h).
 *
 * prepare() formats the whole message (mail_format(), notifiers/mail.h) into the transfer's upload
 * buffer and configures the easy handle: URL, envelope, STARTTLS policy,
 * credentials, CA; a debug callback (CURLOPT_VERBOSE with our own
 * CURLOPT_DEBUGFUNCTION, so nothing is printed) keeps the server's final
 * reply lines so that finish() can name the queue id and quote the server's
 * own words on failure; outgoing lines (AUTH included) are never looked at.
 * finish() classifies by the last SMTP reply code first (CURLINFO_RESPONSE_CODE:
 * 4xx transient, 5xx permanent), then by the curl error (connection trouble
 * transient; certificate and login problems permanent).
 *
 * Owns: struct smtp (settings, the password; wiped on free) and per transfer
 * a struct smtp_xfer (freed by the dispatcher through backend_free). Never
 * blocks, except new() reading the password file once. Never logs. */
#include "notifiers/smtp.h"

#include <ctype.h>
#include <inttypes.h>

#include "core/util.h"
#include "notifiers/mail.h"
#include "notifiers/mime.h"
#include "notifiers/render.h"
#include "notifiers/templates.h"

#define REPLY_MAX 512

/* Parsed [Channel] keys. */
struct smtp_settings {
  char *url;                 /* URL=: smtp://host[:port][/ehlo] or smtps:// */
  bool smtps;                /* implicit TLS */
  bool loopback;             /* the host is 127.0.0.0/8, ::1 or localhost */
  struct mail_settings mail; /* From=, ReplyTo=, Calendar=, CalendarAlarm= */
  char *username;            /* Username=, or NULL */
  char *password_file;       /* PasswordFile= (path or credential name), or NULL */
  bool require_tls;          /* RequireTLS= (default: yes with Username= on a non-loopback host) */
  char *ca_file;             /* CAFile=, or NULL */
  bool tls_verify;           /* TLSVerify= */
  char *return_path;         /* ReturnPath= (VERP pattern with one {key}), NULL = From= */
};

struct smtp {
  struct smtp_settings set;
  char *password; /* PasswordFile= contents; wiped on free */
};

/* Per transfer: the server's last final reply lines (CRLF stripped,
 * control characters blanked). QUIT's "221" comes after the one that
 * decided when the connection closes, hence two. */
struct smtp_xfer {
  char ok[REPLY_MAX];  /* last "250 ..." line (the DATA reply names the queue id) */
  char err[REPLY_MAX]; /* last 4xx/5xx line */
};

static const char *const smtp_known[] = {
    "URL",    "From",      "ReplyTo",  "Username",      "PasswordFile", "RequireTLS",
    "CAFile", "TLSVerify", "Calendar", "CalendarAlarm", "ReturnPath",   NULL,
};
static const char *const smtp_required[] = {"URL", "From", NULL};

/* ---- settings ---------------------------------------------------------------------- */

static void settings_done(struct smtp_settings *s) {
  free(s->url);
  mail_settings_done(&s->mail);
  free(s->username);
  free(s->password_file);
  free(s->ca_file);
  free(s->return_path);
  *s = (struct smtp_settings){0};
}

static bool host_is_loopback(const char *h) {
  return strcasecmp(h, "localhost") == 0 || strncmp(h, "127.", 4) == 0 || streq(h, "[::1]") ||
         streq(h, "::1");
}

/* Checks URL= with curl's own parser, so what passes here is what curl does. */
static int parse_url(const struct config_channel *ch, const struct config_kv *kv,
                     struct smtp_settings *s, struct config_errors *errs) {
  CURLU *u = curl_url();
  if (!u)
    return -ENOMEM;
  char *scheme = NULL, *host = NULL;
  int r = 0;
  if (curl_url_set(u, CURLUPART_URL, kv->value, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
    r = notify_error(errs, ch, kv, "expected smtp://HOST[:PORT] or smtps://HOST[:PORT]");
  else if (!streq(scheme, "smtp") && !streq(scheme, "smtps"))
    r = notify_error(errs, ch, kv, "scheme %s: is not smtp:// or smtps://", scheme);
  else if (notify_url_has_password(kv->value))
    r = notify_error(errs, ch, kv, "holds a password: use Username= and PasswordFile=");
  else {
    s->smtps = streq(scheme, "smtps");
    s->loopback = host_is_loopback(host);
    if (!(s->url = strdup(kv->value)))
      r = -ENOMEM;
  }
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(u);
  return r;
}

static int parse_bool_key(const struct config_channel *ch, const char *key, bool def, bool *ret,
                          struct config_errors *errs) {
  const struct config_kv *kv = config_channel_lookup(ch, key);
  *ret = def;
  if (!kv)
    return 0;
  int b = parse_boolean(kv->value);
  if (b < 0)
    return notify_error(errs, ch, kv, "expected yes or no");
  *ret = b;
  return 0;
}

/* A secret name: an absolute path or a credential name (no '/'). */
static bool secret_name_ok(const char *v) {
  return v[0] == '/' || (!strchr(v, '/') && !streq(v, ".") && !streq(v, ".."));
}

/* ReturnPath=: checked by building it for a key of the store's form. */
static int parse_return_path(const struct config_channel *ch, const struct config_kv *kv,
                             struct smtp_settings *s, struct config_errors *errs) {
  char err[NOTIFY_ERROR_MAX];
  _cleanup_free_ char *sample = NULL;
  int r =
      mail_return_path(kv->value, "rk-00000000000000000000000000000000", &sample, err, sizeof err);
  if (r == -EINVAL)
    return notify_error(errs, ch, kv, "%s", err);
  if (r < 0)
    return r;
  return (s->return_path = strdup(kv->value)) ? 0 : -ENOMEM;
}

/* Parses every key of ch into *ret (zeroed first). Errors are appended to
 * errs; returns 0, -EINVAL or -ENOMEM (then *ret is cleared). */
static int settings_parse(const struct config_channel *ch, struct smtp_settings *ret,
                          struct config_errors *errs) {
  struct smtp_settings s = {0};
  const struct config_kv *kv;
  int r = 0, q;

  if ((kv = config_channel_lookup(ch, "URL")) && (q = parse_url(ch, kv, &s, errs)) < 0)
    r = q;
  if ((q = mail_settings_parse(ch, NULL, &s.mail, errs)) < 0)
    r = q;
  const struct config_kv *user = config_channel_lookup(ch, "Username");
  const struct config_kv *pass = config_channel_lookup(ch, "PasswordFile");
  if (user && !(s.username = strdup(user->value)))
    r = -ENOMEM;
  if (pass) {
    if (!secret_name_ok(pass->value))
      r = notify_error(errs, ch, pass, "must be an absolute path or a credential name");
    else if (!(s.password_file = strdup(pass->value)))
      r = -ENOMEM;
  }
  if (user && !pass)
    r = notify_error(errs, ch, user, "needs PasswordFile=");
  if (pass && !user)
    r = notify_error(errs, ch, pass, "needs Username=");
  /* credentials never cross a network in the clear unless explicitly allowed */
  if ((q = parse_bool_key(ch, "RequireTLS", user && !s.loopback, &s.require_tls, errs)) < 0)
    r = q;
  if ((q = parse_bool_key(ch, "TLSVerify", true, &s.tls_verify, errs)) < 0)
    r = q;
  if ((kv = config_channel_lookup(ch, "CAFile"))) {
    if (kv->value[0] != '/')
      r = notify_error(errs, ch, kv, "must be an absolute path");
    else if (!(s.ca_file = strdup(kv->value)))
      r = -ENOMEM;
  }
  if ((kv = config_channel_lookup(ch, "ReturnPath")) &&
      (q = parse_return_path(ch, kv, &s, errs)) < 0)
    r = q;
  if (r < 0) {
    settings_done(&s);
    return r;
  }
  *ret = s;
  return 0;
}

/* ---- config check -------------------------------------------------------------------- */

static bool tier_uses(const struct tier *t, const char *chname) {
  for (size_t i = 0; i < t->n_channels; i++)
    if (streq(t->channels[i], chname))
      return true;
  for (size_t i = 0; i < t->n_fallback; i++)
    if (streq(t->fallback[i], chname))
      return true;
  return false;
}

/* Every template this channel may send needs a subject and a text part in
 * the fallback locale (the last resort of every locale chain). */
static int check_template(const struct config_channel *ch, struct templates *t, const char *tier,
                          const char *name, struct config_errors *errs) {
  static const char *const parts[] = {"subject", "text"};
  int r = 0;
  for (size_t i = 0; i < ELEMENTSOF(parts); i++)
    if (!templates_exists(t, TEMPLATES_FALLBACK_LOCALE, name, parts[i]))
      r = notify_error(errs, ch, NULL,
                       "tier '%s' sends template '%s' by email, but there is no "
                       "%s/%s.%s.mustache in the template directory",
                       tier, name, TEMPLATES_FALLBACK_LOCALE, name, parts[i]);
  return r;
}

struct dir_check {
  struct config_errors *errs;
  int r;
};

static void dir_problem(void *ud, const char *file, unsigned line, const char *msg) {
  struct dir_check *c = ud;
  config_errors_add(c->errs, file, line, "%s", msg);
  c->r = -EINVAL;
}

static int smtp_check_config(const struct config_channel *ch, const struct notify_env *env,
                             struct config_errors *errs) {
  int r = notify_check_keys(ch, smtp_known, smtp_required, errs);
  struct smtp_settings s;
  int q = settings_parse(ch, &s, errs);
  if (q < 0)
    r = q;
  else
    settings_done(&s);
  const struct config *cfg = env ? env->cfg : NULL;
  struct templates *t = env ? env->templates : NULL;
  if (!cfg || !t)
    return r; /* no template directory: the built-in templates are used */
  for (size_t p = 0; p < cfg->n_policies; p++)
    for (size_t k = 0; k < cfg->policies[p]->n_tiers; k++) {
      const struct tier *tier = &cfg->policies[p]->tiers[k];
      bool seen = false; /* a tier shared by policies is checked once */
      for (size_t pp = 0; pp < p && !seen; pp++)
        for (size_t kk = 0; kk < cfg->policies[pp]->n_tiers && !seen; kk++)
          seen = streq(cfg->policies[pp]->tiers[kk].name, tier->name);
      if (!seen && tier_uses(tier, ch->name) &&
          check_template(ch, t, tier->name, tier->template_name ? tier->template_name : tier->name,
                         errs) < 0)
        r = -EINVAL;
    }
  if (cfg->alert_channel && streq(cfg->alert_channel, ch->name) &&
      check_template(ch, t, RENDER_OPS_TIER, RENDER_OPS_TIER, errs) < 0)
    r = -EINVAL;
  /* The directory as a whole (every file compiles, every partial named
   * exists) is checked once per config: by its first email channel. */
  for (size_t i = 0; i < cfg->n_channels; i++) {
    if (!streq_ptr(cfg->channels[i].type, "smtp"))
      continue;
    if (streq(cfg->channels[i].name, ch->name)) {
      struct dir_check c = {.errs = errs};
      q = templates_check(t, dir_problem, &c);
      if (q < 0 || c.r < 0)
        r = -EINVAL;
    }
    break;
  }
  return r;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static void *smtp_free(void *state) {
  struct smtp *s = state;
  if (!s)
    return NULL;
  settings_done(&s->set);
  if (s->password) {
    explicit_bzero(s->password, strlen(s->password));
    free(s->password);
  }
  free(s);
  return NULL;
}

static int smtp_new(const struct config_channel *ch, const struct notify_env *env, void **ret,
                    struct config_errors *errs) {
  struct smtp *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  int r = settings_parse(ch, &s->set, errs);
  if (r < 0) {
    free(s);
    return r;
  }
  if (s->set.password_file) {
    r = read_secret(s->set.password_file, &s->password);
    if (r < 0) {
      /* the name of the file, never its contents */
      notify_error(errs, ch, config_channel_lookup(ch, "PasswordFile"), "cannot read %s: %s",
                   s->set.password_file, strerror(-r));
      smtp_free(s);
      return r;
    }
  }
  *ret = s;
  return 0;
}

/* ---- the message --------------------------------------------------------------------- */

/* ---- transfers ----------------------------------------------------------------------- */

void smtp_reply_queue_id(const char *reply, char *out, size_t n) {
  if (!out || n == 0)
    return;
  out[0] = 0;
  if (isempty(reply))
    return;
  static const char *const marks[] = {"queued as ", "Queued as ", "queued with id ", "id="};
  for (size_t i = 0; i < ELEMENTSOF(marks); i++) {
    const char *p = strstr(reply, marks[i]);
    if (!p)
      continue;
    p += strlen(marks[i]);
    if (*p == '<')
      p++;
    size_t k = 0;
    while (p[k] && !isspace((unsigned char)p[k]) && p[k] != '>' && p[k] != ';' && p[k] != ',' &&
           p[k] != ')')
      k++;
    /* a queue id: at least 4 characters, letters/digits and a few marks */
    bool ok = k >= 4 && k < n;
    for (size_t j = 0; ok && j < k; j++)
      ok = isalnum((unsigned char)p[j]) || strchr("-_.@=+/", p[j]);
    if (ok) {
      memcpy(out, p, k);
      out[k] = 0;
      return;
    }
  }
}

/* Keeps the server's final reply lines that matter (see struct smtp_xfer). */
static int debug_cb(CURL *easy, curl_infotype type, char *data, size_t size, void *ud) {
  struct smtp_xfer *x = ud;
  if (type != CURLINFO_HEADER_IN || !x || size < 4 || data[3] != ' ')
    return 0; /* not a reply, or a continuation line ("250-...") */
  char *dst = data[0] == '2' && data[1] == '5' && data[2] == '0' ? x->ok
              : data[0] == '4' || data[0] == '5'                 ? x->err
                                                                 : NULL;
  if (!dst)
    return 0;
  while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r'))
    size--;
  size = MIN(size, (size_t)REPLY_MAX - 1);
  for (size_t i = 0; i < size; i++)
    dst[i] = (unsigned char)data[i] < 0x20 ? ' ' : data[i];
  dst[size] = 0;
  return 0;
}

static int smtp_prepare(void *state, const struct notify_request *req, CURL *easy,
                        struct notify_xfer *xfer, struct notify_result *res) {
  struct smtp *s = state;
  const struct smtp_settings *set = &s->set;
  char err[NOTIFY_ERROR_MAX] = "";
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  _cleanup_free_ char *sender = NULL;
  int r = mail_format(&set->mail, req, &text, &len, err, sizeof err);
  if (r >= 0 && set->return_path)
    r = mail_return_path(set->return_path, req->row->idem_key, &sender, err, sizeof err);
  if (r < 0) {
    res->status = r == -ENOMEM ? NOTIFY_TRANSIENT : NOTIFY_PERMANENT;
    snprintf(res->error, sizeof res->error, "%s", *err ? err : strerror(-r));
    return r;
  }
  struct smtp_xfer *x = calloc(1, sizeof *x);
  struct curl_slist *rcpt = x ? curl_slist_append(NULL, req->row->recipient) : NULL;
  if (!rcpt || buf_append(&xfer->request, text, len) < 0) {
    free(x);
    curl_slist_free_all(rcpt);
    res->status = NOTIFY_TRANSIENT;
    snprintf(res->error, sizeof res->error, "out of memory");
    return -ENOMEM;
  }
  xfer->backend_data = x;
  xfer->backend_free = free;
  xfer->recipients = rcpt;
  xfer->upload = true;

  curl_easy_setopt(easy, CURLOPT_URL, set->url);
  /* VERP: a bounce comes back to an address naming the row (libcurl copies it) */
  curl_easy_setopt(easy, CURLOPT_MAIL_FROM, sender ? sender : set->mail.from_addr);
  if (!set->smtps)
    curl_easy_setopt(easy, CURLOPT_USE_SSL,
                     (long)(set->require_tls ? CURLUSESSL_ALL : CURLUSESSL_TRY));
  if (set->username) {
    curl_easy_setopt(easy, CURLOPT_USERNAME, set->username);
    curl_easy_setopt(easy, CURLOPT_PASSWORD, s->password ? s->password : "");
    curl_easy_setopt(easy, CURLOPT_SASL_IR, 1L);
  }
  if (set->ca_file)
    curl_easy_setopt(easy, CURLOPT_CAINFO, set->ca_file);
  if (!set->tls_verify) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  /* the server's reply lines reach us through the debug callback only */
  curl_easy_setopt(easy, CURLOPT_DEBUGFUNCTION, debug_cb);
  curl_easy_setopt(easy, CURLOPT_DEBUGDATA, x);
  curl_easy_setopt(easy, CURLOPT_VERBOSE, 1L);
  return 0;
}

/* "550 5.1.1 <a@b>: Recipient address rejected" → "5.1.1 <a@b>: ..." */
static const char *reply_text(const char *reply) {
  const char *p = reply;
  while (isdigit((unsigned char)*p))
    p++;
  if (p > reply && (*p == ' ' || *p == '-'))
    p++;
  return p;
}

static void smtp_finish(void *state, const struct notify_request *req, CURL *easy,
                        struct notify_xfer *xfer, CURLcode code, struct notify_result *res) {
  struct smtp_xfer *x = xfer->backend_data;
  long reply = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &reply);
  if (reply >= 400 && reply < 600) {
    /* the server said no: its code decides (4xx try again, 5xx never) */
    const char *why = x && *x->err ? reply_text(x->err) : xfer->curl_error;
    notify_classify_smtp(reply, why, res);
    return;
  }
  if (code != CURLE_OK) {
    notify_classify_curl(code, xfer->curl_error, res);
    res->http_status = reply;
    return;
  }
  res->status = NOTIFY_SENT;
  res->http_status = reply;
  smtp_reply_queue_id(x ? x->ok : NULL, res->provider_id, sizeof res->provider_id);
}

const struct notifier_ops notifier_smtp_ops = {
    .type = "smtp",
    .kind = NOTIFY_EMAIL,
    .check_config = smtp_check_config,
    .new = smtp_new,
    .free = smtp_free,
    .prepare = smtp_prepare,
    .finish = smtp_finish,
};
