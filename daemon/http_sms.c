/* http_sms: POST /sms/inbound, Twilio's inbound message webhook.
 *
 * Authentication: X-Twilio-Signature must be the base64 HMAC-SHA1 (key: the
 * AuthTokenFile= of the first [Channel] with Type=sms and Provider=twilio)
 * over PublicURL + "/sms/inbound" followed by the POST parameters sorted by
 * name (notifiers/sign.h, sign_twilio_verify()); otherwise 403 and nothing
 * is read.
 *
 * STOP and START act on the sending number first: STOP suppresses it (the
 * suppressions table, reason "stop", source "sms-inbound") for every
 * customer and owner who has it, START lifts that (and the SMS opt-out bit of
 * every customer with the number), whether or not the number is known.
 *
 * The sender is found by phone number (customers.phone, E.164) and the answer
 * goes to the customer's open contract (active, reminding, snoozed, callback
 * or lapsed; one already in its ladder first, then the most recently
 * updated). The whole body, blanks around it ignored, case-insensitive, is a
 * keyword when it is one of the words US and Canadian carriers require
 * (STOP STOPALL UNSUBSCRIBE CANCEL END QUIT REVOKE OPTOUT, START UNSTOP,
 * HELP INFO: for every sender) or of the kw_* strings of sms.po along the
 * sender's locale chain (every locale's for an unknown number):
 *   kw_stop   opt out of SMS             kw_start  opt in again
 *   kw_help   help text                  kw_renew  renew_intent: owner alerted
 *   kw_call   callback: owner alerted
 * anything else is a "message" forwarded to the sales owner. The reply is
 * TwiML (<Response><Message>...</Message></Response>) whose text is a string
 * of the catalogue sms.po (notifiers/templates.h) in the customer's locale,
 * falling back as pages do (fr-CA -> fr -> [Daemon] Locale= -> the built-in
 * English); an unknown sender gets an empty <Response/> (or the help text in
 * the default locale for HELP). Twilio retries a webhook
 * that failed: the MessageSid is the answer's idempotency key ("sms-" + sid),
 * so a retry records nothing twice.
 *
 * Owns nothing beyond one request; blocks on the store only. */
#include <inttypes.h>
#include <limits.h>

#include <unicode/ucasemap.h>

#include "daemon/http_internal.h"
#include "notifiers/sign.h"
#include "notifiers/templates.h"

/* ---- keywords ------------------------------------------------------------------- */

/* What US and Canadian carriers require to work from every sender (CTIA),
 * whatever the catalogues say; the words of each language are data (the
 * kw_* strings of sms.po). */
static const struct {
  const char *word;
  enum http_sms_keyword kw;
} carrier_keywords[] = {
    {"stop", SMS_KW_STOP},    {"stopall", SMS_KW_STOP}, {"unsubscribe", SMS_KW_STOP},
    {"cancel", SMS_KW_STOP},  {"end", SMS_KW_STOP},     {"quit", SMS_KW_STOP},
    {"revoke", SMS_KW_STOP},  {"optout", SMS_KW_STOP},  {"start", SMS_KW_START},
    {"unstop", SMS_KW_START}, {"help", SMS_KW_HELP},    {"info", SMS_KW_HELP},
};

/* The sms.po key listing each keyword's words, "|"-separated. */
static const char *const keyword_keys[] = {
    [SMS_KW_STOP] = "kw_stop",   [SMS_KW_START] = "kw_start", [SMS_KW_HELP] = "kw_help",
    [SMS_KW_RENEW] = "kw_renew", [SMS_KW_CALL] = "kw_call",
};

#define KW_MAX 64 /* bytes of a keyword; a longer body is a message */

static bool blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* s[0..n) without surrounding blanks, case-folded (Unicode, ICU) into out
 * (KW_MAX * 3 + 1 bytes). false when it is empty or longer than KW_MAX. */
static bool fold(const char *s, size_t n, char *out) {
  while (n && blank(*s))
    s++, n--;
  while (n && blank(s[n - 1]))
    n--;
  if (n == 0 || n > KW_MAX)
    return false;
  UErrorCode e = U_ZERO_ERROR;
  UCaseMap *cm = ucasemap_open(NULL, U_FOLD_CASE_DEFAULT, &e);
  int32_t len = U_SUCCESS(e) ? ucasemap_utf8FoldCase(cm, out, KW_MAX * 3, s, (int32_t)n, &e) : 0;
  ucasemap_close(cm);
  if (U_FAILURE(e) || len <= 0 || len >= KW_MAX * 3)
    return false;
  out[len] = 0;
  return true;
}

struct kw_match {
  const char *body; /* folded */
  unsigned level;   /* catalogues seen along the chain */
};

/* One locale's "|"-separated words: 1 when the body is one of them. */
static int kw_words_cb(void *ud, const char *text, const char *locale_dir) {
  struct kw_match *m = ud;
  char w[KW_MAX * 3 + 1];
  (void)locale_dir;
  m->level++;
  for (const char *p = text;; p++) {
    const char *bar = strchrnul(p, '|');
    if (fold(p, (size_t)(bar - p), w) && streq(w, m->body))
      return 1;
    if (!*bar)
      return 0;
    p = bar;
  }
}

/* The keyword of the most specific locale along locale's chain that lists
 * the body (ties: the first of keyword_keys), or SMS_KW_NONE. */
static enum http_sms_keyword chain_keyword(struct templates *t, const char *locale,
                                           const char *folded) {
  enum http_sms_keyword best = SMS_KW_NONE;
  unsigned best_level = UINT_MAX;
  for (size_t k = SMS_KW_STOP; t && k < ELEMENTSOF(keyword_keys); k++) {
    struct kw_match m = {.body = folded};
    char err[256] = "";
    int r =
        templates_string_each(t, locale, "sms", keyword_keys[k], kw_words_cb, &m, err, sizeof err);
    if (r > 0 && m.level < best_level)
      best = (enum http_sms_keyword)k, best_level = m.level;
  }
  return best;
}

enum http_sms_keyword http_sms_keyword(struct templates *t, const char *locale, bool any_locale,
                                       const char *body) {
  char w[KW_MAX * 3 + 1];
  if (!body || !fold(body, strlen(body), w))
    return SMS_KW_NONE;
  for (size_t i = 0; i < ELEMENTSOF(carrier_keywords); i++)
    if (streq(w, carrier_keywords[i].word))
      return carrier_keywords[i].kw;
  enum http_sms_keyword kw = chain_keyword(t, locale, w);
  if (kw != SMS_KW_NONE || !any_locale || !t)
    return kw;
  const char *names[32];
  size_t n = MIN(templates_locales(t, names, ELEMENTSOF(names)), ELEMENTSOF(names));
  for (size_t i = 0; i < n && kw == SMS_KW_NONE; i++)
    kw = chain_keyword(t, names[i], w);
  return kw;
}

/* ---- replies ----------------------------------------------------------------------- */

static void twiml(struct http_reply *rep, const char *message) {
  buf_reset(&rep->body);
  rep->status = 200;
  rep->content_type = "text/xml; charset=utf-8";
  int r = buf_puts(&rep->body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
  if (r >= 0 && isempty(message))
    r = buf_puts(&rep->body, "<Response/>\n");
  else if (r >= 0 && (r = buf_puts(&rep->body, "<Response><Message>")) >= 0 &&
           (r = http_html_escape(&rep->body, message)) >= 0)
    r = buf_puts(&rep->body, "</Message></Response>\n");
  if (r < 0)
    http_reply_text(rep, 500, "out of memory\n");
}

/* Answers with reply key of sms.po (NULL: an empty <Response/>) in locale
 * (NULL: the default), along the locale's fallback chain down to the
 * built-in English catalogue. */
static void reply(struct http *h, struct http_reply *rep, const char *locale, const char *key) {
  struct templates *t = key ? http_templates(h) : NULL;
  _cleanup_free_ char *text = NULL;
  char err[256] = "";
  if (t && templates_string(t, locale, "sms", key, NULL, &text, NULL, err, sizeof err) < 0)
    log_warning(h->deps.log, "http: inbound SMS: no reply \"%s\" for locale %s: %s", key,
                isempty(locale) ? "(default)" : locale, isempty(err) ? "not found" : err);
  twiml(rep, text);
}

/* ---- the contract an SMS is about ---------------------------------------------------------- */

struct pick {
  char *id; /* best so far; owned */
  int rank; /* 3 in ladder, 2 active, 1 other state */
  int64_t updated;
};

static int pick_cb(const struct contract *c, const struct customer *cu, void *ud) {
  struct pick *p = ud;
  int rank;
  switch (c->state) {
  case CONTRACT_REMINDING:
  case CONTRACT_SNOOZED:
  case CONTRACT_CALLBACK:
  case CONTRACT_LAPSED:
    rank = 3;
    break;
  case CONTRACT_ACTIVE:
    rank = 2;
    break;
  default:
    rank = 1;
  }
  if (p->id && (rank < p->rank || (rank == p->rank && c->updated_at <= p->updated)))
    return 0;
  char *id = strdup(c->id);
  if (!id)
    return -ENOMEM;
  free(p->id);
  *p = (struct pick){.id = id, .rank = rank, .updated = c->updated_at};
  return 0;
}

/* A store call failed: 500 (Twilio retries the webhook), or, while another
 * process holds the lock, 503 and a retry of the whole request
 * (http_reply_busy()): nothing of it was committed yet, or what was (the
 * number's suppression) is recorded at most once. */
static void store_error_reply(struct http_reply *rep, int r) {
  bool busy = http_reply_busy(rep, r);
  http_reply_text(rep, busy ? 503 : 500, busy ? "store busy\n" : "store error\n");
}

/* STOP / START: the number itself, for everyone who has it (carriers block
 * by number). 0 or a store error. */
static int number_optout(struct http *h, const char *phone, enum http_sms_keyword kw, int64_t now) {
  int r = kw == SMS_KW_STOP ? store_suppression_add(h->deps.store, SUPPRESS_SMS, phone, "stop",
                                                    "sms-inbound", NULL, now)
                            : store_suppression_remove(h->deps.store, SUPPRESS_SMS, phone, true,
                                                       "sms-inbound", NULL, now);
  if (r < 0 && r != -EBUSY) /* -EBUSY: the request runs again (http_reply_busy()) */
    log_error(h->deps.log, "http: inbound SMS %s: cannot record it for the number: %s",
              kw == SMS_KW_STOP ? "STOP" : "START", store_last_error(h->deps.store));
  else if (r > 0)
    log_info(h->deps.log, "http: inbound SMS %s: the number is %s",
             kw == SMS_KW_STOP ? "STOP" : "START",
             kw == SMS_KW_STOP ? "suppressed" : "no longer suppressed");
  return r < 0 ? r : 0;
}

/* ---- handler ----------------------------------------------------------------------------------
 */

void http_sms_handle(struct http *h, struct MHD_Connection *c, const char *method,
                     const struct http_request *rq, struct http_reply *rep) {
  char ct[64];
  http_content_type(c, ct, sizeof ct);
  _cleanup_(http_form_clear) struct http_form f = {0};
  if (!streq(ct, "application/x-www-form-urlencoded")) {
    http_reply_text(rep, 415, "expected application/x-www-form-urlencoded\n");
    return;
  }
  if (http_form_parse(rq->body.data, rq->body.len, &f) < 0) {
    http_reply_text(rep, 400, "malformed form body\n");
    return;
  }

  /* authenticity first: nothing of an unsigned request is used */
  const char *sig = http_header(c, "X-Twilio-Signature");
  if (!h->sms_token || isempty(sig)) {
    log_notice(h->deps.log, "http: inbound SMS refused: %s",
               h->sms_token ? "no X-Twilio-Signature" : "no Twilio AuthTokenFile= configured");
    http_reply_text(rep, 403, "forbidden\n");
    return;
  }
  _cleanup_free_ struct sign_param *params = calloc(f.n ? f.n : 1, sizeof *params);
  _cleanup_free_ char *url = strprintf(
      "%s/sms/inbound", h->deps.cfg->daemon.public_url ? h->deps.cfg->daemon.public_url : "");
  if (!params || !url) {
    http_reply_text(rep, 500, "out of memory\n");
    return;
  }
  for (size_t i = 0; i < f.n; i++)
    params[i] = (struct sign_param){.name = f.names[i], .value = f.values[i]};
  if (sign_twilio_verify(h->sms_token, url, params, f.n, sig) != 0) {
    log_notice(h->deps.log,
               "http: inbound SMS refused: X-Twilio-Signature does not match "
               "(signed URL must be %s)",
               url);
    http_reply_text(rep, 403, "forbidden\n");
    return;
  }

  const char *from = http_form_get(&f, "From"), *body = http_form_get(&f, "Body");
  const char *sid = http_form_get(&f, "MessageSid");
  if (isempty(sid))
    sid = http_form_get(&f, "SmsSid");
  if (isempty(from)) {
    http_reply_text(rep, 400, "missing From\n");
    return;
  }
  /* the sender first: the keywords are those of their language */
  char phone[17];
  int64_t now = http_now(h);
  bool e164 = validate_e164(from, phone) >= 0;
  _cleanup_(customer_clear) struct customer cu = {0};
  int r = !e164 ? -ENOENT : store_customer_find_by_phone(h->deps.store, phone, &cu);
  if (r < 0 && r != -ENOENT) {
    if (r != -EBUSY)
      log_error(h->deps.log, "http: inbound SMS: cannot look up the sender: %s",
                store_last_error(h->deps.store));
    store_error_reply(rep, r);
    return;
  }
  bool known = r >= 0;
  enum http_sms_keyword kw =
      http_sms_keyword(http_templates(h), known ? cu.locale : NULL, !known, body);
  bool optout_kw = kw == SMS_KW_STOP || kw == SMS_KW_START;
  int q = e164 && optout_kw ? number_optout(h, phone, kw, now) : 0;
  if (q < 0) {
    store_error_reply(rep, q);
    return;
  }
  if (!known) {
    log_info(h->deps.log, "http: inbound SMS from an unknown number (%s)",
             kw == SMS_KW_NONE ? "message" : "keyword");
    reply(h, rep, NULL,
          kw == SMS_KW_HELP     ? "help"
          : !e164 || !optout_kw ? NULL
          : kw == SMS_KW_STOP   ? "stop"
                                : "start");
    return;
  }

  struct pick pk = {0};
  struct store_contract_filter flt = {.state = -1, .customer_id = cu.id};
  r = store_contract_foreach(h->deps.store, &flt, pick_cb, &pk);
  _cleanup_free_ char *contract_id = pk.id;
  if (r < 0) {
    store_error_reply(rep, r);
    return;
  }
  if (!contract_id) { /* no contract to hang the answer on: the number is done above */
    reply(h, rep, cu.locale,
          kw == SMS_KW_STOP    ? "stop"
          : kw == SMS_KW_START ? "start"
          : kw == SMS_KW_HELP  ? "help"
                               : NULL);
    return;
  }

  _cleanup_(contract_clear) struct contract co = {0};
  struct http_policy pol;
  r = store_contract_get(h->deps.store, contract_id, &co);
  if (r < 0) {
    store_error_reply(rep, r);
    return;
  }
  http_policy_load(h, &co, &cu, &pol);
  _cleanup_free_ char *key = !isempty(sid) ? strprintf("sms-%.64s", sid) : NULL;
  struct lifecycle_answer a = {
      .contract_id = contract_id,
      .source = LIFECYCLE_SOURCE_SMS,
      .channel = "sms",
      .idem_key = key,
      .policy = &pol.lp,
  };
  const char *ok; /* the reply's key in sms.po */
  switch (kw) {
  case SMS_KW_STOP:
    a.kind = LIFECYCLE_UNSUBSCRIBED, ok = "stop";
    break;
  case SMS_KW_START:
    a.kind = LIFECYCLE_RESUBSCRIBED, ok = "start";
    break;
  case SMS_KW_HELP:
    a.kind = LIFECYCLE_HELP, ok = "help";
    break;
  case SMS_KW_RENEW:
    a.kind = LIFECYCLE_RENEW_INTENT, ok = "renew";
    break;
  case SMS_KW_CALL:
    a.kind = LIFECYCLE_CALLBACK, ok = "call";
    break;
  default:
    a.kind = LIFECYCLE_MESSAGE, ok = "message";
    a.detail = body;
    break;
  }
  _cleanup_free_ char *text = NULL;
  if (a.detail && strlen(a.detail) > 1600 && (text = strndup(a.detail, 1600)))
    a.detail = text;
  struct lifecycle_result res = {0};
  char err[512];
  struct log_ctx lc = {.contract_id = contract_id, .channel = "sms"};
  r = lifecycle_apply(h->deps.store, &a, now, &res, err, sizeof err);
  http_policy_done(&pol);
  if (r == -EPERM || r == -EALREADY) {
    log_msg(h->deps.log, LOG_INFO, &lc, "inbound SMS %s not recorded: %s",
            lifecycle_kind_to_string(a.kind), err);
    reply(h, rep, cu.locale,
          optout_kw || (r == -EALREADY && a.kind == LIFECYCLE_CALLBACK) ? ok : "refused");
    return;
  }
  if (r < 0) {
    if (r != -EBUSY)
      log_msg(h->deps.log, LOG_ERR, &lc, "inbound SMS %s failed: %s",
              lifecycle_kind_to_string(a.kind), err);
    if (r == -EINVAL || r == -EEXIST)
      reply(h, rep, cu.locale, "error");
    else
      store_error_reply(rep, r);
    return;
  }
  if (!res.already_recorded) {
    log_msg(h->deps.log, LOG_INFO, &lc, "answer recorded: %s via sms (response %" PRId64 ")",
            lifecycle_kind_to_string(a.kind), res.response_id);
    http_changed(h, contract_id);
  }
  lifecycle_result_clear(&res);
  reply(h, rep, cu.locale, ok);
}
