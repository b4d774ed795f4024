/* csv: a streaming RFC 4180 CSV reader over a FILE *.
 *
 * Reads the file in fixed-size chunks (never whole) and hands out one record at
 * a time. Fields may be quoted ("a, b"), contain doubled quotes ("say ""hi""")
 * and line breaks inside quotes. Records end in CRLF, LF or a lone CR. A UTF-8
 * byte order mark at the very start is skipped; blank lines (no bytes at all
 * between two line breaks) are skipped. Every record carries the PHYSICAL line
 * number (1-based) where it starts, so a record with an embedded newline is
 * reported at its first line.
 *
 * Owns: one input buffer and one record buffer, reused for every record (no
 * allocation per field: fields point into the record buffer, NUL-terminated).
 * Does not own the FILE *. Blocks only in fread(). Not thread-safe.
 *
 * Errors (-EBADMSG): unterminated quoted field at end of file, a quote inside an
 * unquoted field, a closing quote followed by anything but a separator or line
 * break, a NUL byte, a record longer than CSV_MAX_RECORD or with more than
 * CSV_MAX_FIELDS fields. Read errors give -EIO. After an error every further
 * csv_next() returns the same error: a broken file is not resynchronised. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CSV_MAX_RECORD (1024u * 1024u) /* bytes of field data in one record */
#define CSV_MAX_FIELDS 4096u

struct csv_reader;

/* One record. Valid until the next csv_next() or csv_free(). */
struct csv_record {
  size_t n;            /* number of fields, >= 1 */
  const char **fields; /* n NUL-terminated fields (unquoted, unescaped) */
  const size_t *lens;  /* byte length of each field (a field never contains NUL) */
  unsigned line;       /* physical line (1-based) where the record starts */
  uint64_t offset;     /* file offset of the record's first byte (for csv_seek()) */
};

/* Creates a reader over f (not owned; must stay open while the reader is used).
 * Returns 0 or -ENOMEM/-EINVAL. Caller frees with csv_free(). */
int csv_open(FILE *f, struct csv_reader **ret);
struct csv_reader *csv_free(struct csv_reader *r);

/* Reads the next non-blank record into *ret. Returns 1 (record), 0 (end of
 * file; *ret untouched), -EBADMSG (syntax error: see csv_error() and
 * csv_error_line()), -EIO (read error) or -ENOMEM. */
int csv_next(struct csv_reader *r, struct csv_record *ret);

/* Message of the last syntax error ("unterminated quoted field"), or NULL.
 * Valid while r lives. */
const char *csv_error(const struct csv_reader *r);
/* Physical line the last error refers to (0 when none). */
unsigned csv_error_line(const struct csv_reader *r);

/* Repositions the reader at a record start previously reported in
 * csv_record.offset, which will be reported as physical line `line`; clears a
 * sticky error. Cheap when offset lies in the current input chunk, otherwise
 * fseek()s, so f must be seekable. Returns 0, -ESPIPE or -EIO. */
int csv_seek(struct csv_reader *r, uint64_t offset, unsigned line);

/* Bytes of the file consumed by the parser so far (BOM included), for
 * progress reporting. */
uint64_t csv_bytes(const struct csv_reader *r);
