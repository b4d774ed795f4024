/* csv: streaming RFC 4180 reader (see csv.h).
 *
 * A state machine over a 256 KiB input buffer. Runs of ordinary bytes are
 * found with a byte-class table and copied into the record buffer with one
 * memcpy, so the per-byte cost is a table lookup. Field boundaries are kept as
 * offsets while the record buffer may still grow and turned into pointers only
 * when the record is complete.
 *
 * Invariants: rec[0..rec_len) holds the finished fields of the current record,
 * each followed by a NUL, then the bytes of the field being parsed (from
 * field_start); r->line is the physical line of the next unread byte. */
#include "core/csv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* fuzz/fuzz-csv.c compiles this file with a tiny chunk to reach chunk edges. */
#ifndef CSV_IN_SIZE
#define CSV_IN_SIZE (256u * 1024u)
#endif

enum {
  CC_PLAIN = 0, /* ordinary byte */
  CC_SEP,       /* , */
  CC_QUOTE,     /* " */
  CC_CR,        /* \r */
  CC_LF,        /* \n */
  CC_NUL,       /* \0: never allowed (fields are C strings) */
};

static const unsigned char csv_class[256] = {
    [','] = CC_SEP, ['"'] = CC_QUOTE, ['\r'] = CC_CR, ['\n'] = CC_LF, [0] = CC_NUL,
};

struct csv_reader {
  FILE *f;           /* not owned */
  unsigned char *in; /* input chunk, CSV_IN_SIZE bytes */
  size_t in_pos;     /* next unread byte in in[] */
  size_t in_len;     /* valid bytes in in[] */
  uint64_t in_base;  /* file offset of in[0] */
  bool eof;          /* fread() reported end of file */
  bool bom_checked;  /* the first chunk was checked for a BOM */
  bool pending_cr;   /* the last record ended in CR: a following LF belongs to it */

  char *rec; /* field bytes of the current record, see invariants */
  size_t rec_len, rec_cap;
  size_t *offs;        /* start offset of each finished field in rec */
  size_t *lens;        /* length of each finished field */
  const char **fields; /* pointers handed out in struct csv_record */
  size_t n_fields;     /* finished fields in the current record */
  size_t fields_cap;   /* allocated entries of offs/lens/fields */

  unsigned line; /* physical line of the next unread byte, 1-based */
  int error;     /* sticky error (negative errno) or 0 */
  unsigned error_line;
  char error_msg[96];
};

int csv_open(FILE *f, struct csv_reader **ret) {
  if (!f || !ret)
    return -EINVAL;
  struct csv_reader *r = calloc(1, sizeof(*r));
  if (!r)
    return -ENOMEM;
  r->f = f;
  r->line = 1;
  r->in = malloc(CSV_IN_SIZE);
  r->rec_cap = 4096;
  r->rec = malloc(r->rec_cap);
  if (!r->in || !r->rec) {
    csv_free(r);
    return -ENOMEM;
  }
  *ret = r;
  return 0;
}

struct csv_reader *csv_free(struct csv_reader *r) {
  if (!r)
    return NULL;
  free(r->in);
  free(r->rec);
  free(r->offs);
  free(r->lens);
  free(r->fields);
  free(r);
  return NULL;
}

const char *csv_error(const struct csv_reader *r) {
  return r && r->error == -EBADMSG ? r->error_msg : NULL;
}

unsigned csv_error_line(const struct csv_reader *r) {
  return r && r->error ? r->error_line : 0;
}

uint64_t csv_bytes(const struct csv_reader *r) {
  return r ? r->in_base + r->in_pos : 0;
}

static int fail(struct csv_reader *r, int error, unsigned line, const char *msg) {
  r->error = error;
  r->error_line = line;
  snprintf(r->error_msg, sizeof(r->error_msg), "%s", msg);
  return error;
}

int csv_seek(struct csv_reader *r, uint64_t offset, unsigned line) {
  if (!r)
    return -EINVAL;
  if (r->error == -ENOMEM || r->error == -EIO)
    return r->error;
  r->error = 0;
  r->error_line = 0;
  r->pending_cr = false;
  r->line = line;
  if (offset >= r->in_base && offset < r->in_base + r->in_len) {
    r->in_pos = offset - r->in_base;
    return 0;
  }
  if (offset > INT64_MAX || fseeko(r->f, (off_t)offset, SEEK_SET) < 0)
    return -errno;
  clearerr(r->f);
  r->bom_checked = true;
  r->eof = false;
  r->in_base = offset;
  r->in_pos = r->in_len = 0;
  return 0;
}

/* Makes at least one unread byte available. Returns 1, 0 at end of file, or
 * -EIO. */
static int fill(struct csv_reader *r) {
  if (r->in_pos < r->in_len)
    return 1;
  if (r->eof)
    return 0;
  r->in_base += r->in_len;
  r->in_pos = r->in_len = 0;
  size_t n = fread(r->in, 1, CSV_IN_SIZE, r->f);
  if (n < CSV_IN_SIZE) {
    if (ferror(r->f))
      return fail(r, -EIO, r->line, "read error");
    r->eof = true;
  }
  r->in_len = n;
  if (!r->bom_checked) {
    r->bom_checked = true;
    if (n >= 3 && memcmp(r->in, "\xEF\xBB\xBF", 3) == 0)
      r->in_pos = 3;
  }
  return r->in_pos < r->in_len;
}

/* Grows the record buffer to hold n more bytes and a NUL (the slow path of
 * rec_append()). */
static __attribute__((noinline)) int rec_grow(struct csv_reader *r, size_t n, unsigned start_line) {
  if (r->rec_len + n > CSV_MAX_RECORD)
    return fail(r, -EBADMSG, start_line, "record longer than 1 MiB");
  size_t cap = r->rec_cap;
  while (cap < r->rec_len + n + 1)
    cap *= 2;
  char *d = realloc(r->rec, cap);
  if (!d)
    return fail(r, -ENOMEM, start_line, "out of memory");
  r->rec = d;
  r->rec_cap = cap;
  return 0;
}

/* Appends n bytes to the record buffer. start_line is where the record began
 * (for the size error). Inlined: called for every run of bytes. */
static inline int rec_append(struct csv_reader *r, const void *p, size_t n, unsigned start_line) {
  if (r->rec_len + n + 1 > r->rec_cap) {
    int k = rec_grow(r, n, start_line);
    if (k < 0)
      return k;
  }
  memcpy(r->rec + r->rec_len, p, n);
  r->rec_len += n;
  return 0;
}

/* Finishes the field that started at offset start. */
static int end_field(struct csv_reader *r, size_t start, unsigned start_line) {
  if (r->n_fields == r->fields_cap) {
    if (r->fields_cap >= CSV_MAX_FIELDS)
      return fail(r, -EBADMSG, start_line, "more than 4096 fields in one record");
    size_t cap = r->fields_cap ? r->fields_cap * 2 : 32;
    size_t *o = realloc(r->offs, cap * sizeof(*o));
    if (o)
      r->offs = o;
    size_t *l = realloc(r->lens, cap * sizeof(*l));
    if (l)
      r->lens = l;
    const char **f = realloc(r->fields, cap * sizeof(*f));
    if (f)
      r->fields = f;
    if (!o || !l || !f)
      return fail(r, -ENOMEM, start_line, "out of memory");
    r->fields_cap = cap;
  }
  r->offs[r->n_fields] = start;
  r->lens[r->n_fields] = r->rec_len - start;
  r->n_fields++;
  return rec_append(r, "", 1, start_line);
}

int csv_next(struct csv_reader *r, struct csv_record *ret) {
  enum { S_START, S_PLAIN, S_QUOTED, S_QUOTE } state = S_START;
  unsigned start_line, quote_line = 0;
  uint64_t start_offset = 0;
  size_t field_start = 0;
  bool quoted = false;    /* the current field was quoted */
  bool cr_quoted = false; /* the last byte inside quotes was CR */
  int k;

  if (!r || !ret)
    return -EINVAL;
  if (r->error)
    return r->error;

  r->rec_len = 0;
  r->n_fields = 0;
  start_line = r->line;

  for (;;) {
    k = fill(r);
    if (k < 0)
      return k;
    if (k == 0) {
      /* End of file. */
      switch (state) {
      case S_START:
        if (r->n_fields == 0)
          return 0;
        break;
      case S_QUOTED:
        return fail(r, -EBADMSG, quote_line, "unterminated quoted field");
      case S_PLAIN:
      case S_QUOTE:
        if (r->n_fields == 0 && r->rec_len == 0 && !quoted)
          return 0;
        break;
      }
      goto record;
    }

    const unsigned char *p = r->in + r->in_pos;
    size_t avail = r->in_len - r->in_pos, n = 0;
    unsigned char c;

    switch (state) {
    case S_START:
      c = p[0];
      if (r->pending_cr) {
        r->pending_cr = false;
        if (c == '\n' && r->n_fields == 0) {
          r->in_pos++; /* the LF of a CRLF that ended the previous record */
          continue;
        }
      }
      if (r->n_fields == 0)
        start_offset = r->in_base + r->in_pos;
      field_start = r->rec_len;
      quoted = false;
      if (c == '"') {
        r->in_pos++;
        state = S_QUOTED;
        quoted = true;
        cr_quoted = false;
        quote_line = r->line;
      } else
        state = S_PLAIN;
      continue;

    case S_PLAIN:
      while (n < avail && csv_class[p[n]] == CC_PLAIN)
        n++;
      if (n > 0) {
        if ((k = rec_append(r, p, n, start_line)) < 0)
          return k;
        r->in_pos += n;
        continue;
      }
      c = p[0];
      r->in_pos++;
      switch (csv_class[c]) {
      case CC_SEP:
        if ((k = end_field(r, field_start, start_line)) < 0)
          return k;
        field_start = r->rec_len;
        state = S_START;
        continue;
      case CC_CR:
        r->pending_cr = true;
        /* fall through */
      case CC_LF:
        r->line++;
        if (r->n_fields == 0 && r->rec_len == field_start) {
          /* Blank line: skip it, the record starts on the next line. */
          r->rec_len = 0;
          start_line = r->line;
          state = S_START;
          continue;
        }
        goto record;
      case CC_QUOTE:
        return fail(r, -EBADMSG, r->line, "quote inside an unquoted field");
      default:
        return fail(r, -EBADMSG, r->line, "NUL byte in field");
      }

    case S_QUOTED:
      while (n < avail) {
        unsigned char cls = csv_class[p[n]];
        if (cls != CC_PLAIN && cls != CC_SEP)
          break;
        n++;
      }
      if (n > 0) {
        if ((k = rec_append(r, p, n, start_line)) < 0)
          return k;
        r->in_pos += n;
        cr_quoted = false;
        continue;
      }
      c = p[0];
      r->in_pos++;
      switch (csv_class[c]) {
      case CC_QUOTE:
        state = S_QUOTE;
        cr_quoted = false;
        continue;
      case CC_CR:
        r->line++;
        cr_quoted = true;
        break;
      case CC_LF:
        if (!cr_quoted)
          r->line++;
        cr_quoted = false;
        break;
      default:
        return fail(r, -EBADMSG, r->line, "NUL byte in field");
      }
      if ((k = rec_append(r, &c, 1, start_line)) < 0)
        return k;
      continue;

    case S_QUOTE:
      c = p[0];
      r->in_pos++;
      switch (csv_class[c]) {
      case CC_QUOTE: /* doubled quote */
        if ((k = rec_append(r, &c, 1, start_line)) < 0)
          return k;
        state = S_QUOTED;
        continue;
      case CC_SEP:
        if ((k = end_field(r, field_start, start_line)) < 0)
          return k;
        field_start = r->rec_len;
        state = S_START;
        continue;
      case CC_CR:
        r->pending_cr = true;
        /* fall through */
      case CC_LF:
        r->line++;
        goto record;
      default: {
        char msg[64];
        if (c >= 0x20 && c < 0x7f)
          snprintf(msg, sizeof(msg), "unexpected '%c' after closing quote", c);
        else
          snprintf(msg, sizeof(msg), "unexpected byte 0x%02x after closing quote", c);
        return fail(r, -EBADMSG, r->line, msg);
      }
      }
    }
  }

record:
  if ((k = end_field(r, field_start, start_line)) < 0)
    return k;
  for (size_t i = 0; i < r->n_fields; i++)
    r->fields[i] = r->rec + r->offs[i];
  ret->n = r->n_fields;
  ret->fields = r->fields;
  ret->lens = r->lens;
  ret->line = start_line;
  ret->offset = start_offset;
  return 1;
}
