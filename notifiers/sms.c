/* sms: Type=sms, text messages through an HTTP SMS provider.
 *
 *   [Channel sms]
 *   Type=sms
 *   Provider=twilio | generic          (default twilio)
 *   URL=https://api.twilio.com/2010-04-01/Accounts/AC.../Messages.json
 *   From=+15005550006                  (sender number or alphanumeric id)
 *   AccountSID=AC...                   (twilio: basic auth user)
 *   AuthTokenFile=twilio-token         (twilio: basic auth password; path or credential)
 *   MaxSegments=3                      (longest text allowed, in SMS segments)
 *   OptOutFooter=Reply STOP to opt out (appended to customer messages)
 *   # generic providers:
 *   Method=POST                        (POST or PUT)
 *   BodyTemplate=mysms                 (template mysms.body.mustache over
 *                                      {to, from, body, to_json, from_json, body_json});
 *                                      without it the body is {"to","from","body"} JSON
 *   ContentType=application/json
 *   Username=..., PasswordFile=...     (optional basic auth)
 *   Headers=X-Client: renewd           (repeatable; plain config: no credentials)
 *   HeadersFile=sms-headers            (headers with credentials, e.g.
 *                                      "Authorization: Bearer ...", one per line;
 *                                      path or credential)
 *   SuccessStatus=200 201 202          (default: any 2xx)
 *   MessageIdPath=messages.0.id        (dotted JSON path of the provider's id)
 *
 * Twilio: form POST To/From/Body/StatusCallback (StatusCallback =
 * [Daemon] PublicURL + "/sms/status": Twilio posts its delivery receipts
 * there, daemon/http_sms_status.c) with the I-Twilio-Idempotency-Token header
 * set to the row's idempotency key (a courtesy: the Messages API documents no
 * idempotency key, see docs/delivery.md), provider id = "sid" of the JSON
 * answer. After an attempt whose outcome is unknown the dispatcher asks
 * before any resend: GET URL?To=&From=&DateSent>=(two days ago), and a
 * message on the first page with the same To and Body is the one we sent
 * (lookup_*; Provider=twilio only). Only E.164 numbers
 * are sent to; anything else is a permanent failure. The text (sms part, or
 * text part, plus footer) is measured with smstext_segments(): more than
 * MaxSegments is a config error for sample data and a dead letter at send.
 *
 * Owns: the auth token (wiped on free). Never blocks. */
#include <jansson.h>

#include "core/util.h"
#include "notifiers/notifier.h"
#include "notifiers/render.h"
#include "notifiers/smstext.h"
#include "notifiers/templates.h"

enum sms_provider {
  SMS_TWILIO,
  SMS_GENERIC,
};

struct sms {
  enum sms_provider provider;
  char *url;
  char *from;
  char *user;     /* AccountSID= / Username= */
  char *password; /* AuthTokenFile= / PasswordFile= contents; wiped on free */
  char *method;
  char *body_template;
  char *content_type;
  char *id_path;
  long success[16]; /* SuccessStatus=, 0-terminated; empty = any 2xx */
  unsigned max_segments;
  char *footer;
  char *status_callback; /* twilio: PublicURL/sms/status, NULL without a PublicURL */
  struct curl_slist *extra;
  struct templates *tmpl; /* borrowed */
};

static const char *const sms_known[] = {
    "Provider",    "URL",          "From",    "AccountSID",    "AuthTokenFile",
    "MaxSegments", "OptOutFooter", "Method",  "BodyTemplate",  "ContentType",
    "Username",    "PasswordFile", "Headers", "SuccessStatus", "MessageIdPath",
    "HeadersFile", NULL,
};

static int parse_provider(const char *s) {
  if (!s || streq(s, "twilio"))
    return SMS_TWILIO;
  if (streq(s, "generic"))
    return SMS_GENERIC;
  return -EINVAL;
}

static int parse_success(const char *s, long out[16]) {
  size_t n = 0;
  _cleanup_free_ char *copy = strdup(s);
  if (!copy)
    return -ENOMEM;
  char *save = NULL;
  for (char *tok = strtok_r(copy, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
    int64_t v;
    if (parse_int64(tok, &v) < 0 || v < 100 || v > 599 || n >= 15)
      return -EINVAL;
    out[n++] = (long)v;
  }
  out[n] = 0;
  return n > 0 ? 0 : -EINVAL;
}

static int sms_check_config(const struct config_channel *ch, const struct notify_env *env,
                            struct config_errors *errs) {
  static const char *const required[] = {"URL", NULL};
  int r = notify_check_keys(ch, sms_known, required, errs);
  const struct config_kv *kv;
  int provider = SMS_TWILIO;
  if ((kv = config_channel_lookup(ch, "Provider")) && (provider = parse_provider(kv->value)) < 0)
    r = notify_error(errs, ch, kv, "expected twilio or generic");
  if ((kv = config_channel_lookup(ch, "URL")) && strncasecmp(kv->value, "https://", 8) != 0 &&
      strncasecmp(kv->value, "http://", 7) != 0)
    r = notify_error(errs, ch, kv, "expected an http:// or https:// URL");
  else if (kv && notify_url_has_password(kv->value))
    r = notify_error(errs, ch, kv,
                     "holds a password: use Username= and PasswordFile= (or AuthTokenFile=)");
  if (provider == SMS_TWILIO) {
    static const char *const need[] = {"From", "AccountSID", "AuthTokenFile"};
    for (size_t i = 0; i < ELEMENTSOF(need); i++)
      if (!config_channel_lookup(ch, need[i]))
        r = notify_error(errs, ch, NULL, "%s= is required for Provider=twilio", need[i]);
    static const char *const generic_only[] = {"Method",        "BodyTemplate", "SuccessStatus",
                                               "MessageIdPath", "Username",     "PasswordFile"};
    for (size_t i = 0; i < ELEMENTSOF(generic_only); i++)
      if ((kv = config_channel_lookup(ch, generic_only[i])))
        r = notify_error(errs, ch, kv, "only for Provider=generic");
  } else {
    if ((kv = config_channel_lookup(ch, "AccountSID")) ||
        (kv = config_channel_lookup(ch, "AuthTokenFile")))
      r = notify_error(errs, ch, kv, "only for Provider=twilio");
  }
  if ((kv = config_channel_lookup(ch, "Method")) && !streq(kv->value, "POST") &&
      !streq(kv->value, "PUT"))
    r = notify_error(errs, ch, kv, "expected POST or PUT");
  long succ[16];
  if ((kv = config_channel_lookup(ch, "SuccessStatus")) && parse_success(kv->value, succ) < 0)
    r = notify_error(errs, ch, kv, "expected HTTP status codes separated by spaces (at most 15)");
  int64_t v;
  if ((kv = config_channel_lookup(ch, "MaxSegments")) &&
      (parse_int64(kv->value, &v) < 0 || v < 1 || v > 10))
    r = notify_error(errs, ch, kv, "expected a number 1..10");
  if ((kv = config_channel_lookup(ch, "From")) && kv->value[0] == '+' &&
      !smstext_is_e164(kv->value))
    r = notify_error(errs, ch, kv, "a number must be in E.164 form (+4915112345678)");
  if ((kv = config_channel_lookup(ch, "OptOutFooter"))) {
    struct smstext_info info;
    if (smstext_segments(kv->value, &info) < 0)
      r = notify_error(errs, ch, kv, "not valid UTF-8");
  }
  if ((kv = config_channel_lookup(ch, "BodyTemplate"))) {
    if (!env || !env->templates)
      r = notify_error(errs, ch, kv, "needs a template directory (Templates=)");
    else if (!templates_exists(env->templates, NULL, kv->value, "body"))
      r = notify_error(errs, ch, kv, "no template %s.body.mustache in the template directory",
                       kv->value);
  }
  if (notify_check_headers(ch, errs) < 0)
    r = -EINVAL;
  return r;
}

static void *sms_free(void *state) {
  struct sms *s = state;
  if (!s)
    return NULL;
  if (s->password) {
    explicit_bzero(s->password, strlen(s->password));
    free(s->password);
  }
  free(s->url);
  free(s->from);
  free(s->user);
  free(s->method);
  free(s->body_template);
  free(s->content_type);
  free(s->id_path);
  free(s->footer);
  free(s->status_callback);
  notify_headers_free(s->extra); /* HeadersFile= credentials: wiped */
  free(s);
  return NULL;
}

static int sms_new(const struct config_channel *ch, const struct notify_env *env, void **ret,
                   struct config_errors *errs) {
  struct sms *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  int r = -ENOMEM;
  int p = parse_provider(config_channel_get(ch, "Provider"));
  s->provider = p < 0 ? SMS_TWILIO : (enum sms_provider)p;
  s->tmpl = env ? env->templates : NULL;
  s->url = strdup_or_null(config_channel_get(ch, "URL"));
  s->from = strdup_or_null(config_channel_get(ch, "From"));
  const char *user = config_channel_get(ch, s->provider == SMS_TWILIO ? "AccountSID" : "Username");
  s->user = strdup_or_null(user);
  s->method = strdup(config_channel_get(ch, "Method") ? config_channel_get(ch, "Method") : "POST");
  s->body_template = strdup_or_null(config_channel_get(ch, "BodyTemplate"));
  s->content_type =
      strdup(config_channel_get(ch, "ContentType") ? config_channel_get(ch, "ContentType")
             : s->provider == SMS_TWILIO           ? "application/x-www-form-urlencoded"
                                                   : "application/json");
  s->id_path =
      strdup(config_channel_get(ch, "MessageIdPath") ? config_channel_get(ch, "MessageIdPath")
             : s->provider == SMS_TWILIO             ? "sid"
                                                     : "id");
  s->footer = strdup_or_null(config_channel_get(ch, "OptOutFooter"));
  const char *base = env && env->cfg ? env->cfg->daemon.public_url : NULL;
  if (s->provider == SMS_TWILIO && !isempty(base) &&
      !(s->status_callback = strprintf("%s/sms/status", base)))
    goto fail;
  s->max_segments = 3;
  int64_t v;
  const char *ms = config_channel_get(ch, "MaxSegments");
  if (ms && parse_int64(ms, &v) >= 0 && v >= 1)
    s->max_segments = (unsigned)v;
  const char *succ = config_channel_get(ch, "SuccessStatus");
  if (succ)
    (void)parse_success(succ, s->success);
  if (!s->url || !s->method || !s->content_type || !s->id_path ||
      notify_append_headers(ch, &s->extra) < 0)
    goto fail;
  if ((r = notify_append_secret_headers(ch, &s->extra, errs)) < 0)
    goto fail;
  r = -ENOMEM;
  const struct config_kv *kv =
      config_channel_lookup(ch, s->provider == SMS_TWILIO ? "AuthTokenFile" : "PasswordFile");
  if (kv) {
    r = read_secret(kv->value, &s->password);
    if (r < 0) {
      notify_error(errs, ch, kv, "cannot read the secret: %s", strerror(-r));
      goto fail;
    }
  }
  *ret = s;
  return 0;
fail:
  sms_free(s);
  return r;
}

/* The text as sent (message_sms_text()): the footer is the state's, else ch's. */
static char *sms_text(const struct config_channel *ch, const char *footer,
                      const struct message *msg) {
  if (!footer && ch)
    footer = config_channel_get(ch, "OptOutFooter");
  return message_sms_text(msg, footer);
}

static int segments_ok(const char *text, unsigned max, char *err, size_t errlen) {
  struct smstext_info info;
  if (smstext_segments(text, &info) < 0) {
    snprintf(err, errlen, "SMS text is not valid UTF-8");
    return -EINVAL;
  }
  if (info.segments > max) {
    snprintf(err, errlen, "SMS text needs %zu segments (%s, %zu characters), MaxSegments=%u",
             info.segments, smstext_encoding_to_string(info.encoding), info.chars, max);
    return -EINVAL;
  }
  return 0;
}

static int sms_check_message(const struct config_channel *ch, const struct message *msg, char *err,
                             size_t errlen) {
  _cleanup_free_ char *text = sms_text(ch, NULL, msg);
  if (!text)
    return -ENOMEM;
  int64_t v = 3;
  const char *ms = config_channel_get(ch, "MaxSegments");
  if (ms && (parse_int64(ms, &v) < 0 || v < 1))
    v = 3;
  return segments_ok(text, (unsigned)v, err, errlen);
}

static int form_add(struct buf *b, CURL *easy, const char *name, const char *value) {
  char *esc = curl_easy_escape(easy, value ? value : "", 0);
  if (!esc)
    return -ENOMEM;
  int r = buf_printf(b, "%s%s=%s", b->len ? "&" : "", name, esc);
  curl_free(esc);
  return r;
}

static int json_lit(json_t *o, const char *key, const char *v) {
  json_t *s = json_string(v ? v : "");
  char *lit = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
  json_decref(s);
  if (!lit)
    return -ENOMEM;
  int r = json_object_set_new(o, key, json_string(lit)) < 0 ? -ENOMEM : 0;
  free(lit);
  return r;
}

static int sms_prepare(void *state, const struct notify_request *req, CURL *easy,
                       struct notify_xfer *nx, struct notify_result *res) {
  struct sms *s = state;
  const char *to = req->row->recipient;
  if (!to || !smstext_is_e164(to)) {
    res->status = NOTIFY_PERMANENT;
    snprintf(res->error, sizeof res->error, "invalid recipient: not an E.164 number");
    return -EINVAL;
  }
  _cleanup_free_ char *text = sms_text(NULL, s->footer ? s->footer : "", req->msg);
  _cleanup_free_ char *ct = strprintf("Content-Type: %s", s->content_type);
  if (!text || !ct)
    goto oom;
  if (segments_ok(text, s->max_segments, res->error, sizeof res->error) < 0) {
    res->status = NOTIFY_PERMANENT;
    return -EINVAL;
  }
  int r;
  struct curl_slist *l = curl_slist_append(nx->headers, ct);
  if (!l)
    goto oom;
  nx->headers = l;
  if (s->provider == SMS_TWILIO) {
    if (form_add(&nx->request, easy, "To", to) < 0 ||
        form_add(&nx->request, easy, "From", s->from) < 0 ||
        form_add(&nx->request, easy, "Body", text) < 0 ||
        (s->status_callback &&
         form_add(&nx->request, easy, "StatusCallback", s->status_callback) < 0))
      goto oom;
    _cleanup_free_ char *idem = strprintf("I-Twilio-Idempotency-Token: %s", req->row->idem_key);
    if (!idem || !(l = curl_slist_append(nx->headers, idem)))
      goto oom;
    nx->headers = l;
  } else {
    json_t *data =
        json_pack("{s:s, s:s, s:s}", "to", to, "from", s->from ? s->from : "", "body", text);
    if (!data)
      goto oom;
    if (json_lit(data, "to_json", to) < 0 || json_lit(data, "from_json", s->from) < 0 ||
        json_lit(data, "body_json", text) < 0 ||
        json_object_set(data, "message", req->msg->data) < 0) {
      json_decref(data);
      goto oom;
    }
    if (s->body_template) {
      _cleanup_free_ char *body = NULL;
      char err[256] = "";
      r = s->tmpl ? templates_render(s->tmpl, NULL, s->body_template, "body", data, &body, NULL,
                                     err, sizeof err)
                  : -ENOENT;
      if (r < 0) {
        json_decref(data);
        res->status = NOTIFY_PERMANENT;
        snprintf(res->error, sizeof res->error, "BodyTemplate=%s: %s", s->body_template,
                 *err ? err : strerror(-r));
        return r;
      }
      r = buf_puts(&nx->request, body);
    } else {
      json_object_del(data, "to_json");
      json_object_del(data, "from_json");
      json_object_del(data, "body_json");
      json_object_del(data, "message");
      char *body = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
      r = body ? buf_puts(&nx->request, body) : -ENOMEM;
      free(body);
    }
    json_decref(data);
    if (r < 0)
      goto oom;
    _cleanup_free_ char *idem = strprintf("Idempotency-Key: %s", req->row->idem_key);
    if (!idem || !(l = curl_slist_append(nx->headers, idem)))
      goto oom;
    nx->headers = l;
  }
  for (struct curl_slist *h = s->extra; h; h = h->next) {
    if (!(l = curl_slist_append(nx->headers, h->data)))
      goto oom;
    nx->headers = l;
  }
  if (!(l = curl_slist_append(nx->headers, "Expect:")))
    goto oom;
  nx->headers = l;
  curl_easy_setopt(easy, CURLOPT_URL, s->url);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, nx->request.data);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)nx->request.len);
  if (!streq(s->method, "POST"))
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, s->method);
  if (s->user) {
    curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(easy, CURLOPT_USERNAME, s->user);
    curl_easy_setopt(easy, CURLOPT_PASSWORD, s->password ? s->password : "");
  }
  return 0;
oom:
  res->status = NOTIFY_TRANSIENT;
  snprintf(res->error, sizeof res->error, "out of memory");
  return -ENOMEM;
}

static void sms_finish(void *state, const struct notify_request *req, CURL *easy,
                       struct notify_xfer *nx, CURLcode code, struct notify_result *res) {
  struct sms *s = state;
  if (code != CURLE_OK) {
    notify_classify_curl(code, nx->curl_error, res);
    return;
  }
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  notify_classify_http(status, s->success[0] ? s->success : NULL, nx->retry_after,
                       nx->response.data, res);
  if (res->status == NOTIFY_SENT && nx->response.len > 0)
    (void)notify_json_path(nx->response.data, nx->response.len, s->id_path, res->provider_id,
                           sizeof res->provider_id);
}

/* ---- reconciliation (Twilio: list messages by To, From and DateSent) ----------------- */

static bool sms_lookup_supported(void *state) {
  const struct sms *s = state;
  return s && s->provider == SMS_TWILIO;
}

static int sms_lookup_prepare(void *state, const struct notify_request *req, CURL *easy,
                              struct notify_xfer *nx, struct notify_result *res) {
  struct sms *s = state;
  const char *to = req->row->recipient;
  if (!sms_lookup_supported(s) || !to || !smstext_is_e164(to)) {
    res->status = NOTIFY_PERMANENT;
    snprintf(res->error, sizeof res->error, "no provider lookup for this message");
    return -EINVAL;
  }
  _cleanup_free_ char *url = NULL;
  char *text = sms_text(NULL, s->footer ? s->footer : "", req->msg);
  if (!text)
    goto oom;
  nx->backend_data = text; /* compared in lookup_finish */
  nx->backend_free = free;
  time_t since = (time_t)(req->now - 2 * 86400);
  struct tm tm;
  char day[16];
  if (!gmtime_r(&since, &tm) || strftime(day, sizeof day, "%Y-%m-%d", &tm) == 0)
    snprintf(day, sizeof day, "1970-01-01");
  char *eto = curl_easy_escape(easy, to, 0), *efrom = curl_easy_escape(easy, s->from, 0);
  url = eto && efrom ? strprintf("%s%sTo=%s&From=%s&DateSent%%3E=%s&PageSize=100", s->url,
                                 strchr(s->url, '?') ? "&" : "?", eto, efrom, day)
                     : NULL;
  curl_free(eto);
  curl_free(efrom);
  if (!url)
    goto oom;
  for (struct curl_slist *h = s->extra, *l; h; h = h->next) {
    if (!(l = curl_slist_append(nx->headers, h->data)))
      goto oom;
    nx->headers = l;
  }
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  if (s->user) {
    curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(easy, CURLOPT_USERNAME, s->user);
    curl_easy_setopt(easy, CURLOPT_PASSWORD, s->password ? s->password : "");
  }
  return 0;
oom:
  res->status = NOTIFY_TRANSIENT;
  snprintf(res->error, sizeof res->error, "out of memory");
  return -ENOMEM;
}

static enum notify_lookup sms_lookup_finish(void *state, const struct notify_request *req,
                                            CURL *easy, struct notify_xfer *nx, CURLcode code,
                                            struct notify_result *res) {
  if (code != CURLE_OK) {
    notify_classify_curl(code, nx->curl_error, res);
    return NOTIFY_LOOKUP_FAILED;
  }
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    notify_classify_http(status, NULL, 0, nx->response.data, res);
    if (res->status == NOTIFY_SENT)
      snprintf(res->error, sizeof res->error, "message lookup: HTTP %ld", status);
    res->status = NOTIFY_TRANSIENT;
    return NOTIFY_LOOKUP_FAILED;
  }
  json_t *root = json_loadb(nx->response.data ? nx->response.data : "", nx->response.len, 0, NULL);
  json_t *list = json_object_get(root, "messages");
  if (!json_is_array(list)) {
    json_decref(root);
    res->status = NOTIFY_TRANSIENT;
    snprintf(res->error, sizeof res->error, "message lookup: no \"messages\" list in the answer");
    return NOTIFY_LOOKUP_FAILED;
  }
  const char *text = nx->backend_data;
  size_t i;
  json_t *m;
  enum notify_lookup found = NOTIFY_LOOKUP_ABSENT;
  json_array_foreach(list, i, m) {
    const char *to = json_string_value(json_object_get(m, "to"));
    const char *body = json_string_value(json_object_get(m, "body"));
    const char *sid = json_string_value(json_object_get(m, "sid"));
    if (streq_ptr(to, req->row->recipient) && streq_ptr(body, text)) {
      res->status = NOTIFY_SENT;
      snprintf(res->provider_id, sizeof res->provider_id, "%s", sid ? sid : "");
      found = NOTIFY_LOOKUP_FOUND;
      break;
    }
  }
  json_decref(root);
  return found;
}

const struct notifier_ops notifier_sms_ops = {
    .type = "sms",
    .kind = NOTIFY_SMS,
    .check_config = sms_check_config,
    .new = sms_new,
    .free = sms_free,
    .check_message = sms_check_message,
    .prepare = sms_prepare,
    .finish = sms_finish,
    .lookup_supported = sms_lookup_supported,
    .lookup_prepare = sms_lookup_prepare,
    .lookup_finish = sms_lookup_finish,
};
