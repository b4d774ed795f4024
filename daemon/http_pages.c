/* http_pages: the pages behind answer links (/r/<token>) and unsubscribe
 * links (/u/<token>).
 *
 * GET never writes: it verifies the token and shows a confirmation page (a
 * form), or "already recorded", or a friendly error. POST with confirm=yes
 * (or, for /u/, the RFC 8058 body List-Unsubscribe=One-Click) records the
 * answer through lifecycle_apply() and shows what happens next.
 *
 * The customer's "renew" renews: a new term whose expiry is the current one
 * plus the current term's length in calendar months in the customer's zone
 * (lifecycle_term_start(), lifecycle_renewal_expiry(); one year when the
 * length is unknown). The confirmation page states the new end date, and
 * lifecycle_apply() alerts the owner (tier "customer-renewed") in the same
 * transaction, who sends the invoice. A renewal that would end before now (a
 * long-expired contract with a short term) is not offered (409).
 *
 * Status codes: 200 pages and repeats ("already recorded"); 400 malformed
 * token, or a POST to a valid link without the form's confirm=yes (a bare
 * POST, a malformed form: the form again, "please use the button"); 403 token not signed by a
 * configured key (tampered, wrong key); 409 the contract's state does not allow the answer; 410
 * expired token, token of an earlier term, contract gone; 422 a bad choice on the form (shown again
 * with the problem); 503 no link key.
 *
 * Used links. The answer's idempotency key is "link-" + the first 16 bytes of
 * SHA-256(token) in hex + "-" + the id of the latest message sent to that
 * audience (customer or owner) in the token's term. A link is therefore used
 * once per message: the same POST again (refresh, double click, a replayed
 * request) finds its response and shows "already recorded", while the same
 * link in a later reminder (tokens are the same for a whole term) may answer
 * again. Unsubscribing uses no key: it is already done when the customer's
 * address is suppressed (or the customer's opt-out bit is set). An
 * unsubscribe suppresses the address the link's message went to, for every
 * customer and owner with it (lifecycle_apply(), store.h "suppressions").
 *
 * Language: every word comes from the catalogue pages.po of the reader's
 * locale (notifiers/templates.h, fallback fr-CA -> fr -> [Daemon] Locale=):
 * the customer's locale; owner pages and pages without a known customer
 * follow Accept-Language. Dates are ICU's (core/locfmt.h), in the
 * customer's zone, so the thank-you page names the day the owner's alert
 * names.
 * Plain HTML with inline CSS, no JavaScript, viewport meta for phones.
 * Owns nothing beyond one request; blocks on the store only. */
#include <inttypes.h>
#include <openssl/sha.h>

#include "core/locfmt.h"
#include "daemon/http_internal.h"
#include "notifiers/templates.h"

#define STRINGS_MAX 64 /* strings one page uses, at most */

/* ---- strings -------------------------------------------------------------------- */

/* The words of one request's pages: strings of the catalogue pages.po
 * (notifiers/templates.h) in the reader's locale, rendered on demand and
 * kept until the request ends. */
struct strings {
  struct templates *t;      /* borrowed from struct http */
  struct locfmt *lf;        /* borrowed from struct http */
  char locale[64];          /* the reader's locale */
  char *owned[STRINGS_MAX]; /* strings handed out */
  size_t n_owned;           /* entries in owned */
};

static void strings_done(struct strings *t) {
  for (size_t i = 0; i < t->n_owned; i++)
    free(t->owned[i]);
  t->n_owned = 0;
}

/* String key rendered with data (may be NULL); the key itself when it
 * cannot be had (a broken catalogue, OOM), so a page is never blank. Valid
 * until strings_done(). */
static const char *SD(struct strings *t, const char *key, json_t *data) {
  char *out = NULL;
  if (t->n_owned == STRINGS_MAX ||
      templates_string(t->t, t->locale, "pages", key, data, &out, NULL, NULL, 0) < 0)
    return key;
  t->owned[t->n_owned++] = out;
  return out;
}

static const char *S(struct strings *t, const char *key) {
  return SD(t, key, NULL);
}

/* String key with fields (name, value pairs, NULL-terminated). */
static const char *SV(struct strings *t, const char *key, ...) {
  json_t *data = json_object();
  va_list ap;
  va_start(ap, key);
  for (const char *n; data && (n = va_arg(ap, const char *));) {
    const char *v = va_arg(ap, const char *);
    if (json_object_set_new(data, n, json_string(v ? v : "")) < 0) {
      json_decref(data);
      data = NULL;
    }
  }
  va_end(ap);
  const char *r = data ? SD(t, key, data) : key;
  json_decref(data);
  return r;
}

/* String prefix + name ("reason_" "price"). */
static const char *S2(struct strings *t, const char *prefix, const char *name) {
  char key[96];
  snprintf(key, sizeof key, "%s%s", prefix, name ? name : "");
  return S(t, key);
}

struct templates *http_templates(struct http *h) {
  const struct config *cfg = h->deps.cfg;
  if (h->pages && h->pages_cfg == cfg)
    return h->pages;
  h->pages = templates_free(h->pages);
  if (isempty(cfg->daemon.templates) ||
      templates_open(cfg->daemon.templates, &h->pages, NULL, 0) < 0)
    (void)templates_new_empty(&h->pages);
  if (!h->pages)
    return NULL;
  if (!isempty(cfg->daemon.locale))
    (void)templates_set_default_locale(h->pages, cfg->daemon.locale);
  (void)templates_add_builtin_catalogue(h->pages, "pages", templates_builtin_pages_po, NULL, 0);
  (void)templates_add_builtin_catalogue(h->pages, "sms", templates_builtin_sms_po, NULL, 0);
  h->pages_cfg = cfg;
  return h->pages;
}

/* Sets up t for locale (NULL: the default). */
static void strings_init(struct strings *t, struct http *h, const char *locale) {
  t->t = http_templates(h);
  if (!h->lf)
    h->lf = locfmt_new();
  t->lf = h->lf;
  snprintf(t->locale, sizeof t->locale, "%s",
           !isempty(locale) ? locale
           : t->t           ? templates_default_locale(t->t)
                            : "en");
}

/* The reader's language from Accept-Language, among the shipped locales. */
static void strings_accept(struct strings *t, struct http *h, struct MHD_Connection *c) {
  strings_init(t, h, NULL);
  char best[64];
  if (t->t && templates_negotiate(t->t, http_header(c, "Accept-Language"), best, sizeof best) >= 0)
    snprintf(t->locale, sizeof t->locale, "%s", best);
}

/* ---- HTML ------------------------------------------------------------------------- */

static const char css[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans','PingFang SC',"
    "'Microsoft YaHei',sans-serif;margin:0;background:#f3f4f6;color:#1f2328;line-height:1.5}"
    "main{max-width:34rem;margin:0 auto;padding:1.25rem 1rem}"
    ".card{background:#fff;border-radius:12px;padding:1.25rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}"
    ".site{color:#57606a;font-size:.9rem;margin:0 0 .5rem}"
    "h1{font-size:1.35rem;margin:0 0 .75rem}"
    "dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem .75rem;margin:.75rem 0 1rem;"
    "padding:.75rem;background:#f6f8fa;border-radius:8px;font-size:.95rem}"
    "dt{color:#57606a}dd{margin:0;font-weight:600;overflow-wrap:anywhere}"
    "fieldset{border:0;padding:0;margin:0 0 1rem}"
    "label.opt{display:block;padding:.7rem .75rem;border:1px solid #d0d7de;border-radius:8px;"
    "margin:.45rem 0;cursor:pointer}"
    "label.opt input{margin-right:.5rem}"
    "label.field{display:block;margin:.75rem 0 .3rem;font-size:.95rem}"
    "textarea,input[type=date],input[type=datetime-local]{width:100%;box-sizing:border-box;"
    "font:inherit;padding:.55rem;border:1px solid #d0d7de;border-radius:8px}"
    "textarea{min-height:5rem}"
    "button{display:block;width:100%;margin-top:1rem;font:inherit;font-size:1.1rem;"
    "font-weight:600;padding:.9rem;border:0;border-radius:8px;background:#0b6bcb;color:#fff;"
    "cursor:pointer}"
    "button.danger{background:#cf222e}"
    ".err{background:#ffebe9;border:1px solid #ff8182;border-radius:8px;padding:.6rem .75rem;"
    "margin:0 0 1rem}"
    ".ok{font-size:2.5rem;line-height:1;margin:0 0 .5rem}"
    ".muted{color:#57606a;font-size:.85rem;margin-top:1.25rem}";

struct page {
  struct buf b;
  struct strings *t;
};

static int page_begin(struct page *p, const char *kind, const char *title) {
  int r;
  if ((r = buf_printf(&p->b,
                      "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                      "<meta name=\"robots\" content=\"noindex, nofollow\">\n<title>",
                      S(p->t, "lang"))) < 0 ||
      (r = http_html_escape(&p->b, title)) < 0 ||
      (r = buf_printf(&p->b,
                      " \xe2\x80\x93 %s</title>\n<style>%s</style>\n</head>\n<body>\n"
                      "<main id=\"page\" data-page=\"%s\">\n<div class=\"card\">\n"
                      "<p class=\"site\">%s</p>\n",
                      S(p->t, "site"), css, kind, S(p->t, "site"))) < 0)
    return r;
  return 0;
}

/* <tag>escaped text</tag> */
static int page_el(struct page *p, const char *tag, const char *attrs, const char *text) {
  int r;
  if ((r = buf_printf(&p->b, "<%s%s%s>", tag, attrs ? " " : "", attrs ? attrs : "")) < 0 ||
      (r = http_html_escape(&p->b, text)) < 0 || (r = buf_printf(&p->b, "</%s>\n", tag)) < 0)
    return r;
  return 0;
}

/* A paragraph of string key with field name = arg, escaped. */
static int page_pf(struct page *p, const char *attrs, const char *key, const char *name,
                   const char *arg) {
  return page_el(p, "p", attrs, SV(p->t, key, name, arg, NULL));
}

static int page_end(struct page *p, bool footer) {
  int r = 0;
  if (footer)
    r = page_el(p, "p", "class=\"muted\"", S(p->t, "footer"));
  if (r >= 0)
    r = buf_puts(&p->b, "</div>\n</main>\n</body>\n</html>\n");
  return r;
}

static void page_reply(struct page *p, struct http_reply *rep, unsigned status) {
  buf_free(&rep->body);
  rep->body = p->b;
  p->b = (struct buf){0};
  rep->status = status;
  rep->content_type = "text/html; charset=utf-8";
}

/* A page with a heading and one paragraph. */
static void simple_page(struct http_reply *rep, struct strings *t, unsigned status,
                        const char *kind, const char *heading, const char *text) {
  struct page p = {.t = t};
  if (page_begin(&p, kind, heading) < 0 || page_el(&p, "h1", NULL, heading) < 0 ||
      page_el(&p, "p", NULL, text) < 0 || page_end(&p, false) < 0) {
    buf_free(&p.b);
    http_reply_text(rep, 500, "out of memory\n");
    return;
  }
  page_reply(&p, rep, status);
}

/* ---- the request's context --------------------------------------------------------- */

struct ctx {
  struct http *h;
  struct MHD_Connection *c;
  struct strings *t;    /* &words */
  struct strings words; /* the reader's strings */
  struct token tok;
  struct contract co;
  struct customer cu;
  bool have_cu;
  const char *locale; /* customer's locale (pages), NULL = unknown */
  const struct cal_zone *z;
  bool owner;       /* an owner action */
  bool unsubscribe; /* /u/ */
  enum lifecycle_kind kind;
  enum lifecycle_source source;
  char key[64]; /* idempotency key of this link and message */
  struct http_policy pol;
  int64_t now;
  int64_t renew_to; /* customer's renew: the new term's expiry; 0 = cannot be computed */
};

static void ctx_done(struct ctx *x) {
  strings_done(&x->words);
  contract_clear(&x->co);
  customer_clear(&x->cu);
  http_policy_done(&x->pol);
}

static const char *state_name(const struct ctx *x, enum contract_state s) {
  return (unsigned)s < _CONTRACT_STATE_MAX ? S2(x->t, "state_", contract_state_to_string(s)) : "?";
}

/* The local day of t in the customer's zone, in the reader's locale
 * ("March 1, 2027", "1. März 2027", "2027年3月1日"; ICU, core/locfmt.h). */
static char *fmt_date(const struct ctx *x, int64_t t, char *out, size_t n) {
  struct cal_local l;
  cal_to_local(x->z, t, &l);
  locfmt_date(x->t->lf, x->t->locale, l.year, l.month, l.day, out, n);
  return out;
}

/* Date and time likewise ("March 1, 2027 at 2:30 PM"). */
static char *fmt_datetime(const struct ctx *x, int64_t t, char *out, size_t n) {
  struct cal_local l;
  cal_to_local(x->z, t, &l);
  locfmt_datetime(x->t->lf, x->t->locale, &l, out, n);
  return out;
}

/* String key ("Your {{product}} will be renewed until {{date}}.") with the
 * product, else the word for contract, and the last valid day before until:
 * the day the owner's alert names too (both from the customer's zone). */
static const char *fmt_renewal(const struct ctx *x, const char *key, int64_t until) {
  char date[LOCFMT_MAX];
  fmt_date(x, until - 1, date, sizeof date);
  return SV(x->t, key, "product",
            isempty(x->co.product) ? S(x->t, "renew_contract") : x->co.product, "date", date, NULL);
}

/* Product, contract id and last valid day. */
static int facts(struct page *p, const struct ctx *x) {
  char date[64];
  int r;
  fmt_date(x, x->co.expires_at - 1, date, sizeof date);
  if ((r = buf_puts(&p->b, "<dl>\n")) < 0)
    return r;
  if (!isempty(x->co.product) && ((r = page_el(p, "dt", NULL, S(x->t, "product"))) < 0 ||
                                  (r = page_el(p, "dd", NULL, x->co.product)) < 0))
    return r;
  if ((r = page_el(p, "dt", NULL, S(x->t, "contract"))) < 0 ||
      (r = page_el(p, "dd", "id=\"contract\"", x->co.id)) < 0 ||
      (r = page_el(p, "dt", NULL, S(x->t, "valid_until"))) < 0 ||
      (r = page_el(p, "dd", NULL, date)) < 0)
    return r;
  return buf_puts(&p->b, "</dl>\n");
}

/* The idempotency key of this link for the latest message to its audience. */
struct epoch {
  const char *audience;
  int64_t latest;
};

static int epoch_cb(const struct reminder *m, void *ud) {
  struct epoch *e = ud;
  if (m->status == REMINDER_SENT && streq_ptr(m->audience, e->audience) && m->id > e->latest)
    e->latest = m->id;
  return 0;
}

static int link_key(struct ctx *x, const char *token) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)token, strlen(token), md);
  struct epoch e = {.audience = x->owner ? "owner" : "customer"};
  int r = store_reminder_foreach_contract(x->h->deps.store, x->tok.contract_id,
                                          (int32_t)x->tok.term, epoch_cb, &e);
  if (r < 0)
    return r;
  int k = snprintf(x->key, sizeof x->key, "link-");
  for (int i = 0; i < 16; i++)
    k += snprintf(x->key + k, sizeof x->key - (size_t)k, "%02x", md[i]);
  snprintf(x->key + k, sizeof x->key - (size_t)k, "-%" PRId64, e.latest);
  return 0;
}

struct find_key {
  const char *key;
  struct response found; /* copy; id 0 = none */
};

static int find_key_cb(const struct response *r, void *ud) {
  struct find_key *f = ud;
  if (!streq_ptr(r->idem_key, f->key))
    return 0;
  f->found = (struct response){.id = r->id,
                               .created_at = r->created_at,
                               .until_at = r->until_at,
                               .new_expires_at = r->new_expires_at};
  return 1;
}

/* ---- token → context ------------------------------------------------------------------ */

static bool map_action(enum token_action a, struct ctx *x) {
  x->owner = false;
  x->source = LIFECYCLE_SOURCE_LINK;
  switch (a) {
  case TOKEN_RENEW:
    x->kind = LIFECYCLE_RENEWED;
    return !x->unsubscribe;
  case TOKEN_DECLINE:
    x->kind = LIFECYCLE_DECLINED;
    return !x->unsubscribe;
  case TOKEN_SNOOZE:
    x->kind = LIFECYCLE_SNOOZED;
    return !x->unsubscribe;
  case TOKEN_CALLBACK:
    x->kind = LIFECYCLE_CALLBACK;
    return !x->unsubscribe;
  case TOKEN_UNSUBSCRIBE_EMAIL:
  case TOKEN_UNSUBSCRIBE_SMS:
    x->kind = LIFECYCLE_UNSUBSCRIBED;
    return x->unsubscribe;
  case TOKEN_OWNER_RENEWED:
  case TOKEN_OWNER_LOST:
  case TOKEN_OWNER_SNOOZE:
    x->owner = true;
    x->source = LIFECYCLE_SOURCE_OWNER_LINK;
    x->kind = a == TOKEN_OWNER_RENEWED ? LIFECYCLE_RENEWED
              : a == TOKEN_OWNER_LOST  ? LIFECYCLE_LOST
                                       : LIFECYCLE_SNOOZED;
    return !x->unsubscribe;
  }
  return false;
}

/* Verifies the token and loads the contract. Returns 0, or fills rep with the
 * error page and returns -1. */
static int load(struct ctx *x, const char *token, struct http_reply *rep) {
  struct http *h = x->h;
  struct strings *t = &x->words;
  x->t = t;
  strings_accept(t, h, x->c);
  if (!h->keys) {
    simple_page(rep, t, 503, "error", S(t, "disabled_h"), S(t, "disabled_p"));
    return -1;
  }
  int r = token_verify(h->keys->keys, h->keys->n, token, x->now, &x->tok);
  if (r == -EKEYREJECTED) {
    log_notice(h->deps.log, "http: refused a link that no configured key signed (tampered or "
                            "signed with another key)");
    simple_page(rep, t, 403, "error", S(t, "forbidden_h"), S(t, "forbidden_p"));
    return -1;
  }
  if (r == -ETIME) {
    simple_page(rep, t, 410, "error", S(t, "expired_h"), S(t, "expired_p"));
    return -1;
  }
  if (r < 0 || !map_action(x->tok.action, x)) {
    simple_page(rep, t, 400, "error", S(t, "invalid_h"), S(t, "invalid_p"));
    return -1;
  }
  r = store_contract_get(h->deps.store, x->tok.contract_id, &x->co);
  if (r == -ENOENT) {
    simple_page(rep, t, 410, "error", S(t, "gone_h"), S(t, "gone_p"));
    return -1;
  }
  if (r < 0) {
    if (!http_reply_busy(rep, r))
      log_error(h->deps.log, "http: cannot read contract %s: %s", x->tok.contract_id,
                store_last_error(h->deps.store));
    simple_page(rep, t, rep->busy ? 503 : 500, "error", S(t, "error_h"), S(t, "error_p"));
    return -1;
  }
  if (!isempty(x->co.customer_id)) {
    r = store_customer_get(h->deps.store, x->co.customer_id, &x->cu);
    x->have_cu = r >= 0;
    if (http_reply_busy(rep, r)) {
      simple_page(rep, t, 503, "error", S(t, "error_h"), S(t, "error_p"));
      return -1;
    }
  }
  x->locale = x->have_cu ? x->cu.locale : NULL;
  if (!x->owner && !isempty(x->locale)) /* customers: their own locale; owners: Accept-Language */
    snprintf(t->locale, sizeof t->locale, "%s", x->locale);
  const char *tz = x->have_cu && !isempty(x->cu.tz) ? x->cu.tz : h->deps.cfg->daemon.time_zone;
  x->z = cal_zone(h->deps.cal, tz ? tz : "UTC");
  if (!x->z)
    x->z = cal_zone(h->deps.cal, "UTC");
  http_policy_load(h, &x->co, x->have_cu ? &x->cu : NULL, &x->pol);
  if (!x->unsubscribe && (r = link_key(x, token)) < 0) {
    simple_page(rep, x->t, http_reply_busy(rep, r) ? 503 : 500, "error", S(x->t, "error_h"),
                S(x->t, "error_p"));
    return -1;
  }
  if (x->tok.action == TOKEN_RENEW) {
    int64_t start = 0;
    r = lifecycle_term_start(h->deps.store, &x->co, &start);
    if (r < 0) {
      if (!http_reply_busy(rep, r))
        log_error(h->deps.log, "http: cannot read the terms of contract %s: %s", x->co.id,
                  store_last_error(h->deps.store));
      simple_page(rep, x->t, rep->busy ? 503 : 500, "error", S(x->t, "error_h"),
                  S(x->t, "error_p"));
      return -1;
    }
    if (lifecycle_renewal_expiry(x->z, start, x->co.expires_at, &x->renew_to, NULL) < 0)
      x->renew_to = 0;
  }
  return 0;
}

/* ---- forms ----------------------------------------------------------------------------- */

/* Snooze choices: days from today, at 09:00 local. */
static const int snooze_days[3] = {7, 14, 30};

static int64_t snooze_until(const struct ctx *x, int days) {
  struct cal_local l;
  cal_to_local(x->z, x->now, &l);
  return cal_from_local(x->z, l.year, l.month, l.day + days, 9, 0, 0);
}

static bool snooze_allowed(const struct ctx *x, int64_t until) {
  const struct lifecycle_policy *lp = &x->pol.lp;
  if (until <= x->now)
    return false;
  if (lp->max_snooze > 0 && until - x->now > lp->max_snooze)
    return false;
  if (lp->lapse_grace >= 0 && until > x->co.expires_at + lp->lapse_grace)
    return false;
  return true;
}

static int radio(struct page *p, const char *name, const char *value, const char *label,
                 bool checked) {
  int r;
  if ((r = buf_printf(&p->b,
                      "<label class=\"opt\"><input type=\"radio\" name=\"%s\" value=\"%s\"%s>",
                      name, value, checked ? " checked" : "")) < 0 ||
      (r = http_html_escape(&p->b, label)) < 0)
    return r;
  return buf_puts(&p->b, "</label>\n");
}

static int textarea(struct page *p, const char *name, const char *label) {
  int r;
  if ((r = buf_printf(&p->b, "<label class=\"field\" for=\"%s\">", name)) < 0 ||
      (r = http_html_escape(&p->b, label)) < 0 ||
      (r = buf_printf(&p->b,
                      "</label>\n<textarea id=\"%s\" name=\"%s\" maxlength=\"1000\">"
                      "</textarea>\n",
                      name, name)) < 0)
    return r;
  return 0;
}

static int reasons(struct page *p, const struct ctx *x) {
  int r;
  for (size_t i = 0; lifecycle_reason_name(i) && i < 6; i++)
    if ((r = radio(p, "reason", lifecycle_reason_name(i),
                   S2(x->t, "reason_", lifecycle_reason_name(i)), false)) < 0)
      return r;
  return 0;
}

/* The confirmation form. problem: shown above it (422), or NULL. Returns the
 * status to answer with (409 when no choice is possible). */
static int form_page(struct ctx *x, const char *problem, struct page *p, unsigned *ret_status) {
  struct strings *t = x->t;
  const char *h1, *intro, *button;
  bool danger = false;
  int r;
  const char *intro2 = NULL;
  *ret_status = problem ? 422 : 200;
  switch (x->tok.action) {
  case TOKEN_RENEW:
    h1 = S(t, "renew_h"), intro = fmt_renewal(x, "renew_p", x->renew_to), intro2 = S(t, "renew_p2"),
    button = S(t, "renew_b");
    break;
  case TOKEN_DECLINE:
    h1 = S(t, "decline_h"), intro = S(t, "decline_p"), button = S(t, "decline_b"), danger = true;
    break;
  case TOKEN_SNOOZE:
    h1 = S(t, "snooze_h"), intro = S(t, "snooze_p"), button = S(t, "snooze_b");
    break;
  case TOKEN_CALLBACK:
    h1 = S(t, "call_h"), intro = S(t, "call_p"), button = S(t, "call_b");
    break;
  case TOKEN_UNSUBSCRIBE_EMAIL:
  case TOKEN_UNSUBSCRIBE_SMS:
    h1 = S(t, "unsub_h"), button = S(t, "unsub_b");
    intro = x->tok.action == TOKEN_UNSUBSCRIBE_EMAIL ? S(t, "unsub_email") : S(t, "unsub_sms");
    break;
  case TOKEN_OWNER_RENEWED:
    h1 = S(t, "orenew_h"), intro = S(t, "orenew_p"), button = S(t, "orenew_b");
    break;
  case TOKEN_OWNER_LOST:
    h1 = S(t, "olost_h"), intro = S(t, "olost_p"), button = S(t, "olost_b"), danger = true;
    break;
  case TOKEN_OWNER_SNOOZE:
    h1 = S(t, "osnooze_h"), intro = S(t, "osnooze_p"), button = S(t, "snooze_b");
    break;
  default:
    return -EINVAL;
  }
  if ((r = page_begin(p, "form", h1)) < 0 || (r = page_el(p, "h1", NULL, h1)) < 0)
    return r;
  if (problem && (r = page_el(p, "p", "class=\"err\" role=\"alert\"", problem)) < 0)
    return r;
  if ((r = page_el(p, "p", NULL, intro)) < 0 ||
      (intro2 && (r = page_el(p, "p", NULL, intro2)) < 0) || (r = facts(p, x)) < 0)
    return r;

  /* a snooze with no possible date: say so instead of a form */
  if (x->kind == LIFECYCLE_SNOOZED) {
    bool any = false;
    for (size_t i = 0; i < ELEMENTSOF(snooze_days); i++)
      any |= snooze_allowed(x, snooze_until(x, snooze_days[i]));
    if (!any) {
      *ret_status = 409;
      if ((r = page_el(p, "p", "class=\"err\"", S(t, "snooze_none"))) < 0)
        return r;
      return page_end(p, false);
    }
  }

  if ((r = buf_puts(&p->b, "<form method=\"post\">\n"
                           "<input type=\"hidden\" name=\"confirm\" value=\"yes\">\n")) < 0)
    return r;
  if (x->unsubscribe &&
      (r = buf_puts(&p->b,
                    "<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\n")) < 0)
    return r;
  switch (x->tok.action) {
  case TOKEN_DECLINE:
  case TOKEN_OWNER_LOST:
    if ((r = buf_puts(&p->b, "<fieldset>\n")) < 0 || (r = reasons(p, x)) < 0 ||
        (r = buf_puts(&p->b, "</fieldset>\n")) < 0 ||
        (r = textarea(p, "note", S(t, "decline_note"))) < 0)
      return r;
    break;
  case TOKEN_SNOOZE:
  case TOKEN_OWNER_SNOOZE: {
    bool first = true;
    if ((r = buf_puts(&p->b, "<fieldset>\n")) < 0)
      return r;
    for (size_t i = 0; i < ELEMENTSOF(snooze_days); i++) {
      int64_t until = snooze_until(x, snooze_days[i]);
      if (!snooze_allowed(x, until))
        continue;
      char date[LOCFMT_MAX], key[16], value[8];
      fmt_date(x, until, date, sizeof date);
      snprintf(key, sizeof key, "snooze_%dd", snooze_days[i]);
      snprintf(value, sizeof value, "%dd", snooze_days[i]);
      if ((r = radio(p, "snooze", value, SV(t, key, "date", date, NULL), first)) < 0)
        return r;
      first = false;
    }
    if ((r = buf_puts(&p->b, "</fieldset>\n")) < 0)
      return r;
    break;
  }
  case TOKEN_CALLBACK: {
    struct cal_local l;
    cal_to_local(x->z, x->now, &l);
    char min[20];
    snprintf(min, sizeof min, "%04d-%02d-%02dT%02d:%02d", l.year, l.month, l.day, l.hour, l.minute);
    if ((r = buf_puts(&p->b, "<fieldset>\n")) < 0 ||
        (r = radio(p, "when", "asap", S(t, "call_asap"), true)) < 0 ||
        (r = buf_puts(&p->b, "<label class=\"opt\"><input type=\"radio\" name=\"when\" "
                             "value=\"at\">")) < 0 ||
        (r = http_html_escape(&p->b, S(t, "call_at"))) < 0 ||
        (r = buf_printf(&p->b,
                        "<input type=\"datetime-local\" name=\"at\" min=\"%s\" "
                        "aria-label=\"time\"></label>\n</fieldset>\n",
                        min)) < 0 ||
        (r = textarea(p, "note", S(t, "call_note"))) < 0)
      return r;
    break;
  }
  case TOKEN_OWNER_RENEWED: {
    /* default: one more year, valid through the same day */
    struct cal_local l;
    cal_to_local(x->z, x->co.expires_at - 1, &l);
    if ((r = buf_puts(&p->b, "<label class=\"field\" for=\"expires_on\">")) < 0 ||
        (r = http_html_escape(&p->b, S(t, "orenew_field"))) < 0 ||
        (r = buf_printf(&p->b,
                        "</label>\n<input type=\"date\" id=\"expires_on\" name=\"expires_on\" "
                        "value=\"%04d-%02d-%02d\" required>\n",
                        l.year + 1, l.month, l.day)) < 0)
      return r;
    break;
  }
  default:
    break;
  }
  if ((r = buf_printf(&p->b, "<button type=\"submit\"%s>", danger ? " class=\"danger\"" : "")) <
          0 ||
      (r = http_html_escape(&p->b, button)) < 0 ||
      (r = buf_puts(&p->b, "</button>\n</form>\n")) < 0)
    return r;
  return page_end(p, !x->owner);
}

static void reply_form(struct ctx *x, const char *problem, struct http_reply *rep) {
  struct page p = {.t = x->t};
  unsigned status;
  if (form_page(x, problem, &p, &status) < 0) {
    buf_free(&p.b);
    http_reply_text(rep, 500, "out of memory\n");
    return;
  }
  page_reply(&p, rep, status);
}

/* The confirmation form with problem above it, answered with status
 * (unless no choice is possible: then form_page()'s 409). */
static void reply_form_status(struct ctx *x, const char *problem, unsigned status,
                              struct http_reply *rep) {
  struct page p = {.t = x->t};
  unsigned st;
  if (form_page(x, problem, &p, &st) < 0) {
    buf_free(&p.b);
    http_reply_text(rep, 500, "out of memory\n");
    return;
  }
  page_reply(&p, rep, st == 409 ? st : status);
}

/* "already recorded" for a response recorded at `at`. */
static void reply_already(struct ctx *x, int64_t at, struct http_reply *rep) {
  char when[96];
  fmt_datetime(x, at, when, sizeof when);
  struct page p = {.t = x->t};
  if (page_begin(&p, "already", S(x->t, "already_h")) < 0 ||
      page_el(&p, "h1", NULL, S(x->t, "already_h")) < 0 ||
      page_pf(&p, NULL, "already_p", "when", when) < 0 || facts(&p, x) < 0 ||
      page_end(&p, false) < 0) {
    buf_free(&p.b);
    http_reply_text(rep, 500, "out of memory\n");
    return;
  }
  page_reply(&p, rep, 200);
}

static void reply_state(struct ctx *x, bool refused, struct http_reply *rep) {
  const char *h1 = refused ? S(x->t, "refused_h") : S(x->t, "already_h");
  struct page p = {.t = x->t};
  if (page_begin(&p, refused ? "refused" : "already", h1) < 0 || page_el(&p, "h1", NULL, h1) < 0 ||
      page_pf(&p, NULL, refused ? "refused_p" : "already_state", "state",
              state_name(x, x->co.state)) < 0 ||
      facts(&p, x) < 0 || page_end(&p, false) < 0) {
    buf_free(&p.b);
    http_reply_text(rep, 500, "out of memory\n");
    return;
  }
  page_reply(&p, rep, refused ? 409 : 200);
}

/* The thank-you page after res. */
static void reply_done(struct ctx *x, const struct lifecycle_result *res, struct http_reply *rep) {
  struct strings *t = x->t;
  char date[96] = "";
  const char *h1 = S(t, "thanks"), *p1 = NULL, *p2 = NULL;
  const char *fmt = NULL, *var = "date"; /* string key of the next-step line and its field */
  switch (x->tok.action) {
  case TOKEN_RENEW:
    p1 = fmt_renewal(x, "renew_done", res->expires_at), p2 = S(t, "renew_next");
    break;
  case TOKEN_DECLINE:
    p1 = S(t, "decline_done");
    break;
  case TOKEN_SNOOZE:
    fmt = "snooze_done";
    fmt_date(x, res->state_until, date, sizeof date);
    break;
  case TOKEN_CALLBACK:
    if (res->response.until_at) {
      fmt = "call_done_at", var = "when";
      fmt_datetime(x, res->response.until_at, date, sizeof date);
    } else
      p1 = S(t, "call_done");
    p2 = S(t, "call_paused");
    break;
  case TOKEN_UNSUBSCRIBE_EMAIL:
    h1 = S(t, "unsub_done_h"), p1 = S(t, "unsub_done_email");
    break;
  case TOKEN_UNSUBSCRIBE_SMS:
    h1 = S(t, "unsub_done_h"), p1 = S(t, "unsub_done_sms");
    break;
  case TOKEN_OWNER_RENEWED:
    h1 = S(t, "done_h"), fmt = "orenew_done";
    fmt_date(x, res->expires_at - 1, date, sizeof date);
    break;
  case TOKEN_OWNER_LOST:
    h1 = S(t, "done_h"), p1 = S(t, "olost_done");
    break;
  case TOKEN_OWNER_SNOOZE:
    h1 = S(t, "done_h"), fmt = "osnooze_done";
    fmt_date(x, res->state_until, date, sizeof date);
    break;
  }
  struct page p = {.t = t};
  int r;
  if ((r = page_begin(&p, "done", h1)) < 0 ||
      (r = buf_puts(&p.b, "<p class=\"ok\" aria-hidden=\"true\">\xe2\x9c\x93</p>\n")) < 0 ||
      (r = page_el(&p, "h1", NULL, h1)) < 0 ||
      (r = fmt ? page_pf(&p, "id=\"next\"", fmt, var, date) : page_el(&p, "p", "id=\"next\"", p1)) <
          0 ||
      (p2 && (r = page_el(&p, "p", NULL, p2)) < 0) || (r = facts(&p, x)) < 0 ||
      (r = page_end(&p, false)) < 0) {
    buf_free(&p.b);
    http_reply_text(rep, 500, "out of memory\n");
    return;
  }
  page_reply(&p, rep, 200);
}

/* ---- POST --------------------------------------------------------------------------------- */

/* Reads the form's choice into a. Returns NULL, or the problem to show (422). */
static const char *read_choice(struct ctx *x, const struct http_form *f,
                               struct lifecycle_answer *a) {
  const char *const m[] = {S(x->t, "err_reason"), S(x->t, "err_date"), S(x->t, "err_time"),
                           S(x->t, "err_expiry")};
  const char *v;
  switch (x->kind) {
  case LIFECYCLE_DECLINED:
  case LIFECYCLE_LOST:
    a->reason = http_form_get(f, "reason");
    a->detail = http_form_get(f, "note");
    if (a->detail && strlen(a->detail) > 2000)
      a->detail = NULL;
    if (isempty(a->reason) && x->kind == LIFECYCLE_LOST)
      return m[0];
    if (!isempty(a->reason) && !lifecycle_reason_valid(a->reason))
      return m[0];
    return NULL;
  case LIFECYCLE_SNOOZED:
    v = http_form_get(f, "snooze");
    for (size_t i = 0; v && i < ELEMENTSOF(snooze_days); i++) {
      char want[8];
      snprintf(want, sizeof want, "%dd", snooze_days[i]);
      if (streq(v, want)) {
        a->until = snooze_until(x, snooze_days[i]);
        return snooze_allowed(x, a->until) ? NULL : m[1];
      }
    }
    return m[1];
  case LIFECYCLE_CALLBACK:
    a->detail = http_form_get(f, "note");
    v = http_form_get(f, "when");
    if (v && streq(v, "at")) {
      const char *at = http_form_get(f, "at");
      int y, mo, d, hh, mm;
      char date[11];
      if (isempty(at) || strlen(at) < 16 || (at[10] != 'T' && at[10] != ' '))
        return m[2];
      memcpy(date, at, 10);
      date[10] = 0;
      if (cal_parse_date(date, &y, &mo, &d) < 0 || sscanf(at + 11, "%2d:%2d", &hh, &mm) != 2 ||
          hh < 0 || hh > 23 || mm < 0 || mm > 59)
        return m[2];
      a->until = cal_from_local(x->z, y, mo, d, hh, mm, 0);
      if (a->until < x->now)
        return m[2];
    }
    return NULL;
  case LIFECYCLE_RENEWED: {
    if (!x->owner) { /* the customer renews for another term (load()) */
      a->new_expires_at = x->renew_to;
      return NULL;
    }
    v = http_form_get(f, "expires_on");
    int y, mo, d;
    if (isempty(v) || cal_parse_date(v, &y, &mo, &d) < 0)
      return m[3];
    a->new_expires_at = cal_end_of_date(x->z, y, mo, d);
    if (a->new_expires_at <= x->co.expires_at)
      return m[3];
    return NULL;
  }
  default:
    return NULL;
  }
}

/* RFC 8058 allows multipart/form-data as well: true when the part named
 * List-Unsubscribe holds exactly One-Click. */
static bool multipart_one_click(const struct buf *body) {
  static const char name[] = "name=\"List-Unsubscribe\"";
  const char *q = memmem(body->data, body->len, name, sizeof name - 1);
  if (!q)
    return false;
  size_t off = (size_t)(q - body->data);
  const char *v = memmem(q, body->len - off, "\r\n\r\n", 4);
  if (!v)
    return false;
  v += 4;
  size_t rest = body->len - (size_t)(v - body->data);
  return rest >= 11 && !memcmp(v, "One-Click\r\n", 11);
}

static void handle_post(struct ctx *x, const struct http_request *rq, struct http_reply *rep) {
  struct http *h = x->h;
  char ct[64];
  http_content_type(x->c, ct, sizeof ct);
  _cleanup_(http_form_clear) struct http_form f = {0};
  bool multipart = x->unsubscribe && streq(ct, "multipart/form-data");
  bool form =
      multipart || ((streq(ct, "application/x-www-form-urlencoded") || (x->unsubscribe && !*ct)) &&
                    http_form_parse(rq->body.data, rq->body.len, &f) >= 0);
  const char *confirm = form ? http_form_get(&f, "confirm") : NULL;
  const char *oneclick = form ? http_form_get(&f, "List-Unsubscribe") : NULL;
  bool confirmed = (confirm && streq(confirm, "yes")) ||
                   (x->unsubscribe && oneclick && streq(oneclick, "One-Click")) ||
                   (multipart && multipart_one_click(&rq->body));
  if (!confirmed) {
    /* the link is valid: a bare POST, or a form without the button's
     * confirm=yes, gets the form again (400) */
    reply_form_status(x, S(x->t, "confirm_form"), 400, rep);
    return;
  }
  struct lifecycle_answer a = {
      .contract_id = x->co.id,
      .kind = x->kind,
      .source = x->source,
      .idem_key = x->unsubscribe ? NULL : x->key,
      .policy = &x->pol.lp,
  };
  if (x->unsubscribe)
    a.channel = x->tok.action == TOKEN_UNSUBSCRIBE_EMAIL ? "email" : "sms";
  const char *problem = read_choice(x, &f, &a);
  if (problem) {
    reply_form(x, problem, rep);
    return;
  }
  struct lifecycle_result res = {0};
  char err[512];
  struct log_ctx lc = {.contract_id = x->co.id};
  int r = lifecycle_apply(h->deps.store, &a, x->now, &res, err, sizeof err);
  if (r == -EPERM) {
    log_msg(h->deps.log, LOG_INFO, &lc, "http: link answer %s refused: %s",
            lifecycle_kind_to_string(x->kind), err);
    /* the state may have changed since the contract was read */
    contract_clear(&x->co);
    if (store_contract_get(h->deps.store, x->tok.contract_id, &x->co) < 0) {
      simple_page(rep, x->t, 409, "refused", S(x->t, "refused_h"), S(x->t, "gone_p"));
      return;
    }
    reply_state(x, true, rep);
    return;
  }
  if (r == -EALREADY) {
    reply_state(x, false, rep);
    return;
  }
  if (r == -EINVAL) {
    log_msg(h->deps.log, LOG_INFO, &lc, "http: link answer %s invalid: %s",
            lifecycle_kind_to_string(x->kind), err);
    reply_form(x, S(x->t, "badvalue_h"), rep);
    return;
  }
  if (r == -ENOENT) {
    simple_page(rep, x->t, 410, "error", S(x->t, "gone_h"), S(x->t, "gone_p"));
    return;
  }
  if (r < 0) { /* locked by another process: http.c runs this request again */
    if (!http_reply_busy(rep, r))
      log_msg(h->deps.log, LOG_ERR, &lc, "http: recording link answer %s failed: %s",
              lifecycle_kind_to_string(x->kind), err);
    simple_page(rep, x->t, rep->busy ? 503 : 500, "error", S(x->t, "error_h"), S(x->t, "error_p"));
    return;
  }
  if (res.already_recorded) {
    reply_already(x, res.response.created_at, rep);
    lifecycle_result_clear(&res);
    return;
  }
  log_msg(h->deps.log, LOG_INFO, &lc, "answer recorded: %s via %s (response %" PRId64 "), %s -> %s",
          lifecycle_kind_to_string(x->kind), lifecycle_source_to_string(x->source), res.response_id,
          contract_state_to_string(res.previous_state), contract_state_to_string(res.new_state));
  http_changed(h, x->co.id);
  if (res.new_term) { /* the page shows the contract as it is now */
    x->co.term = res.term;
    x->co.expires_at = res.expires_at;
  }
  reply_done(x, &res, rep);
  lifecycle_result_clear(&res);
}

/* ---- entry ---------------------------------------------------------------------------------- */

void http_pages_handle(struct http *h, struct MHD_Connection *c, const char *method,
                       const char *token, bool unsubscribe, const struct http_request *rq,
                       struct http_reply *rep) {
  _cleanup_(ctx_done) struct ctx x = {
      .h = h, .c = c, .unsubscribe = unsubscribe, .now = http_now(h)};
  if (load(&x, token, rep) < 0)
    return;

  if (unsubscribe) {
    bool email = x.tok.action == TOKEN_UNSUBSCRIBE_EMAIL;
    /* the customer's address is suppressed (whoever asked for it), or the
     * customer's own opt-out bit is set */
    if (x.have_cu && ((x.cu.optout & (email ? OPTOUT_EMAIL : OPTOUT_SMS)) ||
                      store_suppression_check(h->deps.store, email ? SUPPRESS_EMAIL : SUPPRESS_SMS,
                                              email ? x.cu.email : x.cu.phone, NULL) > 0)) {
      simple_page(rep, x.t, 200, "already", S(x.t, "unsub_done_h"), S(x.t, "unsub_already"));
      return;
    }
  } else {
    /* used already (for this message)? */
    struct find_key fk = {.key = x.key};
    int r = store_response_foreach_contract(h->deps.store, x.co.id, -1, find_key_cb, &fk);
    if (r < 0) {
      simple_page(rep, x.t, http_reply_busy(rep, r) ? 503 : 500, "error", S(x.t, "error_h"),
                  S(x.t, "error_p"));
      return;
    }
    if (fk.found.id) {
      reply_already(&x, fk.found.created_at, rep);
      return;
    }
  }
  if (x.tok.term != (uint32_t)x.co.term) {
    simple_page(rep, x.t, 410, "error", S(x.t, "oldterm_h"), S(x.t, "oldterm_p"));
    return;
  }
  if (!unsubscribe) {
    int v = lifecycle_can(x.co.state, x.kind, NULL);
    /* a renewal that would already be over is for the account manager */
    if (v == LIFECYCLE_REFUSED || (x.tok.action == TOKEN_RENEW && x.renew_to <= x.now)) {
      reply_state(&x, true, rep);
      return;
    }
    if (v == LIFECYCLE_ALREADY) {
      reply_state(&x, false, rep);
      return;
    }
  }
  if (streq(method, "POST"))
    handle_post(&x, rq, rep);
  else
    reply_form(&x, NULL, rep);
}
