/* dispatch_setup: the channel side of the dispatcher that needs no event
 * loop: the backend table, the settings every channel has, config checks
 * (dispatcher_check_config(): keys, values, the link key, and every tier
 * rendered with sample data through each channel that may carry it), and renewctl
 * send-test (dispatch_send_test()). See dispatch.h.
 *
 * Owns nothing beyond a call. Blocks: reads templates and secrets; send-test
 * performs one network transfer (bounded by the channel's Timeout=). */
#include "notifiers/dispatch.h"
#include "notifiers/dispatch_internal.h"

#include <inttypes.h>
#include <sys/random.h>

#include "core/util.h"
#include "notifiers/linkkey.h"
#include "notifiers/notifier.h"
#include "notifiers/mail.h"
#include "notifiers/render.h"
#include "notifiers/smstext.h"

/* THE BACKEND TABLE: one line per channel Type= (adding a channel type adds
 * a file and a line here). Type=smtp: notifiers/smtp.c adds
 * &notifier_smtp_ops. */
static const struct notifier_ops *const notifier_backends[] = {
    &notifier_sink_ops,
    &notifier_webhook_ops,
    &notifier_sms_ops,
    &notifier_smtp_ops,
};

const struct notifier_ops *dispatch_backend_for(const char *type) {
  for (size_t i = 0; type && i < ELEMENTSOF(notifier_backends); i++)
    if (streq(notifier_backends[i]->type, type))
      return notifier_backends[i];
  return NULL;
}

#define SAMPLE_NOW INT64_C(1798761600) /* 2027-01-01: sample data is dated, not timed */

/* ---- settings ------------------------------------------------------------------------ */

int dispatch_parse_settings(const struct config_channel *ch, const struct notifier_ops *ops,
                            struct chan_settings *ret, struct config_errors *errs) {
  struct chan_settings s = {
      .max_concurrent = ops && ops->send ? DEFAULT_SYNC_BATCH : DEFAULT_MAX_CONCURRENT,
      .connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT * 1000,
      .timeout_ms = DEFAULT_TIMEOUT * 1000,
      .retry_base = DEFAULT_RETRY_BASE,
      .retry_max = DEFAULT_RETRY_MAX,
      .max_attempts = DEFAULT_MAX_ATTEMPTS,
      .failure_threshold = DEFAULT_FAILURE_THRESHOLD,
      .probe_interval = DEFAULT_PROBE_INTERVAL,
  };
  int r = 0;
  const struct config_kv *kv;
  int64_t v;
  struct {
    const char *key;
    int64_t min, max;
  } ints[] = {
      {"MaxConcurrent", 1, 1024},       {"MaxAttempts", 1, 1000},
      {"FailureThreshold", 1, 1000000}, {"RatePerSecond", 1, 1000000},
      {"RatePerMinute", 1, 60000000},
  };
  double per_s = 0, per_m = 0;
  for (size_t i = 0; i < ELEMENTSOF(ints); i++) {
    if (!(kv = config_channel_lookup(ch, ints[i].key)))
      continue;
    if (parse_int64(kv->value, &v) < 0 || v < ints[i].min || v > ints[i].max) {
      r = notify_error(errs, ch, kv, "expected a whole number %" PRId64 "..%" PRId64, ints[i].min,
                       ints[i].max);
      continue;
    }
    if (i == 0)
      s.max_concurrent = (unsigned)v;
    else if (i == 1)
      s.max_attempts = (int32_t)v;
    else if (i == 2)
      s.failure_threshold = (unsigned)v;
    else if (i == 3)
      per_s = (double)v;
    else
      per_m = (double)v / 60.0;
  }
  s.rate = per_s > 0 && per_m > 0 ? MIN(per_s, per_m) : per_s > 0 ? per_s : per_m;
  struct {
    const char *key;
    int64_t min, max;
  } spans[] = {
      {"ConnectTimeout", 1, 600}, {"Timeout", 1, 3600},        {"RetryBase", 1, 86400},
      {"RetryMax", 1, 7 * 86400}, {"ProbeInterval", 1, 86400},
  };
  for (size_t i = 0; i < ELEMENTSOF(spans); i++) {
    if (!(kv = config_channel_lookup(ch, spans[i].key)))
      continue;
    if (config_parse_timespan(kv->value, &v) < 0 || v < spans[i].min || v > spans[i].max) {
      r = notify_error(errs, ch, kv, "expected a time span between %" PRId64 "s and %" PRId64 "s",
                       spans[i].min, spans[i].max);
      continue;
    }
    switch (i) {
    case 0:
      s.connect_timeout_ms = (long)v * 1000;
      break;
    case 1:
      s.timeout_ms = (long)v * 1000;
      break;
    case 2:
      s.retry_base = v;
      break;
    case 3:
      s.retry_max = v;
      break;
    default:
      s.probe_interval = v;
      break;
    }
  }
  if (s.retry_max < s.retry_base && (kv = config_channel_lookup(ch, "RetryMax")))
    r = notify_error(errs, ch, kv, "must not be shorter than RetryBase=");
  if (r >= 0)
    *ret = s;
  return r;
}

/* ---- config checks ---------------------------------------------------------------- */

bool dispatch_tier_uses(const struct tier *t, const char *chname) {
  for (size_t i = 0; i < t->n_channels; i++)
    if (streq(t->channels[i], chname))
      return true;
  for (size_t i = 0; i < t->n_fallback; i++)
    if (streq(t->fallback[i], chname))
      return true;
  return false;
}

/* Renders every tier that may use ch with sample data and lets the backend
 * judge the result (SMS segment limits), and catches template errors. */
static int check_samples(const struct config *cfg, struct render *rd,
                         const struct config_channel *ch, const struct notifier_ops *ops,
                         int64_t now, struct config_errors *errs) {
  int r = 0;
  enum notify_kind kind = ops->kind;
  for (size_t p = 0; p < cfg->n_policies; p++) {
    const struct policy *pol = cfg->policies[p];
    for (size_t k = 0; k < pol->n_tiers; k++) {
      const struct tier *t = &pol->tiers[k];
      if (!dispatch_tier_uses(t, ch->name))
        continue;
      struct message m = {0};
      char err[512] = "";
      int q = render_sample(rd, t->name, t->template_name ? t->template_name : t->name, t->audience,
                            kind, NULL, now, &m, err, sizeof err);
      if (q < 0)
        r = notify_error(errs, ch, NULL, "tier '%s': template '%s' does not render: %s", t->name,
                         t->template_name ? t->template_name : t->name, err);
      else if (ops->check_message && ops->check_message(ch, &m, err, sizeof err) < 0)
        r = notify_error(errs, ch, NULL, "tier '%s' (sample data): %s", t->name, err);
      message_clear(&m);
    }
  }
  if (cfg->alert_channel && streq(cfg->alert_channel, ch->name)) {
    struct message m = {0};
    char err[512] = "";
    if (render_sample(rd, RENDER_OPS_TIER, RENDER_OPS_TIER, AUDIENCE_OWNER, kind, NULL, now, &m,
                      err, sizeof err) < 0)
      r = notify_error(errs, ch, NULL, "ops alert template does not render: %s", err);
    else if (ops->check_message && ops->check_message(ch, &m, err, sizeof err) < 0)
      r = notify_error(errs, ch, NULL, "ops alert (sample data): %s", err);
    message_clear(&m);
  }
  return r;
}

static int check_config_with(const struct config *cfg, struct cal *cal,
                             struct config_errors *errs) {
  if (!cfg)
    return -EINVAL;
  int r = linkkeys_check_config(cfg, errs);
  if (r == -ENOMEM)
    return r;
  struct render *rd = NULL;
  char err[512] = "";
  int q = render_new(cfg, cal, &rd, err, sizeof err);
  if (q < 0) {
    config_errors_add(errs, cfg->n_files ? cfg->files[0] : "?", 0, "Templates=: %s",
                      *err ? err : strerror(-q));
    return -EINVAL;
  }
  struct notify_env env = {.cfg = cfg, .templates = render_templates(rd)};
  for (size_t i = 0; i < cfg->n_channels; i++) {
    const struct config_channel *ch = &cfg->channels[i];
    const struct notifier_ops *ops = dispatch_backend_for(ch->type);
    if (!ops) {
      r = notify_error(errs, ch, NULL, "Type=%s: no such backend in this build of renewd",
                       ch->type ? ch->type : "(none)");
      continue;
    }
    struct chan_settings s;
    if (ops->check_config(ch, &env, errs) < 0)
      r = -EINVAL;
    if (dispatch_parse_settings(ch, ops, &s, errs) < 0)
      r = -EINVAL;
    if (check_samples(cfg, rd, ch, ops, SAMPLE_NOW, errs) < 0)
      r = -EINVAL;
  }
  const struct config_kv *okv;
  if ((okv = config_channel_lookup(&cfg->ops, "Email")) && !mail_address_valid(okv->value))
    r = notify_error(errs, &cfg->ops, okv, "expected an email address");
  if ((okv = config_channel_lookup(&cfg->ops, "Phone")) && !smstext_is_e164(okv->value))
    r = notify_error(errs, &cfg->ops, okv, "expected an E.164 number (+4915112345678)");
  if (cfg->alert_channel) {
    const struct config_channel *ach = config_channel(cfg, cfg->alert_channel);
    const struct notifier_ops *ops = ach ? dispatch_backend_for(ach->type) : NULL;
    if (ops && ops->kind == NOTIFY_SMS && !config_channel_get(&cfg->ops, "Phone"))
      r = notify_error(errs, &cfg->ops, NULL,
                       "AlertChannel=%s is an SMS channel: set Phone=", cfg->alert_channel);
    if (ach && streq_ptr(ach->type, "smtp") && !config_channel_get(&cfg->ops, "Email"))
      r = notify_error(errs, &cfg->ops, NULL,
                       "AlertChannel=%s is an email channel: set Email=", cfg->alert_channel);
  }
  render_free(rd);
  return r;
}

int dispatcher_check_config(const struct config *cfg, struct config_errors *errs) {
  struct cal *cal = NULL;
  int r = cal_new(&cal);
  if (r < 0)
    return r;
  r = check_config_with(cfg, cal, errs);
  cal_free(cal);
  return r;
}

/* ---- renewctl send-test ----------------------------------------------------------------- */

static void errs_to_string(const struct config_errors *e, char *err, size_t errlen) {
  if (!err || !errlen)
    return;
  err[0] = 0;
  size_t off = 0;
  for (size_t i = 0; i < e->n && off < errlen; i++) {
    int k = snprintf(err + off, errlen - off, "%s%s:%u: %s", i ? "\n" : "", e->v[i].file,
                     e->v[i].line, e->v[i].message);
    if (k < 0)
      break;
    off += (size_t)k;
  }
}

int dispatch_send_test(const struct config *cfg, struct cal *cal, const char *channel,
                       const char *to, int64_t now, struct notify_result *ret, char *err,
                       size_t errlen) {
  if (!cfg || !cal || isempty(channel) || isempty(to) || !ret)
    return -EINVAL;
  const struct config_channel *cc = config_channel(cfg, channel);
  if (!cc) {
    snprintf(err, errlen, "no [Channel %s] in the configuration", channel);
    return -ENOENT;
  }
  const struct notifier_ops *ops = dispatch_backend_for(cc->type);
  if (!ops) {
    snprintf(err, errlen, "[Channel %s]: Type=%s has no backend in this build", channel,
             cc->type ? cc->type : "(none)");
    return -EOPNOTSUPP;
  }
  struct config_errors errs = {0};
  struct render *rd = NULL;
  void *state = NULL;
  struct chan_settings set;
  struct message msg = {0};
  struct notify_xfer nx = {0};
  CURL *easy = NULL;
  int r = render_new(cfg, cal, &rd, err, errlen);
  if (r < 0)
    goto out;
  struct notify_env env = {.cfg = cfg, .templates = render_templates(rd)};
  if ((r = ops->check_config(cc, &env, &errs)) < 0 ||
      (r = dispatch_parse_settings(cc, ops, &set, &errs)) < 0 ||
      (r = ops->new (cc, &env, &state, &errs)) < 0) {
    errs_to_string(&errs, err, errlen);
    goto out;
  }
  const struct tier *t = NULL;
  for (size_t p = 0; p < cfg->n_policies && !t; p++)
    for (size_t k = 0; k < cfg->policies[p]->n_tiers && !t; k++)
      if (dispatch_tier_uses(&cfg->policies[p]->tiers[k], channel))
        t = &cfg->policies[p]->tiers[k];
  enum notify_kind kind = ops->send ? notify_kind_of_recipient(to) : ops->kind;
  const char *tier = t ? t->name : "notice";
  r = render_sample(rd, tier, t && t->template_name ? t->template_name : tier,
                    t ? t->audience : AUDIENCE_CUSTOMER, kind, to, now, &msg, err, errlen);
  if (r < 0)
    goto out;
  struct reminder row = {
      .contract_id = (char *)"C-2027-000123",
      .term = 1,
      .tier = (char *)tier,
      .channel = (char *)channel,
      .audience = (char *)(t && t->audience == AUDIENCE_OWNER ? "owner" : "customer"),
      .recipient = (char *)to,
      .attempts = 1,
  };
  uint8_t rnd[16];
  if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
    memset(rnd, 0x5a, sizeof rnd);
  char *p = row.idem_key + snprintf(row.idem_key, sizeof row.idem_key, "rk-");
  for (size_t i = 0; i < sizeof rnd; i++)
    p += snprintf(p, 3, "%02x", rnd[i]);
  *ret = (struct notify_result){0};
  char why[512] = "";
  if (ops->check_message && ops->check_message(cc, &msg, why, sizeof why) < 0) {
    ret->status = NOTIFY_PERMANENT;
    snprintf(ret->error, sizeof ret->error, "%s", why);
    r = 0;
    goto out;
  }
  struct notify_request req = {.row = &row, .msg = &msg, .kind = kind, .now = now};
  if (ops->send) {
    ops->send(state, &req, ret);
    if (ret->status == NOTIFY_SENT && ops->flush && ops->flush(state, why, sizeof why) < 0) {
      ret->status = NOTIFY_TRANSIENT;
      snprintf(ret->error, sizeof ret->error, "%s", why);
    }
    r = 0;
    goto out;
  }
  if (!(easy = curl_easy_init())) {
    r = -ENOMEM;
    goto out;
  }
  nx.now = now;
  dispatch_easy_common(easy, &set, &nx, NULL);
  if (ops->prepare(state, &req, easy, &nx, ret) < 0) {
    r = 0;
    goto out;
  }
  dispatch_easy_wire(easy, &nx);
  CURLcode code = curl_easy_perform(easy);
  if (nx.refused) {
    ret->status = NOTIFY_PERMANENT;
    snprintf(ret->error, sizeof ret->error, "%s", nx.refused_why);
  } else
    ops->finish(state, &req, easy, &nx, code, ret);
  r = 0;
out:
  if (easy)
    curl_easy_cleanup(easy);
  dispatch_nx_done(&nx);
  message_clear(&msg);
  if (state)
    ops->free(state);
  render_free(rd);
  config_errors_clear(&errs);
  return r;
}
