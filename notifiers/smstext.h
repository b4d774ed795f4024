/* smstext: how an SMS text will be encoded and into how many segments it
 * splits, and whether a phone number is in E.164 form.
 *
 * Follows 3GPP TS 23.038: a text made only of characters of the GSM 7-bit
 * default alphabet and its extension table is sent as GSM-7 (extension
 * characters such as € [ ] { } ^ ~ \ | and form feed take an escape plus the
 * character, 2 septets); any other character switches the whole text to
 * UCS-2 (UTF-16 code units; characters outside the BMP take a surrogate pair,
 * 2 units). One segment holds 160 septets or 70 units; as soon as a text
 * needs more, each part loses room to the concatenation header and holds 153
 * septets or 67 units, and an escape sequence or surrogate pair is never
 * split across two parts (so some parts carry one unit less).
 *
 * Pure functions: no allocation, no global state, never blocks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum smstext_encoding {
  SMSTEXT_GSM7, /* GSM 03.38 default alphabet + extension table */
  SMSTEXT_UCS2, /* UTF-16 */
};

#define SMSTEXT_GSM7_SINGLE 160
#define SMSTEXT_GSM7_PART 153
#define SMSTEXT_UCS2_SINGLE 70
#define SMSTEXT_UCS2_PART 67

struct smstext_info {
  enum smstext_encoding encoding;
  size_t chars;    /* Unicode code points in the text */
  size_t units;    /* septets (GSM-7) or UTF-16 code units (UCS-2), in total */
  size_t segments; /* SMS parts the text is sent as; 0 for the empty text */
};

/* Analyses the NUL-terminated UTF-8 text utf8. Returns 0 and fills *ret, or
 * -EINVAL (ret untouched) when utf8 is NULL or not valid UTF-8 (overlong
 * forms, surrogates and code points above U+10FFFF are invalid). */
int smstext_segments(const char *utf8, struct smstext_info *ret);

/* "GSM-7" or "UCS-2"; NULL for an unknown value. Static string. */
const char *smstext_encoding_to_string(enum smstext_encoding e);

/* True when s is "+" followed by 8..15 digits, the first not 0 (E.164, no
 * spaces or punctuation). */
bool smstext_is_e164(const char *s);
