/* email: serializes one complete Internet message (RFC 5322 + MIME) from its
 * parts: the header block (From, Reply-To, To, Subject, Date, Message-ID,
 * List-Unsubscribe, Auto-Submitted, Feedback-ID, X-Renewd-*) and the body tree
 *
 *   multipart/mixed                      (only when there is a calendar)
 *     multipart/alternative              (only when there is HTML)
 *       text/plain; charset=utf-8
 *       text/html; charset=utf-8
 *     text/calendar; charset=utf-8; method=PUBLISH|REQUEST   (base64)
 *
 * A part collapses into its parent when it would hold a single child: a
 * text-only message without calendar is a plain text/plain message.
 *
 * Text parts are quoted-printable when mostly ASCII, base64 otherwise (a
 * Chinese text is a third shorter in base64); either way the message is
 * 7-bit clean, so it needs neither 8BITMIME nor SMTPUTF8 (unless an address
 * itself is not ASCII). Line ends in the input may be LF or CRLF; the output
 * uses CRLF everywhere and no line exceeds 78 characters. Boundaries start
 * with "=_", which neither encoding can produce, so they never collide with
 * content.
 *
 * This is the one serializer the SMTP backend sends and `renewctl preview`
 * prints, so a preview is byte for byte the message (except for Date when the
 * clock moved).
 *
 * Built with GMime 3 (see email.c). Pure but for GMime's one-time,
 * process-wide initialisation: no I/O, no clock reads, never blocks, never
 * logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One "Name: value" header line added verbatim after the standard ones. */
struct email_header {
  const char *name;  /* field name (printable ASCII, no ':' or space) */
  const char *value; /* unstructured UTF-8 text; RFC 2047-encoded as needed */
};

/* Everything a message is made of. Borrowed for the call. */
struct email {
  const char *from_name;            /* display name (UTF-8) or NULL */
  const char *from_addr;            /* required: addr-spec */
  const char *reply_to;             /* NULL = none; addr-spec, or "Name <addr>" */
  const char *to_name;              /* display name (UTF-8) or NULL */
  const char *to_addr;              /* required: addr-spec */
  const char *subject;              /* one line, UTF-8; NULL = "(no subject)" */
  int64_t date;                     /* Date: (UTC seconds) */
  const char *idem_key;             /* required: the outbox key; Message-ID <KEY@host> */
  const char *msgid_host;           /* host part of the Message-ID; NULL = from_addr's domain
                                       (or "renewd" when that is not an ASCII host name) */
  const char *text;                 /* text/plain body (UTF-8); NULL = "" */
  const char *html;                 /* text/html body or NULL */
  const char *calendar;             /* complete VCALENDAR text, or NULL */
  const char *calendar_method;      /* "PUBLISH" or "REQUEST" (the METHOD of calendar) */
  const char *calendar_filename;    /* e.g. "renewal.ics" (ASCII); NULL = "calendar.ics" */
  const char *unsubscribe_url;      /* List-Unsubscribe: <URL> + List-Unsubscribe-Post
                                       (RFC 8058) when not NULL; http(s) URL */
  bool auto_submitted;              /* Auto-Submitted: auto-generated (RFC 3834) and
                                       X-Auto-Response-Suppress: All (no out-of-office replies) */
  const struct email_header *extra; /* n_extra more headers (X-Renewd-* ...) */
  size_t n_extra;
};

/* Splits an address as written in config ("Name <addr>", "\"Name\" <addr>"
 * or a bare addr) into its display name (NULL when none) and addr-spec.
 * Both are heap strings the caller frees; the address must pass
 * mime_valid_email(). Returns 0, -EINVAL or -ENOMEM; outputs untouched on
 * failure. */
int email_parse_address(const char *s, char **ret_name, char **ret_addr);

/* The domain of an addr-spec (the part after the last '@'), borrowed from
 * addr; NULL when there is none. */
const char *email_domain(const char *addr);

/* Formats e into a NUL-terminated message with CRLF line ends (the exact
 * bytes of SMTP DATA, before dot-stuffing, which libcurl does). *ret is
 * heap (caller frees), *ret_len its length (may be NULL). Returns 0,
 * -EINVAL (missing or invalid address, key, header or a non-UTF-8 text) or
 * -ENOMEM; outputs untouched on failure. */
int email_format(const struct email *e, char **ret, size_t *ret_len);
