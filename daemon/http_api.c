/* http_api: the JSON API under /api/v1/ (docs/api.md, docs/openapi.yaml).
 *
 *   PUT|POST /api/v1/customers/{id}            upsert a customer
 *   PUT      /api/v1/contracts/{id}            upsert a contract (and its customer)
 *   GET      /api/v1/contracts/{id}            a contract with customer (and the
 *                                              suppressions of its addresses) and history
 *   POST     /api/v1/contracts/{id}/responses  record an answer (lifecycle_apply)
 *   GET      /api/v1/due?within=7d&limit=N     contracts with something due soon
 *
 * Every request needs "Authorization: Bearer <token>" with a line of
 * ApiTokenFile= (compared in constant time); otherwise 401 with
 * WWW-Authenticate: Bearer. Bodies are JSON objects (Content-Type
 * application/json; 415 otherwise, 400 when malformed); contract upserts are
 * validated exactly like a CSV import row (core/validate.h): 422 with one
 * problem per field. Answers: 409 when the state machine refuses, 422 for a
 * bad value, 404 for an unknown contract.
 *
 * Idempotency-Key (PUT/POST): the first result (status and body) is stored in
 * the api_idempotency table with a hash of method, path and body; the same
 * key with the same request returns that result again (header
 * Idempotent-Replayed: true); with a different request 422. Results of 5xx
 * are not stored. Entries are forgotten after 24 hours.
 *
 * Owns nothing beyond one request; blocks on the store only. */
#include <inttypes.h>
#include <openssl/evp.h>
#include <strings.h>

#include "daemon/http_internal.h"

#define IDEM_TTL (24 * 3600)
#define DUE_LIMIT_DEFAULT 1000
#define DUE_LIMIT_MAX 10000

/* ---- JSON helpers ----------------------------------------------------------------- */

static json_t *jstr(const char *s) {
  return isempty(s) ? json_null() : json_string(s);
}

static json_t *jtime(int64_t t) {
  char b[21];
  return t ? json_string(format_rfc3339(t, b)) : json_null();
}

static int jset(json_t *o, const char *k, json_t *v) {
  return v && json_object_set_new(o, k, v) == 0 ? 0 : -ENOMEM;
}

/* The status of a failed store call r: 503 while another process holds the
 * lock (http.c runs the request again: only for calls before anything of
 * the request was committed), else 500. */
static unsigned store_status(struct http_reply *rep, int r) {
  return http_reply_busy(rep, r) ? 503 : 500;
}

static const struct cal_zone *zone_of(struct http *h, const struct customer *cu) {
  const struct cal_zone *z = cu && !isempty(cu->tz) ? cal_zone(h->deps.cal, cu->tz) : NULL;
  if (!z)
    z = cal_zone(h->deps.cal,
                 h->deps.cfg->daemon.time_zone ? h->deps.cfg->daemon.time_zone : "UTC");
  return z ? z : cal_zone(h->deps.cal, "UTC");
}

/* The last valid local day of an expiry (the day before a local midnight). */
static void last_day(const struct cal_zone *z, int64_t expires_at, char out[static 11]) {
  struct cal_local l;
  cal_to_local(z, expires_at, &l);
  if (l.hour == 0 && l.minute == 0 && l.second == 0)
    cal_to_local(z, expires_at - 1, &l);
  snprintf(out, 11, "%04d-%02d-%02d", l.year, l.month, l.day);
}

static json_t *customer_json(const struct customer *cu) {
  json_t *o = json_object(), *opt = json_array();
  if (!o || !opt) {
    json_decref(o);
    json_decref(opt);
    return NULL;
  }
  static const struct {
    unsigned bit;
    const char *name;
  } bits[] = {{OPTOUT_EMAIL, "email"}, {OPTOUT_SMS, "sms"}, {OPTOUT_WEBHOOK, "webhook"}};
  for (size_t i = 0; i < ELEMENTSOF(bits); i++)
    if (cu->optout & bits[i].bit)
      json_array_append_new(opt, json_string(bits[i].name));
  if (jset(o, "id", jstr(cu->id)) < 0 || jset(o, "name", jstr(cu->name)) < 0 ||
      jset(o, "email", jstr(cu->email)) < 0 || jset(o, "phone", jstr(cu->phone)) < 0 ||
      jset(o, "timezone", jstr(cu->tz)) < 0 || jset(o, "locale", jstr(cu->locale)) < 0 ||
      jset(o, "segment", jstr(cu->segment)) < 0 || jset(o, "owner", jstr(cu->owner_id)) < 0 ||
      jset(o, "optout", opt) < 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

static int suppression_cb(const struct suppression *sp, void *ud) {
  json_t **o = ud; /* [0] the list, [1] the customer's optout names */
  const char *kind = suppress_kind_to_string(sp->kind);
  json_t *j = json_object();
  if (!j || json_array_append_new(o[0], j) < 0 || jset(j, "address", jstr(sp->address)) < 0 ||
      jset(j, "kind", json_string(kind)) < 0 || jset(j, "reason", jstr(sp->reason)) < 0 ||
      jset(j, "source", jstr(sp->source)) < 0 || jset(j, "note", jstr(sp->note)) < 0 ||
      jset(j, "created_at", jtime(sp->created_at)) < 0)
    return -ENOMEM;
  for (size_t i = 0; i < json_array_size(o[1]); i++)
    if (streq(json_string_value(json_array_get(o[1], i)), kind))
      return 0;
  return json_array_append_new(o[1], json_string(kind)) < 0 ? -ENOMEM : 0;
}

/* The customer object of a contract: with "suppressions" of its email
 * address and phone number, which count in "optout" as well. */
static json_t *customer_json_full(struct http *h, const struct customer *cu) {
  json_t *o = customer_json(cu), *list = json_array();
  json_t *ud[2] = {list, o ? json_object_get(o, "optout") : NULL};
  if (!o || !list || jset(o, "suppressions", json_incref(list)) < 0 ||
      store_suppression_foreach_contact(h->deps.store, cu->email, cu->phone, suppression_cb, ud) <
          0) {
    json_decref(list);
    json_decref(o);
    return NULL;
  }
  json_decref(list);
  return o;
}

static json_t *contract_json(struct http *h, const struct contract *co, const struct customer *cu) {
  char day[11], value[40];
  json_t *o = json_object();
  if (!o)
    return NULL;
  last_day(zone_of(h, cu), co->expires_at, day);
  int64_t v = co->value_minor < 0 ? -co->value_minor : co->value_minor;
  snprintf(value, sizeof value, "%s%" PRId64 ".%02" PRId64, co->value_minor < 0 ? "-" : "", v / 100,
           v % 100);
  if (jset(o, "id", jstr(co->id)) < 0 || jset(o, "customer_id", jstr(co->customer_id)) < 0 ||
      jset(o, "product", jstr(co->product)) < 0 ||
      jset(o, "value", co->value_minor || co->currency ? json_string(value) : json_null()) < 0 ||
      jset(o, "currency", jstr(co->currency)) < 0 ||
      jset(o, "starts_at", jtime(co->starts_at)) < 0 ||
      jset(o, "expires_at", jtime(co->expires_at)) < 0 ||
      jset(o, "expires_on", json_string(day)) < 0 || jset(o, "term", json_integer(co->term)) < 0 ||
      jset(o, "state", json_string(contract_state_to_string(co->state))) < 0 ||
      jset(o, "state_until", jtime(co->state_until)) < 0 ||
      jset(o, "next_due_at", jtime(co->next_due_at)) < 0 ||
      jset(o, "created_at", jtime(co->created_at)) < 0 ||
      jset(o, "updated_at", jtime(co->updated_at)) < 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* ---- auth ----------------------------------------------------------------------------- */

bool http_api_authorized(struct http *h, struct MHD_Connection *c) {
  const char *a = NULL;
  size_t len = 0;
  /* the length MHD stored, not strlen(): a token is compared whole or not at
   * all (http_guard.c refuses values MHD cut at a NUL before this runs) */
  if (MHD_lookup_connection_value_n(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION,
                                    strlen(MHD_HTTP_HEADER_AUTHORIZATION), &a, &len) != MHD_YES ||
      !a || len < 7 || strncasecmp(a, "Bearer ", 7) != 0 || memchr(a, 0, len))
    return false;
  const char *tok = a + 7;
  size_t n = len - 7;
  while (n && *tok == ' ')
    tok++, n--;
  bool ok = false;
  for (size_t i = 0; i < h->n_api_tokens; i++) /* no early exit: constant time per token */
    ok |= memeq_consttime(tok, n, h->api_tokens[i], strlen(h->api_tokens[i]));
  return ok && n > 0;
}

/* ---- body ------------------------------------------------------------------------------- */

/* Parses the JSON object body. On failure fills rep and returns NULL. */
static json_t *body_object(struct MHD_Connection *c, const struct http_request *rq,
                           struct http_reply *rep) {
  char ct[64];
  http_content_type(c, ct, sizeof ct);
  if (!streq(ct, "application/json")) {
    http_reply_error_json(rep, 415, "expected Content-Type: application/json", NULL);
    return NULL;
  }
  json_error_t e;
  json_t *j = json_loadb(rq->body.data, rq->body.len, JSON_REJECT_DUPLICATES, &e);
  if (!j) {
    char msg[256];
    snprintf(msg, sizeof msg, "malformed JSON at line %d column %d: %s", e.line, e.column, e.text);
    http_reply_error_json(rep, 400, msg, NULL);
    return NULL;
  }
  if (!json_is_object(j)) {
    json_decref(j);
    http_reply_error_json(rep, 400, "the body must be a JSON object", NULL);
    return NULL;
  }
  return j;
}

static json_t *problem(const char *field, const char *message) {
  return json_pack("{s:s,s:s}", "field", field, "message", message);
}

/* Reads the string (or number, for amounts) field key of o into a static-
 * lifetime pointer: the JSON value's string, or out (for numbers). Absent or
 * null: *ret NULL and *ret_present false. Returns false (and adds a problem)
 * when the type is wrong. */
static bool get_field(json_t *o, const char *key, char *numbuf, size_t numlen, const char **ret,
                      bool *ret_present, json_t *problems) {
  json_t *v = json_object_get(o, key);
  *ret = NULL;
  if (ret_present)
    *ret_present = v != NULL;
  if (!v || json_is_null(v))
    return true;
  if (json_is_string(v)) {
    *ret = json_string_value(v);
    return true;
  }
  if (numbuf && json_is_integer(v)) {
    snprintf(numbuf, numlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    *ret = numbuf;
    return true;
  }
  if (numbuf && json_is_real(v)) {
    snprintf(numbuf, numlen, "%.15g", json_real_value(v));
    *ret = numbuf;
    return true;
  }
  json_array_append_new(problems,
                        problem(key, numbuf ? "must be a string or a number" : "must be a string"));
  return false;
}

/* Fields not in allowed[] become problems. */
static void unknown_fields(json_t *o, const char *const *allowed, json_t *problems) {
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    bool ok = false;
    for (size_t i = 0; allowed[i] && !ok; i++)
      ok = streq(k, allowed[i]);
    if (!ok)
      json_array_append_new(problems, problem(k, "unknown field"));
  }
}

/* ---- customers ---------------------------------------------------------------------------- */

struct replan {
  struct http *h;
};

static int replan_cb(const struct contract *c, const struct customer *cu, void *ud) {
  struct replan *p = ud;
  http_changed(p->h, c->id);
  return 0;
}

static void put_customer(struct http *h, struct MHD_Connection *c, const char *id,
                         const struct http_request *rq, struct http_reply *rep) {
  static const char *const allowed[] = {"id",     "name",    "email", "phone", "timezone",
                                        "locale", "segment", "owner", NULL};
  json_t *body = body_object(c, rq, rep);
  if (!body)
    return;
  json_t *problems = json_array();
  _cleanup_(customer_clear) struct customer old = {0};
  int r = store_customer_get(h->deps.store, id, &old);
  bool exists = r >= 0;
  if (r < 0 && r != -ENOENT) {
    json_decref(body);
    json_decref(problems);
    http_reply_error_json(rep, store_status(rep, r), store_last_error(h->deps.store), NULL);
    return;
  }
  unknown_fields(body, allowed, problems);
  const char *vid, *name, *email, *phone, *tz, *locale, *segment, *owner;
  bool has[8];
  get_field(body, "id", NULL, 0, &vid, &has[0], problems);
  get_field(body, "name", NULL, 0, &name, &has[1], problems);
  get_field(body, "email", NULL, 0, &email, &has[2], problems);
  get_field(body, "phone", NULL, 0, &phone, &has[3], problems);
  get_field(body, "timezone", NULL, 0, &tz, &has[4], problems);
  get_field(body, "locale", NULL, 0, &locale, &has[5], problems);
  get_field(body, "segment", NULL, 0, &segment, &has[6], problems);
  get_field(body, "owner", NULL, 0, &owner, &has[7], problems);
  /* absent fields keep their stored values (null clears) */
  if (exists) {
    if (!has[1])
      name = old.name;
    if (!has[2])
      email = old.email;
    if (!has[3])
      phone = old.phone;
    if (!has[4])
      tz = old.tz;
    if (!has[5])
      locale = old.locale;
    if (!has[6])
      segment = old.segment;
    if (!has[7])
      owner = old.owner_id;
  }
  char e164[17];
  size_t chars;
  if (vid && !streq(vid, id))
    json_array_append_new(problems, problem("id", "differs from the id in the path"));
  if (strlen(id) > 128 || !validate_text(id, strlen(id), NULL))
    json_array_append_new(problems, problem("id", "at most 128 bytes of text"));
  if (name && (!validate_text(name, strlen(name), &chars) || chars > 200))
    json_array_append_new(problems, problem("name", "at most 200 characters of text"));
  if (!isempty(email) && !validate_email(email))
    json_array_append_new(problems, problem("email", "invalid email address"));
  if (!isempty(phone)) {
    if (validate_e164(phone, e164) < 0)
      json_array_append_new(problems, problem("phone", "expected E.164, e.g. +4930123456"));
    else
      phone = e164;
  }
  if (isempty(email) && isempty(phone))
    json_array_append_new(problems, problem("email", "email or phone is required"));
  if (!isempty(tz) && !cal_zone(h->deps.cal, tz))
    json_array_append_new(problems, problem("timezone", "unknown time zone"));
  if (!isempty(locale) && !validate_locale(locale))
    json_array_append_new(problems,
                          problem("locale", "expected a language tag such as en or zh-CN"));
  if (segment && (!validate_text(segment, strlen(segment), &chars) || chars > 64))
    json_array_append_new(problems, problem("segment", "at most 64 characters of text"));
  if (owner && (!validate_text(owner, strlen(owner), &chars) || chars > 64))
    json_array_append_new(problems, problem("owner", "at most 64 characters of text"));
  if (json_array_size(problems)) {
    json_decref(body);
    http_reply_error_json(rep, 422, "invalid customer", problems);
    return;
  }
  json_decref(problems);
  struct customer cu = {
      .id = (char *)id,
      .name = (char *)name,
      .email = (char *)email,
      .phone = (char *)phone,
      .tz = (char *)tz,
      .locale = (char *)locale,
      .segment = (char *)segment,
      .owner_id = (char *)owner,
  };
  r = store_customer_upsert(h->deps.store, &cu, http_now(h));
  json_decref(body);
  if (r < 0) {
    http_reply_error_json(rep, store_status(rep, r), store_last_error(h->deps.store), NULL);
    return;
  }
  _cleanup_(customer_clear) struct customer now = {0};
  if (store_customer_get(h->deps.store, id, &now) < 0) {
    http_reply_error_json(rep, 500, store_last_error(h->deps.store), NULL);
    return;
  }
  if (r == STORE_UPDATED) {
    struct replan p = {h};
    struct store_contract_filter f = {.state = -1, .customer_id = id};
    (void)store_contract_foreach(h->deps.store, &f, replan_cb, &p);
  }
  json_t *j = json_pack("{s:o,s:s}", "customer", customer_json(&now), "result",
                        r == STORE_INSERTED  ? "inserted"
                        : r == STORE_UPDATED ? "updated"
                                             : "unchanged");
  http_reply_json(rep, r == STORE_INSERTED ? 201 : 200, j);
}

/* ---- contracts ------------------------------------------------------------------------------ */

static void put_contract(struct http *h, struct MHD_Connection *c, const char *id,
                         const struct http_request *rq, struct http_reply *rep) {
  json_t *body = body_object(c, rq, rep);
  if (!body)
    return;
  json_t *problems = json_array();
  const char *fields[_VCOL_MAX] = {0};
  bool present[_VCOL_MAX] = {0};
  char numbuf[40];
  const char *allowed[_VCOL_MAX + 1];
  for (int k = 0; k < _VCOL_MAX; k++) {
    allowed[k] = validate_col_name((enum validate_col)k);
    get_field(body, allowed[k], k == VCOL_VALUE ? numbuf : NULL, sizeof numbuf, &fields[k],
              &present[k], problems);
  }
  allowed[_VCOL_MAX] = NULL;
  unknown_fields(body, allowed, problems);
  if (fields[VCOL_CONTRACT_ID] && !streq(fields[VCOL_CONTRACT_ID], id))
    json_array_append_new(problems, problem("contract_id", "differs from the id in the path"));
  fields[VCOL_CONTRACT_ID] = id;

  /* customer fields not given: the stored customer's */
  _cleanup_(customer_clear) struct customer old = {0};
  if (fields[VCOL_CUSTOMER_ID] &&
      store_customer_get(h->deps.store, fields[VCOL_CUSTOMER_ID], &old) >= 0) {
    const struct {
      enum validate_col col;
      const char *v;
    } keep[] = {{VCOL_CUSTOMER_NAME, old.name}, {VCOL_EMAIL, old.email},
                {VCOL_PHONE, old.phone},        {VCOL_TIMEZONE, old.tz},
                {VCOL_LOCALE, old.locale},      {VCOL_SEGMENT, old.segment},
                {VCOL_OWNER, old.owner_id}};
    for (size_t i = 0; i < ELEMENTSOF(keep); i++)
      if (!present[keep[i].col])
        fields[keep[i].col] = keep[i].v;
  }
  struct customer cu;
  struct contract co;
  struct validate_problems vp;
  int n = json_array_size(problems) ? 0 : validate_row(h->validate, fields, &cu, &co, &vp);
  if (n < 0) {
    json_decref(body);
    json_decref(problems);
    http_reply_error_json(rep, 500, "out of memory", NULL);
    return;
  }
  for (int i = 0; i < n; i++)
    json_array_append_new(problems, problem(validate_col_name(vp.p[i].col), vp.p[i].message));
  if (json_array_size(problems)) {
    json_decref(body);
    http_reply_error_json(rep, 422, "invalid contract", problems);
    return;
  }
  json_decref(problems);
  int64_t now = http_now(h);
  int r = store_begin(h->deps.store), rc = 0;
  if (r >= 0 && (r = store_customer_upsert(h->deps.store, &cu, now)) >= 0 &&
      (rc = r = store_contract_upsert(h->deps.store, &co, now)) >= 0)
    r = store_commit(h->deps.store);
  json_decref(body); /* fields pointed into it */
  if (r < 0) {
    char msg[320];
    snprintf(msg, sizeof msg, "store error: %s", store_last_error(h->deps.store));
    (void)store_rollback(h->deps.store);
    http_reply_error_json(rep, store_status(rep, r), msg, NULL);
    return;
  }
  http_changed(h, id);
  _cleanup_(contract_clear) struct contract now_co = {0};
  _cleanup_(customer_clear) struct customer now_cu = {0};
  if (store_contract_get(h->deps.store, id, &now_co) < 0 ||
      (now_co.customer_id && store_customer_get(h->deps.store, now_co.customer_id, &now_cu) < 0)) {
    http_reply_error_json(rep, 500, store_last_error(h->deps.store), NULL);
    return;
  }
  json_t *j = json_pack("{s:o,s:o,s:s}", "contract", contract_json(h, &now_co, &now_cu), "customer",
                        customer_json(&now_cu), "result",
                        rc == STORE_INSERTED  ? "inserted"
                        : rc == STORE_UPDATED ? "updated"
                                              : "unchanged");
  http_reply_json(rep, rc == STORE_INSERTED ? 201 : 200, j);
}

/* history collectors */
static int hist_response(const struct response *p, void *ud) {
  json_t *o = json_object();
  if (!o || json_array_append_new(ud, o) < 0 || jset(o, "id", json_integer(p->id)) < 0 ||
      jset(o, "term", json_integer(p->term)) < 0 || jset(o, "kind", jstr(p->kind)) < 0 ||
      jset(o, "source", jstr(p->source)) < 0 || jset(o, "channel", jstr(p->channel)) < 0 ||
      jset(o, "reason", jstr(p->reason)) < 0 || jset(o, "detail", jstr(p->detail)) < 0 ||
      jset(o, "until", jtime(p->until_at)) < 0 ||
      jset(o, "new_expires_at", jtime(p->new_expires_at)) < 0 ||
      jset(o, "at", jtime(p->created_at)) < 0)
    return -ENOMEM;
  return 0;
}

static int hist_reminder(const struct reminder *m, void *ud) {
  json_t *o = json_object();
  if (!o || json_array_append_new(ud, o) < 0 || jset(o, "id", json_integer(m->id)) < 0 ||
      jset(o, "term", json_integer(m->term)) < 0 || jset(o, "tier", jstr(m->tier)) < 0 ||
      jset(o, "step", json_integer(m->step)) < 0 || jset(o, "channel", jstr(m->channel)) < 0 ||
      jset(o, "audience", jstr(m->audience)) < 0 ||
      jset(o, "status", json_string(reminder_status_to_string(m->status))) < 0 ||
      jset(o, "attempts", json_integer(m->attempts)) < 0 ||
      jset(o, "due_at", jtime(m->due_at)) < 0 || jset(o, "sent_at", jtime(m->sent_at)) < 0 ||
      jset(o, "last_error", jstr(m->last_error)) < 0 ||
      jset(o, "delivery_status", jstr(m->delivery_status)) < 0 ||
      jset(o, "delivery_error", jstr(m->delivery_error)) < 0 ||
      jset(o, "delivery_at", jtime(m->delivery_at)) < 0)
    return -ENOMEM;
  return 0;
}

static int hist_event(const struct event *e, void *ud) {
  json_t *o = json_object();
  if (!o || json_array_append_new(ud, o) < 0 || jset(o, "id", json_integer(e->id)) < 0 ||
      jset(o, "kind", jstr(e->kind)) < 0 || jset(o, "detail", jstr(e->detail)) < 0 ||
      jset(o, "at", jtime(e->at)) < 0)
    return -ENOMEM;
  return 0;
}

static void get_contract(struct http *h, const char *id, struct http_reply *rep) {
  _cleanup_(contract_clear) struct contract co = {0};
  _cleanup_(customer_clear) struct customer cu = {0};
  int r = store_contract_get(h->deps.store, id, &co);
  if (r == -ENOENT) {
    http_reply_error_json(rep, 404, "no such contract", NULL);
    return;
  }
  bool have_cu =
      r >= 0 && co.customer_id && store_customer_get(h->deps.store, co.customer_id, &cu) >= 0;
  json_t *responses = json_array(), *reminders = json_array(), *events = json_array();
  json_t *j = json_object();
  if (r >= 0 && (!responses || !reminders || !events || !j))
    r = -ENOMEM;
  if (r >= 0)
    r = store_response_foreach_contract(h->deps.store, id, -1, hist_response, responses);
  if (r >= 0)
    r = store_reminder_foreach_contract(h->deps.store, id, -1, hist_reminder, reminders);
  if (r >= 0)
    r = store_event_foreach_contract(h->deps.store, id, hist_event, events);
  if (r >= 0 && (jset(j, "contract", contract_json(h, &co, have_cu ? &cu : NULL)) < 0 ||
                 jset(j, "customer", have_cu ? customer_json_full(h, &cu) : json_null()) < 0 ||
                 jset(j, "history",
                      json_pack("{s:O,s:O,s:O}", "responses", responses, "reminders", reminders,
                                "events", events)) < 0))
    r = -ENOMEM;
  json_decref(responses);
  json_decref(reminders);
  json_decref(events);
  if (r < 0) {
    json_decref(j);
    http_reply_error_json(rep, store_status(rep, r),
                          r == -ENOMEM ? "out of memory" : store_last_error(h->deps.store), NULL);
    return;
  }
  http_reply_json(rep, 200, j);
}

/* ---- responses ----------------------------------------------------------------------------------
 */

/* RFC 3339, or YYYY-MM-DD = the end of that local day in z (as in the CSV
 * import and renewctl respond), or (allow_local) YYYY-MM-DDTHH:MM local. */
static int parse_when(const struct cal_zone *z, const char *s, bool allow_local, int64_t *ret) {
  int y, m, d, hh, mm;
  if (cal_parse_rfc3339(s, ret) >= 0)
    return 0;
  if (strlen(s) == 10 && cal_parse_date(s, &y, &m, &d) >= 0) {
    *ret = cal_end_of_date(z, y, m, d);
    return 0;
  }
  if (allow_local && strlen(s) == 16 && (s[10] == 'T' || s[10] == ' ') && s[13] == ':') {
    char date[11];
    memcpy(date, s, 10);
    date[10] = 0;
    if (cal_parse_date(date, &y, &m, &d) >= 0 && sscanf(s + 11, "%2d:%2d", &hh, &mm) == 2 &&
        hh >= 0 && hh <= 23 && mm >= 0 && mm <= 59) {
      *ret = cal_from_local(z, y, m, d, hh, mm, 0);
      return 0;
    }
  }
  return -EINVAL;
}

static void post_response(struct http *h, struct MHD_Connection *c, const char *id,
                          const struct http_request *rq, struct http_reply *rep) {
  static const char *const allowed[] = {"kind",    "expires_on", "new_expires_at", "reason",
                                        "note",    "detail",     "until",          "at",
                                        "channel", NULL};
  json_t *body = body_object(c, rq, rep);
  if (!body)
    return;
  json_t *problems = json_array();
  unknown_fields(body, allowed, problems);
  const char *kind_s, *exp_on, *exp_at, *reason, *note, *detail, *until_s, *at_s, *channel;
  get_field(body, "kind", NULL, 0, &kind_s, NULL, problems);
  get_field(body, "expires_on", NULL, 0, &exp_on, NULL, problems);
  get_field(body, "new_expires_at", NULL, 0, &exp_at, NULL, problems);
  get_field(body, "reason", NULL, 0, &reason, NULL, problems);
  get_field(body, "note", NULL, 0, &note, NULL, problems);
  get_field(body, "detail", NULL, 0, &detail, NULL, problems);
  get_field(body, "until", NULL, 0, &until_s, NULL, problems);
  get_field(body, "at", NULL, 0, &at_s, NULL, problems);
  get_field(body, "channel", NULL, 0, &channel, NULL, problems);

  _cleanup_(contract_clear) struct contract co = {0};
  _cleanup_(customer_clear) struct customer cu = {0};
  int r = store_contract_get(h->deps.store, id, &co);
  if (r < 0) {
    json_decref(body);
    json_decref(problems);
    if (r == -ENOENT)
      http_reply_error_json(rep, 404, "no such contract", NULL);
    else
      http_reply_error_json(rep, store_status(rep, r), store_last_error(h->deps.store), NULL);
    return;
  }
  bool have_cu = co.customer_id && store_customer_get(h->deps.store, co.customer_id, &cu) >= 0;
  const struct cal_zone *z = zone_of(h, have_cu ? &cu : NULL);

  /* "snooze"/"snoozed", "renew"/"renewed", "decline"/"declined" all work */
  static const struct {
    const char *alias, *kind;
  } aliases[] = {{"snooze", "snoozed"},           {"renew", "renewed"},
                 {"decline", "declined"},         {"call", "callback"},
                 {"unsubscribe", "unsubscribed"}, {"resubscribe", "resubscribed"}};
  for (size_t i = 0; kind_s && i < ELEMENTSOF(aliases); i++)
    if (streq(kind_s, aliases[i].alias))
      kind_s = aliases[i].kind;
  int kind = kind_s ? lifecycle_kind_from_string(kind_s) : -EINVAL;
  if (kind < 0)
    json_array_append_new(problems,
                          problem("kind", "expected renewed, declined, lost, snoozed, callback, "
                                          "renew_intent, unsubscribed, resubscribed or message"));
  struct lifecycle_answer a = {
      .contract_id = id,
      .kind = kind < 0 ? LIFECYCLE_MESSAGE : (enum lifecycle_kind)kind,
      .source = LIFECYCLE_SOURCE_API,
      .channel = channel,
      .reason = reason,
      .detail = note ? note : detail,
  };
  int64_t t;
  if (exp_at || exp_on) {
    if (parse_when(z, exp_at ? exp_at : exp_on, false, &t) < 0)
      json_array_append_new(problems, problem(exp_at ? "new_expires_at" : "expires_on",
                                              "expected YYYY-MM-DD or an RFC 3339 timestamp"));
    else
      a.new_expires_at = t;
  }
  if (until_s || at_s) {
    if (parse_when(z, until_s ? until_s : at_s, at_s && !until_s, &t) < 0)
      json_array_append_new(problems, problem(until_s ? "until" : "at",
                                              "expected YYYY-MM-DD or an RFC 3339 timestamp"));
    else
      a.until = t;
  }
  if (json_array_size(problems)) {
    json_decref(body);
    http_reply_error_json(rep, 422, "invalid answer", problems);
    return;
  }
  json_decref(problems);

  const char *ikey = http_header(c, "Idempotency-Key");
  _cleanup_free_ char *key = !isempty(ikey) ? strprintf("api-%s", ikey) : NULL;
  a.idem_key = key;
  struct http_policy pol;
  http_policy_load(h, &co, have_cu ? &cu : NULL, &pol);
  pol.lp.max_snooze = 0; /* staff may snooze longer than customers (as renewctl respond) */
  a.policy = &pol.lp;
  struct lifecycle_result res = {0};
  char err[512];
  r = lifecycle_apply(h->deps.store, &a, http_now(h), &res, err, sizeof err);
  http_policy_done(&pol);
  json_decref(body); /* the answer's strings pointed into it */
  if (r < 0) {
    unsigned st = r == -ENOENT                                    ? 404
                  : r == -EPERM || r == -EALREADY || r == -EEXIST ? 409
                  : r == -EINVAL                                  ? 422
                                                                  : store_status(rep, r);
    http_reply_error_json(rep, st, err, NULL);
    return;
  }
  if (!res.already_recorded) {
    struct log_ctx lc = {.contract_id = id};
    log_msg(h->deps.log, LOG_INFO, &lc, "answer recorded: %s via api (response %" PRId64 ")",
            lifecycle_kind_to_string(a.kind), res.response_id);
    http_changed(h, id);
  }
  char day[11];
  last_day(z, res.expires_at, day);
  json_t *j = json_object();
  if (!j || jset(j, "contract", json_string(id)) < 0 ||
      jset(j, "kind", jstr(res.response.kind)) < 0 ||
      jset(j, "already_recorded", json_boolean(res.already_recorded)) < 0 ||
      jset(j, "response_id", json_integer(res.response_id)) < 0 ||
      jset(j, "previous_state", json_string(contract_state_to_string(res.previous_state))) < 0 ||
      jset(j, "state", json_string(contract_state_to_string(res.new_state))) < 0 ||
      jset(j, "new_term", json_boolean(res.new_term)) < 0 ||
      jset(j, "term", json_integer(res.term)) < 0 ||
      jset(j, "expires_at", jtime(res.expires_at)) < 0 ||
      jset(j, "expires_on", json_string(day)) < 0 ||
      jset(j, "state_until", jtime(res.state_until)) < 0 ||
      jset(j, "cancelled", json_integer(res.cancelled)) < 0 ||
      jset(j, "owner_alerts", json_integer(res.owner_alerts)) < 0 ||
      jset(j, "recorded_at", jtime(res.response.created_at)) < 0) {
    json_decref(j);
    j = NULL;
  }
  unsigned status = res.already_recorded ? 200 : 201;
  lifecycle_result_clear(&res);
  http_reply_json(rep, status, j);
}

/* ---- due
 * ------------------------------------------------------------------------------------------ */

static int due_cb(const struct contract *co, void *ud) {
  json_t *o = json_object();
  if (!o || json_array_append_new(ud, o) < 0 || jset(o, "id", jstr(co->id)) < 0 ||
      jset(o, "customer_id", jstr(co->customer_id)) < 0 ||
      jset(o, "product", jstr(co->product)) < 0 ||
      jset(o, "state", json_string(contract_state_to_string(co->state))) < 0 ||
      jset(o, "term", json_integer(co->term)) < 0 ||
      jset(o, "next_due_at", jtime(co->next_due_at)) < 0 ||
      jset(o, "expires_at", jtime(co->expires_at)) < 0)
    return -ENOMEM;
  return 0;
}

static void get_due(struct http *h, struct MHD_Connection *c, struct http_reply *rep) {
  const char *w = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "within");
  const char *l = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
  int64_t within = 7 * 86400, limit = DUE_LIMIT_DEFAULT;
  if (w && (config_parse_timespan(w, &within) < 0 || within <= 0 || within > 366 * 86400)) {
    http_reply_error_json(rep, 400, "within: expected a time span up to 366d, e.g. 7d or 48h",
                          NULL);
    return;
  }
  if (l && (parse_int64(l, &limit) < 0 || limit < 1 || limit > DUE_LIMIT_MAX)) {
    http_reply_error_json(rep, 400, "limit: expected 1..10000", NULL);
    return;
  }
  int64_t now = http_now(h);
  json_t *arr = json_array();
  int r = arr ? store_contract_foreach_due(h->deps.store, now + within, (size_t)limit, due_cb, arr)
              : -ENOMEM;
  if (r < 0) {
    json_decref(arr);
    http_reply_error_json(rep, store_status(rep, r),
                          r == -ENOMEM ? "out of memory" : store_last_error(h->deps.store), NULL);
    return;
  }
  json_t *j = json_pack("{s:o,s:o,s:I,s:I,s:o}", "now", jtime(now), "until", jtime(now + within),
                        "within_seconds", (json_int_t)within, "count",
                        (json_int_t)json_array_size(arr), "contracts", arr);
  http_reply_json(rep, 200, j);
}

/* ---- routing and idempotency --------------------------------------------------------------------
 */

static void route(struct http *h, struct MHD_Connection *c, const char *method, const char *path,
                  const struct http_request *rq, struct http_reply *rep) {
  char id[160];
  const char *rest;
  if (streq(path, "/due")) {
    if (!streq(method, "GET") && !streq(method, "HEAD")) {
      http_reply_error_json(rep, 405, "use GET", NULL);
      http_reply_header(rep, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
      return;
    }
    get_due(h, c, rep);
    return;
  }
  bool customers = !strncmp(path, "/customers/", 11), contracts = !strncmp(path, "/contracts/", 11);
  if (!customers && !contracts) {
    http_reply_error_json(rep, 404, "no such endpoint", NULL);
    return;
  }
  const char *s = path + 11;
  rest = strchr(s, '/');
  size_t n = rest ? (size_t)(rest - s) : strlen(s);
  if (n == 0 || n >= sizeof id) {
    http_reply_error_json(rep, 404, "no such endpoint", NULL);
    return;
  }
  memcpy(id, s, n);
  id[n] = 0;
  if (customers && !rest) {
    if (!streq(method, "PUT") && !streq(method, "POST")) {
      http_reply_error_json(rep, 405, "use PUT or POST", NULL);
      http_reply_header(rep, MHD_HTTP_HEADER_ALLOW, "PUT, POST");
      return;
    }
    put_customer(h, c, id, rq, rep);
  } else if (contracts && !rest) {
    if (streq(method, "GET") || streq(method, "HEAD"))
      get_contract(h, id, rep);
    else if (streq(method, "PUT"))
      put_contract(h, c, id, rq, rep);
    else {
      http_reply_error_json(rep, 405, "use GET or PUT", NULL);
      http_reply_header(rep, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, PUT");
    }
  } else if (contracts && streq(rest, "/responses")) {
    if (!streq(method, "POST")) {
      http_reply_error_json(rep, 405, "use POST", NULL);
      http_reply_header(rep, MHD_HTTP_HEADER_ALLOW, "POST");
      return;
    }
    post_response(h, c, id, rq, rep);
  } else
    http_reply_error_json(rep, 404, "no such endpoint", NULL);
}

static void request_hash(const char *method, const char *path, const struct http_request *rq,
                         char out[static 65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  EVP_MD_CTX *e = EVP_MD_CTX_new();
  unsigned len = 0;
  if (e && EVP_DigestInit_ex(e, EVP_sha256(), NULL) == 1 &&
      EVP_DigestUpdate(e, method, strlen(method)) == 1 && EVP_DigestUpdate(e, "\n", 1) == 1 &&
      EVP_DigestUpdate(e, path, strlen(path)) == 1 && EVP_DigestUpdate(e, "\n", 1) == 1 &&
      EVP_DigestUpdate(e, rq->body.data ? rq->body.data : "", rq->body.len) == 1 &&
      EVP_DigestFinal_ex(e, md, &len) == 1) {
    for (unsigned i = 0; i < len && i < 32; i++)
      snprintf(out + 2 * i, 3, "%02x", md[i]);
  } else
    snprintf(out, 65, "unhashed");
  EVP_MD_CTX_free(e);
}

static bool key_ok(const char *k) {
  size_t n = strlen(k);
  if (n == 0 || n > 255)
    return false;
  for (const char *p = k; *p; p++)
    if (*p < 0x21 || *p > 0x7e)
      return false;
  return true;
}

void http_api_handle(struct http *h, struct MHD_Connection *c, const char *method, const char *path,
                     const struct http_request *rq, struct http_reply *rep) {
  if (!http_api_authorized(h, c)) {
    bool given = http_header(c, MHD_HTTP_HEADER_AUTHORIZATION) != NULL;
    http_reply_error_json(rep, 401, given ? "invalid bearer token" : "bearer token required", NULL);
    http_reply_header(rep, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                      given ? "Bearer realm=\"renewd\", error=\"invalid_token\""
                            : "Bearer realm=\"renewd\"");
    return;
  }
  const char *ikey = http_header(c, "Idempotency-Key");
  bool writes = streq(method, "PUT") || streq(method, "POST");
  if (!ikey || !writes) {
    route(h, c, method, path, rq, rep);
    return;
  }
  if (!key_ok(ikey)) {
    http_reply_error_json(rep, 400, "Idempotency-Key: 1 to 255 printable ASCII characters", NULL);
    return;
  }
  char hash[65];
  request_hash(method, path, rq, hash);
  _cleanup_free_ char *old_hash = NULL, *old_body = NULL;
  int status = 0;
  int r = store_api_idem_get(h->deps.store, ikey, &old_hash, &status, &old_body);
  if (r >= 0) {
    if (!streq(old_hash, hash)) {
      http_reply_error_json(rep, 422, "Idempotency-Key was already used for a different request",
                            NULL);
      return;
    }
    buf_reset(&rep->body);
    rep->status = (unsigned)status;
    rep->content_type = "application/json";
    if (buf_puts(&rep->body, old_body) < 0)
      http_reply_text(rep, 500, "out of memory\n");
    http_reply_header(rep, "Idempotent-Replayed", "true");
    return;
  }
  if (r != -ENOENT) {
    http_reply_error_json(rep, store_status(rep, r), store_last_error(h->deps.store), NULL);
    return;
  }
  route(h, c, method, path, rq, rep);
  if (rep->status >= 500 || rep->status == 0)
    return;
  int64_t now = http_now(h);
  (void)store_api_idem_prune(h->deps.store, now - IDEM_TTL);
  r = store_api_idem_put(h->deps.store, ikey, hash, (int)rep->status,
                         rep->body.data ? rep->body.data : "", now);
  if (r < 0)
    log_warning(h->deps.log, "http: cannot record the result of Idempotency-Key %.64s: %s", ikey,
                store_last_error(h->deps.store));
}
