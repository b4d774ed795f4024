/* smtp: the Type=smtp channel backend (struct notifier_ops) and the one
 * function that turns a rendered message into the exact bytes it sends.
 *
 *   [Channel email]
 *   Type=smtp
 *   URL=smtp://mail.example.com:587       (smtp:// + STARTTLS, or smtps://)
 *   From=Example Renewals <renewals@example.com>
 *   ReplyTo=renewals@example.com
 *   Username=renewd
 *   PasswordFile=smtp-password            (path or credential name)
 *   RequireTLS=yes                        (STARTTLS mandatory on smtp://)
 *   CAFile=/etc/renewd/smtp-ca.pem        (private CA)
 *   TLSVerify=yes
 *   Calendar=yes                          (.ics deadline / meeting part)
 *   CalendarAlarm=-P1D
 *
 * Keys are described in docs/configuration.md. The message (see email.h) is
 * multipart/alternative text + HTML, inside multipart/mixed with a
 * text/calendar part: for customer reminders and owner escalations whose
 * contract has not expired yet a METHOD:PUBLISH all-day deadline event
 * (core/ics.h ics_deadline) with an alarm; for the owner "callback" tier a
 * METHOD:REQUEST meeting at the customer's preferred time
 * (ics_meeting_request). The Message-ID is derived from the outbox row's
 * idempotency key, so a retried or recovered send keeps its id.
 *
 * Transfers run on the dispatcher's curl multi handle; easy handles come
 * from the dispatcher's per-channel pool and connections from the multi's
 * connection cache, so consecutive messages to the same server reuse one
 * SMTP session per concurrent slot. Results: 2xx sent (the provider id is
 * the queue id the server named in its final 250 reply, when it did), 4xx
 * and connection or timeout errors transient, 5xx permanent.
 *
 * State: the parsed channel settings and the password (wiped on free).
 * Never blocks (new() reads the password file once). Never logs; the
 * password never appears in an error, a result or a message. */
#pragma once

#include <stddef.h>

#include "config/config.h"
#include "notifiers/notifier.h"

extern const struct notifier_ops notifier_smtp_ops;

/* Formats the message for req (its row, rendered message and now) exactly
 * as channel ch (a Type=smtp section) would send it: headers, MIME parts and
 * calendar. Used by `renewctl preview`; the backend uses the same code. ch
 * must pass the backend's check_config() (errors go to err otherwise).
 * *ret is heap (caller frees), *ret_len its length (may be NULL). Returns 0,
 * -EINVAL (bad settings, the recipient is not an email address, a field
 * that cannot be encoded; message in err) or -ENOMEM. */
int smtp_format(const struct config_channel *ch, const struct notify_request *req, char **ret,
                size_t *ret_len, char *err, size_t errlen);

/* The queue id a server named in a final reply ("250 2.0.0 Ok: queued as
 * 4F3k2X0abc", "250 OK id=1tXyz-000abc-AB"),
 * copied into out (n bytes); "" when the reply names none. Exposed for tests. */
void smtp_reply_queue_id(const char *reply, char *out, size_t n);
