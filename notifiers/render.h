/* render: builds the message for one outbox row.
 *
 * Loads what the message talks about from the store (contract, customer,
 * sales owner, for owner escalations the term's history of sends and
 * answers, for ops alerts the dead row), assembles the template context as a
 * jansson object, renders the tier's template (Template=, default the tier
 * name) with the parts subject, text, html and sms through
 * notifiers/templates.h in the recipient's locale (customers: their own;
 * owners and ops: [Daemon] Locale=), and, for webhook rows,
 * builds the event body (JSON). Built-in English templates stand in when the template
 * directory has no template of that name, so a fresh install and the demo
 * work without a template directory. The email itself is built from the
 * message by notifiers/mail.h.
 *
 * Template context (every string may be missing when unknown):
 *   customer: id name email phone locale segment
 *   contract: id product currency value (ICU currency format, "€1,200.00")
 *             value_minor term expiry (last valid day in the customer's
 *             zone, ICU long date of the locale) expiry_iso (YYYY-MM-DD)
 *             expires_at (RFC 3339) sent_on (send day, reader's zone)
 *             days_left (core/locfmt.h: calendar days from the send day in
 *             the reader's zone to the last valid day) days_left_text
 *             ("1 day") days_left_in ("in 1 day") days_left_plural ("one")
 *             days_left_is ({"one": true}); after the last day also
 *             days_ago and its _text/_in/_plural/_is
 *   tier:     name step (0-based) repeat (step + 1) audience template
 *             escalated (true when an owner row went up to EscalateTo=)
 *   owner:    id name email phone of the owner the message goes to: the
 *             customer's sales owner, or for an escalation past
 *             EscalateAfter= the EscalateTo= owner (so "Hello {{owner.name}}"
 *             greets whoever reads it)
 *   account_owner: escalations only: the customer's own sales owner
 *   recipient: id name email phone of whom the message addresses (the
 *             customer, or the owner above)
 *   links:    customer: renew decline snooze callback unsubscribe
 *             owner: renewed lost snooze
 *   history:  owner tiers: [{tier step repeat channel audience status at}] of
 *             the term, responses: [{id kind source at reason detail until}]
 *             (until: snooze end / preferred callback time, RFC 3339),
 *             history_text (one line each)
 *   alert:    ops alerts: reminder_id tier channel recipient error attempts
 *   json:     the same strings of customer/contract/tier as JSON string
 *             literals ("json.customer_name"), for JSON body templates
 *   now:      RFC 3339
 * Links are [Daemon] PublicURL + "/r/<token>" ("/u/<token>" to unsubscribe);
 * tokens are signed with the first LinkKeyFile= key (notifiers/linkkey.h: one
 * key per line, the others still verify) and expire at linkkey_expiry().
 * Links are never made unsigned: without a readable key, customer email and
 * SMS fail to render (-ENOKEY, the row is retried, then dead-lettered with
 * the reason) and other messages have no links; sample data (config checks,
 * send-test) is signed with a throwaway key.
 *
 * Owns: the template directory handle, the link key and a cache of parsed
 * ladder snapshots (by id; one renderer serves one store). Borrows config, cal
 * and the store passed per call. Blocks on store reads and (first use)
 * template files. Never logs. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "config/config.h"
#include "core/cal.h"
#include "core/ladder.h"
#include "core/store.h"
#include "notifiers/notifier.h"

/* Tier name of ops alert rows (a dead row raised to [Ops] AlertChannel=);
 * their step is the dead row's id. */
#define RENDER_OPS_TIER "ops-alert"

/* One rendered message. Every string owned; NULL = not rendered / none. */
struct message {
  char *subject;            /* subject part (email), one line */
  char *text;               /* plain text part */
  char *html;               /* HTML part (email only) */
  char *sms;                /* SMS text: the sms part, else the text part */
  char *event;              /* webhook event body (JSON, compact), rendered for kind
                               NOTIFY_WEBHOOK only (NULL for email and SMS); its
                               "message" holds subject/text only when a template file
                               rendered them (webhooks get no built-in prose) */
  const char *event_type;   /* "reminder.due", "escalation.raised", "delivery.failed" (static) */
  json_t *data;             /* the template context (own reference) */
  char *locale;             /* locale used for rendering */
  char *to_name;            /* display name of the recipient */
  char *unsubscribe_url;    /* customer messages: one-click unsubscribe (RFC 8058) */
  char *template_name;      /* template rendered ("(built-in)" for the defaults) */
  unsigned customer_optout; /* the customer's OPTOUT_* bits as of rendering */
  char *suppressed;         /* why the recipient's address is suppressed (store.h,
                               suppressions), NULL = it is not: nothing may be sent */
};

void message_clear(struct message *m);

/* The SMS text as the provider gets it: the sms part (else the text part),
 * plus "\n" + footer (OptOutFooter=) for customer messages when footer is
 * not empty. Caller frees; NULL on -ENOMEM. */
char *message_sms_text(const struct message *m, const char *footer);

struct render;

/* Opens cfg->daemon.templates (a missing directory is not an error: the
 * built-in templates are used) and reads the link key (LinkKeyFile=; when
 * unreadable, customer email and SMS do not render). Borrows cfg and cal. */
int render_new(const struct config *cfg, struct cal *cal, struct render **ret, char *err,
               size_t errlen);
struct render *render_free(struct render *rd);
/* The template handle (NULL when the directory is missing). */
struct templates *render_templates(struct render *rd);
/* Renders every following message in locale (NULL or "" = the recipient's
 * own, the default), e.g. for `renewctl preview --locale`. 0 or -ENOMEM. */
int render_set_locale(struct render *rd, const char *locale);
/* True when a link key was loaded. */
bool render_has_link_key(const struct render *rd);

/* Renders the message for row (channel address kind `kind`) at now, and
 * looks the recipient up in the suppressions table (ret->suppressed). Returns
 * 0, -ENOENT (contract gone), -EINVAL (template error: message in err),
 * -ENOKEY (a customer email or SMS without a link key: message in err) or
 * -errno. *ret is filled on success (caller message_clear()s). */
int render_message(struct render *rd, struct store *store, const struct reminder *row,
                   enum notify_kind kind, int64_t now, struct message *ret, char *err,
                   size_t errlen);

/* True when an owner row of tier t at step goes to EscalateTo= instead of
 * the customer's owner (step >= EscalateAfter= > 0): the rule the planner
 * records the recipient by (core/planner.c planner_resolve()). */
bool render_escalated(const struct tier *t, int32_t step);

/* The owner id (NULL/"" = none), else the policy's FallbackOwner= when id
 * is missing or unknown. pol may be NULL. 0 (*ret filled; caller
 * owner_clear()s), -ENOENT or -errno. */
int render_owner_get(struct store *store, const struct policy *pol, const char *id,
                     struct owner *ret);

/* Renders tier tier_name / template_name for made-up sample data (customer
 * "Maximilian Mustermann-Schmidt", product "Enterprise Support Plan", 30
 * days left), for config checks and renewctl send-test. recipient may be
 * NULL. Same return values as render_message(). */
int render_sample(struct render *rd, const char *tier_name, const char *template_name,
                  enum audience audience, enum notify_kind kind, const char *recipient, int64_t now,
                  struct message *ret, char *err, size_t errlen);

/* Renders template NAME.PART (e.g. a BodyTemplate's "body") with data.
 * -ENOENT when no such template. Caller frees *ret. */
int render_template(struct render *rd, const char *name, const char *part, const char *locale,
                    json_t *data, char **ret, char *err, size_t errlen);

/* The tier called name in the contract's ladder snapshot (ladder_id), else
 * in the config's policies. *ret_policy receives a policy the caller frees
 * with policy_free() (NULL when the tier came from cfg); *ret_tier points
 * into it or into cfg. -ENOENT when there is no such tier. */
int render_find_tier(struct store *store, const struct config *cfg, const struct contract *c,
                     const char *name, struct policy **ret_policy, const struct tier **ret_tier);
