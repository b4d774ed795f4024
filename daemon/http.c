/* http: the listener's plumbing (see http.h): MHD inside sd-event, request
 * bodies with their size limit, routing, replies with their headers, secrets,
 * the form parser and the contract-policy helper the handlers share.
 *
 * Owns struct http (http_internal.h) and each struct http_request from the
 * first call of the access handler to MHD's completion callback, with the
 * timer that runs it again while the store is locked (http_reply_busy()):
 * such a request is suspended (MHD_suspend_connection()), so other requests
 * are served meanwhile, and is never run twice after it succeeded. Everything
 * runs on the event loop thread; MHD never starts a thread (MHD_USE_EPOLL
 * without MHD_USE_INTERNAL_POLLING_THREAD). */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include "core/ladder.h"
#include "core/locfmt.h"
#include "daemon/http_internal.h"
#include "notifiers/templates.h"

/* ---- replies ------------------------------------------------------------------ */

int http_reply_header(struct http_reply *rep, const char *name, const char *value) {
  if (rep->n_headers >= HTTP_MAX_HEADERS)
    return -E2BIG;
  char *v = strdup(value);
  if (!v)
    return -ENOMEM;
  rep->headers[rep->n_headers].name = name;
  rep->headers[rep->n_headers++].value = v;
  return 0;
}

void http_reply_clear(struct http_reply *rep) {
  buf_free(&rep->body);
  for (size_t i = 0; i < rep->n_headers; i++)
    free(rep->headers[i].value);
  *rep = (struct http_reply){0};
}

void http_reply_json(struct http_reply *rep, unsigned status, json_t *v) {
  buf_reset(&rep->body);
  char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
  json_decref(v);
  rep->content_type = "application/json";
  if (!s || buf_puts(&rep->body, s) < 0 || buf_puts(&rep->body, "\n") < 0) {
    rep->status = 500;
    buf_reset(&rep->body);
    (void)buf_puts(&rep->body, "{\"error\":{\"status\":500,\"message\":\"out of memory\"}}\n");
  } else
    rep->status = status;
  free(s);
}

void http_reply_error_json(struct http_reply *rep, unsigned status, const char *message,
                           json_t *problems) {
  json_t *e = json_pack("{s:{s:I,s:s}}", "error", "status", (json_int_t)status, "message",
                        message ? message : "");
  if (e && problems)
    json_object_set_new(json_object_get(e, "error"), "problems", problems);
  else
    json_decref(problems);
  http_reply_json(rep, status, e);
}

void http_reply_text(struct http_reply *rep, unsigned status, const char *text) {
  buf_reset(&rep->body);
  rep->status = status;
  rep->content_type = "text/plain; charset=utf-8";
  if (buf_puts(&rep->body, text) < 0)
    rep->status = 500;
}

/* ---- request helpers ------------------------------------------------------------ */

int64_t http_now(const struct http *h) {
  return clock_now(h->deps.clock);
}

const char *http_header(struct MHD_Connection *c, const char *name) {
  return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

void http_content_type(struct MHD_Connection *c, char *out, size_t n) {
  const char *ct = http_header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
  size_t k = 0;
  if (ct) {
    while (*ct == ' ')
      ct++;
    for (; ct[k] && ct[k] != ';' && ct[k] != ' ' && k + 1 < n; k++)
      out[k] = (char)((ct[k] >= 'A' && ct[k] <= 'Z') ? ct[k] + 32 : ct[k]);
  }
  out[k] = 0;
}

void http_changed(struct http *h, const char *contract_id) {
  if (h->deps.changed && !isempty(contract_id))
    h->deps.changed(h->deps.userdata, contract_id);
}

/* ---- forms ------------------------------------------------------------------------ */

void http_form_clear(struct http_form *f) {
  for (size_t i = 0; i < f->n; i++) {
    free(f->names[i]);
    free(f->values[i]);
  }
  free(f->names);
  free(f->values);
  *f = (struct http_form){0};
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* UTF-8 without NUL/control characters except TAB, CR, LF. */
static bool form_text_ok(const unsigned char *s, size_t len) {
  for (size_t i = 0; i < len;) {
    unsigned char c = s[i];
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
        return false;
      i++;
      continue;
    }
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf)
      n = 1, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
      n = 2, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
      n = 3, cp = c & 0x07;
    else
      return false;
    if (i + n >= len)
      return false;
    for (size_t k = 1; k <= n; k++) {
      if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

/* Decodes s[0..len) ('+' and %XX) into a new string. -EBADMSG or -ENOMEM. */
static int form_decode(const char *s, size_t len, char **ret) {
  char *out = malloc(len + 1);
  if (!out)
    return -ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '+')
      out[k++] = ' ';
    else if (s[i] == '%') {
      int a = i + 2 < len ? hexval(s[i + 1]) : -1, b = i + 2 < len ? hexval(s[i + 2]) : -1;
      if (a < 0 || b < 0) {
        free(out);
        return -EBADMSG;
      }
      out[k++] = (char)(a * 16 + b);
      i += 2;
    } else
      out[k++] = s[i];
  }
  out[k] = 0;
  if (!form_text_ok((const unsigned char *)out, k)) {
    free(out);
    return -EBADMSG;
  }
  *ret = out;
  return 0;
}

int http_form_parse(const char *body, size_t len, struct http_form *ret) {
  struct http_form f = {0};
  int r = 0;
  if (!ret || (!body && len))
    return -EINVAL;
  for (size_t i = 0; i < len;) {
    size_t start = i;
    while (i < len && body[i] != '&')
      i++;
    size_t end = i;
    if (i < len)
      i++;
    if (end == start)
      continue;
    const char *eq = memchr(body + start, '=', end - start);
    size_t nlen = eq ? (size_t)(eq - (body + start)) : end - start;
    if (f.n >= 256) {
      r = -EBADMSG;
      goto fail;
    }
    char **nn = realloc(f.names, (f.n + 1) * sizeof *nn);
    if (!nn) {
      r = -ENOMEM;
      goto fail;
    }
    f.names = nn;
    char **vv = realloc(f.values, (f.n + 1) * sizeof *vv);
    if (!vv) {
      r = -ENOMEM;
      goto fail;
    }
    f.values = vv;
    char *name = NULL, *value = NULL;
    if ((r = form_decode(body + start, nlen, &name)) < 0)
      goto fail;
    if (eq)
      r = form_decode(eq + 1, end - start - nlen - 1, &value);
    else
      r = (value = strdup("")) ? 0 : -ENOMEM;
    if (r < 0) {
      free(name);
      goto fail;
    }
    f.names[f.n] = name;
    f.values[f.n++] = value;
  }
  *ret = f;
  return 0;
fail:
  http_form_clear(&f);
  return r;
}

const char *http_form_get(const struct http_form *f, const char *name) {
  for (size_t i = 0; i < f->n; i++)
    if (streq(f->names[i], name))
      return f->values[i];
  return NULL;
}

int http_html_escape(struct buf *b, const char *s) {
  int r = 0;
  for (const char *p = s ? s : ""; *p && r >= 0; p++) {
    switch (*p) {
    case '&':
      r = buf_puts(b, "&amp;");
      break;
    case '<':
      r = buf_puts(b, "&lt;");
      break;
    case '>':
      r = buf_puts(b, "&gt;");
      break;
    case '"':
      r = buf_puts(b, "&quot;");
      break;
    case '\'':
      r = buf_puts(b, "&#39;");
      break;
    default:
      r = buf_append(b, p, 1);
    }
  }
  return r;
}

/* ---- policy ------------------------------------------------------------------------ */

void http_policy_done(struct http_policy *p) {
  p->snapshot = policy_free(p->snapshot);
}

static int channel_addr(const struct config_channel *ch, enum lifecycle_addr *ret) {
  if (!ch || !ch->type)
    return -ENOENT;
  const char *type = config_channel_addr_type(ch);
  if (streq_ptr(type, "smtp"))
    *ret = LIFECYCLE_ADDR_EMAIL;
  else if (streq_ptr(type, "sms"))
    *ret = LIFECYCLE_ADDR_PHONE;
  else if (streq_ptr(type, "webhook"))
    *ret = LIFECYCLE_ADDR_URL;
  else
    return -EINVAL;
  return 0;
}

void http_policy_load(struct http *h, const struct contract *co, const struct customer *cu,
                      struct http_policy *ret) {
  const struct config *cfg = h->deps.cfg;
  *ret = (struct http_policy){
      .lp = {.callback_pause = LIFECYCLE_DEFAULT_CALLBACK_PAUSE,
             .max_snooze = LIFECYCLE_DEFAULT_MAX_SNOOZE,
             .lapse_grace = LIFECYCLE_DEFAULT_LAPSE_GRACE},
  };
  ret->lp.owner_channels = ret->ch;
  const struct policy *pol = NULL;
  if (co->ladder_id != 0) {
    _cleanup_free_ char *text = NULL;
    if (store_ladder_get(h->deps.store, co->ladder_id, &text) >= 0 &&
        ladder_parse(text, &ret->snapshot) >= 0)
      pol = ret->snapshot;
  }
  if (!pol)
    pol = config_policy_for_segment(cfg, cu ? cu->segment : NULL);
  if (!pol)
    return;
  ret->lp.callback_pause = pol->callback_pause;
  ret->lp.lapse_grace = pol->lapse_grace;
  ret->lp.fallback_owner = pol->fallback_owner;
  for (size_t t = 0; t < pol->n_tiers; t++) {
    const struct tier *ti = &pol->tiers[t];
    if (ti->audience != AUDIENCE_OWNER)
      continue;
    for (size_t k = 0; k < ti->n_channels && ret->lp.n_owner_channels < ELEMENTSOF(ret->ch); k++) {
      const struct config_channel *ch = config_channel(cfg, ti->channels[k]);
      enum lifecycle_addr addr;
      if (channel_addr(ch, &addr) < 0)
        continue;
      ret->ch[ret->lp.n_owner_channels++] = (struct lifecycle_channel){
          .name = ti->channels[k],
          .addr = addr,
          .default_url = addr == LIFECYCLE_ADDR_URL ? config_channel_get(ch, "URL") : NULL,
      };
    }
    break; /* the first owner tier only */
  }
}

/* ---- secrets ----------------------------------------------------------------------- */

static void wipe_free(char *s) {
  if (s) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

static void tokens_free(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    wipe_free(v[i]);
  free(v);
}

/* Splits the API token file into lines (blank lines and '#' comments skipped). */
static int tokens_parse(const char *text, char ***ret, size_t *ret_n) {
  char **v = NULL;
  size_t n = 0;
  for (const char *p = text; *p;) {
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    size_t l = len;
    while (l && (p[l - 1] == '\r' || p[l - 1] == ' ' || p[l - 1] == '\t'))
      l--;
    const char *s = p;
    while (l && (*s == ' ' || *s == '\t'))
      s++, l--;
    if (l && *s != '#') {
      char **nv = realloc(v, (n + 1) * sizeof *nv);
      char *t = nv ? strndup(s, l) : NULL;
      if (!nv || !t) {
        free(t);
        tokens_free(nv ? nv : v, n);
        return -ENOMEM;
      }
      v = nv;
      v[n++] = t;
    }
    p += len + (e ? 1 : 0);
  }
  *ret = v;
  *ret_n = n;
  return 0;
}

/* A *File= value as it may be logged: a path, or a credential name; anything
 * else could be a secret pasted into the wrong place and is not shown. */
static const char *secret_ref_shown(const char *v) {
  if (strchr(v, '/'))
    return v;
  size_t n = strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
  return v[n] == 0 && n <= 64 ? v : "(value not shown)";
}

static void load_secrets(struct http *h, const struct config *cfg) {
  const struct logger *log = h->deps.log;
  char err[256];
  int r;

  h->keys = linkkeys_free(h->keys);
  if (isempty(cfg->daemon.link_key_file))
    log_notice(log, "http: no LinkKeyFile= configured: answer links are disabled (503)");
  else if ((r = linkkeys_load(cfg->daemon.link_key_file, &h->keys, err, sizeof err)) < 0)
    log_error(log, "http: LinkKeyFile=%s: %s; answer links are disabled (503)",
              secret_ref_shown(cfg->daemon.link_key_file), err);

  tokens_free(h->api_tokens, h->n_api_tokens);
  h->api_tokens = NULL;
  h->n_api_tokens = 0;
  if (!isempty(cfg->daemon.api_token_file)) {
    char *text = NULL;
    r = read_secret(cfg->daemon.api_token_file, &text);
    if (r >= 0) {
      r = tokens_parse(text, &h->api_tokens, &h->n_api_tokens);
      wipe_free(text);
    }
    if (r < 0)
      log_error(log, "http: ApiTokenFile=%s: %s; the API refuses every request (401)",
                secret_ref_shown(cfg->daemon.api_token_file), strerror(-r));
    else if (h->n_api_tokens == 0)
      log_error(log, "http: ApiTokenFile=%s holds no token; the API refuses every request (401)",
                secret_ref_shown(cfg->daemon.api_token_file));
  }

  wipe_free(h->sms_token);
  h->sms_token = NULL;
  for (size_t i = 0; i < cfg->n_channels; i++) {
    const struct config_channel *ch = &cfg->channels[i];
    const char *prov = config_channel_get(ch, "Provider");
    const char *tf = config_channel_get(ch, "AuthTokenFile");
    if (!ch->type || !streq(ch->type, "sms") || (prov && !streq(prov, "twilio")) || isempty(tf))
      continue;
    r = read_secret(tf, &h->sms_token);
    if (r < 0)
      log_error(log, "http: [Channel %s] AuthTokenFile=%s: %s; inbound SMS are refused (403)",
                ch->name, tf, strerror(-r));
    break;
  }
}

/* ---- routing --------------------------------------------------------------------------- */

static void reply_405(struct http_reply *rep, const char *allow) {
  http_reply_text(rep, 405, "method not allowed\n");
  http_reply_header(rep, MHD_HTTP_HEADER_ALLOW, allow);
}

static bool is_get(const char *m) {
  return streq(m, "GET") || streq(m, "HEAD");
}

static void handle_healthz(struct http *h, const char *method, struct http_reply *rep) {
  if (!is_get(method))
    return reply_405(rep, "GET, HEAD");
  int64_t v;
  int r = store_data_version(h->deps.store, &v);
  bool deaf = http_guard_deaf(h);
  char now[21];
  format_rfc3339(http_now(h), now);
  json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s}", "status", r >= 0 && !deaf ? "ok" : "error",
                        "store", r >= 0 ? "ok" : store_last_error(h->deps.store), "loop", "ok",
                        "listener", deaf ? "stalled" : "ok", "now", now);
  if (r < 0)
    log_error(h->deps.log, "http: /healthz: the store does not answer: %s",
              store_last_error(h->deps.store));
  http_reply_json(rep, r >= 0 && !deaf ? 200 : 503, j);
}

static void handle_metrics(struct http *h, const char *method, struct http_reply *rep) {
  if (!is_get(method))
    return reply_405(rep, "GET, HEAD");
  buf_reset(&rep->body);
  int r = metrics_render(h->deps.metrics, h->deps.store, h->deps.sched, clock_monotonic_ms(),
                         &rep->body);
  if (!h->deps.metrics)
    r = -ENOENT;
  if (r < 0) {
    http_reply_text(rep, 500, "metrics unavailable\n");
    return;
  }
  rep->status = 200;
  rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static enum metrics_endpoint classify(const char *url) {
  if (!strncmp(url, "/r/", 3))
    return METRICS_EP_ANSWER;
  if (!strncmp(url, "/u/", 3))
    return METRICS_EP_UNSUBSCRIBE;
  if (streq(url, "/sms/inbound") || streq(url, "/sms/status"))
    return METRICS_EP_SMS;
  if (!strncmp(url, "/api/", 5))
    return METRICS_EP_API;
  if (streq(url, "/healthz"))
    return METRICS_EP_HEALTHZ;
  if (streq(url, "/metrics"))
    return METRICS_EP_METRICS;
  return METRICS_EP_OTHER;
}

static void route(struct http *h, struct MHD_Connection *c, const char *url, const char *method,
                  const struct http_request *rq, struct http_reply *rep) {
  switch (rq->ep) {
  case METRICS_EP_ANSWER:
  case METRICS_EP_UNSUBSCRIBE: {
    const char *token = url + 3;
    if (strchr(token, '/') || !*token) {
      http_reply_text(rep, 404, "not found\n");
      return;
    }
    if (!is_get(method) && !streq(method, "POST"))
      return reply_405(rep, "GET, HEAD, POST");
    http_pages_handle(h, c, method, token, rq->ep == METRICS_EP_UNSUBSCRIBE, rq, rep);
    return;
  }
  case METRICS_EP_SMS:
    if (!streq(method, "POST"))
      return reply_405(rep, "POST");
    if (streq(url, "/sms/status"))
      http_sms_status_handle(h, c, rq, rep);
    else
      http_sms_handle(h, c, method, rq, rep);
    return;
  case METRICS_EP_API:
    if (strncmp(url, "/api/v1/", 8) != 0) {
      http_reply_error_json(rep, 404, "no such API version (use /api/v1/)", NULL);
      return;
    }
    http_api_handle(h, c, method, url + 7, rq, rep);
    return;
  case METRICS_EP_HEALTHZ:
    handle_healthz(h, method, rep);
    return;
  case METRICS_EP_METRICS:
    handle_metrics(h, method, rep);
    return;
  default:
    if (streq(url, "/report")) { /* the report page (http_report.c) */
      http_report_handle(h, c, method, rep);
      return;
    }
    if (streq(url, "/")) {
      if (!is_get(method))
        return reply_405(rep, "GET, HEAD");
      http_reply_text(rep, 200, "renewd\n");
      return;
    }
    http_reply_text(rep, 404, "not found\n");
  }
}

/* ---- retrying while the store is locked ------------------------------------------------- */

bool http_reply_busy(struct http_reply *rep, int r) {
  if (r != -EBUSY)
    return false;
  rep->busy = true;
  return true;
}

static uint64_t monotonic_usec(const struct http *h) {
  uint64_t t = 0;
  sd_event_now(h->event, CLOCK_MONOTONIC, &t);
  return t;
}

static void retry_unlink(struct http *h, struct http_request *rq) {
  if (rq->retry_prev)
    rq->retry_prev->retry_next = rq->retry_next;
  else if (h->retrying == rq)
    h->retrying = rq->retry_next;
  if (rq->retry_next)
    rq->retry_next->retry_prev = rq->retry_prev;
  rq->retry_prev = rq->retry_next = NULL;
}

/* Resumes a request waiting for its retry: MHD calls the access handler for
 * it again on its next run. */
static void retry_resume(struct http_request *rq) {
  struct MHD_Connection *c = rq->c;
  retry_unlink(rq->h, rq);
  rq->c = NULL;
  sd_event_source_set_enabled(rq->retry, SD_EVENT_OFF);
  MHD_resume_connection(c);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
  struct http_request *rq = userdata;
  struct http *h = rq->h;
  retry_resume(rq);
  http_run(h);
  return 0;
}

/* The handler of rq met a locked store: suspends c until the next back-off
 * step. false when the store stayed locked for HTTP_BUSY_LIMIT_MS (or no
 * timer could be armed): the handler's reply is to be sent. */
static bool retry_later(struct http *h, struct MHD_Connection *c, struct http_request *rq) {
  uint64_t now = monotonic_usec(h);
  if (!rq->busy_since) {
    rq->busy_since = now;
    rq->busy_ms = HTTP_BUSY_MIN_MS;
  } else
    rq->busy_ms = MIN(rq->busy_ms * 2, HTTP_BUSY_MAX_MS);
  uint64_t at = now + rq->busy_ms * 1000ull;
  if (at - rq->busy_since > HTTP_BUSY_LIMIT_MS * 1000ull)
    return false;
  int r = rq->retry
              ? sd_event_source_set_time(rq->retry, at)
              : sd_event_add_time(h->event, &rq->retry, CLOCK_MONOTONIC, at, 1000, on_retry, rq);
  if (r >= 0)
    r = sd_event_source_set_enabled(rq->retry, SD_EVENT_ONESHOT);
  if (r < 0) {
    log_error(h->deps.log, "http: cannot arm a retry timer: %s", strerror(-r));
    return false;
  }
  rq->h = h;
  rq->c = c;
  rq->retry_next = h->retrying;
  if (h->retrying)
    h->retrying->retry_prev = rq;
  h->retrying = rq;
  metrics_store_busy(h->deps.metrics);
  http_guard_request_held(c); /* the whole request is here: no RequestTimeout= */
  MHD_suspend_connection(c);
  return true;
}

/* url as it may be logged: without the token of an answer or unsubscribe
 * link (a credential). */
static const char *url_shown(const struct http_request *rq, const char *url) {
  if (rq->ep == METRICS_EP_ANSWER)
    return "/r/(token)";
  if (rq->ep == METRICS_EP_UNSUBSCRIBE)
    return "/u/(token)";
  return url;
}

/* The store stayed locked: the handler's 503 goes out with Retry-After. */
static void retry_give_up(struct http *h, const char *url, struct http_reply *rep) {
  char v[16];
  snprintf(v, sizeof v, "%d", HTTP_BUSY_RETRY_AFTER_S);
  if (rep->status == 0 || rep->status < 500)
    http_reply_text(rep, 503, "the store is busy, try again later\n");
  (void)http_reply_header(rep, MHD_HTTP_HEADER_RETRY_AFTER, v);
  log_warning(h->deps.log, "http: %.64s: the store stayed locked by another process for %d ms: %u",
              url, HTTP_BUSY_LIMIT_MS, rep->status);
}

/* ---- MHD ------------------------------------------------------------------------------- */

static enum MHD_Result send_reply(struct http *h, struct MHD_Connection *c, struct http_request *rq,
                                  struct http_reply *rep, bool close) {
  if (rep->status == 0) {
    http_reply_text(rep, 500, "internal error\n");
  }
  size_t len = rep->body.len;
  char *data = buf_steal(&rep->body);
  if (!data) {
    http_reply_clear(rep);
    return MHD_NO;
  }
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(data);
    http_reply_clear(rep);
    return MHD_NO;
  }
  const char *ct = rep->content_type ? rep->content_type : "text/plain; charset=utf-8";
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ct);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
  if (!strncmp(ct, "text/html", 9)) {
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
  }
  for (size_t i = 0; i < rep->n_headers; i++)
    MHD_add_response_header(resp, rep->headers[i].name, rep->headers[i].value);
  if (close)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result ok = MHD_queue_response(c, rep->status, resp);
  MHD_destroy_response(resp);
  metrics_http(h->deps.metrics, rq->ep, rep->status);
  if (ok == MHD_YES) {
    rq->queued = true;
    http_guard_request_queued(c);
  }
  http_reply_clear(rep);
  return ok;
}

static void reply_413(struct http_reply *rep, enum metrics_endpoint ep) {
  char msg[96];
  snprintf(msg, sizeof msg, "request body larger than %d bytes", HTTP_MAX_BODY);
  if (ep == METRICS_EP_API)
    http_reply_error_json(rep, 413, msg, NULL);
  else {
    http_reply_text(rep, 413, msg);
    buf_puts(&rep->body, "\n");
  }
}

/* The first call for a request: its head is complete. Checks it and refuses
 * what it must (before a byte of the body is read: no 100 Continue). */
static enum MHD_Result on_head(struct http *h, struct MHD_Connection *c, struct http_request *rq,
                               const char *url, const char *method, const char *version) {
  struct http_reply rep = {0};
  rq->started = true;
  rq->ep = classify(url);
  if (!http_guard_check_head(h, c, rq, method, version, &rep))
    return send_reply(h, c, rq, &rep, true);
  const char *cl = http_header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
  int64_t n;
  if (cl && parse_int64(cl, &n) >= 0 && n > HTTP_MAX_BODY) {
    rq->too_large = true;
    reply_413(&rep, rq->ep);
    return send_reply(h, c, rq, &rep, true);
  }
  return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  struct http *h = cls;
  struct http_request *rq = *con_cls;
  struct http_reply rep = {0};

  if (!rq) /* http_guard_on_uri() found no memory */
    return MHD_NO;
  if (!rq->started)
    return on_head(h, c, rq, url, method, version);
  if (rq->queued) {
    *upload_data_size = 0; /* discard */
    return MHD_YES;
  }
  if (*upload_data_size) {
    size_t n = *upload_data_size;
    rq->seen += n;
    if (!rq->too_large && rq->body.len + n > HTTP_MAX_BODY) {
      rq->too_large = true;
      buf_free(&rq->body);
    }
    if (!rq->too_large && buf_append(&rq->body, upload_data, n) < 0)
      return MHD_NO;
    *upload_data_size = 0;
    /* a client that keeps sending far beyond the limit is cut off */
    if (rq->too_large && rq->seen > 4 * (size_t)HTTP_MAX_BODY)
      return MHD_NO;
    return MHD_YES;
  }
  if (rq->too_large) {
    reply_413(&rep, rq->ep);
    return send_reply(h, c, rq, &rep, true);
  }
  if (!rq->body.data && buf_puts(&rq->body, "") < 0) /* body.data is never NULL for handlers */
    return MHD_NO;
  route(h, c, url, method, rq, &rep);
  if (rep.busy && retry_later(h, c, rq)) { /* on_retry resumes it; MHD then calls us again */
    http_reply_clear(&rep);
    return MHD_YES;
  }
  if (rep.busy)
    retry_give_up(h, url_shown(rq, url), &rep);
  else if (rq->busy_since)
    log_debug(h->deps.log, "http: %.64s: done after the store was locked for %" PRIu64 " ms",
              url_shown(rq, url), (monotonic_usec(h) - rq->busy_since) / 1000);
  if (rep.suspend) { /* the handler resumes it; MHD then calls us again */
    http_reply_clear(&rep);
    MHD_suspend_connection(c);
    return MHD_YES;
  }
  return send_reply(h, c, rq, &rep, false);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  http_guard_request_done(cls, c);
  struct http_request *rq = *con_cls;
  if (!rq)
    return;
  if (rq->c) /* still waiting for a retry (the daemon stops) */
    retry_unlink(cls, rq);
  sd_event_source_disable_unref(rq->retry);
  buf_free(&rq->body);
  free(rq);
  *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  struct http *h = cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
    msg[--n] = 0;
  http_guard_mhd_log(h, msg);
  log_debug(h->deps.log, "http: libmicrohttpd: %s", msg);
}

static void arm_timer(struct http *h, bool now) {
  MHD_UNSIGNED_LONG_LONG ms = 0;
  if (!now && MHD_get_timeout(h->mhd, &ms) != MHD_YES) {
    sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
    return;
  }
  uint64_t t;
  sd_event_now(h->event, CLOCK_MONOTONIC, &t);
  sd_event_source_set_time(h->timer, t + (uint64_t)ms * 1000);
  sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT);
}

static unsigned mhd_connections(struct http *h) {
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
  return di ? di->num_connections : 0;
}

/* MHD (0.9.75, MHD_USE_EPOLL) takes its listen socket out of its epoll set at
 * the connection limit (or after EMFILE) and puts it back only at the start
 * of a later run, once connections closed. Those closes happen late in a
 * run; when nothing else happens afterwards, its epoll fd never becomes
 * readable again and, with no connection left, it wants no timeout: the
 * listener would never run again while clients queue in the backlog. So
 * after a run that closed connections while the listen socket may be out,
 * MHD runs once more at once. */
void http_run(struct http *h) {
  unsigned before = mhd_connections(h);
  MHD_run(h->mhd);
  unsigned after = mhd_connections(h);
  if (after >= h->max_connections)
    h->listen_parked = true;
  bool again = h->listen_parked && after < before;
  if (again)
    h->listen_parked = false; /* set again by the next run if still at the limit */
  arm_timer(h, again);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
  http_run(userdata);
  return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
  http_run(userdata);
  return 0;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

const char *http_address(const struct http *h) {
  return h ? h->address : "";
}

void http_set_config(struct http *h, const struct config *cfg) {
  if (!h || !cfg)
    return;
  h->deps.cfg = cfg;
  load_secrets(h, cfg);
  http_report_set_config(h, cfg);      /* policy names may change */
  h->pages = templates_free(h->pages); /* page strings are read again from Templates= */
  struct validate *v = NULL;
  if (validate_new(h->deps.cal, cfg->daemon.time_zone, &v) >= 0) {
    validate_free(h->validate);
    h->validate = v;
  }
}

struct http *http_free(struct http *h) {
  if (!h)
    return NULL;
  sd_event_source_disable_unref(h->io);
  sd_event_source_disable_unref(h->timer);
  h->tick = sd_event_source_disable_unref(h->tick);
  /* the report worker first: it resumes the requests it suspended */
  h->report_cache = http_report_cache_free(h->report_cache);
  while (h->retrying) /* MHD must not stop with suspended connections */
    retry_resume(h->retrying);
  if (h->mhd)
    MHD_stop_daemon(h->mhd); /* reports every connection closed */
  http_guard_stop(h);
  sd_event_unref(h->event);
  linkkeys_free(h->keys);
  tokens_free(h->api_tokens, h->n_api_tokens);
  wipe_free(h->sms_token);
  validate_free(h->validate);
  templates_free(h->pages);
  locfmt_free(h->lf);
  free(h);
  return NULL;
}

int http_new(sd_event *event, const struct http_deps *deps, struct http **ret, char *err,
             size_t errlen) {
  if (!event || !deps || !deps->store || !deps->cal || !deps->cfg || !deps->log || !deps->clock ||
      !ret)
    return -EINVAL;
  struct http *h = calloc(1, sizeof *h);
  if (!h)
    return -ENOMEM;
  h->deps = *deps;
  h->event = sd_event_ref(event);
  h->listen_fd = -1;
  h->max_connections = deps->cfg->http.max_connections ? deps->cfg->http.max_connections : 256;
  h->max_per_client = MIN(deps->cfg->http.max_per_client, h->max_connections);
  h->request_timeout_usec = (uint64_t)MAX(deps->cfg->http.request_timeout, 1) * 1000000ull;
  const struct config_daemon *dc = &deps->cfg->daemon;
  int r;

  int n = sd_listen_fds(true);
  int fd = -1;
  struct sockaddr_storage sa = {0};
  /* suspend/resume: /report waits for its worker thread (http_report.c) */
  unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
  if (n > 1) {
    snprintf(err, errlen, "socket activation passed %d sockets; renewd.socket should have one", n);
    r = -EINVAL;
    goto fail;
  }
  if (n == 1) {
    fd = SD_LISTEN_FDS_START;
    snprintf(h->address, sizeof h->address, "socket activation (fd %d)", fd);
  } else {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", dc->listen_port);
    int g = getaddrinfo(dc->listen_host, port, &hints, &ai);
    if (g != 0 || !ai) {
      snprintf(err, errlen, "Listen=%s: cannot resolve %s: %s", dc->listen, dc->listen_host,
               gai_strerror(g));
      r = -EADDRNOTAVAIL;
      goto fail;
    }
    memcpy(&sa, ai->ai_addr, MIN(sizeof sa, (size_t)ai->ai_addrlen));
    freeaddrinfo(ai);
    if (sa.ss_family == AF_INET6)
      flags |= MHD_USE_IPv6;
    snprintf(h->address, sizeof h->address, "%s", dc->listen);
  }

  struct MHD_OptionItem opts[] = {
      {MHD_OPTION_CONNECTION_LIMIT, h->max_connections, NULL},
      {MHD_OPTION_PER_IP_CONNECTION_LIMIT, h->max_per_client, NULL},
      {MHD_OPTION_CONNECTION_TIMEOUT, HTTP_TIMEOUT_S, NULL},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_MEMORY_LIMIT, NULL},
      {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h},
      {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)http_guard_on_connection, h},
      {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)http_guard_on_uri, h},
      {fd >= 0 ? MHD_OPTION_LISTEN_SOCKET : MHD_OPTION_SOCK_ADDR, fd >= 0 ? fd : 0,
       fd >= 0 ? NULL : &sa},
      /* no MHD_OPTION_LISTENING_ADDRESS_REUSE: that is SO_REUSEPORT, which would let a
       * second renewd share the port instead of failing with "address in use" */
      {MHD_OPTION_END, 0, NULL},
  };
  /* the logger first: MHD reads it before anything it may complain about */
  h->mhd = MHD_start_daemon(flags, dc->listen_port, NULL, NULL, on_request, h,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, MHD_OPTION_ARRAY, opts,
                            MHD_OPTION_END);
  if (!h->mhd) {
    r = errno > 0 ? -errno : -EADDRINUSE;
    snprintf(err, errlen, "cannot listen on %s: %s", h->address,
             r == -EADDRINUSE ? "address already in use" : strerror(-r));
    goto fail;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
  if (!info || info->epoll_fd < 0) {
    snprintf(err, errlen, "libmicrohttpd has no epoll fd");
    r = -EIO;
    goto fail;
  }
  if ((r = sd_event_add_io(event, &h->io, info->epoll_fd, EPOLLIN, on_io, h)) < 0 ||
      (r = sd_event_add_time(event, &h->timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_timer, h)) < 0) {
    snprintf(err, errlen, "cannot add event sources: %s", strerror(-r));
    goto fail;
  }
  sd_event_source_set_description(h->io, "http-io");
  sd_event_source_set_description(h->timer, "http-timer");
  http_set_config(h, deps->cfg);
  if (!h->validate) {
    snprintf(err, errlen, "TimeZone=%s: unknown zone", dc->time_zone ? dc->time_zone : "UTC");
    r = -EINVAL;
    goto fail;
  }
  if ((r = http_guard_start(h)) < 0) {
    snprintf(err, errlen, "cannot add the listener's timer: %s", strerror(-r));
    goto fail;
  }
  arm_timer(h, false);
  *ret = h;
  return 0;
fail:
  http_free(h);
  return r;
}
