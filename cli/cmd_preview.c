/* renewctl preview: shows exactly what renewd would send for one contract and
 * tier on one channel, without sending anything or changing the store.
 *
 *   renewctl preview CONTRACT TIER [--channel C] [--locale L] [--audience A] [--step N]
 *                    [--at TIME]
 *
 * The message is rendered by the daemon's own renderer (notifiers/render.c)
 * for an outbox row built as the scheduler would (same idempotency key, so
 * the email Message-ID and webhook-id are the real ones), and formatted by
 * the channel's own code:
 *   smtp:    the complete MIME message as it goes over SMTP (mail_format(),
 *            the one builder the backend sends with; Date is now);
 *   sink:    the file the sink writes (the same email, or the SMS or webhook
 *            request file, by its Kind=);
 *   sms:     the text with the channel's OptOutFooter= and its segment count
 *            and encoding, then the provider request the backend would make;
 *   webhook: the request headers and body the backend would POST (signed
 *            when the channel's secrets are readable).
 * Headers of the output go to stdout; notes about what was assumed go to
 * stderr. With --json one object on stdout instead.
 *
 * Opens the store read-only. May block on the store and template files. */
#include <inttypes.h>
#include <time.h>

#include "cli/cli.h"
#include "notifiers/notifier.h"
#include "notifiers/mail.h"
#include "notifiers/render.h"
#include "notifiers/sink.h"
#include "notifiers/smstext.h"

/* Owner alert tiers that are not in any ladder (core/lifecycle.h records
 * them when a customer answers); they go to the owner. */
static const char *const owner_alert_tiers[] = {"callback", "renew-intent", "customer-message"};

static const struct notifier_ops *preview_backend(const char *type) {
  const struct notifier_ops *const all[] = {&notifier_sink_ops, &notifier_smtp_ops,
                                            &notifier_sms_ops, &notifier_webhook_ops};
  for (size_t i = 0; type && i < ELEMENTSOF(all); i++)
    if (streq(all[i]->type, type))
      return all[i];
  return NULL;
}

static void preview_usage(FILE *out) {
  fputs("Usage: renewctl preview CONTRACT TIER [--channel C] [--locale L] [--audience A]\n"
        "                        [--step N] [--at TIME]\n"
        "\n"
        "Show exactly what renewd would send for CONTRACT's tier TIER: the full MIME\n"
        "message for email, the text with the opt-out footer and its SMS segment count,\n"
        "or the webhook request. Nothing is sent and the store is not changed.\n"
        "\n"
        "  --channel C     channel to render for (default: the tier's first channel;\n"
        "                  for ops-alert the [Ops] AlertChannel=)\n"
        "  --locale L      render in locale L instead of the customer's\n"
        "  --audience A    customer or owner (default: the tier's Audience=; owner for\n"
        "                  callback, renew-intent, customer-message and ops-alert)\n"
        "  --step N        repeat index inside the tier (default 0); for owner alerts\n"
        "                  the response id, for ops-alert the dead reminder's id\n"
        "  --at TIME       render as of TIME (RFC 3339, or a date = 00:00 UTC) instead of\n"
        "                  now: days left, links and Date: as a send at TIME would have them\n"
        "  --json          one JSON object instead of the raw message\n",
        out);
}

/* The address the row would go to. Borrowed from the records or cfg. */
static const char *pick_recipient(const struct config *cfg, const struct config_channel *ch,
                                  enum notify_kind kind, bool ops_alert, bool owner,
                                  const struct customer *cu, const struct owner *ow) {
  if (kind == NOTIFY_WEBHOOK)
    return owner && ow && !isempty(ow->webhook) && !ops_alert ? ow->webhook
                                                              : config_channel_get(ch, "URL");
  if (ops_alert)
    return config_channel_get(&cfg->ops, kind == NOTIFY_SMS ? "Phone" : "Email");
  if (owner)
    return !ow ? NULL : kind == NOTIFY_SMS ? ow->phone : ow->email;
  return !cu ? NULL : kind == NOTIFY_SMS ? cu->phone : cu->email;
}

/* The SMS text as the sms backend sends it (message_sms_text() with the
 * channel's OptOutFooter=). Caller frees. */
static char *sms_text(const struct config_channel *ch, const struct message *m) {
  return message_sms_text(m, config_channel_get(ch, "OptOutFooter"));
}

/* Replaces the value of every header that came from the channel's
 * HeadersFile= (a credential) with a note: a preview is pasted into tickets
 * and chats, the credential must not travel with it. */
static void hide_secret_headers(const struct config_channel *ch, struct curl_slist *headers) {
  struct curl_slist *secret = NULL;
  (void)notify_append_secret_headers(ch, &secret, NULL);
  for (struct curl_slist *h = headers; h; h = h->next)
    for (const struct curl_slist *k = secret; k; k = k->next) {
      if (!h->data || !streq(h->data, k->data))
        continue;
      char *shown =
          strprintf("%.*s: (from HeadersFile=, not shown)", (int)strcspn(h->data, ":"), h->data);
      if (shown) {
        explicit_bzero(h->data, strlen(h->data));
        free(h->data);
        h->data = shown;
      }
      break;
    }
  notify_headers_free(secret);
}

/* Runs the backend's own prepare() on an easy handle that is never
 * performed, to show the request it would make. 0, or < 0 with err set. */
static int backend_request(const struct notifier_ops *ops, const struct config_channel *ch,
                           const struct notify_env *env, const struct notify_request *req,
                           struct notify_xfer *x, char *err, size_t errlen) {
  struct config_errors errs = {0};
  void *state = NULL;
  int r = ops->new (ch, env, &state, &errs);
  if (r < 0) {
    snprintf(err, errlen, "%s", errs.n ? errs.v[0].message : strerror(-r));
    config_errors_clear(&errs);
    return r;
  }
  CURL *easy = curl_easy_init();
  struct notify_result res = {0};
  if (!easy)
    r = -ENOMEM;
  else if ((r = ops->prepare(state, req, easy, x, &res)) < 0)
    snprintf(err, errlen, "%s", *res.error ? res.error : strerror(-r));
  curl_easy_cleanup(easy);
  ops->free(state);
  if (r >= 0)
    hide_secret_headers(ch, x->headers);
  return r;
}

static void xfer_done(struct notify_xfer *x) {
  curl_slist_free_all(x->headers);
  curl_slist_free_all(x->recipients);
  buf_free(&x->request);
  buf_free(&x->response);
  if (x->backend_free && x->backend_data)
    x->backend_free(x->backend_data);
  *x = (struct notify_xfer){0};
}

static json_t *headers_json(const struct curl_slist *l) {
  json_t *a = json_array();
  for (; a && l; l = l->next)
    json_array_append_new(a, json_string(l->data));
  return a;
}

int cmd_preview(struct cli *c, int argc, char **argv) {
  enum { OPT_CHANNEL = 0x3000, OPT_LOCALE, OPT_AUDIENCE, OPT_STEP, OPT_AT };
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"channel", required_argument, NULL, OPT_CHANNEL},
      {"locale", required_argument, NULL, OPT_LOCALE},
      {"audience", required_argument, NULL, OPT_AUDIENCE},
      {"step", required_argument, NULL, OPT_STEP},
      {"at", required_argument, NULL, OPT_AT},
      {0},
  };
  const char *channel = NULL, *locale = NULL, *audience_opt = NULL;
  int64_t step = 0, at = 0;
  int opt, y, mo, d;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case CLI_OPT_HELP:
      preview_usage(stdout);
      return 0;
    case OPT_CHANNEL:
      channel = optarg;
      break;
    case OPT_LOCALE:
      locale = optarg;
      break;
    case OPT_AUDIENCE:
      if (!streq(optarg, "customer") && !streq(optarg, "owner"))
        return cli_usage_error("preview", "--audience: expected customer or owner");
      audience_opt = optarg;
      break;
    case OPT_STEP:
      if (parse_int64(optarg, &step) < 0 || step < 0 || step > INT32_MAX)
        return cli_usage_error("preview", "--step: expected a non-negative number");
      break;
    case OPT_AT:
      if (cal_parse_rfc3339(optarg, &at) < 0) {
        if (cal_parse_date(optarg, &y, &mo, &d) < 0)
          return cli_usage_error("preview", "--at: expected an RFC 3339 time or a date");
        struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d};
        at = (int64_t)timegm(&tm);
      }
      break;
    default:
      return cli_usage_error("preview", "invalid option");
    }
  }
  if (argc - optind != 2)
    return cli_usage_error("preview", "expected CONTRACT TIER");
  const char *contract_id = argv[optind], *tier_name = argv[optind + 1];

  const struct config *cfg = NULL;
  int ex = cli_config(c, &cfg);
  if (ex)
    return ex;
  if (!cfg || cfg->n_channels == 0) {
    cli_error("preview needs a configuration with [Channel] sections (see --config)");
    return EX_CONFIG;
  }
  struct cal *cal = cli_cal(c);
  if (!cal)
    return EX_OSERR;
  _cleanup_(cli_store_freep) struct store *store = NULL;
  if ((ex = cli_open_store(c, STORE_READONLY | STORE_NO_CREATE, &store)))
    return ex;

  struct contract k = {0};
  struct customer cu = {0};
  struct owner ow = {0};
  struct policy *pol = NULL;
  struct render *rd = NULL;
  struct message msg = {0};
  struct notify_xfer x = {0};
  _cleanup_free_ char *out = NULL, *text = NULL;
  char err[512] = "";
  bool have_cu = false, have_ow = false;
  int r;
  ex = EX_DATAERR;

  if ((r = store_contract_get(store, contract_id, &k)) < 0) {
    cli_error(r == -ENOENT ? "no contract %s" : "contract %s: %s", contract_id, strerror(-r));
    goto out;
  }
  have_cu = k.customer_id && store_customer_get(store, k.customer_id, &cu) >= 0;
  bool ops_alert = streq(tier_name, RENDER_OPS_TIER);
  const struct tier *t = NULL;
  if (!ops_alert)
    (void)render_find_tier(store, cfg, &k, tier_name, &pol, &t);
  bool owner_alert = false;
  for (size_t i = 0; i < ELEMENTSOF(owner_alert_tiers); i++)
    owner_alert = owner_alert || streq(tier_name, owner_alert_tiers[i]);
  if (!t && !ops_alert && !owner_alert)
    fprintf(stderr,
            "renewctl: note: tier '%s' is not in contract %s's ladder; rendering it "
            "anyway (template '%s')\n",
            tier_name, k.id, tier_name);

  if (!channel)
    channel = ops_alert ? cfg->alert_channel : t && t->n_channels ? t->channels[0] : NULL;
  if (!channel && owner_alert) {
    /* the channels of the first owner tier, as the lifecycle uses */
    const struct policy *p =
        pol ? pol : config_policy_for_segment(cfg, have_cu ? cu.segment : NULL);
    for (size_t i = 0; p && i < p->n_tiers && !channel; i++)
      if (p->tiers[i].audience == AUDIENCE_OWNER && p->tiers[i].n_channels)
        channel = p->tiers[i].channels[0];
  }
  if (!channel) {
    cli_error("no channel for tier %s: name one with --channel", tier_name);
    ex = EX_USAGE;
    goto out;
  }
  const struct config_channel *ch = config_channel(cfg, channel);
  const struct notifier_ops *ops = ch ? preview_backend(ch->type) : NULL;
  if (!ch || !ops) {
    cli_error(ch ? "channel %s: Type=%s is not known" : "no [Channel %s] in the configuration",
              channel, ch ? ch->type : "");
    ex = EX_CONFIG;
    goto out;
  }
  bool owner = audience_opt ? streq(audience_opt, "owner")
               : t          ? t->audience == AUDIENCE_OWNER
                            : ops_alert || owner_alert;

  /* the owner: the customer's, else the policy's fallback owner; past
   * EscalateAfter= the EscalateTo= owner, as the scheduler records it */
  const struct policy *opol =
      pol ? pol : config_policy_for_segment(cfg, have_cu ? cu.segment : NULL);
  const char *owner_id = have_cu ? cu.owner_id : NULL;
  if (owner && !ops_alert && render_escalated(t, (int32_t)step))
    owner_id = t->escalate_to;
  have_ow = render_owner_get(store, opol, owner_id, &ow) >= 0;
  enum notify_kind kind = notify_channel_kind(ops, ch);
  const char *recipient =
      pick_recipient(cfg, ch, kind, ops_alert, owner, have_cu ? &cu : NULL, have_ow ? &ow : NULL);
  if (isempty(recipient) && ops_alert) {
    cli_error("[Ops] %s= is not set: channel %s needs it for ops alerts",
              kind == NOTIFY_SMS ? "Phone" : "Email", channel);
    goto out;
  }
  if (isempty(recipient)) {
    cli_error("%s %s has no %s for channel %s", owner ? "the owner of" : "the customer of", k.id,
              kind == NOTIFY_SMS       ? "phone number"
              : kind == NOTIFY_WEBHOOK ? "URL"
                                       : "email address",
              channel);
    goto out;
  }

  struct reminder row = {
      .contract_rowid = k.rowid,
      .contract_id = k.id,
      .term = k.term,
      .tier = (char *)tier_name,
      .step = (int32_t)step,
      .channel = (char *)channel,
      .audience = (char *)(owner ? "owner" : "customer"),
      .recipient = (char *)recipient,
      .status = REMINDER_SENDING,
      .attempts = 1,
  };
  store_idem_key(row.contract_id, row.term, row.tier, row.step, row.channel, row.audience,
                 row.idem_key);
  int64_t now = at ? at : (int64_t)time(NULL);
  row.due_at = row.created_at = row.updated_at = now;

  if ((r = render_new(cfg, cal, &rd, err, sizeof err)) < 0) {
    cli_error("templates: %s", *err ? err : strerror(-r));
    ex = EX_CONFIG;
    goto out;
  }
  if (locale && render_set_locale(rd, locale) < 0) {
    ex = EX_OSERR;
    goto out;
  }
  if ((r = render_message(rd, store, &row, kind, now, &msg, err, sizeof err)) < 0) {
    cli_error("cannot render %s/%s: %s", k.id, tier_name, *err ? err : strerror(-r));
    goto out;
  }
  fprintf(stderr, "renewctl: %s %s via %s (Type=%s) to %s, template %s, locale %s, key %s\n", k.id,
          tier_name, channel, ch->type, recipient, msg.template_name, msg.locale, row.idem_key);

  struct notify_request req = {.row = &row, .msg = &msg, .kind = kind, .now = now};
  struct notify_env env = {.cfg = cfg, .templates = render_templates(rd)};
  json_t *j =
      c->json ? json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "contract", k.id, "tier",
                          tier_name, "channel", channel, "type", ch->type, "audience", row.audience,
                          "recipient", recipient, "idem_key", row.idem_key, "locale", msg.locale)
              : NULL;
  if (c->json && !j) {
    ex = EX_OSERR;
    goto out;
  }
  size_t len = 0;
  if (streq(ch->type, "smtp") || streq(ch->type, "sink")) {
    r = streq(ch->type, "smtp") ? mail_format_channel(ch, &req, &out, &len, err, sizeof err)
                                : sink_format(ch, &req, &out, &len, err, sizeof err);
    if (r < 0) {
      cli_error("cannot format the message: %s", *err ? err : strerror(-r));
      json_decref(j);
      goto out;
    }
    if (j)
      json_object_set_new(j, "message", json_string(out));
    else
      fwrite(out, 1, strlen(out), stdout);
  } else if (streq(ch->type, "sms")) {
    struct smstext_info info = {0};
    if (!(text = sms_text(ch, &msg)) || smstext_segments(text, &info) < 0) {
      cli_error("the SMS text is not valid UTF-8");
      json_decref(j);
      goto out;
    }
    int q = backend_request(ops, ch, &env, &req, &x, err, sizeof err);
    if (j) {
      json_object_set_new(j, "text", json_string(text));
      json_object_set_new(j, "segments", json_integer((json_int_t)info.segments));
      json_object_set_new(j, "encoding", json_string(smstext_encoding_to_string(info.encoding)));
      json_object_set_new(j, "characters", json_integer((json_int_t)info.chars));
      if (q >= 0) {
        json_object_set_new(j, "headers", headers_json(x.headers));
        json_object_set_new(j, "body",
                            json_stringn(x.request.data ? x.request.data : "", x.request.len));
      }
    } else {
      printf("%s\n\n-- %zu segment%s, %s, %zu characters\n", text, info.segments,
             info.segments == 1 ? "" : "s", smstext_encoding_to_string(info.encoding), info.chars);
      if (q >= 0) {
        printf("\n-- provider request: POST %s\n", config_channel_get(ch, "URL"));
        for (const struct curl_slist *l = x.headers; l; l = l->next)
          printf("%s\n", l->data);
        printf("\n%.*s\n", (int)x.request.len, x.request.data ? x.request.data : "");
      }
    }
    if (q < 0)
      fprintf(stderr, "renewctl: note: no provider request shown: %s\n", err);
  } else {
    /* webhook (and any other curl backend): its own request */
    if ((r = backend_request(ops, ch, &env, &req, &x, err, sizeof err)) < 0) {
      fprintf(stderr, "renewctl: note: %s; showing the unsigned event body\n", err);
      if (j)
        json_object_set_new(j, "body", json_string(msg.event ? msg.event : ""));
      else
        printf("%s\n", msg.event ? msg.event : "");
    } else if (j) {
      json_object_set_new(j, "headers", headers_json(x.headers));
      json_object_set_new(j, "body",
                          json_stringn(x.request.data ? x.request.data : "", x.request.len));
    } else {
      printf("POST %s\n", recipient);
      for (const struct curl_slist *l = x.headers; l; l = l->next)
        printf("%s\n", l->data);
      printf("\n%.*s\n", (int)x.request.len, x.request.data ? x.request.data : "");
    }
  }
  ex = j ? (cli_json_print(j, stdout) ? EX_IOERR : 0) : 0;
  json_decref(j);
out:
  xfer_done(&x);
  message_clear(&msg);
  render_free(rd);
  policy_free(pol);
  owner_clear(&ow);
  customer_clear(&cu);
  contract_clear(&k);
  return ex;
}
