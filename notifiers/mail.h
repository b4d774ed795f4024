/* mail: the one email a row becomes, for every channel that writes email.
 *
 * The SMTP backend sends it, the Maildir sink writes it, `renewctl preview`
 * prints it and the tests parse it: all through mail_format(), so what the
 * demo shows is byte for byte what an SMTP server receives (Date aside,
 * which is the send instant). It takes the rendered message (render.h), the
 * outbox row and the channel's mail settings:
 *
 *   From=Example Renewals <renewals@example.com>
 *   ReplyTo=renewals@example.com        (optional)
 *   Calendar=yes                        (.ics deadline / meeting part)
 *   CalendarAlarm=-P1D                  (RFC 5545 duration, or none)
 *
 * and serializes through notifiers/email.h: multipart/alternative text +
 * HTML, inside multipart/mixed with a text/calendar part: for customer
 * reminders and owner escalations whose contract has not expired yet a
 * METHOD:PUBLISH all-day deadline event (core/ics.h ics_deadline) with an
 * alarm; for the owner "callback" tier a METHOD:REQUEST meeting at the
 * customer's preferred time (ics_meeting_request). The Message-ID is derived
 * from the row's idempotency key, so a retried or recovered send keeps it;
 * mail_key_token() is that key's address-safe form, which a VERP envelope
 * sender (mail_return_path()) carries too. Customer messages get a
 * Feedback-ID: (mail_feedback_id()) next to List-Unsubscribe.
 *
 * Pure: no I/O, no clock reads; never logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "notifiers/notifier.h"

/* From: of the sink's messages when its section names none. */
#define MAIL_DEFAULT_FROM "renewd <renewd@localhost.localdomain>"

/* The mail keys of one [Channel] section. Strings owned. */
struct mail_settings {
  char *from_name; /* From= display name, or NULL */
  char *from_addr; /* From= address (also the SMTP envelope sender) */
  char *reply_to;  /* ReplyTo= as written, or NULL */
  bool calendar;   /* Calendar= (default yes) */
  char *alarm;     /* CalendarAlarm=, NULL = the ics default (-P1D), "" = no alarm */
};

/* Parses From=, ReplyTo=, Calendar= and CalendarAlarm= of ch into *ret
 * (zeroed first); without From= the address is default_from (NULL: left
 * unset, which the caller's required-key check reports). Errors are appended
 * to errs with the key's file:line. Returns 0, -EINVAL or -ENOMEM (then *ret
 * is cleared). */
int mail_settings_parse(const struct config_channel *ch, const char *default_from,
                        struct mail_settings *ret, struct config_errors *errs);
void mail_settings_done(struct mail_settings *s);

/* True when s ("Name <addr>" or "addr") can be a From: or Reply-To: header. */
bool mail_address_valid(const char *s);

/* The placeholder ReturnPath= must hold exactly once. */
#define MAIL_KEY_PLACEHOLDER "{key}"

/* The address-safe form of an outbox idempotency key: the local part of the
 * row's Message-ID, "rk-" followed by the key without its "rk-" prefix
 * ("rk-" + 32 lowercase hex digits for every key the store makes). Written
 * to out (n bytes). Returns 0, or -EINVAL when the result would hold
 * anything but lowercase letters, digits and '-' or does not fit. */
int mail_key_token(const char *idem_key, char *out, size_t n);

/* The VERP envelope sender for one row: pattern (ReturnPath=) with its one
 * "{key}" replaced by mail_key_token(idem_key). *ret is heap (caller frees).
 * Returns 0, -EINVAL (no or several "{key}", a bad key, or the result is not
 * an addr-spec with a local part of at most 64 bytes; why in err) or
 * -ENOMEM; *ret untouched on failure. */
int mail_return_path(const char *pattern, const char *idem_key, char **ret, char *err,
                     size_t errlen);

/* The Feedback-ID: value of a customer message (Gmail's feedback loop):
 * "CAMPAIGN:TIER:SEGMENT:renewd", the campaign being the policy name; each
 * field cut to [A-Za-z0-9._-] (others as '-', at most 40 bytes, "none" when
 * missing). Written to out (n bytes, at least MAIL_FEEDBACK_ID_MAX). */
#define MAIL_FEEDBACK_ID_MAX 160
void mail_feedback_id(const char *policy, const char *tier, const char *segment, char *out,
                      size_t n);

/* Formats the message for req (row, rendered message, now) as set says: the
 * exact bytes of SMTP DATA (CRLF line ends, before dot-stuffing). *ret is
 * heap (caller frees), *ret_len its length (may be NULL). Returns 0,
 * -EINVAL (no From, the recipient is not an email address, a field that
 * cannot be encoded; message in err) or -ENOMEM. */
int mail_format(const struct mail_settings *set, const struct notify_request *req, char **ret,
                size_t *ret_len, char *err, size_t errlen);

/* mail_format() with the settings of section ch (Type=smtp or sink), as
 * that channel writes it; for `renewctl preview`. Same returns; a settings
 * error is copied into err. */
int mail_format_channel(const struct config_channel *ch, const struct notify_request *req,
                        char **ret, size_t *ret_len, char *err, size_t errlen);
