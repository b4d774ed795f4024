/* sink: the Type=sink channel backend (notifier_sink_ops in notifier.h),
 * which writes messages to local files (see sink.c for the keys and the
 * layout), and the function `renewctl preview` shows a sink's file with. */
#pragma once

#include <stddef.h>

#include "config/config.h"
#include "notifiers/notifier.h"

/* The bytes the sink channel ch writes for req: mail_format()'s message for
 * an email recipient, the SMS file for a phone number, the request file for
 * a URL. *ret is heap (caller frees), *ret_len its length (may be NULL).
 * Returns 0, -EINVAL (bad settings or message; reason in err) or -ENOMEM. */
int sink_format(const struct config_channel *ch, const struct notify_request *req, char **ret,
                size_t *ret_len, char *err, size_t errlen);
