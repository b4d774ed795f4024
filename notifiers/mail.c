/* mail: the email for one row (see mail.h).
 *
 * Settings parsing, the calendar part and the header list shared by every
 * email channel; serialization is email_format() (email.c). Owns nothing
 * beyond the call. */
#include "notifiers/mail.h"

#include <ctype.h>
#include <inttypes.h>

#include "core/cal.h"
#include "core/ics.h"
#include "core/util.h"
#include "notifiers/email.h"
#include "notifiers/mime.h"
#include "notifiers/render.h"

#define CALLBACK_TIER "callback" /* owner tier that gets a meeting request */
#define MEETING_LENGTH (30 * 60) /* seconds */

/* ---- settings ---------------------------------------------------------------------- */

void mail_settings_done(struct mail_settings *s) {
  if (!s)
    return;
  free(s->from_name);
  free(s->from_addr);
  free(s->reply_to);
  free(s->alarm);
  *s = (struct mail_settings){0};
}

bool mail_address_valid(const char *s) {
  _cleanup_free_ char *name = NULL, *addr = NULL;
  if (!s || email_parse_address(s, &name, &addr) < 0)
    return false;
  _cleanup_free_ char *h = NULL;
  return mime_header_addresses("From", &(struct mime_address){.name = name, .email = addr}, 1,
                               &h) >= 0;
}

/* An address key: must pass mail_address_valid(). -ENOMEM, -EINVAL (reported) or 0. */
static int check_address(const struct config_channel *ch, const struct config_kv *kv,
                         struct config_errors *errs) {
  char *n = NULL, *a = NULL;
  int q = email_parse_address(kv->value, &n, &a);
  free(n);
  free(a);
  if (q == -ENOMEM)
    return q;
  if (q < 0 || !mail_address_valid(kv->value))
    return notify_error(errs, ch, kv,
                        "expected an email address, e.g. Name <renewals@example.com>");
  return 0;
}

int mail_settings_parse(const struct config_channel *ch, const char *default_from,
                        struct mail_settings *ret, struct config_errors *errs) {
  if (!ch || !ret)
    return -EINVAL;
  struct mail_settings s = {.calendar = true};
  const struct config_kv *kv;
  int r = 0, q;
  const char *from = default_from;
  if ((kv = config_channel_lookup(ch, "From"))) {
    if ((q = check_address(ch, kv, errs)) < 0)
      r = q;
    else
      from = kv->value;
  }
  if (r >= 0 && from && (q = email_parse_address(from, &s.from_name, &s.from_addr)) < 0)
    r = q;
  if ((kv = config_channel_lookup(ch, "ReplyTo"))) {
    if ((q = check_address(ch, kv, errs)) < 0)
      r = q;
    else if (!(s.reply_to = strdup(kv->value)))
      r = -ENOMEM;
  }
  if ((kv = config_channel_lookup(ch, "Calendar"))) {
    int b = parse_boolean(kv->value);
    if (b < 0)
      r = notify_error(errs, ch, kv, "expected yes or no");
    else
      s.calendar = b;
  }
  if ((kv = config_channel_lookup(ch, "CalendarAlarm"))) {
    struct cal_duration d;
    if (streq(kv->value, "none")) {
      if (!(s.alarm = strdup("")))
        r = -ENOMEM;
    } else if (cal_duration_parse(kv->value, &d) < 0)
      r = notify_error(errs, ch, kv,
                       "expected an RFC 5545 duration relative to the start of the deadline "
                       "day (e.g. -P1D, -PT15H) or none");
    else if (!(s.alarm = strdup(kv->value)))
      r = -ENOMEM;
  }
  if (r < 0) {
    mail_settings_done(&s);
    return r;
  }
  *ret = s;
  return 0;
}

/* ---- the message --------------------------------------------------------------------- */

static json_t *jget(json_t *root, const char *obj, const char *key) {
  json_t *o = obj ? json_object_get(root, obj) : root;
  return json_is_object(o) ? json_object_get(o, key) : NULL;
}

static const char *jstr(json_t *root, const char *obj, const char *key) {
  return json_string_value(jget(root, obj, key));
}

/* A UID-safe copy of s: [A-Za-z0-9._-], anything else as '-'. */
static void uid_part(const char *s, char *out, size_t n) {
  size_t k = 0;
  for (; s && *s && k + 1 < n; s++)
    out[k++] = isalnum((unsigned char)*s) || strchr("._-", *s) ? *s : '-';
  out[k] = 0;
}

/* ---- envelope and feedback ------------------------------------------------------------ */

int mail_key_token(const char *idem_key, char *out, size_t n) {
  if (isempty(idem_key) || !out)
    return -EINVAL;
  const char *k = strncmp(idem_key, "rk-", 3) == 0 ? idem_key + 3 : idem_key;
  if (!*k || strlen(k) + 4 > n)
    return -EINVAL;
  for (const char *p = k; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
      return -EINVAL;
  snprintf(out, n, "rk-%s", k);
  return 0;
}

int mail_return_path(const char *pattern, const char *idem_key, char **ret, char *err,
                     size_t errlen) {
  const size_t plen = strlen(MAIL_KEY_PLACEHOLDER);
  const char *at = pattern ? strstr(pattern, MAIL_KEY_PLACEHOLDER) : NULL;
  if (!at || strstr(at + plen, MAIL_KEY_PLACEHOLDER)) {
    snprintf(err, errlen, "must hold %s exactly once, e.g. bounces+%s@example.com",
             MAIL_KEY_PLACEHOLDER, MAIL_KEY_PLACEHOLDER);
    return -EINVAL;
  }
  char token[64];
  if (mail_key_token(idem_key, token, sizeof token) < 0) {
    snprintf(err, errlen, "the key '%s' has no address-safe form", idem_key ? idem_key : "");
    return -EINVAL;
  }
  _cleanup_free_ char *addr = strprintf("%.*s%s%s", (int)(at - pattern), pattern, token, at + plen);
  if (!addr)
    return -ENOMEM;
  const char *sign = strrchr(addr, '@');
  if (sign && sign - addr > 64) { /* RFC 5321 4.5.3.1.1 */
    snprintf(err, errlen, "the local part of '%s' is longer than 64 characters", addr);
    return -EINVAL;
  }
  if (!sign || !mime_valid_email(addr)) {
    snprintf(err, errlen, "'%s' is not an email address (addr-spec)", addr);
    return -EINVAL;
  }
  *ret = TAKE_PTR(addr);
  return 0;
}

/* One Feedback-ID field: [A-Za-z0-9._-], at most 40 bytes, "none" when empty. */
static void feedback_part(const char *s, char *out, size_t n) {
  size_t k = 0;
  for (; s && *s && k < 40 && k + 1 < n; s++)
    out[k++] = isalnum((unsigned char)*s) || strchr("._-", *s) ? *s : '-';
  out[k] = 0;
  if (k == 0)
    snprintf(out, n, "none");
}

void mail_feedback_id(const char *policy, const char *tier, const char *segment, char *out,
                      size_t n) {
  char c[48], t[48], sg[48];
  if (!out || n == 0)
    return;
  feedback_part(policy, c, sizeof c);
  feedback_part(tier, t, sizeof t);
  feedback_part(segment, sg, sizeof sg);
  snprintf(out, n, "%s:%s:%s:renewd", c, t, sg);
}

/* When the owner should call: the preferred time of the "callback" answer
 * the row was raised for (owner alert rows carry the response id as their
 * step, core/lifecycle.h), else of the latest "callback" answer with one,
 * else tomorrow at the next full hour (UTC) as a placeholder to move. */
static int64_t callback_start(json_t *data, int64_t response_id, int64_t now) {
  int64_t t, found = 0;
  json_t *resp = json_object_get(data, "responses");
  for (size_t i = 0; i < json_array_size(resp); i++) {
    json_t *o = json_array_get(resp, i);
    const char *until = json_string_value(json_object_get(o, "until"));
    if (!streq_ptr(json_string_value(json_object_get(o, "kind")), "callback") || !until ||
        cal_parse_rfc3339(until, &t) < 0)
      continue;
    found = t;
    if (json_integer_value(json_object_get(o, "id")) == response_id)
      return t;
  }
  if (found)
    return found;
  t = now + 86400;
  return t + (3600 - t % 3600) % 3600;
}

/* The calendar part for req, or *ret = NULL when the message gets none. */
static int build_calendar(const struct mail_settings *set, const struct notify_request *req,
                          const char *host, char **ret, const char **ret_method,
                          const char **ret_filename) {
  const struct reminder *row = req->row;
  const struct message *m = req->msg;
  *ret = NULL;
  if (!set->calendar || !m->data || streq_ptr(row->tier, RENDER_OPS_TIER))
    return 0;
  char cid[96], uid[256];
  uid_part(jstr(m->data, "contract", "id") ? jstr(m->data, "contract", "id") : row->contract_id,
           cid, sizeof cid);
  const char *summary = !isempty(m->subject) ? m->subject : "Renewal";
  bool owner = streq_ptr(row->audience, "owner");

  if (owner && streq_ptr(row->tier, CALLBACK_TIER)) {
    int64_t start = callback_start(m->data, row->step, req->now);
    snprintf(uid, sizeof uid, "callback-%s@%s", row->idem_key, host);
    struct ics_meeting mt = {
        .uid = uid,
        .dtstamp = req->now,
        .start = start,
        .end = start + MEETING_LENGTH,
        .summary = summary,
        .description = m->text,
        .organizer_email = set->from_addr,
        .organizer_name = set->from_name,
        .attendee_email = row->recipient,
        .attendee_name = m->to_name,
    };
    *ret_method = "REQUEST";
    *ret_filename = "invite.ics";
    return ics_meeting_request(&mt, ret);
  }

  json_t *days = jget(m->data, "contract", "days_left");
  const char *iso = jstr(m->data, "contract", "expiry_iso");
  int y, mo, d;
  if (!json_is_integer(days) || json_integer_value(days) <= 0 || !iso ||
      cal_parse_date(iso, &y, &mo, &d) < 0)
    return 0; /* expired, or nothing to put in a calendar */
  json_t *term = jget(m->data, "contract", "term");
  snprintf(uid, sizeof uid, "renewal-%s-%" PRId64 "@%s", cid,
           json_is_integer(term) ? (int64_t)json_integer_value(term) : (int64_t)row->term, host);
  struct ics_deadline dl = {
      .uid = uid,
      .dtstamp = req->now,
      .year = y,
      .month = mo,
      .day = d,
      .summary = summary,
      .url = owner ? NULL : jstr(m->data, "links", "renew"),
      .alarm = set->alarm,
  };
  *ret_method = "PUBLISH";
  *ret_filename = "renewal.ics";
  return ics_deadline(&dl, ret);
}

int mail_format(const struct mail_settings *set, const struct notify_request *req, char **ret,
                size_t *ret_len, char *err, size_t errlen) {
  const struct reminder *row = req ? req->row : NULL;
  const struct message *m = req ? req->msg : NULL;
  if (!row || !m || !set->from_addr) {
    snprintf(err, errlen, "nothing to send");
    return -EINVAL;
  }
  if (req->kind != NOTIFY_EMAIL || isempty(row->recipient) || !mime_valid_email(row->recipient)) {
    snprintf(err, errlen, "recipient '%s' is not an email address",
             row->recipient ? row->recipient : "(none)");
    return -EINVAL;
  }
  const char *host = email_domain(set->from_addr);
  _cleanup_free_ char *cal = NULL;
  const char *method = NULL, *filename = NULL;
  int r = build_calendar(set, req, host ? host : "renewd", &cal, &method, &filename);
  if (r < 0) {
    snprintf(err, errlen, "cannot build the calendar part: %s", strerror(-r));
    return r;
  }
  char step[16];
  snprintf(step, sizeof step, "%" PRId32, row->step);
  bool customer = !streq_ptr(row->audience, "owner") && !streq_ptr(row->tier, RENDER_OPS_TIER);
  char feedback[MAIL_FEEDBACK_ID_MAX];
  mail_feedback_id(jstr(m->data, "tier", "policy"), row->tier, jstr(m->data, "customer", "segment"),
                   feedback, sizeof feedback);
  const struct email_header extra[] = {
      /* customer mail only: the mailbox provider's complaint figures per campaign */
      {"Feedback-ID", customer ? feedback : NULL},
      {"X-Renewd-Contract", row->contract_id},
      {"X-Renewd-Tier", row->tier},
      {"X-Renewd-Step", step},
      {"X-Renewd-Channel", row->channel},
      {"X-Renewd-Audience", row->audience},
  };
  struct email e = {
      .from_name = set->from_name,
      .from_addr = set->from_addr,
      .reply_to = set->reply_to,
      .to_name = m->to_name,
      .to_addr = row->recipient,
      .subject = m->subject,
      .date = req->now,
      .idem_key = row->idem_key,
      .text = m->text,
      .html = m->html,
      .calendar = cal,
      .calendar_method = method,
      .calendar_filename = filename,
      .unsubscribe_url = customer ? m->unsubscribe_url : NULL,
      .auto_submitted = !customer,
      .extra = extra,
      .n_extra = ELEMENTSOF(extra),
  };
  r = email_format(&e, ret, ret_len);
  if (r == -EINVAL)
    snprintf(err, errlen, "the message cannot be encoded (invalid UTF-8 or header field)");
  return r;
}

int mail_format_channel(const struct config_channel *ch, const struct notify_request *req,
                        char **ret, size_t *ret_len, char *err, size_t errlen) {
  if (!ch || !req || !ret)
    return -EINVAL;
  struct config_errors errs = {0};
  struct mail_settings s;
  int r =
      mail_settings_parse(ch, streq_ptr(ch->type, "sink") ? MAIL_DEFAULT_FROM : NULL, &s, &errs);
  if (r < 0) {
    snprintf(err, errlen, "%s", errs.n ? errs.v[0].message : strerror(-r));
    config_errors_clear(&errs);
    return r;
  }
  r = mail_format(&s, req, ret, ret_len, err, errlen);
  mail_settings_done(&s);
  return r;
}
