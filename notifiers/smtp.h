/* smtp: the Type=smtp channel backend (struct notifier_ops) and
 * the SMTP reply parsing it exposes for tests.
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
 *   ReturnPath=bounces+{key}@example.com  (VERP envelope sender, optional)
 *
 * Keys are described in docs/configuration.md. The message is mail_format()'s
 * (notifiers/mail.h: the one builder the sink and `renewctl preview` use
 * too); From=, ReplyTo=, Calendar= and CalendarAlarm= are its settings.
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

/* The queue id a server named in a final reply ("250 2.0.0 Ok: queued as
 * 4F3k2X0abc", "250 OK id=1tXyz-000abc-AB"),
 * copied into out (n bytes); "" when the reply names none. Exposed for tests. */
void smtp_reply_queue_id(const char *reply, char *out, size_t n);
