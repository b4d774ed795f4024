/* webhook: Type=webhook, a signed JSON POST per message (Standard Webhooks).
 *
 *   [Channel crm]
 *   Type=webhook
 *   URL=https://crm.example.com/hooks/renewd  (required; customer rows go here,
 *                                  owner rows to the owner's webhook if set)
 *   SecretFile=webhook-secret      (optional: "whsec_..." secrets separated by
 *                                  blanks; every one signs, for rotation)
 *   BodyTemplate=slack             (optional: template NAME.body.mustache
 *                                  renders the body instead of the event JSON)
 *   ContentType=application/json   (optional, the body's media type)
 *   AllowPrivate=no                (default: refuse destinations resolving to
 *                                  loopback, private, link-local, CGNAT,
 *                                  unique-local, reserved or unspecified
 *                                  addresses: notify_addr_private(); checked
 *                                  when a connection is opened AND when one
 *                                  is reused)
 *   Headers=X-Team: renewals       (optional, repeatable; plain config: no credentials)
 *   HeadersFile=crm-headers        (optional: headers with credentials, e.g.
 *                                  "Authorization: Bearer ...", one per line,
 *                                  from a file or systemd credential)
 *
 * Every request carries webhook-id (the outbox row's idempotency key, the
 * same on every retry and after a crash), webhook-timestamp and, with
 * secrets, webhook-signature ("v1,<base64 HMAC-SHA256>" per secret over
 * "id.timestamp.body"). 2xx = sent; 408/425/429/5xx and transport failures
 * are transient (Retry-After honoured); other statuses are permanent.
 *
 * Owns: the decoded secrets (wiped on free). Never blocks: runs on the
 * dispatcher's curl multi. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "core/util.h"
#include "notifiers/notifier.h"
#include "notifiers/render.h"
#include "notifiers/sign.h"
#include "notifiers/templates.h"

struct webhook {
  char **secrets; /* "whsec_..." */
  size_t n_secrets;
  char *body_template;      /* BodyTemplate= or NULL */
  char *content_type;       /* ContentType= */
  bool allow_private;       /* AllowPrivate= */
  struct curl_slist *extra; /* Headers= (copied per transfer) */
  struct templates *tmpl;   /* borrowed from the renderer */
};

static const char *const webhook_known[] = {"URL",          "SecretFile", "BodyTemplate",
                                            "AllowPrivate", "Headers",    "HeadersFile",
                                            "ContentType",  NULL};
static const char *const webhook_required[] = {"URL", NULL};

static bool url_ok(const char *u) {
  return u && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0) &&
         !strpbrk(u, " \t\r\n");
}

static int webhook_check_config(const struct config_channel *ch, const struct notify_env *env,
                                struct config_errors *errs) {
  int r = notify_check_keys(ch, webhook_known, webhook_required, errs);
  const struct config_kv *kv;
  if ((kv = config_channel_lookup(ch, "URL")) && !url_ok(kv->value))
    r = notify_error(errs, ch, kv, "expected an http:// or https:// URL");
  else if (kv && notify_url_has_password(kv->value))
    r = notify_error(errs, ch, kv,
                     "holds a password: secrets do not belong in renewd.conf (let the "
                     "receiver check the SecretFile= signature instead)");
  if ((kv = config_channel_lookup(ch, "AllowPrivate")) && parse_boolean(kv->value) < 0)
    r = notify_error(errs, ch, kv, "expected yes or no");
  if ((kv = config_channel_lookup(ch, "BodyTemplate")) && env && env->templates &&
      !templates_exists(env->templates, NULL, kv->value, "body"))
    r = notify_error(errs, ch, kv, "no template %s.body.mustache in the template directory",
                     kv->value);
  if ((kv = config_channel_lookup(ch, "BodyTemplate")) && env && !env->templates)
    r = notify_error(errs, ch, kv, "needs a template directory (Templates=)");
  if (notify_check_headers(ch, errs) < 0)
    r = -EINVAL;
  return r;
}

static void *webhook_free(void *state) {
  struct webhook *w = state;
  if (!w)
    return NULL;
  for (size_t i = 0; i < w->n_secrets; i++) {
    explicit_bzero(w->secrets[i], strlen(w->secrets[i]));
    free(w->secrets[i]);
  }
  free(w->secrets);
  free(w->body_template);
  free(w->content_type);
  notify_headers_free(w->extra); /* HeadersFile= credentials: wiped */
  free(w);
  return NULL;
}

static int webhook_new(const struct config_channel *ch, const struct notify_env *env, void **ret,
                       struct config_errors *errs) {
  struct webhook *w = calloc(1, sizeof *w);
  if (!w)
    return -ENOMEM;
  int r = -ENOMEM;
  w->tmpl = env ? env->templates : NULL;
  const char *v = config_channel_get(ch, "AllowPrivate");
  w->allow_private = v && parse_boolean(v) > 0;
  w->body_template = strdup_or_null(config_channel_get(ch, "BodyTemplate"));
  w->content_type =
      strdup(config_channel_get(ch, "ContentType") ? config_channel_get(ch, "ContentType")
                                                   : "application/json");
  if (!w->content_type || notify_append_headers(ch, &w->extra) < 0)
    goto fail;
  if ((r = notify_append_secret_headers(ch, &w->extra, errs)) < 0)
    goto fail;
  r = -ENOMEM;
  const struct config_kv *kv = config_channel_lookup(ch, "SecretFile");
  if (kv) {
    char *text = NULL;
    r = read_secret(kv->value, &text);
    if (r < 0) {
      /* the path is not secret; the contents are */
      notify_error(errs, ch, kv, "cannot read the secret: %s", strerror(-r));
      goto fail;
    }
    char *save = NULL;
    for (char *tok = strtok_r(text, " \t\r\n", &save); tok;
         tok = strtok_r(NULL, " \t\r\n", &save)) {
      char **s = realloc(w->secrets, (w->n_secrets + 1) * sizeof *s);
      if (!s || !(s[w->n_secrets] = strdup(tok))) {
        if (s)
          w->secrets = s;
        explicit_bzero(text, strlen(text));
        free(text);
        r = -ENOMEM;
        goto fail;
      }
      w->secrets = s;
      w->n_secrets++;
    }
    /* strtok_r wrote NULs into text: wipe its whole original length */
    explicit_bzero(text, save ? (size_t)(save - text) : 0);
    free(text);
    if (w->n_secrets == 0) {
      r = notify_error(errs, ch, kv, "the secret file is empty");
      goto fail;
    }
    char err[256] = "";
    _cleanup_free_ char *sig = NULL;
    r = sign_webhook((const char *const *)w->secrets, w->n_secrets, "msg_check", 0, "", 0, &sig,
                     err, sizeof err);
    if (r < 0) {
      notify_error(errs, ch, kv, "invalid secret (expected whsec_<base64>): %s", err);
      goto fail;
    }
  }
  *ret = w;
  return 0;
fail:
  webhook_free(w);
  return r;
}

/* ---- private destination check ------------------------------------------------------ */

static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *address) {
  struct notify_xfer *nx = clientp;
  if (notify_addr_private(&address->addr)) {
    char host[INET6_ADDRSTRLEN] = "?";
    if (address->family == AF_INET)
      inet_ntop(AF_INET, &((struct sockaddr_in *)&address->addr)->sin_addr, host, sizeof host);
    else if (address->family == AF_INET6)
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&address->addr)->sin6_addr, host, sizeof host);
    nx->refused = true;
    snprintf(nx->refused_why, sizeof nx->refused_why,
             "destination %s is a private or local address (AllowPrivate=no)", host);
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

/* Checks the peer again once the connection is there, new or REUSED: the
 * dispatcher's curl multi shares one connection cache between channels, so
 * a connection another channel (AllowPrivate=yes, an SMS gateway, ...)
 * opened to a private address could otherwise carry this request without
 * open_socket_cb() ever seeing it. */
static int prereq_cb(struct notify_xfer *nx, const char *conn_primary_ip) {
  if (!notify_ip_private(conn_primary_ip))
    return CURL_PREREQFUNC_OK;
  nx->refused = true;
  snprintf(nx->refused_why, sizeof nx->refused_why,
           "destination %.64s is a private or local address (AllowPrivate=no)",
           conn_primary_ip ? conn_primary_ip : "?");
  return CURL_PREREQFUNC_ABORT;
}

/* ---- sending ---------------------------------------------------------------------------- */

static int add_header(struct curl_slist **l, const char *fmt, ...) _printf_(2, 3);
static int add_header(struct curl_slist **l, const char *fmt, ...) {
  /* curl_slist_append() copies: format on the stack unless it is long */
  char stack[512], *s = stack;
  _cleanup_free_ char *heap = NULL;
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(stack, sizeof stack, fmt, ap);
  va_end(ap);
  if (k < 0)
    return -ENOMEM;
  if ((size_t)k >= sizeof stack) {
    va_start(ap, fmt);
    k = vasprintf(&heap, fmt, ap);
    va_end(ap);
    if (k < 0) {
      heap = NULL; /* undefined after a failure */
      return -ENOMEM;
    }
    s = heap;
  }
  struct curl_slist *n = curl_slist_append(*l, s);
  if (!n)
    return -ENOMEM;
  *l = n;
  return 0;
}

static int webhook_prepare(void *state, const struct notify_request *req, CURL *easy,
                           struct notify_xfer *nx, struct notify_result *res) {
  struct webhook *w = state;
  const char *url = req->row->recipient;
  if (!url_ok(url)) {
    res->status = NOTIFY_PERMANENT;
    snprintf(res->error, sizeof res->error, "invalid recipient: not an http(s) URL");
    return -EINVAL;
  }
  int r;
  if (w->body_template) {
    _cleanup_free_ char *body = NULL;
    char err[256] = "";
    const char *locale = NULL;
    json_t *cu = json_object_get(req->msg->data, "customer");
    if (cu)
      locale = json_string_value(json_object_get(cu, "locale"));
    r = w->tmpl ? templates_render(w->tmpl, locale, w->body_template, "body", req->msg->data, &body,
                                   NULL, err, sizeof err)
                : -ENOENT;
    if (r < 0) {
      res->status = NOTIFY_PERMANENT;
      snprintf(res->error, sizeof res->error, "BodyTemplate=%s: %s", w->body_template,
               *err ? err : strerror(-r));
      return r;
    }
    r = buf_puts(&nx->request, body);
  } else
    r = buf_puts(&nx->request, req->msg->event ? req->msg->event : "{}");
  if (r < 0)
    goto oom;
  if (add_header(&nx->headers, "Content-Type: %s", w->content_type) < 0 ||
      add_header(&nx->headers, "webhook-id: %s", req->row->idem_key) < 0 ||
      add_header(&nx->headers, "webhook-timestamp: %lld", (long long)req->now) < 0 ||
      add_header(&nx->headers, "Expect:") < 0)
    goto oom;
  if (w->n_secrets > 0) {
    _cleanup_free_ char *sig = NULL;
    char err[256] = "";
    r = sign_webhook((const char *const *)w->secrets, w->n_secrets, req->row->idem_key, req->now,
                     nx->request.data, nx->request.len, &sig, err, sizeof err);
    if (r < 0) {
      res->status = NOTIFY_PERMANENT;
      snprintf(res->error, sizeof res->error, "cannot sign: %s", err);
      return r;
    }
    if (add_header(&nx->headers, "webhook-signature: %s", sig) < 0)
      goto oom;
  }
  for (struct curl_slist *h = w->extra; h; h = h->next)
    if (add_header(&nx->headers, "%s", h->data) < 0)
      goto oom;
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, nx->request.data);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)nx->request.len);
  if (!w->allow_private) {
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, nx);
    nx->prereq = prereq_cb;
  }
  return 0;
oom:
  res->status = NOTIFY_TRANSIENT;
  snprintf(res->error, sizeof res->error, "out of memory");
  return -ENOMEM;
}

static void webhook_finish(void *state, const struct notify_request *req, CURL *easy,
                           struct notify_xfer *nx, CURLcode code, struct notify_result *res) {
  if (code != CURLE_OK) {
    notify_classify_curl(code, nx->curl_error, res);
    return;
  }
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  notify_classify_http(status, NULL, nx->retry_after, nx->response.data, res);
}

const struct notifier_ops notifier_webhook_ops = {
    .type = "webhook",
    .kind = NOTIFY_WEBHOOK,
    .check_config = webhook_check_config,
    .new = webhook_new,
    .free = webhook_free,
    .prepare = webhook_prepare,
    .finish = webhook_finish,
};
