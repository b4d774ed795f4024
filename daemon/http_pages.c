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
 * Language: the customer's locale (zh* = Simplified Chinese, else English);
 * owner pages and pages without a known customer follow Accept-Language.
 * Plain HTML with inline CSS, no JavaScript, viewport meta for phones.
 * Owns nothing beyond one request; blocks on the store only. */
#include <inttypes.h>
#include <openssl/sha.h>

#include "daemon/http_internal.h"

/* ---- strings -------------------------------------------------------------------- */

struct strings {
  const char *lang;
  const char *site, *product, *contract, *valid_until, *footer;
  const char *renew_h, *renew_p, *renew_p2, *renew_contract, *renew_b, *renew_done, *renew_next;
  const char *decline_h, *decline_p, *decline_note, *decline_b, *decline_done;
  const char *reasons[6];
  const char *snooze_h, *snooze_p, *snooze_b, *snooze_done, *snooze_none;
  const char *snooze_opts[3];
  const char *call_h, *call_p, *call_asap, *call_at, *call_note, *call_b, *call_done, *call_done_at,
      *call_paused;
  const char *unsub_h, *unsub_email, *unsub_sms, *unsub_b, *unsub_done_h, *unsub_done_email,
      *unsub_done_sms, *unsub_already;
  const char *orenew_h, *orenew_p, *orenew_field, *orenew_b, *orenew_done;
  const char *olost_h, *olost_p, *olost_b, *olost_done;
  const char *osnooze_h, *osnooze_p, *osnooze_done;
  const char *thanks, *done_h;
  const char *already_h, *already_p, *already_state;
  const char *refused_h, *refused_p;
  const char *invalid_h, *invalid_p, *forbidden_h, *forbidden_p, *expired_h, *expired_p, *oldterm_h,
      *oldterm_p, *gone_h, *gone_p, *disabled_h, *disabled_p, *confirm_h, *confirm_p, *confirm_form,
      *badvalue_h, *badvalue_p, *error_h, *error_p;
  const char *states[_CONTRACT_STATE_MAX];
};

static const struct strings en = {
    .lang = "en",
    .site = "Contract renewal",
    .product = "Product",
    .contract = "Contract",
    .valid_until = "Valid until",
    .footer = "You opened this page from a link in a message about your contract. Nothing "
              "changes until you press the button.",
    .renew_h = "Renew your contract",
    .renew_p = "Your %s will be renewed until %s.",
    .renew_p2 = "The new term starts when the current one ends. Your account manager will send "
                "you the invoice.",
    .renew_contract = "contract",
    .renew_b = "Confirm the renewal",
    .renew_done = "Your %s is renewed until %s.",
    .renew_next = "Your account manager has been told and will send you the invoice, or be in "
                  "touch if anything else is needed. You will not receive any more reminders "
                  "about the current term.",
    .decline_h = "Not renewing",
    .decline_p = "We are sorry to see you go. Please tell us why you will not renew.",
    .decline_note = "Anything else you would like to tell us? (optional)",
    .decline_b = "Confirm: I will not renew",
    .decline_done = "We have recorded that you will not renew. You will not receive further "
                    "reminders about this contract.",
    .reasons = {"The price is too high", "We switched to another provider", "We no longer need it",
                "No budget", "Missing features", "Another reason"},
    .snooze_h = "Remind me later",
    .snooze_p = "Choose when we should remind you again.",
    .snooze_b = "Remind me then",
    .snooze_done = "We will remind you again on %s. Until then you will not hear from us about "
                   "this renewal.",
    .snooze_none = "Your contract expires too soon to postpone the reminders. Please renew or "
                   "contact your account manager.",
    .snooze_opts = {"In 1 week (%s)", "In 2 weeks (%s)", "In 1 month (%s)"},
    .call_h = "Please call me",
    .call_p = "Your account manager will call you. When suits you best?",
    .call_asap = "As soon as possible",
    .call_at = "At this time:",
    .call_note = "Phone number or anything we should know (optional)",
    .call_b = "Request a call",
    .call_done = "Your account manager will call you soon.",
    .call_done_at = "Your account manager will call you around %s.",
    .call_paused = "We have paused the reminders until then.",
    .unsub_h = "Unsubscribe",
    .unsub_email = "Stop sending renewal reminders about this contract by email?",
    .unsub_sms = "Stop sending renewal reminders about this contract by SMS?",
    .unsub_b = "Unsubscribe",
    .unsub_done_h = "You are unsubscribed",
    .unsub_done_email = "You will no longer receive renewal reminders by email.",
    .unsub_done_sms = "You will no longer receive renewal reminders by SMS.",
    .unsub_already = "You were already unsubscribed. Nothing more to do.",
    .orenew_h = "Record a renewal",
    .orenew_p = "Record that the customer renewed. A new term starts with the new expiry date "
                "and the reminders of the old term stop.",
    .orenew_field = "New term valid through",
    .orenew_b = "Record the renewal",
    .orenew_done = "Renewal recorded. The new term runs through %s.",
    .olost_h = "Record as lost",
    .olost_p = "Record that this contract will not be renewed. All reminders stop.",
    .olost_b = "Record as lost",
    .olost_done = "Recorded as lost. No more reminders are sent for this contract.",
    .osnooze_h = "Pause the reminders",
    .osnooze_p = "Pause the reminders to the customer until:",
    .osnooze_done = "The reminders to the customer are paused until %s.",
    .thanks = "Thank you!",
    .done_h = "Done",
    .already_h = "Already recorded",
    .already_p = "This answer was already recorded on %s. There is nothing more to do.",
    .already_state = "This contract is already marked as \xe2\x80\x9c%s\xe2\x80\x9d. There is "
                     "nothing more to do.",
    .refused_h = "This can no longer be changed",
    .refused_p = "This contract is \xe2\x80\x9c%s\xe2\x80\x9d, so this answer cannot be recorded. "
                 "Please contact your account manager.",
    .invalid_h = "This link is not valid",
    .invalid_p = "Please check that you opened the whole link from the message.",
    .forbidden_h = "This link could not be verified",
    .forbidden_p = "It may have been changed on the way. Please use the link in our most recent "
                   "message, or contact your account manager.",
    .expired_h = "This link has expired",
    .expired_p = "Please use the link in our most recent message, or contact your account "
                 "manager.",
    .oldterm_h = "This link is out of date",
    .oldterm_p = "The contract has changed since this message was sent (for example, it was "
                 "renewed). Please use the link in our most recent message.",
    .gone_h = "This contract is no longer available",
    .gone_p = "Please contact your account manager.",
    .disabled_h = "Not available right now",
    .disabled_p = "Answer links cannot be used at the moment. Please try again later or contact "
                  "your account manager.",
    .confirm_h = "Please confirm on the page",
    .confirm_p = "Nothing was changed. Please open the link again and use the button on the page.",
    .confirm_form = "Nothing was changed yet: please use the button below to confirm.",
    .badvalue_h = "Please check your choice",
    .badvalue_p = "Nothing was changed yet.",
    .error_h = "Something went wrong",
    .error_p = "Nothing was changed. Please try again in a few minutes.",
    .states = {"active", "active", "renewed", "not being renewed", "reminders paused",
               "waiting for a call back", "expired", "closed"},
};

static const struct strings zh = {
    .lang = "zh-CN",
    .site = "合同续约",
    .product = "产品",
    .contract = "合同编号",
    .valid_until = "有效期至",
    .footer = "您是通过关于您合同的消息中的链接打开此页面的。在您按下按钮之前，不会有任何更改。",
    .renew_h = "续约您的合同",
    .renew_p = "您的%s将续约至%s。",
    .renew_p2 = "新合同期自当前合同期结束时开始。您的客户经理将向您发送发票。",
    .renew_contract = "合同",
    .renew_b = "确认续约",
    .renew_done = "您的%s已续约至%s。",
    .renew_next = "我们已通知您的客户经理，他们将向您发送发票，如有其他需要也会与您联系。"
                  "您将不会再收到关于当前合同期的提醒。",
    .decline_h = "不再续约",
    .decline_p = "很遗憾您将离开。请告诉我们您不续约的原因。",
    .decline_note = "还有什么想告诉我们的吗？（可选）",
    .decline_b = "确认：我不续约",
    .decline_done = "我们已记录您不续约。您将不会再收到关于此合同的提醒。",
    .reasons = {"价格太高", "我们已更换供应商", "我们不再需要", "没有预算", "缺少所需功能",
                "其他原因"},
    .snooze_h = "稍后提醒我",
    .snooze_p = "请选择我们何时再次提醒您。",
    .snooze_b = "到时提醒我",
    .snooze_done = "我们将于%s再次提醒您。在此之前，我们不会就此次续约联系您。",
    .snooze_none = "您的合同即将到期，无法推迟提醒。请续约或联系您的客户经理。",
    .snooze_opts = {"1 周后（%s）", "2 周后（%s）", "1 个月后（%s）"},
    .call_h = "请给我回电",
    .call_p = "您的客户经理将给您回电。您什么时间方便？",
    .call_asap = "尽快",
    .call_at = "在此时间：",
    .call_note = "电话号码或其他需要我们知道的信息（可选）",
    .call_b = "请求回电",
    .call_done = "您的客户经理将很快给您回电。",
    .call_done_at = "您的客户经理将在%s左右给您回电。",
    .call_paused = "在此之前，提醒已暂停。",
    .unsub_h = "退订",
    .unsub_email = "停止通过电子邮件发送关于此合同的续约提醒？",
    .unsub_sms = "停止通过短信发送关于此合同的续约提醒？",
    .unsub_b = "退订",
    .unsub_done_h = "您已退订",
    .unsub_done_email = "您将不再通过电子邮件收到续约提醒。",
    .unsub_done_sms = "您将不再通过短信收到续约提醒。",
    .unsub_already = "您之前已退订，无需其他操作。",
    .orenew_h = "记录续约",
    .orenew_p = "记录客户已续约。新合同期自新的到期日起生效，旧合同期的提醒将停止。",
    .orenew_field = "新合同期有效至",
    .orenew_b = "记录续约",
    .orenew_done = "已记录续约。新合同期有效至%s。",
    .olost_h = "记录为流失",
    .olost_p = "记录此合同不会续约。所有提醒将停止。",
    .olost_b = "记录为流失",
    .olost_done = "已记录为流失。此合同不再发送提醒。",
    .osnooze_h = "暂停提醒",
    .osnooze_p = "暂停向客户发送提醒，直到：",
    .osnooze_done = "向客户发送的提醒已暂停至%s。",
    .thanks = "谢谢！",
    .done_h = "已完成",
    .already_h = "已记录",
    .already_p = "此答复已于%s记录，无需其他操作。",
    .already_state = "此合同已标记为「%s」，无需其他操作。",
    .refused_h = "此操作已无法进行",
    .refused_p = "此合同当前状态为「%s」，因此无法记录此答复。请联系您的客户经理。",
    .invalid_h = "此链接无效",
    .invalid_p = "请确认您打开了消息中的完整链接。",
    .forbidden_h = "无法验证此链接",
    .forbidden_p = "链接可能在传输中被修改。请使用我们最新消息中的链接，或联系您的客户经理。",
    .expired_h = "此链接已过期",
    .expired_p = "请使用我们最新消息中的链接，或联系您的客户经理。",
    .oldterm_h = "此链接已过时",
    .oldterm_p = "自此消息发送以来，合同已发生变化（例如已续约）。请使用我们最新消息中的链接。",
    .gone_h = "此合同已不存在",
    .gone_p = "请联系您的客户经理。",
    .disabled_h = "暂时不可用",
    .disabled_p = "答复链接暂时无法使用。请稍后再试或联系您的客户经理。",
    .confirm_h = "请在页面上确认",
    .confirm_p = "没有任何更改。请重新打开链接并使用页面上的按钮。",
    .confirm_form = "尚未进行任何更改：请使用下面的按钮确认。",
    .badvalue_h = "请检查您的选择",
    .badvalue_p = "尚未进行任何更改。",
    .error_h = "出现问题",
    .error_p = "没有任何更改。请几分钟后重试。",
    .states = {"有效", "有效", "已续约", "不再续约", "提醒已暂停", "等待回电", "已过期", "已关闭"},
};

static const struct strings *strings_for(const char *locale) {
  return http_locale_is_zh(locale) ? &zh : &en;
}

/* The first language of Accept-Language ("zh-CN,zh;q=0.9,en" -> zh). */
static const struct strings *strings_accept(struct MHD_Connection *c) {
  const char *al = http_header(c, "Accept-Language");
  if (!al)
    return &en;
  while (*al == ' ')
    al++;
  return http_locale_is_zh(al) ? &zh : &en;
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
  const struct strings *t;
};

static int page_begin(struct page *p, const char *kind, const char *title) {
  int r;
  if ((r = buf_printf(&p->b,
                      "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                      "<meta name=\"robots\" content=\"noindex, nofollow\">\n<title>",
                      p->t->lang)) < 0 ||
      (r = http_html_escape(&p->b, title)) < 0 ||
      (r = buf_printf(&p->b,
                      " \xe2\x80\x93 %s</title>\n<style>%s</style>\n</head>\n<body>\n"
                      "<main id=\"page\" data-page=\"%s\">\n<div class=\"card\">\n"
                      "<p class=\"site\">%s</p>\n",
                      p->t->site, css, kind, p->t->site)) < 0)
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

/* A paragraph from a format with one %s argument, both escaped. */
static int page_pf(struct page *p, const char *attrs, const char *fmt, const char *arg) {
  char text[1024];
  snprintf(text, sizeof text, fmt, arg ? arg : "");
  return page_el(p, "p", attrs, text);
}

static int page_end(struct page *p, bool footer) {
  int r = 0;
  if (footer)
    r = page_el(p, "p", "class=\"muted\"", p->t->footer);
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
static void simple_page(struct http_reply *rep, const struct strings *t, unsigned status,
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
  const struct strings *t;
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
  contract_clear(&x->co);
  customer_clear(&x->cu);
  http_policy_done(&x->pol);
}

static const char *state_name(const struct ctx *x, enum contract_state s) {
  return (unsigned)s < _CONTRACT_STATE_MAX ? x->t->states[s] : "?";
}

/* "1 March 2027" / "2027年3月1日" */
static char *fmt_date(const struct ctx *x, int64_t t, char *out, size_t n) {
  return cal_format_date(x->z, t, x->t == &zh ? "zh" : "en", out, n);
}

/* "1 March 2027, 14:30" */
static char *fmt_datetime(const struct ctx *x, int64_t t, char *out, size_t n) {
  char d[64];
  struct cal_local l;
  fmt_date(x, t, d, sizeof d);
  cal_to_local(x->z, t, &l);
  snprintf(out, n, x->t == &zh ? "%s %02d:%02d" : "%s, %02d:%02d", d, l.hour, l.minute);
  return out;
}

/* "Your Support Plan will be renewed until 31 March 2028." from fmt (two %s:
 * the product, else "contract", and the last valid day before until). */
static void fmt_renewal(const struct ctx *x, const char *fmt, int64_t until, char *out, size_t n) {
  char date[64];
  fmt_date(x, until - 1, date, sizeof date);
  snprintf(out, n, fmt, isempty(x->co.product) ? x->t->renew_contract : x->co.product, date);
}

/* Product, contract id and last valid day. */
static int facts(struct page *p, const struct ctx *x) {
  char date[64];
  int r;
  fmt_date(x, x->co.expires_at - 1, date, sizeof date);
  if ((r = buf_puts(&p->b, "<dl>\n")) < 0)
    return r;
  if (!isempty(x->co.product) && ((r = page_el(p, "dt", NULL, x->t->product)) < 0 ||
                                  (r = page_el(p, "dd", NULL, x->co.product)) < 0))
    return r;
  if ((r = page_el(p, "dt", NULL, x->t->contract)) < 0 ||
      (r = page_el(p, "dd", "id=\"contract\"", x->co.id)) < 0 ||
      (r = page_el(p, "dt", NULL, x->t->valid_until)) < 0 || (r = page_el(p, "dd", NULL, date)) < 0)
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
  const struct strings *t = strings_accept(x->c);
  if (!h->keys) {
    simple_page(rep, t, 503, "error", t->disabled_h, t->disabled_p);
    return -1;
  }
  int r = token_verify(h->keys->keys, h->keys->n, token, x->now, &x->tok);
  if (r == -EKEYREJECTED) {
    log_notice(h->deps.log, "http: refused a link that no configured key signed (tampered or "
                            "signed with another key)");
    simple_page(rep, t, 403, "error", t->forbidden_h, t->forbidden_p);
    return -1;
  }
  if (r == -ETIME) {
    simple_page(rep, t, 410, "error", t->expired_h, t->expired_p);
    return -1;
  }
  if (r < 0 || !map_action(x->tok.action, x)) {
    simple_page(rep, t, 400, "error", t->invalid_h, t->invalid_p);
    return -1;
  }
  r = store_contract_get(h->deps.store, x->tok.contract_id, &x->co);
  if (r == -ENOENT) {
    simple_page(rep, t, 410, "error", t->gone_h, t->gone_p);
    return -1;
  }
  if (r < 0) {
    log_error(h->deps.log, "http: cannot read contract %s: %s", x->tok.contract_id,
              store_last_error(h->deps.store));
    simple_page(rep, t, 500, "error", t->error_h, t->error_p);
    return -1;
  }
  if (!isempty(x->co.customer_id)) {
    r = store_customer_get(h->deps.store, x->co.customer_id, &x->cu);
    x->have_cu = r >= 0;
  }
  x->locale = x->have_cu ? x->cu.locale : NULL;
  x->t = x->owner || isempty(x->locale) ? t : strings_for(x->locale);
  const char *tz = x->have_cu && !isempty(x->cu.tz) ? x->cu.tz : h->deps.cfg->daemon.time_zone;
  x->z = cal_zone(h->deps.cal, tz ? tz : "UTC");
  if (!x->z)
    x->z = cal_zone(h->deps.cal, "UTC");
  http_policy_load(h, &x->co, x->have_cu ? &x->cu : NULL, &x->pol);
  if (!x->unsubscribe && (r = link_key(x, token)) < 0) {
    simple_page(rep, x->t, 500, "error", x->t->error_h, x->t->error_p);
    return -1;
  }
  if (x->tok.action == TOKEN_RENEW) {
    int64_t start = 0;
    r = lifecycle_term_start(h->deps.store, &x->co, &start);
    if (r < 0) {
      log_error(h->deps.log, "http: cannot read the terms of contract %s: %s", x->co.id,
                store_last_error(h->deps.store));
      simple_page(rep, x->t, 500, "error", x->t->error_h, x->t->error_p);
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
    if ((r = radio(p, "reason", lifecycle_reason_name(i), x->t->reasons[i], false)) < 0)
      return r;
  return 0;
}

/* The confirmation form. problem: shown above it (422), or NULL. Returns the
 * status to answer with (409 when no choice is possible). */
static int form_page(struct ctx *x, const char *problem, struct page *p, unsigned *ret_status) {
  const struct strings *t = x->t;
  const char *h1, *intro, *button;
  bool danger = false;
  int r;
  const char *intro2 = NULL;
  char renewal[512];
  *ret_status = problem ? 422 : 200;
  switch (x->tok.action) {
  case TOKEN_RENEW:
    fmt_renewal(x, t->renew_p, x->renew_to, renewal, sizeof renewal);
    h1 = t->renew_h, intro = renewal, intro2 = t->renew_p2, button = t->renew_b;
    break;
  case TOKEN_DECLINE:
    h1 = t->decline_h, intro = t->decline_p, button = t->decline_b, danger = true;
    break;
  case TOKEN_SNOOZE:
    h1 = t->snooze_h, intro = t->snooze_p, button = t->snooze_b;
    break;
  case TOKEN_CALLBACK:
    h1 = t->call_h, intro = t->call_p, button = t->call_b;
    break;
  case TOKEN_UNSUBSCRIBE_EMAIL:
  case TOKEN_UNSUBSCRIBE_SMS:
    h1 = t->unsub_h, button = t->unsub_b;
    intro = x->tok.action == TOKEN_UNSUBSCRIBE_EMAIL ? t->unsub_email : t->unsub_sms;
    break;
  case TOKEN_OWNER_RENEWED:
    h1 = t->orenew_h, intro = t->orenew_p, button = t->orenew_b;
    break;
  case TOKEN_OWNER_LOST:
    h1 = t->olost_h, intro = t->olost_p, button = t->olost_b, danger = true;
    break;
  case TOKEN_OWNER_SNOOZE:
    h1 = t->osnooze_h, intro = t->osnooze_p, button = t->snooze_b;
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
      if ((r = page_el(p, "p", "class=\"err\"", t->snooze_none)) < 0)
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
        (r = textarea(p, "note", t->decline_note)) < 0)
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
      char date[64], label[160], value[8];
      fmt_date(x, until, date, sizeof date);
      snprintf(label, sizeof label, t->snooze_opts[i], date);
      snprintf(value, sizeof value, "%dd", snooze_days[i]);
      if ((r = radio(p, "snooze", value, label, first)) < 0)
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
        (r = radio(p, "when", "asap", t->call_asap, true)) < 0 ||
        (r = buf_puts(&p->b, "<label class=\"opt\"><input type=\"radio\" name=\"when\" "
                             "value=\"at\">")) < 0 ||
        (r = http_html_escape(&p->b, t->call_at)) < 0 ||
        (r = buf_printf(&p->b,
                        "<input type=\"datetime-local\" name=\"at\" min=\"%s\" "
                        "aria-label=\"time\"></label>\n</fieldset>\n",
                        min)) < 0 ||
        (r = textarea(p, "note", t->call_note)) < 0)
      return r;
    break;
  }
  case TOKEN_OWNER_RENEWED: {
    /* default: one more year, valid through the same day */
    struct cal_local l;
    cal_to_local(x->z, x->co.expires_at - 1, &l);
    if ((r = buf_puts(&p->b, "<label class=\"field\" for=\"expires_on\">")) < 0 ||
        (r = http_html_escape(&p->b, t->orenew_field)) < 0 ||
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
  if (page_begin(&p, "already", x->t->already_h) < 0 ||
      page_el(&p, "h1", NULL, x->t->already_h) < 0 ||
      page_pf(&p, NULL, x->t->already_p, when) < 0 || facts(&p, x) < 0 || page_end(&p, false) < 0) {
    buf_free(&p.b);
    http_reply_text(rep, 500, "out of memory\n");
    return;
  }
  page_reply(&p, rep, 200);
}

static void reply_state(struct ctx *x, bool refused, struct http_reply *rep) {
  const char *h1 = refused ? x->t->refused_h : x->t->already_h;
  struct page p = {.t = x->t};
  if (page_begin(&p, refused ? "refused" : "already", h1) < 0 || page_el(&p, "h1", NULL, h1) < 0 ||
      page_pf(&p, NULL, refused ? x->t->refused_p : x->t->already_state,
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
  const struct strings *t = x->t;
  char date[96] = "";
  const char *h1 = t->thanks, *p1 = NULL, *p2 = NULL;
  const char *fmt = NULL;
  char renewal[512];
  switch (x->tok.action) {
  case TOKEN_RENEW:
    fmt_renewal(x, t->renew_done, res->expires_at, renewal, sizeof renewal);
    p1 = renewal, p2 = t->renew_next;
    break;
  case TOKEN_DECLINE:
    p1 = t->decline_done;
    break;
  case TOKEN_SNOOZE:
    fmt = t->snooze_done;
    fmt_date(x, res->state_until, date, sizeof date);
    break;
  case TOKEN_CALLBACK:
    if (res->response.until_at) {
      fmt = t->call_done_at;
      fmt_datetime(x, res->response.until_at, date, sizeof date);
    } else
      p1 = t->call_done;
    p2 = t->call_paused;
    break;
  case TOKEN_UNSUBSCRIBE_EMAIL:
    h1 = t->unsub_done_h, p1 = t->unsub_done_email;
    break;
  case TOKEN_UNSUBSCRIBE_SMS:
    h1 = t->unsub_done_h, p1 = t->unsub_done_sms;
    break;
  case TOKEN_OWNER_RENEWED:
    h1 = t->done_h, fmt = t->orenew_done;
    fmt_date(x, res->expires_at - 1, date, sizeof date);
    break;
  case TOKEN_OWNER_LOST:
    h1 = t->done_h, p1 = t->olost_done;
    break;
  case TOKEN_OWNER_SNOOZE:
    h1 = t->done_h, fmt = t->osnooze_done;
    fmt_date(x, res->state_until, date, sizeof date);
    break;
  }
  struct page p = {.t = t};
  int r;
  if ((r = page_begin(&p, "done", h1)) < 0 ||
      (r = buf_puts(&p.b, "<p class=\"ok\" aria-hidden=\"true\">\xe2\x9c\x93</p>\n")) < 0 ||
      (r = page_el(&p, "h1", NULL, h1)) < 0 ||
      (r = fmt ? page_pf(&p, "id=\"next\"", fmt, date) : page_el(&p, "p", "id=\"next\"", p1)) < 0 ||
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
  static const char *const en_msgs[] = {"Please choose a reason.", "Please choose a date.",
                                        "Please enter the time for the call.",
                                        "Please enter a valid date."};
  static const char *const zh_msgs[] = {"请选择一个原因。", "请选择一个日期。", "请输入回电时间。",
                                        "请输入有效的日期。"};
  const char *const *m = x->t == &zh ? zh_msgs : en_msgs;
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
    reply_form_status(x, x->t->confirm_form, 400, rep);
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
      simple_page(rep, x->t, 409, "refused", x->t->refused_h, x->t->gone_p);
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
    reply_form(x, x->t->badvalue_h, rep);
    return;
  }
  if (r == -ENOENT) {
    simple_page(rep, x->t, 410, "error", x->t->gone_h, x->t->gone_p);
    return;
  }
  if (r < 0) {
    log_msg(h->deps.log, LOG_ERR, &lc, "http: recording link answer %s failed: %s",
            lifecycle_kind_to_string(x->kind), err);
    simple_page(rep, x->t, r == -EBUSY ? 503 : 500, "error", x->t->error_h, x->t->error_p);
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
      simple_page(rep, x.t, 200, "already", x.t->unsub_done_h, x.t->unsub_already);
      return;
    }
  } else {
    /* used already (for this message)? */
    struct find_key fk = {.key = x.key};
    int r = store_response_foreach_contract(h->deps.store, x.co.id, -1, find_key_cb, &fk);
    if (r < 0) {
      simple_page(rep, x.t, 500, "error", x.t->error_h, x.t->error_p);
      return;
    }
    if (fk.found.id) {
      reply_already(&x, fk.found.created_at, rep);
      return;
    }
  }
  if (x.tok.term != (uint32_t)x.co.term) {
    simple_page(rep, x.t, 410, "error", x.t->oldterm_h, x.t->oldterm_p);
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
