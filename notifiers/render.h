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
 * work without a template directory. Also formats a complete RFC 5322
 * message (render_rfc5322()) for the Maildir sink and the SMTP backend.
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
 *   owner:    id name email phone
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
 * key per line, the others still verify) and expire at linkkey_expiry();
 * without a readable key they are the placeholder "unsigned".
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

/* From: of messages when the channel sets none. */
#define RENDER_DEFAULT_FROM "renewd <renewd@localhost.localdomain>"

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
};

void message_clear(struct message *m);

struct render;

/* Opens cfg->daemon.templates (a missing directory is not an error: the
 * built-in templates are used) and reads the link key (LinkKeyFile=; when
 * unreadable links carry the placeholder token). Borrows cfg and cal. */
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

/* Renders the message for row (channel address kind `kind`) at now. Returns
 * 0, -ENOENT (contract gone), -EINVAL (template error: message in err) or
 * -errno. *ret is filled on success (caller message_clear()s). */
int render_message(struct render *rd, struct store *store, const struct reminder *row,
                   enum notify_kind kind, int64_t now, struct message *ret, char *err,
                   size_t errlen);

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

/* Formats a complete RFC 5322 message (CRLF line ends): From (from, "Name
 * <addr>" or a bare address; NULL = RENDER_DEFAULT_FROM), To,
 * Subject (RFC 2047), Date (now), Message-ID <rk-HEX@renewd> derived from
 * the idempotency key, MIME-Version, X-Renewd-Contract/-Tier/-Channel/-Step/
 * -Audience, List-Unsubscribe(-Post) for customer emails; body text/plain
 * (quoted-printable, UTF-8), or multipart/alternative text+html when html
 * exists. For kind SMS the body is the SMS text; for WEBHOOK the event JSON.
 * extra_headers (NULL or CRLF-separated lines without the final CRLF) are
 * added verbatim. Caller frees *ret. Returns 0, -EINVAL or -ENOMEM. */
/* True when from ("Name <addr>" or "addr") can be a From: header. */
bool render_from_valid(const char *from);

int render_rfc5322(const struct message *m, const struct reminder *row, enum notify_kind kind,
                   const char *from, const char *extra_headers, int64_t now, char **ret);
