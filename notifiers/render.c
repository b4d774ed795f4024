/* render: the message for one outbox row (see render.h).
 *
 * Owns the template directory handle, the link key (wiped on free) and the
 * parsed ladder snapshots of recent contracts (snapshots never change, so
 * the cache needs no invalidation). The webhook event is written straight
 * to text, byte for byte json_dumps(JSON_COMPACT) of the same tree.
 * Blocks on store reads and template files; never logs. */
#include "notifiers/render.h"

#include <inttypes.h>
#include <string.h>
#include <sys/random.h>

#include "core/locfmt.h"
#include "core/util.h"
#include "notifiers/linkkey.h"
#include "notifiers/mime.h"
#include "notifiers/sign.h"
#include "notifiers/templates.h"
#include "notifiers/tmpl.h"

#define LADDER_CACHE 16 /* snapshots kept parsed (a handful of policies and their versions) */

struct render {
  const struct config *cfg;     /* borrowed */
  struct cal *cal;              /* borrowed */
  struct templates *tmpl;       /* NULL when the directory is missing */
  struct templates *words;      /* tmpl, else only the built-in catalogues (alerts.po) */
  struct templates *own_words;  /* words when it is not tmpl; owned */
  struct linkkeys *keys;        /* LinkKeyFile= keys ([0] signs), NULL when unreadable */
  struct linkkeys *sample_keys; /* throwaway key for sample data without keys, or NULL */
  bool sample;                  /* render_sample() is running */
  struct locfmt *lf;            /* ICU formatters (dates, money, day counts) */
  char *locale;                 /* render_set_locale() override (renewctl preview), or NULL */
  struct tmpl *builtin[3][4];   /* compiled built-in templates [customer/owner/ops][part], lazily */
  /* parsed ladder snapshots by id: a snapshot never changes once stored, and
   * parsing one costs more than rendering the message; ring of LADDER_CACHE */
  struct ladder_cached {
    int64_t id;            /* ladders(id), 0 = empty slot */
    struct policy *policy; /* owned */
  } ladders[LADDER_CACHE];
  size_t ladders_next; /* slot the next snapshot replaces */
};

/* ---- built-in templates: used when the directory has none of that name ---- */

struct builtin {
  const char *subject, *text, *html, *sms;
};

static const struct builtin builtin_customer = {
    .subject = "Your {{contract.product}} expires on {{contract.expiry}}",
    .text = "Hello {{customer.name}},\n"
            "\n"
            "Your {{contract.product}} (contract {{contract.id}}{{#contract.value}}, "
            "{{contract.value}}{{/contract.value}}) is valid until {{contract.expiry}}, "
            "{{contract.days_left_in}}.\n"
            "\n"
            "Renew it:            {{links.renew}}\n"
            "Not renewing:        {{links.decline}}\n"
            "Remind me later:     {{links.snooze}}\n"
            "Please call me:      {{links.callback}}\n"
            "\n"
            "--\n"
            "To stop these reminders: {{links.unsubscribe}}\n",
    .html = "<p>Hello {{customer.name}},</p>\n"
            "<p>Your {{contract.product}} (contract {{contract.id}}) is valid until "
            "<strong>{{contract.expiry}}</strong>.</p>\n"
            "<p><a href=\"{{links.renew}}\">Renew</a> &middot; <a href=\"{{links.decline}}\">Not "
            "renewing</a> &middot; <a href=\"{{links.snooze}}\">Remind me later</a> &middot; "
            "<a href=\"{{links.callback}}\">Please call me</a></p>\n"
            "<p style=\"font-size:small\"><a href=\"{{links.unsubscribe}}\">Stop these "
            "reminders</a></p>\n",
    .sms = "{{contract.product}} expires {{contract.expiry}}. Renew: {{links.renew}}",
};

static const struct builtin builtin_owner = {
    .subject = "Renewal at risk: {{customer.name}}, {{contract.id}} expires {{contract.expiry}}",
    .text = "Hello {{owner.name}},\n"
            "\n"
            "{{customer.name}} has not answered the renewal reminders for "
            "{{contract.product}} (contract {{contract.id}}{{#contract.value}}, "
            "{{contract.value}}{{/contract.value}}), valid until {{contract.expiry}}.\n"
            "{{#customer.email}}Email: {{customer.email}}\n{{/customer.email}}"
            "{{#customer.phone}}Phone: {{customer.phone}}\n{{/customer.phone}}"
            "\n"
            "History:\n"
            "{{history_text}}"
            "\n"
            "Renewed:  {{links.renewed}}\n"
            "Lost:     {{links.lost}}\n"
            "Snooze:   {{links.snooze}}\n",
    .sms = "Renewal at risk: {{customer.name}} {{contract.id}} expires {{contract.expiry}}",
};

static const struct builtin builtin_ops = {
    .subject = "renewd: delivery failed ({{alert.channel}}, contract {{contract.id}})",
    .text = "A message could not be delivered and was given up (dead letter).\n"
            "\n"
            "Contract:  {{contract.id}}\n"
            "Tier:      {{alert.tier}}\n"
            "Channel:   {{alert.channel}}\n"
            "Recipient: {{alert.recipient}}\n"
            "Attempts:  {{alert.attempts}}\n"
            "Error:     {{alert.error}}\n"
            "Reminder:  {{alert.reminder_id}}\n"
            "\n"
            "Retry it with: renewctl outbox retry {{alert.reminder_id}}\n",
    .sms = "renewd: delivery failed, contract {{contract.id}} via {{alert.channel}}: "
           "{{alert.error}}",
};

/* ---- lifecycle ------------------------------------------------------------- */

int render_new(const struct config *cfg, struct cal *cal, struct render **ret, char *err,
               size_t errlen) {
  if (!cfg || !cal || !ret)
    return -EINVAL;
  struct render *rd = calloc(1, sizeof *rd);
  if (!rd)
    return -ENOMEM;
  rd->cfg = cfg;
  rd->cal = cal;
  if (!(rd->lf = locfmt_new())) {
    free(rd);
    return -ENOMEM;
  }
  if (!isempty(cfg->daemon.templates)) {
    char terr[256] = "";
    int r = templates_open(cfg->daemon.templates, &rd->tmpl, terr, sizeof terr);
    if (r < 0 && r != -ENOENT) {
      if (err && errlen)
        snprintf(err, errlen, "%s", terr);
      render_free(rd);
      return r;
    }
    if (rd->tmpl && !isempty(cfg->daemon.locale))
      (void)templates_set_default_locale(rd->tmpl, cfg->daemon.locale);
  }
  rd->words = rd->tmpl;
  if (!rd->words && templates_new_empty(&rd->own_words) >= 0)
    rd->words = rd->own_words;
  if (rd->words)
    (void)templates_add_builtin_catalogue(rd->words, "alerts", templates_builtin_alerts_po, NULL,
                                          0);
  if (!isempty(cfg->daemon.link_key_file))
    (void)linkkeys_load(cfg->daemon.link_key_file, &rd->keys, NULL, 0);
  *ret = rd;
  return 0;
}

struct render *render_free(struct render *rd) {
  if (!rd)
    return NULL;
  templates_free(rd->tmpl);
  templates_free(rd->own_words);
  for (size_t i = 0; i < 3; i++)
    for (size_t k = 0; k < 4; k++)
      tmpl_free(rd->builtin[i][k]);
  free(rd->locale);
  linkkeys_free(rd->keys);
  linkkeys_free(rd->sample_keys);
  locfmt_free(rd->lf);
  for (size_t i = 0; i < LADDER_CACHE; i++)
    policy_free(rd->ladders[i].policy);
  free(rd);
  return NULL;
}

int render_set_locale(struct render *rd, const char *locale) {
  return rd ? free_and_strdup(&rd->locale, isempty(locale) ? NULL : locale) : -EINVAL;
}

struct templates *render_templates(struct render *rd) {
  return rd ? rd->tmpl : NULL;
}
bool render_has_link_key(const struct render *rd) {
  return rd && rd->keys;
}

void message_clear(struct message *m) {
  if (!m)
    return;
  free(m->subject);
  free(m->text);
  free(m->html);
  free(m->sms);
  free(m->event);
  json_decref(m->data);
  free(m->locale);
  free(m->to_name);
  free(m->unsubscribe_url);
  free(m->template_name);
  free(m->suppressed);
  *m = (struct message){0};
}

char *message_sms_text(const struct message *m, const char *footer) {
  const char *body = m->sms ? m->sms : m->text ? m->text : "";
  json_t *tier = json_object_get(m->data, "tier");
  const char *aud = json_string_value(json_object_get(tier, "audience"));
  if (isempty(footer) || (aud && !streq(aud, "customer")))
    return strdup(body);
  return strprintf("%s\n%s", body, footer);
}

/* ---- small helpers ------------------------------------------------------------- */

static int jset_str(json_t *o, const char *key, const char *v) {
  if (isempty(v))
    return 0;
  return json_object_set_new(o, key, json_string(v)) < 0 ? -ENOMEM : 0;
}

static int jset_int(json_t *o, const char *key, int64_t v) {
  return json_object_set_new(o, key, json_integer(v)) < 0 ? -ENOMEM : 0;
}

/* The keys links are signed with: the LinkKeyFile= keys, or while sample
 * data is rendered (config checks, send-test) without them, a throwaway key
 * made for this renderer, so that samples have links of the real length. */
static const struct linkkeys *signing_keys(struct render *rd) {
  if (rd->keys || !rd->sample)
    return rd->keys;
  if (!rd->sample_keys) {
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[32];
    char text[2 * sizeof raw];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
      return NULL;
    for (size_t i = 0; i < sizeof raw; i++) {
      text[2 * i] = hex[raw[i] >> 4];
      text[2 * i + 1] = hex[raw[i] & 15];
    }
    (void)linkkeys_parse(text, sizeof text, &rd->sample_keys, NULL, 0);
    explicit_bzero(raw, sizeof raw);
    explicit_bzero(text, sizeof text);
  }
  return rd->sample_keys;
}

/* Adds the links object, signed with signing_keys(). Without a key:
 * -ENOKEY for customer email and SMS (they carry answer and unsubscribe
 * links: a link is never made unsigned), no links object for the others
 * (owner messages, ops alerts, webhook events). */
static int add_links(struct render *rd, json_t *root, const char *contract_id, int32_t term,
                     int64_t expires_at, int64_t now, enum audience audience, enum notify_kind kind,
                     const char *segment, char **ret_unsub) {
  const struct linkkeys *keys = signing_keys(rd);
  if (!keys)
    return audience == AUDIENCE_CUSTOMER && kind != NOTIFY_WEBHOOK ? -ENOKEY : 0;
  json_t *links = json_object();
  if (!links || json_object_set_new(root, "links", links) < 0)
    return -ENOMEM;
  const struct policy *pol = config_policy_for_segment(rd->cfg, segment);
  int64_t exp = linkkey_expiry(expires_at, pol ? pol->lapse_grace : 0, now);
  static const struct {
    const char *key;
    enum token_action action;
  } customer[] =
      {
          {"renew", TOKEN_RENEW},
          {"decline", TOKEN_DECLINE},
          {"snooze", TOKEN_SNOOZE},
          {"callback", TOKEN_CALLBACK},
          {"unsubscribe", TOKEN_UNSUBSCRIBE_EMAIL}, /* TOKEN_UNSUBSCRIBE_SMS for SMS */
      },
    owner[] = {
        {"renewed", TOKEN_OWNER_RENEWED},
        {"lost", TOKEN_OWNER_LOST},
        {"snooze", TOKEN_OWNER_SNOOZE},
    };
  size_t n = audience == AUDIENCE_OWNER ? ELEMENTSOF(owner) : ELEMENTSOF(customer);
  for (size_t i = 0; i < n; i++) {
    const char *key = audience == AUDIENCE_OWNER ? owner[i].key : customer[i].key;
    enum token_action action = audience == AUDIENCE_OWNER ? owner[i].action : customer[i].action;
    if (action == TOKEN_UNSUBSCRIBE_EMAIL && kind == NOTIFY_SMS)
      action = TOKEN_UNSUBSCRIBE_SMS;
    _cleanup_free_ char *url = NULL;
    int r = linkkey_url(keys, rd->cfg->daemon.public_url, contract_id, (uint32_t)MAX(term, 1),
                        action, exp, &url);
    if (r < 0)
      return r;
    if (jset_str(links, key, url) < 0)
      return -ENOMEM;
    if (audience == AUDIENCE_CUSTOMER && streq(key, "unsubscribe") && ret_unsub)
      *ret_unsub = TAKE_PTR(url);
  }
  return 0;
}

/* JSON string literal of s ("\"...\""), for JSON body templates. UTF-8 passes
 * through; quotes, backslashes and control characters are escaped. */
static int add_json_literal(json_t *jobj, const char *key, const char *s) {
  static const char hex[] = "0123456789abcdef";
  const char *v = s ? s : "";
  size_t n = strlen(v), k = 0;
  /* worst case: every byte a 6-byte \u escape */
  _cleanup_free_ char *out = n < SIZE_MAX / 6 - 3 ? malloc(n * 6 + 3) : NULL;
  if (!out)
    return -ENOMEM;
  out[k++] = '"';
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    if (*p == '"' || *p == '\\') {
      out[k++] = '\\';
      out[k++] = (char)*p;
    } else if (*p < 0x20) {
      memcpy(out + k, "\\u00", 4);
      out[k + 4] = hex[*p >> 4];
      out[k + 5] = hex[*p & 15];
      k += 6;
    } else
      out[k++] = (char)*p;
  }
  out[k++] = '"';
  out[k] = 0;
  return json_object_set_new(jobj, key, json_stringn(out, k)) < 0 ? -ENOMEM : 0;
}

/* Sets root.key to {id name email phone} of o; when o is NULL to {} if
 * always, else nothing. */
static int add_owner(json_t *root, const char *key, const struct owner *o, bool always) {
  if (!o && !always)
    return 0;
  json_t *j = json_object();
  if (!j || json_object_set_new(root, key, j) < 0)
    return -ENOMEM;
  int r;
  if (o && ((r = jset_str(j, "id", o->id)) < 0 || (r = jset_str(j, "name", o->name)) < 0 ||
            (r = jset_str(j, "email", o->email)) < 0 || (r = jset_str(j, "phone", o->phone)) < 0))
    return r;
  return 0;
}

/* Sets root.recipient to {id name email phone} of the customer c, if any. */
static int add_customer_recipient(json_t *root, const struct customer *c) {
  if (!c)
    return 0;
  json_t *j = json_object();
  if (!j || json_object_set_new(root, "recipient", j) < 0)
    return -ENOMEM;
  int r;
  if ((r = jset_str(j, "id", c->id)) < 0 || (r = jset_str(j, "name", c->name)) < 0 ||
      (r = jset_str(j, "email", c->email)) < 0 || (r = jset_str(j, "phone", c->phone)) < 0)
    return r;
  return 0;
}

/* ---- the context ----------------------------------------------------------------- */

/* What the context is built from (some parts may be missing). */
struct facts {
  const struct contract *contract;   /* required */
  const struct customer *customer;   /* NULL when none */
  const struct owner *owner;         /* the owner addressed (owner rows), NULL when none */
  const struct owner *account_owner; /* escalated rows: the customer's own owner, else NULL */
  const char *tier;
  const char *policy; /* name of the policy the tier belongs to, NULL when none */
  int32_t step;
  enum audience audience;
  enum notify_kind kind;
  const char *template_name;
  const char *zone;           /* IANA zone of the reader ("today" of days left) */
  const char *contract_zone;  /* IANA zone of the contract (its last valid day) */
  const char *locale;         /* locale of the message */
  json_t *history;            /* array or NULL (stolen) */
  json_t *responses;          /* array or NULL (stolen) */
  char *history_text;         /* borrowed */
  json_t *alert;              /* object or NULL (stolen) */
  const struct reminder *row; /* NULL for samples */
};

/* [Daemon] Locale=: owners, ops and customers without a locale. */
static const char *default_locale(const struct render *rd) {
  return isempty(rd->cfg->daemon.locale) ? TEMPLATES_FALLBACK_LOCALE : rd->cfg->daemon.locale;
}

static const struct cal_zone *zone_or_utc(struct render *rd, const char *name) {
  const struct cal_zone *z = cal_zone(rd->cal, name ? name : "UTC");
  return z ? z : cal_zone(rd->cal, "UTC");
}

/* A day count in every form templates need: the number, "41 days", "in 41
 * days", its CLDR plural category ("one", "other", ...) and that category
 * as a section ({"other": true}). */
static int add_days(struct render *rd, json_t *o, const char *prefix, const char *locale,
                    int64_t days) {
  char key[48], v[LOCFMT_MAX];
  int r;
  snprintf(key, sizeof key, "%s", prefix);
  if ((r = jset_int(o, key, days)) < 0)
    return r;
  locfmt_days(rd->lf, locale, days < 0 ? -days : days, v, sizeof v);
  snprintf(key, sizeof key, "%s_text", prefix);
  if ((r = jset_str(o, key, v)) < 0)
    return r;
  locfmt_in_days(rd->lf, locale, days, v, sizeof v);
  snprintf(key, sizeof key, "%s_in", prefix);
  if ((r = jset_str(o, key, v)) < 0)
    return r;
  const char *cat = locfmt_plural(rd->lf, locale, days < 0 ? -days : days);
  snprintf(key, sizeof key, "%s_plural", prefix);
  if ((r = jset_str(o, key, cat)) < 0)
    return r;
  /* {"one": true}: for sections ({{#contract.days_left_is.one}}) */
  snprintf(key, sizeof key, "%s_is", prefix);
  json_t *is = json_pack("{s:b}", cat, 1);
  return is && json_object_set_new(o, key, is) >= 0 ? 0 : -ENOMEM;
}

/* The contract object: ids, value, the last valid day and days left
 * (core/locfmt.h: the one definition). The formatted last day goes to
 * ret_date too. */
static int add_contract(struct render *rd, json_t *co, const struct facts *f,
                        const struct cal_zone *reader, int64_t now, char *ret_date, size_t n) {
  const struct contract *k = f->contract;
  const struct cal_zone *cz = zone_or_utc(rd, f->contract_zone ? f->contract_zone : f->zone);
  char value[LOCFMT_MAX] = "", iso[16], ts[32];
  struct cal_local last, today;
  int r;
  if (k->value_minor != 0 || !isempty(k->currency))
    locfmt_money(rd->lf, f->locale, k->value_minor, k->currency, value, sizeof value);
  locfmt_last_day(cz, k->expires_at, &last);
  locfmt_date(rd->lf, f->locale, last.year, last.month, last.day, ret_date, n);
  snprintf(iso, sizeof iso, "%04d-%02d-%02d", last.year, last.month, last.day);
  cal_to_local(reader, now, &today);
  int64_t days = locfmt_days_left(reader, now, cz, k->expires_at);
  char sent[LOCFMT_MAX];
  locfmt_date(rd->lf, f->locale, today.year, today.month, today.day, sent, sizeof sent);
  if ((r = jset_str(co, "id", k->id)) < 0 || (r = jset_str(co, "product", k->product)) < 0 ||
      (r = jset_str(co, "currency", k->currency)) < 0 || (r = jset_str(co, "value", value)) < 0 ||
      (r = jset_int(co, "value_minor", k->value_minor)) < 0 ||
      (r = jset_int(co, "term", k->term)) < 0 || (r = jset_str(co, "expiry", ret_date)) < 0 ||
      (r = jset_str(co, "expiry_iso", iso)) < 0 ||
      (r = jset_str(co, "expires_at", format_rfc3339(k->expires_at, ts))) < 0 ||
      (r = jset_str(co, "sent_on", sent)) < 0 ||
      (r = add_days(rd, co, "days_left", f->locale, days)) < 0)
    return r;
  /* after the last day: how long ago, as a positive count */
  return days < 0 ? add_days(rd, co, "days_ago", f->locale, -days) : 0;
}

static int build_context(struct render *rd, struct facts *f, int64_t now, json_t **ret,
                         char **ret_unsub) {
  json_t *root = json_object();
  if (!root)
    return -ENOMEM;
  int r = 0;
  char date[LOCFMT_MAX], now_s[32];
  const struct cal_zone *z = zone_or_utc(rd, f->zone);

  json_t *cu = json_object(), *co = json_object(), *ti = json_object(), *js = json_object();
  if (!cu || !co || !ti || !js || json_object_set_new(root, "customer", cu) < 0 ||
      json_object_set_new(root, "contract", co) < 0 || json_object_set_new(root, "tier", ti) < 0 ||
      json_object_set_new(root, "json", js) < 0) {
    json_decref(root);
    return -ENOMEM;
  }
  const struct customer *c = f->customer;
  if (c) {
    if ((r = jset_str(cu, "id", c->id)) < 0 || (r = jset_str(cu, "name", c->name)) < 0 ||
        (r = jset_str(cu, "email", c->email)) < 0 || (r = jset_str(cu, "phone", c->phone)) < 0 ||
        (r = jset_str(cu, "segment", c->segment)) < 0)
      goto fail;
  }
  if ((r = jset_str(cu, "locale", f->locale)) < 0)
    goto fail;

  const struct contract *k = f->contract;
  if ((r = add_contract(rd, co, f, z, now, date, sizeof date)) < 0)
    goto fail;

  if ((r = jset_str(ti, "name", f->tier)) < 0 || (r = jset_str(ti, "policy", f->policy)) < 0 ||
      (r = jset_int(ti, "step", f->step)) < 0 ||
      (r = jset_int(ti, "repeat", (int64_t)f->step + 1)) < 0 ||
      (r = jset_str(ti, "audience", f->audience == AUDIENCE_OWNER ? "owner" : "customer")) < 0 ||
      (r = jset_str(ti, "template", f->template_name)) < 0)
    goto fail;

  if ((r = add_owner(root, "owner", f->owner, true)) < 0 ||
      (r = add_owner(root, "account_owner", f->account_owner, false)) < 0 ||
      (r = json_object_set_new(ti, "escalated", json_boolean(f->account_owner != NULL))) < 0)
    goto fail;
  /* recipient: whom the message addresses, whatever the audience */
  if (f->audience == AUDIENCE_OWNER ? (r = add_owner(root, "recipient", f->owner, false)) < 0
                                    : (r = add_customer_recipient(root, c)) < 0)
    goto fail;
  if (f->history && (r = json_object_set_new(root, "history", TAKE_PTR(f->history))) < 0)
    goto fail_nomem;
  if (f->responses && (r = json_object_set_new(root, "responses", TAKE_PTR(f->responses))) < 0)
    goto fail_nomem;
  if ((r = jset_str(root, "history_text", f->history_text)) < 0)
    goto fail;
  if (f->alert && (r = json_object_set_new(root, "alert", TAKE_PTR(f->alert))) < 0)
    goto fail_nomem;
  if ((r = jset_str(root, "now", format_rfc3339(now, now_s))) < 0)
    goto fail;
  if ((r = add_links(rd, root, k->id, k->term, k->expires_at, now, f->audience, f->kind,
                     c ? c->segment : NULL, ret_unsub)) < 0)
    goto fail;

  if ((r = add_json_literal(js, "customer_name", c ? c->name : NULL)) < 0 ||
      (r = add_json_literal(js, "customer_email", c ? c->email : NULL)) < 0 ||
      (r = add_json_literal(js, "contract_id", k->id)) < 0 ||
      (r = add_json_literal(js, "product", k->product)) < 0 ||
      (r = add_json_literal(js, "expiry", date)) < 0 ||
      (r = add_json_literal(js, "tier", f->tier)) < 0)
    goto fail;
  *ret = root;
  return 0;
fail_nomem:
  r = -ENOMEM;
fail:
  json_decref(root);
  return r;
}

/* ---- rendering the parts ----------------------------------------------------------- */

/* Renders one built-in part, compiling it on first use into *slot. */
static int render_builtin_part(struct tmpl **slot, const char *text, json_t *data, bool html,
                               char **ret, char *err, size_t errlen) {
  if (!text) {
    *ret = NULL;
    return 0;
  }
  if (!*slot) {
    int r = tmpl_compile(text, slot, err, errlen);
    if (r < 0)
      return r;
  }
  return tmpl_render_compiled(*slot, data, NULL, html, ret, err, errlen);
}

int render_template(struct render *rd, const char *name, const char *part, const char *locale,
                    json_t *data, char **ret, char *err, size_t errlen) {
  if (!rd || !name || !part || !ret)
    return -EINVAL;
  if (!rd->tmpl || !templates_exists(rd->tmpl, locale, name, part))
    return -ENOENT;
  return templates_render(rd->tmpl, locale, name, part, data, ret, NULL, err, errlen);
}

/* ICU writes no-break spaces (U+00A0, U+202F) in numbers, money and times;
 * in an SMS they would force UCS-2 (half the characters per segment), so
 * they become plain spaces there. In place: the text only gets shorter. */
static void sms_plain_spaces(char *s) {
  char *w = s;
  for (const char *p = s; *p;) {
    if ((unsigned char)p[0] == 0xC2 && (unsigned char)p[1] == 0xA0) {
      *w++ = ' ';
      p += 2;
    } else if ((unsigned char)p[0] == 0xE2 && (unsigned char)p[1] == 0x80 &&
               ((unsigned char)p[2] == 0xAF || (unsigned char)p[2] == 0x89)) {
      *w++ = ' ';
      p += 3;
    } else
      *w++ = *p++;
  }
  *w = 0;
}

/* Renders subject/text/html/sms of template name (or the built-in for audience). */
static int render_parts(struct render *rd, const char *name, bool ops_alert, enum audience audience,
                        enum notify_kind kind, struct message *m, char *err, size_t errlen) {
  bool have = rd->tmpl && name &&
              (templates_exists(rd->tmpl, m->locale, name, "text") ||
               templates_exists(rd->tmpl, m->locale, name, "html") ||
               templates_exists(rd->tmpl, m->locale, name, "sms"));
  int r;
  if (have) {
    /* text first: the locale it was found in is the message's language; an
     * html or sms part only found further down the fallback chain (another
     * language) is left out rather than mixed in. The subject may fall back. */
    static const char *const parts[] = {"text", "subject", "html", "sms"};
    char **outs[] = {&m->text, &m->subject, &m->html, &m->sms};
    const char *text_locale = NULL;
    for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
      if (kind != NOTIFY_EMAIL && streq(parts[i], "html"))
        continue;
      if (kind != NOTIFY_SMS && streq(parts[i], "sms"))
        continue;
      if (!templates_exists(rd->tmpl, m->locale, name, parts[i]))
        continue;
      const char *used = NULL;
      r = templates_render(rd->tmpl, m->locale, name, parts[i], m->data, outs[i], &used, err,
                           errlen);
      if (r < 0)
        return r;
      if (i == 0)
        text_locale = used;
      else if (i >= 2 && text_locale && used && !streq(used, text_locale)) {
        free(*outs[i]);
        *outs[i] = NULL;
      }
    }
    m->template_name = strdup(name);
  } else if (kind == NOTIFY_WEBHOOK) {
    /* the event JSON is the message; no built-in prose for machines */
    m->template_name = strdup("(event only)");
    return m->template_name ? 0 : -ENOMEM;
  } else {
    size_t which = ops_alert ? 2 : audience == AUDIENCE_OWNER ? 1 : 0;
    const struct builtin *b = which == 2   ? &builtin_ops
                              : which == 1 ? &builtin_owner
                                           : &builtin_customer;
    struct tmpl **slots = rd->builtin[which];
    if ((r = render_builtin_part(&slots[0], b->subject, m->data, false, &m->subject, err, errlen)) <
            0 ||
        (r = render_builtin_part(&slots[1], b->text, m->data, false, &m->text, err, errlen)) < 0 ||
        (kind == NOTIFY_EMAIL &&
         (r = render_builtin_part(&slots[2], b->html, m->data, true, &m->html, err, errlen)) < 0) ||
        (kind == NOTIFY_SMS &&
         (r = render_builtin_part(&slots[3], b->sms, m->data, false, &m->sms, err, errlen)) < 0))
      return r;
    m->template_name = strdup("(built-in)");
  }
  if (!m->template_name)
    return -ENOMEM;
  if (m->subject) {
    /* one line: the first one */
    m->subject[strcspn(m->subject, "\r\n")] = 0;
  }
  if (kind == NOTIFY_SMS && !m->sms && m->text && !(m->sms = strdup(m->text)))
    return -ENOMEM;
  if (kind == NOTIFY_SMS && m->sms) {
    /* trailing newlines of a template file are not part of an SMS */
    size_t n = strlen(m->sms);
    while (n > 0 && (m->sms[n - 1] == '\n' || m->sms[n - 1] == '\r'))
      m->sms[--n] = 0;
    sms_plain_spaces(m->sms);
  }
  return 0;
}

/* ---- the webhook event ------------------------------------------------------------- */

/* The event is written straight into a buffer, byte for byte what
 * json_dumps(JSON_COMPACT) makes of the same tree (keys in insertion order,
 * "," and ":" without blanks, strings escaped as jansson does: \" \\ \b \f
 * \n \r \t and \uXXXX for other control characters, everything else as
 * UTF-8), without building the event's own objects or going through
 * jansson's callback dumper: this runs once per webhook sent. */

/* What json_string() accepts: valid UTF-8 without surrogates or code points
 * past U+10FFFF (jansson's utf8_check_string), so that a string the
 * jansson-built event refused is refused here too. */
static bool json_utf8_ok(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned char c = *p;
    if (c < 0x80) {
      p++;
      continue;
    }
    size_t n = c >= 0xC2 && c <= 0xDF   ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    if (n == 0)
      return false;
    uint32_t cp = c & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < n; i++) {
      if ((p[i] & 0xC0) != 0x80)
        return false;
      cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    p += n;
  }
  return true;
}

/* Output staged in a local buffer and appended in chunks (one event is
 * a few hundred small pieces). r is the first error. */
struct jw {
  struct buf *b;
  size_t n;
  int r;
  char v[2048];
};

static void jw_flush(struct jw *w) {
  if (w->n > 0 && w->r >= 0)
    w->r = buf_append(w->b, w->v, w->n);
  w->n = 0;
}

static inline void jw_put(struct jw *w, const char *p, size_t n) {
  if (w->n + n > sizeof w->v) {
    jw_flush(w);
    if (n > sizeof w->v) {
      if (w->r >= 0)
        w->r = buf_append(w->b, p, n);
      return;
    }
  }
  memcpy(w->v + w->n, p, n);
  w->n += n;
}

static inline void jw_char(struct jw *w, char c) {
  if (w->n == sizeof w->v)
    jw_flush(w);
  w->v[w->n++] = c;
}

static void jw_string(struct jw *w, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  jw_char(w, '"');
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    jw_put(w, s + run, i - run);
    run = i + 1;
    char e[6] = {'\\', 0};
    size_t k = 2;
    switch (c) {
    case '"':
    case '\\':
      e[1] = (char)c;
      break;
    case '\b':
      e[1] = 'b';
      break;
    case '\f':
      e[1] = 'f';
      break;
    case '\n':
      e[1] = 'n';
      break;
    case '\r':
      e[1] = 'r';
      break;
    case '\t':
      e[1] = 't';
      break;
    default:
      memcpy(e + 1, "u00", 3);
      e[4] = hex[c >> 4];
      e[5] = hex[c & 15];
      k = 6;
    }
    jw_put(w, e, k);
  }
  jw_put(w, s + run, n - run);
  jw_char(w, '"');
}

static void jw_key(struct jw *w, bool *first, const char *key) {
  if (!*first)
    jw_char(w, ',');
  *first = false;
  jw_string(w, key, strlen(key));
  jw_char(w, ':');
}

static void jw_int(struct jw *w, int64_t v) {
  char s[24], *p = s + sizeof s;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do
    *--p = (char)('0' + u % 10);
  while ((u /= 10) > 0);
  if (v < 0)
    *--p = '-';
  jw_put(w, p, (size_t)(s + sizeof s - p));
}

static void jw_value(struct jw *w, json_t *v, unsigned depth) {
  if (depth > 64) {
    w->r = -ELOOP; /* jansson refuses cycles; our trees are shallow */
    return;
  }
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    bool first = true;
    const char *key;
    json_t *item;
    jw_char(w, '{');
    json_object_foreach(v, key, item) {
      jw_key(w, &first, key);
      jw_value(w, item, depth + 1);
    }
    jw_char(w, '}');
    return;
  }
  case JSON_ARRAY:
    jw_char(w, '[');
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (i > 0)
        jw_char(w, ',');
      jw_value(w, json_array_get(v, i), depth + 1);
    }
    jw_char(w, ']');
    return;
  case JSON_STRING:
    jw_string(w, json_string_value(v), json_string_length(v));
    return;
  case JSON_INTEGER:
    jw_int(w, (int64_t)json_integer_value(v));
    return;
  case JSON_TRUE:
    jw_put(w, "true", 4);
    return;
  case JSON_FALSE:
    jw_put(w, "false", 5);
    return;
  case JSON_NULL:
    jw_put(w, "null", 4);
    return;
  default: {
    /* reals: jansson's own formatting */
    _cleanup_free_ char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
      w->r = -ENOMEM;
    else
      jw_put(w, s, strlen(s));
  }
  }
}

/* A string member, left out when empty (as jset_str() does). */
static void jw_str_member(struct jw *w, bool *first, const char *key, const char *v) {
  if (isempty(v))
    return;
  if (!json_utf8_ok(v)) {
    w->r = -ENOMEM; /* what json_string() failing meant for the jansson-built event */
    return;
  }
  jw_key(w, first, key);
  jw_string(w, v, strlen(v));
}

/* The webhook event: {"type", "timestamp", "data": {...}}, data holding the
 * context's contract, customer, owner, tier, links, alert, history and
 * responses, then id, reminder_id, attempt, channel and message. */
static int build_event(const struct message *m, const struct reminder *row, int64_t now,
                       char **ret) {
  static const char *const copy[] = {"contract", "customer", "owner",   "account_owner", "tier",
                                     "links",    "alert",    "history", "responses"};
  char ts[32];
  struct buf b = {0};
  /* Only the header is initialised: the 2 KiB staging area is written before
   * it is read (jw_flush appends v[0..n)). */
  struct jw jw, *w = &jw;
  w->b = &b;
  w->n = 0;
  w->r = 0;
  w->v[0] = 0; /* tells GCC's -Wmaybe-uninitialized (ASan builds) the buffer is live */
  bool first = true, dfirst = true;
  jw_char(w, '{');
  jw_str_member(w, &first, "type", m->event_type);
  jw_str_member(w, &first, "timestamp", format_rfc3339(now, ts));
  jw_key(w, &first, "data");
  jw_char(w, '{');
  for (size_t i = 0; i < ELEMENTSOF(copy); i++) {
    json_t *v = json_object_get(m->data, copy[i]);
    if (v) {
      jw_key(w, &dfirst, copy[i]);
      jw_value(w, v, 0);
    }
  }
  if (row) {
    jw_str_member(w, &dfirst, "id", row->idem_key);
    jw_key(w, &dfirst, "reminder_id");
    jw_int(w, row->id);
    jw_key(w, &dfirst, "attempt");
    jw_int(w, row->attempts);
    jw_str_member(w, &dfirst, "channel", row->channel);
  }
  if (m->subject || m->text) {
    bool mfirst = true;
    jw_key(w, &dfirst, "message");
    jw_char(w, '{');
    jw_str_member(w, &mfirst, "subject", m->subject);
    jw_str_member(w, &mfirst, "text", m->text);
    jw_char(w, '}');
  }
  jw_put(w, "}}", 2);
  jw_flush(w);
  int r = w->r;
  if (r < 0) {
    buf_free(&b);
    return r == -ELOOP ? -EINVAL : -ENOMEM;
  }
  *ret = buf_steal(&b);
  return *ret ? 0 : -ENOMEM;
}

/* ---- history for owner escalations ------------------------------------------------ */

struct history_ctx {
  json_t *arr;
  struct buf text;
  int64_t self_id;
  int r;
  struct locfmt *lf;        /* for "when": the local date and time of "at" */
  const struct cal_zone *z; /* the reader's zone */
  const char *locale;       /* the reader's locale */
  struct templates *tmpl;   /* for the words of alerts.po, or NULL */
};

/* Sets key of o to the words for prefix + value in alerts.po of the
 * reader's locale ("status_sent" -> "gesendet"), else to value itself. */
static int set_label(struct history_ctx *h, json_t *o, const char *key, const char *prefix,
                     const char *value) {
  if (isempty(value))
    return 0;
  _cleanup_free_ char *id = strprintf("%s%s", prefix, value), *words = NULL;
  if (!id)
    return -ENOMEM;
  if (!h->tmpl ||
      templates_string(h->tmpl, h->locale, "alerts", id, NULL, &words, NULL, NULL, 0) < 0)
    return jset_str(o, key, value);
  return jset_str(o, key, words);
}

/* Sets key of o ("when", "until_when") to t as a local date and time in the reader's zone and
 * language ("October 20, 2027 at 2:30 PM"). */
static int set_when(struct history_ctx *h, json_t *o, const char *key, int64_t t) {
  char when[LOCFMT_MAX];
  struct cal_local l;
  if (!h->lf || !h->z)
    return 0;
  cal_to_local(h->z, t, &l);
  locfmt_datetime(h->lf, h->locale, &l, when, sizeof when);
  return jset_str(o, key, when);
}

/* Appends a line of {{history_text}}: string key of alerts.po in the
 * reader's locale, rendered with the entry o ("when", the labels); the key
 * itself when the catalogue is broken. 0 or -ENOMEM. */
static int history_line(struct history_ctx *h, const char *key, json_t *o) {
  _cleanup_free_ char *line = NULL;
  int r = h->tmpl ? templates_string(h->tmpl, h->locale, "alerts", key, o, &line, NULL, NULL, 0)
                  : -ENOENT;
  if (r == -ENOMEM)
    return r;
  return buf_printf(&h->text, "%s\n", r < 0 ? key : line) < 0 ? -ENOMEM : 0;
}

static int history_cb(const struct reminder *m, void *ud) {
  struct history_ctx *h = ud;
  if (m->id == h->self_id || streq_ptr(m->tier, RENDER_OPS_TIER))
    return 0;
  char at[32];
  int64_t when = m->sent_at ? m->sent_at : m->updated_at;
  json_t *o = json_object();
  if (!o || json_array_append_new(h->arr, o) < 0 || jset_str(o, "tier", m->tier) < 0 ||
      jset_int(o, "step", m->step) < 0 || jset_int(o, "repeat", (int64_t)m->step + 1) < 0 ||
      jset_str(o, "channel", m->channel) < 0 || jset_str(o, "audience", m->audience) < 0 ||
      jset_str(o, "status", reminder_status_to_string(m->status)) < 0 ||
      jset_str(o, "at", format_rfc3339(when, at)) < 0 || set_when(h, o, "when", when) < 0 ||
      set_label(h, o, "status_label", "status_", reminder_status_to_string(m->status)) < 0 ||
      set_label(h, o, "audience_label", "audience_", m->audience) < 0)
    return -ENOMEM;
  return history_line(h, "history_sent", o);
}

static int response_cb(const struct response *p, void *ud) {
  struct history_ctx *h = ud;
  char at[32];
  json_t *o = json_object();
  if (!o || json_array_append_new(h->arr, o) < 0 || jset_str(o, "kind", p->kind) < 0 ||
      jset_str(o, "source", p->source) < 0 || jset_str(o, "reason", p->reason) < 0 ||
      jset_str(o, "at", format_rfc3339(p->created_at, at)) < 0 || jset_int(o, "id", p->id) < 0 ||
      set_when(h, o, "when", p->created_at) < 0 ||
      set_label(h, o, "kind_label", "kind_", p->kind) < 0 ||
      set_label(h, o, "reason_label", "reason_", p->reason) < 0 ||
      (p->until_at && set_when(h, o, "until_when", p->until_at) < 0) ||
      jset_str(o, "detail", p->detail) < 0 || /* smtp helper: message text, callback time */
      (p->until_at && jset_str(o, "until", format_rfc3339(p->until_at, at)) < 0))
    return -ENOMEM;
  return history_line(h, "history_answered", o);
}

/* ---- tier lookup -------------------------------------------------------------------- */

static const struct tier *policy_tier(const struct policy *p, const char *name) {
  for (size_t i = 0; p && i < p->n_tiers; i++)
    if (streq(p->tiers[i].name, name))
      return &p->tiers[i];
  return NULL;
}

int render_find_tier(struct store *store, const struct config *cfg, const struct contract *c,
                     const char *name, struct policy **ret_policy, const struct tier **ret_tier) {
  if (!cfg || !name || !ret_policy || !ret_tier)
    return -EINVAL;
  if (store && c && c->ladder_id > 0) {
    _cleanup_free_ char *text = NULL;
    struct policy *p = NULL;
    if (store_ladder_get(store, c->ladder_id, &text) >= 0 && ladder_parse(text, &p) >= 0) {
      const struct tier *t = policy_tier(p, name);
      if (t) {
        *ret_policy = p;
        *ret_tier = t;
        return 0;
      }
      policy_free(p);
    }
  }
  for (size_t i = 0; i < cfg->n_policies; i++) {
    const struct tier *t = policy_tier(cfg->policies[i], name);
    if (t) {
      *ret_policy = NULL;
      *ret_tier = t;
      return 0;
    }
  }
  return -ENOENT;
}

/* Sets *ret (caller frees) to why recipient must not get a message of kind
 * when the suppressions table says so (NULL otherwise). 0 or -errno. */
static int check_suppressed(struct store *store, const char *recipient, enum notify_kind kind,
                            char **ret) {
  *ret = NULL;
  if (kind == NOTIFY_WEBHOOK || isempty(recipient))
    return 0;
  _cleanup_(suppression_clear) struct suppression sp = {0};
  int r = store_suppression_check(store, kind == NOTIFY_SMS ? SUPPRESS_SMS : SUPPRESS_EMAIL,
                                  recipient, &sp);
  if (r <= 0)
    return r;
  char since[21];
  *ret = strprintf("%s is suppressed (%s, source %s, since %s)", sp.address, sp.reason,
                   sp.source ? sp.source : "unknown", format_rfc3339(sp.created_at, since));
  return *ret ? 0 : -ENOMEM;
}

/* render_find_tier() for render_message(): the contract's ladder snapshot
 * comes parsed from rd's cache (loaded on first use), so *ret_policy is
 * borrowed from rd (or from cfg), never freed by the caller. Assumes rd is
 * used with one store (snapshot ids are that store's). */
static int find_tier_cached(struct render *rd, struct store *store, const struct contract *c,
                            const char *name, const struct policy **ret_policy,
                            const struct tier **ret_tier) {
  if (store && c->ladder_id > 0) {
    struct policy *p = NULL;
    for (size_t i = 0; i < LADDER_CACHE && !p; i++)
      if (rd->ladders[i].id == c->ladder_id)
        p = rd->ladders[i].policy;
    if (!p) {
      _cleanup_free_ char *text = NULL;
      if (store_ladder_get(store, c->ladder_id, &text) >= 0 && ladder_parse(text, &p) >= 0) {
        struct ladder_cached *slot = &rd->ladders[rd->ladders_next];
        rd->ladders_next = (rd->ladders_next + 1) % LADDER_CACHE;
        policy_free(slot->policy);
        *slot = (struct ladder_cached){.id = c->ladder_id, .policy = p};
      }
    }
    const struct tier *t = policy_tier(p, name);
    if (t) {
      *ret_policy = p;
      *ret_tier = t;
      return 0;
    }
  }
  for (size_t i = 0; i < rd->cfg->n_policies; i++) {
    const struct tier *t = policy_tier(rd->cfg->policies[i], name);
    if (t) {
      *ret_policy = NULL;
      *ret_tier = t;
      return 0;
    }
  }
  return -ENOENT;
}

bool render_escalated(const struct tier *t, int32_t step) {
  return t && t->audience == AUDIENCE_OWNER && !isempty(t->escalate_to) && t->escalate_after > 0 &&
         step >= (int32_t)t->escalate_after;
}

int render_owner_get(struct store *store, const struct policy *pol, const char *id,
                     struct owner *ret) {
  if (!store || !ret)
    return -EINVAL;
  const char *fallback = pol ? pol->fallback_owner : NULL;
  if (isempty(id))
    id = fallback;
  if (isempty(id))
    return -ENOENT;
  int r = store_owner_get(store, id, ret);
  if (r == -ENOENT && !isempty(fallback) && !streq(id, fallback))
    r = store_owner_get(store, fallback, ret);
  return r;
}

/* ---- render_message ------------------------------------------------------------------ */

static int finish_message(struct render *rd, struct facts *f, const char *template_name,
                          bool ops_alert, const struct reminder *row, int64_t now,
                          struct message *ret, char *err, size_t errlen) {
  struct message m = {0};
  int r;
  if (!(m.locale = strdup(f->locale ? f->locale : default_locale(rd)))) {
    r = -ENOMEM;
    goto fail;
  }
  r = build_context(rd, f, now, &m.data,
                    f->audience == AUDIENCE_CUSTOMER && !ops_alert ? &m.unsubscribe_url : NULL);
  if (r == -ENOKEY && err && errlen)
    snprintf(err, errlen,
             "no link key: [Daemon] LinkKeyFile= is not set or could not be read, and customer "
             "email and SMS carry signed answer and unsubscribe links");
  if (r < 0)
    goto fail;
  r = render_parts(rd, template_name, ops_alert, f->audience, f->kind, &m, err, errlen);
  if (r < 0)
    goto fail;
  m.event_type = ops_alert                       ? "delivery.failed"
                 : f->audience == AUDIENCE_OWNER ? "escalation.raised"
                                                 : "reminder.due";
  /* the event JSON only where it is the message (webhooks) */
  if (f->kind == NOTIFY_WEBHOOK && (r = build_event(&m, row, now, &m.event)) < 0)
    goto fail;
  const char *to_name = f->audience == AUDIENCE_OWNER ? (f->owner ? f->owner->name : NULL)
                                                      : (f->customer ? f->customer->name : NULL);
  if (ops_alert)
    to_name = NULL;
  if (to_name && !(m.to_name = strdup(to_name))) {
    r = -ENOMEM;
    goto fail;
  }
  *ret = m;
  return 0;
fail:
  if (r == -ENOMEM && err && errlen && !*err)
    snprintf(err, errlen, "out of memory");
  message_clear(&m);
  return r;
}

int render_message(struct render *rd, struct store *store, const struct reminder *row,
                   enum notify_kind kind, int64_t now, struct message *ret, char *err,
                   size_t errlen) {
  if (!rd || !store || !row || !ret)
    return -EINVAL;
  if (err && errlen)
    err[0] = 0;
  struct contract c = {0};
  struct customer cu = {0};
  struct owner ow = {0}, boss = {0}; /* the addressed owner; the account owner when escalated */
  bool have_boss = false;
  const struct policy *pol = NULL; /* the contract's ladder snapshot (borrowed from rd), or NULL */
  struct history_ctx h = {.self_id = row->id};
  struct reminder dead = {0};
  json_t *alert = NULL;
  bool have_cu = false, have_ow = false;
  int r = row->contract_rowid > 0 ? store_contract_get_by_rowid(store, row->contract_rowid, &c)
                                  : store_contract_get(store, row->contract_id, &c);
  if (r < 0) {
    if (err && errlen)
      snprintf(err, errlen, "contract %s: %s", row->contract_id,
               r == -ENOENT ? "no longer in the store" : strerror(-r));
    return r;
  }
  if (c.customer_id && store_customer_get(store, c.customer_id, &cu) >= 0)
    have_cu = true;

  bool ops_alert = streq_ptr(row->tier, RENDER_OPS_TIER);
  const struct tier *t = NULL;
  if (!ops_alert)
    (void)find_tier_cached(rd, store, &c, row->tier, &pol, &t);
  enum audience audience = streq_ptr(row->audience, "owner") ? AUDIENCE_OWNER : AUDIENCE_CUSTOMER;

  /* the owner: the customer's, else the policy's fallback owner; an owner
   * row past EscalateAfter= goes to (and greets) EscalateTo= instead, with
   * the customer's owner kept as account_owner */
  const struct policy *cp =
      pol ? pol : config_policy_for_segment(rd->cfg, have_cu ? cu.segment : NULL);
  have_ow = render_owner_get(store, cp, have_cu ? cu.owner_id : NULL, &ow) >= 0;
  if (audience == AUDIENCE_OWNER && !ops_alert && render_escalated(t, row->step) &&
      render_owner_get(store, cp, t->escalate_to, &boss) >= 0) {
    struct owner o = ow;
    ow = boss;
    boss = o;
    have_boss = have_ow; /* the customer's owner, when there was one */
    have_ow = true;
  }

  struct facts f = {
      .contract = &c,
      .customer = have_cu ? &cu : NULL,
      .owner = have_ow ? &ow : NULL,
      .account_owner = have_boss ? &boss : NULL,
      .tier = row->tier,
      .policy = cp ? cp->name : NULL,
      .step = row->step,
      .audience = ops_alert ? AUDIENCE_OWNER : audience,
      .kind = kind,
      .row = row,
  };
  const char *zone = NULL;
  if (f.audience == AUDIENCE_OWNER && have_ow && !isempty(ow.tz))
    zone = ow.tz;
  else if (have_cu && !isempty(cu.tz))
    zone = cu.tz;
  f.zone = zone ? zone : rd->cfg->daemon.time_zone;
  f.contract_zone = have_cu && !isempty(cu.tz) ? cu.tz : rd->cfg->daemon.time_zone;
  f.locale = rd->locale ? rd->locale
             : f.audience == AUDIENCE_CUSTOMER && have_cu && !isempty(cu.locale)
                 ? cu.locale
                 : default_locale(rd);
  const char *template_name = ops_alert               ? RENDER_OPS_TIER
                              : t && t->template_name ? t->template_name
                                                      : row->tier;
  f.template_name = template_name;

  if (audience == AUDIENCE_OWNER && !ops_alert) {
    h.lf = rd->lf;
    h.z = zone_or_utc(rd, f.zone);
    h.locale = f.locale;
    h.tmpl = rd->words;
    if (!(h.arr = json_array())) {
      r = -ENOMEM;
      goto out;
    }
    r = store_reminder_foreach_contract(store, c.id, c.term, history_cb, &h);
    if (r < 0)
      goto out;
    f.history = TAKE_PTR(h.arr);
    if (!(h.arr = json_array())) {
      r = -ENOMEM;
      goto out;
    }
    r = store_response_foreach_contract(store, c.id, c.term, response_cb, &h);
    if (r < 0)
      goto out;
    f.responses = TAKE_PTR(h.arr);
    if (h.text.len == 0 && (r = history_line(&h, "history_none", NULL)) < 0)
      goto out;
    f.history_text = h.text.data;
  }
  if (ops_alert) {
    alert = json_object();
    if (!alert) {
      r = -ENOMEM;
      goto out;
    }
    if (store_reminder_get(store, row->step, &dead) >= 0) {
      if (jset_int(alert, "reminder_id", dead.id) < 0 || jset_str(alert, "tier", dead.tier) < 0 ||
          jset_int(alert, "step", dead.step) < 0 || jset_str(alert, "channel", dead.channel) < 0 ||
          jset_str(alert, "audience", dead.audience) < 0 ||
          jset_str(alert, "recipient", dead.recipient) < 0 ||
          jset_str(alert, "error", dead.last_error) < 0 ||
          jset_int(alert, "attempts", dead.attempts) < 0 ||
          jset_str(alert, "idem_key", dead.idem_key) < 0) {
        r = -ENOMEM;
        goto out;
      }
    } else if (jset_int(alert, "reminder_id", row->step) < 0) {
      r = -ENOMEM;
      goto out;
    }
    f.alert = TAKE_PTR(alert);
  }
  r = finish_message(rd, &f, template_name, ops_alert, row, now, ret, err, errlen);
  if (r >= 0 && have_cu)
    ret->customer_optout = cu.optout;
  if (r >= 0 && (r = check_suppressed(store, row->recipient, kind, &ret->suppressed)) < 0)
    message_clear(ret);
out:
  json_decref(f.history);
  json_decref(f.responses);
  json_decref(f.alert);
  json_decref(h.arr);
  json_decref(alert);
  buf_free(&h.text);
  reminder_clear(&dead);
  contract_clear(&c);
  customer_clear(&cu);
  owner_clear(&ow);
  owner_clear(&boss);
  return r;
}

int render_sample(struct render *rd, const char *tier_name, const char *template_name,
                  enum audience audience, enum notify_kind kind, const char *recipient, int64_t now,
                  struct message *ret, char *err, size_t errlen) {
  if (!rd || !ret)
    return -EINVAL;
  if (err && errlen)
    err[0] = 0;
  bool ops_alert = streq_ptr(tier_name, RENDER_OPS_TIER);
  /* long but ordinary values, so that length limits are checked honestly */
  struct contract c = {
      .id = (char *)"C-2027-000123",
      .product = (char *)"Enterprise Support Plan",
      .currency = (char *)"EUR",
      .value_minor = 1250000,
      .term = 1,
      .expires_at = now + 30 * 86400,
  };
  struct customer cu = {
      .id = (char *)"CU-000123",
      .name = (char *)"Maximilian Mustermann-Schmidt",
      .email =
          (char *)(kind == NOTIFY_EMAIL && recipient ? recipient : "max.mustermann@example.com"),
      .phone = (char *)(kind == NOTIFY_SMS && recipient ? recipient : "+4915112345678"),
      .locale = (char *)(rd->locale ? rd->locale : "en"),
      .segment = (char *)"smb",
  };
  struct owner ow = {
      .id = (char *)"sales-desk",
      .name = (char *)"Sales Desk",
      .email = (char *)"sales@example.com",
      .phone = (char *)"+4930123456789",
  };
  const struct policy *sample_policy = config_policy_for_segment(rd->cfg, cu.segment);
  json_t *alert = NULL;
  if (ops_alert) {
    alert = json_pack("{s:i, s:s, s:s, s:s, s:s, s:i}", "reminder_id", 4711, "tier", "notice",
                      "channel", "email", "recipient", "max.mustermann@example.com", "error",
                      "550 5.1.1 mailbox unavailable", "attempts", 1);
    if (!alert)
      return -ENOMEM;
  }
  struct facts f = {
      .contract = &c,
      .customer = &cu,
      .owner = &ow,
      .tier = tier_name ? tier_name : "notice",
      .policy = sample_policy ? sample_policy->name : NULL,
      .step = 0,
      .audience = ops_alert ? AUDIENCE_OWNER : audience,
      .kind = kind,
      .template_name = template_name,
      .zone = rd->cfg->daemon.time_zone,
      .contract_zone = rd->cfg->daemon.time_zone,
      .locale = rd->locale                                ? rd->locale
                : audience == AUDIENCE_OWNER || ops_alert ? default_locale(rd)
                                                          : "en",
      .alert = alert,
  };
  /* one reminder sent ten days ago, in the reader's words */
  struct history_ctx h = {.self_id = -1,
                          .lf = rd->lf,
                          .z = zone_or_utc(rd, f.zone),
                          .locale = f.locale,
                          .tmpl = rd->words,
                          .arr = json_array()};
  struct reminder sent = {.id = 1,
                          .tier = (char *)"notice",
                          .channel = (char *)"email",
                          .audience = (char *)"customer",
                          .status = REMINDER_SENT,
                          .sent_at = now - 10 * 86400};
  if (!h.arr || history_cb(&sent, &h) < 0) {
    json_decref(h.arr);
    json_decref(alert);
    buf_free(&h.text);
    return -ENOMEM;
  }
  json_decref(h.arr);
  f.history_text = h.text.data;
  struct reminder row = {
      .id = 0,
      .contract_id = c.id,
      .term = 1,
      .tier = (char *)f.tier,
      .channel = (char *)"sample",
      .audience = (char *)(f.audience == AUDIENCE_OWNER ? "owner" : "customer"),
      .recipient = (char *)recipient,
      .attempts = 1,
  };
  snprintf(row.idem_key, sizeof row.idem_key, "rk-00000000000000000000000000000000");
  rd->sample = true; /* signing_keys(): a throwaway key when there is none */
  int r = finish_message(rd, &f, ops_alert ? RENDER_OPS_TIER : template_name, ops_alert, &row, now,
                         ret, err, errlen);
  rd->sample = false;
  json_decref(f.alert);
  buf_free(&h.text);
  return r;
}
