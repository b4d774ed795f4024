/* mime: the header-level pieces of an Internet message (RFC 5322, RFC 2047).
 *
 * Builds complete, folded header fields ("Subject: ...", "To: ...") whose
 * non-ASCII text is carried in RFC 2047 encoded-words (UTF-8, "B" encoding),
 * the Date and Message-ID values, and the email address syntax check shared
 * with the CSV validator. Header output never contains a bare CR or LF: lines
 * are joined by CRLF + SP (folding), at most 76 characters each (RFC 2047
 * §2), encoded-words at most 75 characters and never split inside a UTF-8
 * character, so unfolding and decoding gives back the exact input.
 *
 * Pure functions: no I/O, no clock reads, no global state, never blocks.
 * Results are heap strings the caller frees. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIME_LINE_MAX 76 /* characters per header line, CRLF excluded */
#define MIME_WORD_MAX 75 /* characters per encoded-word */
#define MIME_DATE_MAX 32 /* buffer size for mime_date() */

/* Formats an unstructured header field (Subject, Comments, X-*):
 * "Name: value", folded. value is UTF-8 text without control characters
 * other than TAB; it is written as is when it is printable ASCII, has no
 * "=?" (which a reader would take for an encoded-word) and no word too long
 * to fold, else it is written entirely as encoded-words.
 * name is a header field name (printable ASCII, no ':' or space).
 * *ret has no trailing CRLF; caller frees. Returns 0, -EINVAL (bad name,
 * invalid UTF-8, control character) or -ENOMEM. */
int mime_header(const char *name, const char *value, char **ret);

/* One mailbox of an address header. */
struct mime_address {
  const char *name;  /* display name, UTF-8; NULL or "" for none */
  const char *email; /* addr-spec; must pass mime_valid_email() */
};

/* Formats an address header field (From, To, Cc, Reply-To):
 * "To: Name <a@example.com>, =?UTF-8?B?546L5bCP5piO?= <wang@example.cn>".
 * A display name is written as atoms when it is plain ASCII, as a quoted
 * string (with \" and \\ escaped) when it also holds one of ()<>[]:;@\,."
 * or doubled/outer spaces, and as encoded-words when it is not ASCII or has
 * "=?" or a word too long to fold. A mailbox without a name is the bare address.
 * Addresses are written as given (an address with non-ASCII characters makes
 * the header need SMTPUTF8, RFC 6532). n >= 1. *ret has no trailing CRLF;
 * caller frees. Returns 0, -EINVAL or -ENOMEM. */
int mime_header_addresses(const char *name, const struct mime_address *addrs, size_t n, char **ret);

/* RFC 5322 date-time of t in UTC: "Sun, 22 Nov 2026 20:31:27 +0000".
 * English day and month names, whatever the locale. out holds at least
 * MIME_DATE_MAX bytes. Returns 0, or -ERANGE (out untouched) when the year
 * is outside 1900..9999. */
int mime_date(int64_t t, char *out);

/* Message-ID from an outbox idempotency key, so a retried send carries the
 * same id: "<rk-KEY@host>". Key bytes other than [A-Za-z0-9_-] are written
 * as "=XX" (uppercase hex), which keeps the id a valid dot-atom and distinct
 * keys distinct. key is 1..200 bytes; host a host name (letters, digits,
 * '-', '.'-separated labels). Caller frees. Returns 0, -EINVAL or -ENOMEM. */
int mime_message_id(const char *key, const char *host, char **ret);

/* Email address syntax, the rule the CSV importer applies: at most 254
 * bytes of valid UTF-8 without control characters; a dot-atom local part of
 * at most 64 bytes ("!#$%&'*+/=?^_`{|}~-", letters, digits, non-ASCII, dots
 * not first, last or doubled); "@"; a domain of at least two labels of
 * letters, digits, non-ASCII and inner hyphens, each 1..63 bytes, the last
 * holding something other than digits. No spaces, quotes, comments or IP
 * literals. */
bool mime_valid_email(const char *s);
