/* http_sms_status: POST /sms/status, Twilio's message status callback (the
 * StatusCallback= every Twilio SMS carries, notifiers/sms.c).
 *
 * Authentication as for /sms/inbound (http_sms.c): X-Twilio-Signature must be
 * the base64 HMAC-SHA1 with the Twilio channel's auth token over PublicURL +
 * "/sms/status" followed by the POST parameters sorted by name
 * (sign_twilio_verify()); otherwise 403 and nothing is recorded.
 *
 * The row is the one whose provider_id is MessageSid; MessageStatus queued,
 * sent, delivered, undelivered or failed is recorded with ErrorCode on it
 * (store_reminder_set_delivery()), a lower rank never over a higher one, as
 * callbacks arrive out of order. Other statuses (accepted, sending, read, ...)
 * and unknown MessageSids are answered 200 and change nothing: anything else
 * makes Twilio retry. Acting on undelivered messages is not done here.
 *
 * Owns nothing beyond one request; blocks on the store only. */
#include "daemon/http_internal.h"
#include "notifiers/sign.h"

static bool recorded_status(const char *st) {
  static const char *const known[] = {"queued", "sent", "delivered", "undelivered", "failed"};
  for (size_t i = 0; st && i < ELEMENTSOF(known); i++)
    if (streq(st, known[i]))
      return true;
  return false;
}

/* 0 when the request is signed by Twilio, else -EPERM (reply set). */
static int verify(struct http *h, struct MHD_Connection *c, const struct http_form *f,
                  struct http_reply *rep) {
  const char *sig = http_header(c, "X-Twilio-Signature");
  if (!h->sms_token || isempty(sig)) {
    log_notice(h->deps.log, "http: SMS status callback refused: %s",
               h->sms_token ? "no X-Twilio-Signature" : "no Twilio AuthTokenFile= configured");
    http_reply_text(rep, 403, "forbidden\n");
    return -EPERM;
  }
  _cleanup_free_ struct sign_param *params = calloc(f->n ? f->n : 1, sizeof *params);
  _cleanup_free_ char *url = strprintf(
      "%s/sms/status", h->deps.cfg->daemon.public_url ? h->deps.cfg->daemon.public_url : "");
  if (!params || !url) {
    http_reply_text(rep, 500, "out of memory\n");
    return -ENOMEM;
  }
  for (size_t i = 0; i < f->n; i++)
    params[i] = (struct sign_param){.name = f->names[i], .value = f->values[i]};
  if (sign_twilio_verify(h->sms_token, url, params, f->n, sig) != 0) {
    log_notice(h->deps.log,
               "http: SMS status callback refused: X-Twilio-Signature does not match "
               "(signed URL must be %s)",
               url);
    http_reply_text(rep, 403, "forbidden\n");
    return -EPERM;
  }
  return 0;
}

void http_sms_status_handle(struct http *h, struct MHD_Connection *c, const struct http_request *rq,
                            struct http_reply *rep) {
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
  if (verify(h, c, &f, rep) < 0)
    return;

  const char *sid = http_form_get(&f, "MessageSid"), *st = http_form_get(&f, "MessageStatus");
  const char *code = http_form_get(&f, "ErrorCode");
  if (isempty(sid))
    sid = http_form_get(&f, "SmsSid");
  if (isempty(st))
    st = http_form_get(&f, "SmsStatus");
  if (isempty(sid) || isempty(st)) {
    http_reply_text(rep, 400, "missing MessageSid or MessageStatus\n");
    return;
  }
  if (!recorded_status(st)) {
    http_reply_text(rep, 200, "ignored\n");
    return;
  }
  int r =
      store_reminder_set_delivery(h->deps.store, sid, st, isempty(code) ? NULL : code, http_now(h));
  if (r == -ENOENT) {
    log_info(h->deps.log, "http: SMS status %s for an unknown message", st);
    http_reply_text(rep, 200, "unknown message\n");
    return;
  }
  if (r < 0) {
    bool busy = http_reply_busy(rep, r);
    if (!busy)
      log_error(h->deps.log, "http: SMS status %s: cannot record it: %s", st,
                store_last_error(h->deps.store));
    http_reply_text(rep, busy ? 503 : 500, busy ? "store busy\n" : "store error\n");
    return;
  }
  if (r > 0)
    log_info(h->deps.log, "http: SMS %.64s: provider status %s%s%s", sid, st,
             isempty(code) ? "" : ", error ", isempty(code) ? "" : code);
  http_reply_text(rep, 200, r > 0 ? "recorded\n" : "superseded\n");
}
