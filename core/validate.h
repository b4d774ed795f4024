/* validate: checks one contract row (a CSV import line or an API upsert) and
 * turns it into the store's struct customer + struct contract.
 *
 * Input is one text value per column (enum validate_col); values are trimmed
 * of spaces and tabs, empty means absent. Every problem of a row is collected
 * as a (column, short message) pair, at most one per column, so a caller can
 * print them all at once ("email: invalid email 'bob@'").
 *
 * Owns: a scratch buffer holding the normalised strings of the last row (the
 * records handed out point into it). Uses a struct cal (not owned) for zones.
 * Never blocks beyond cal's first load of a zone, never logs, not thread-safe.
 *
 * Rules (see docs/import.md):
 *  - contract_id, customer_id, expires_on required; email or phone required;
 *  - ids: at most 128 bytes, no control characters;
 *  - expires_on: YYYY-MM-DD (valid through that local day: expires at the start
 *    of the next local day in the customer's zone) or an RFC 3339 timestamp;
 *    starts_on: same syntax, a date means the start of that local day; must be
 *    before expires_on;
 *  - timezone: a known IANA zone, empty = the default zone;
 *  - email: dot-atom local part @ a domain of at least two labels;
 *  - phone: E.164, '+' then 8..15 digits (first not 0); spaces, hyphens, dots
 *    and parentheses after the '+' are dropped ("+44 20 7946 0958");
 *  - value: non-negative decimal, at most 2 decimals, stored x100; currency is
 *    3 uppercase letters and required when value is given;
 *  - locale: 2-3 letters then "-" subtags of 1-8 letters/digits (en, zh-CN);
 *  - customer_name, product: at most 200 characters; segment, owner: at most
 *    64 characters; all text valid UTF-8 without control characters. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cal.h"
#include "core/store.h"

enum validate_col {
  VCOL_CONTRACT_ID,
  VCOL_CUSTOMER_ID,
  VCOL_CUSTOMER_NAME,
  VCOL_EMAIL,
  VCOL_PHONE,
  VCOL_TIMEZONE,
  VCOL_LOCALE,
  VCOL_SEGMENT,
  VCOL_OWNER,
  VCOL_PRODUCT,
  VCOL_STARTS_ON,
  VCOL_EXPIRES_ON,
  VCOL_VALUE,
  VCOL_CURRENCY,
  _VCOL_MAX,
};

/* Column name as used in CSV headers and messages ("contract_id"); NULL when
 * out of range. */
const char *validate_col_name(enum validate_col c);
/* Column from a header name: case-insensitive, surrounding spaces ignored.
 * Returns the column or -EINVAL. */
int validate_col_from_name(const char *s, size_t len);

struct validate_problem {
  enum validate_col col;
  char message[160]; /* "invalid date '2027-02-30'" (values shortened to 48 bytes) */
};

struct validate_problems {
  size_t n; /* problems found, in column order */
  struct validate_problem p[_VCOL_MAX];
};

struct validate;

/* Creates a validator using zones from cal (not owned; must outlive v).
 * default_tz is the zone of rows without one (NULL = "UTC"); -EINVAL when
 * unknown. Caller frees with validate_free(). */
int validate_new(struct cal *cal, const char *default_tz, struct validate **ret);
struct validate *validate_free(struct validate *v);

/* Validates one row. fields[c] is the text of column c or NULL (absent).
 * Returns the number of problems (0 = valid) or -EINVAL/-ENOMEM; problems are
 * written to *ret_problems (optional). ret_customer and ret_contract (each
 * optional) are filled only when the row is valid: their strings point into
 * v's scratch buffer or are zone names owned by cal, valid until the next
 * validate_row() or validate_free(): do NOT pass them to *_clear(). */
int validate_row(struct validate *v, const char *const fields[_VCOL_MAX],
                 struct customer *ret_customer, struct contract *ret_contract,
                 struct validate_problems *ret_problems);

/* Single-value checks, on already trimmed text. */
bool validate_email(const char *s);
/* Normalises an E.164 number into out ("+442079460958"). 0 or -EINVAL. */
int validate_e164(const char *s, char out[static 17]);
bool validate_locale(const char *s);
bool validate_currency(const char *s);
/* "12.5" -> 1250. 0, -EINVAL (syntax), -EDOM (negative), -E2BIG (more than 2
 * decimals) or -ERANGE (above 10^15). */
int validate_amount(const char *s, int64_t *ret_minor);
/* Valid UTF-8 (no overlongs or surrogates) without C0/DEL control characters.
 * *ret_chars (optional) = number of code points. */
bool validate_text(const char *s, size_t len, size_t *ret_chars);
