/* cmd_import: `renewctl import FILE.csv [--dry-run] [--skip-invalid] [--ignore-unknown]`.
 *
 * Two streaming passes over the file (docs/import.md):
 *  1. validate: parse every record, validate it (core/validate), detect
 *     contract ids repeated in the file and customers whose data differs
 *     between rows; print every problem as "FILE:LINE: column: message".
 *  2. write (only when pass 1 found nothing, or with --skip-invalid): parse
 *     again, upsert each distinct customer once (at the row pass 1 marked as
 *     its first) and every contract. Into a store without contracts (a first
 *     import) this is one bulk transaction (store_bulk_begin: secondary
 *     indexes built at the end, records handed over BULK_HANDOFF at a time
 *     for multi-row inserts); otherwise transactions of IMPORT_BATCH rows
 *     with a short pause between them (other writers get the lock). Upserts
 *     are idempotent, so a re-run after an import killed between batches
 *     converges (docs/import.md).
 *     --dry-run runs pass 2 read-only, comparing with the store instead of
 *     writing.
 *
 * Memory stays bounded by the number of rows, not their size: per chunk of
 * ROWS_CHUNK rows a file offset and a line number, per row two bits; per
 * distinct contract id a 32-bit fingerprint and a row ordinal (pass 1 only);
 * per distinct customer the same plus a 64-bit hash of its content and the
 * upsert result (freed for a bulk load, which needs no lookups). Equal
 * fingerprints of contract ids are verified by re-reading the earlier row
 * (csv_seek on a second reader) so a collision never reports a false
 * duplicate. For customers, rows whose id fingerprint and content hash both
 * match are taken as the same customer without re-reading (a false match
 * needs a 96-bit collision).
 *
 * Owns: two FILE handles on the input, two CSV readers, two validators, the
 * tables above, the store connection and the bulk hand-off buffers (pass 2).
 * Blocks on file and store I/O. */
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/csv.h"
#include "core/validate.h"

#define IMPORT_BATCH 5000 /* rows per write transaction */
/* Between two batches the write lock is left free for 1/BATCH_YIELD_DIV of
 * the last batch's time (at least BATCH_YIELD_MIN_MS): the daemon's loop
 * connection never waits for the lock, it retries from a timer, and must
 * find it free now and then. */
#define BATCH_YIELD_DIV 8
#define BATCH_YIELD_MIN_MS 2
#define PROGRESS_INTERVAL_MS 100 /* at most ~10 updates per second */
#define MAX_PROBLEMS 32          /* per row */
#define BULK_HANDOFF 256         /* records handed to the store at once in a bulk load */
#define BULK_ARENA (256 * 1024)  /* bytes of copied strings per pending kind */

/* ---- id tables ------------------------------------------------------------------- */

/* Open addressing (linear probing) from a 32-bit fingerprint of an id (the low
 * half of its 64-bit hash) to the ordinal of the first row carrying it; the
 * home slot is derived from the fingerprint (multiply-shift, so any capacity
 * works and the table can grow without the full hash). A fingerprint match is
 * only a candidate: contract ids are verified by re-reading that row, and
 * customers also compare a 64-bit content hash. Equal fingerprints may occur
 * more than once; lookups scan the whole run. A slot is the fingerprint and
 * the ordinal side by side (one cache line per probe; pass 1 prefetches the
 * home slots of a row before validating it); customers add a content hash
 * (same index, separate array) and the pass-2 upsert result. 8 bytes per slot
 * for contracts, 17 for customers, at most ~1.9 slots per key. */
struct idslot {
  uint32_t fp;   /* fingerprint */
  uint32_t ord1; /* first row ordinal + 1; 0 = empty slot */
};

struct idtab {
  struct idslot *slot; /* cap slots */
  uint64_t *content;   /* customers: hash of the customer's fields */
  uint8_t *status;     /* customers: enum store_upsert_result of pass 2 */
  size_t cap;          /* slots, 0 before the first insert */
  size_t n;            /* used slots */
  bool customers;      /* content/status are allocated */
};

static void idtab_done(struct idtab *t) {
  free(t->slot);
  free(t->content);
  free(t->status);
  *t = (struct idtab){.customers = t->customers};
}

/* First slot of fp's run; continue with idtab_next() while slot[j].ord1 != 0.
 * Only valid when cap > 0. */
static size_t idtab_home(const struct idtab *t, uint32_t fp) {
  return (size_t)(((uint64_t)fp * (uint64_t)t->cap) >> 32);
}
static size_t idtab_next(const struct idtab *t, size_t j) {
  return j + 1 == t->cap ? 0 : j + 1;
}

/* Starts loading fp's home slot into the CPU cache (the tables are far larger
 * than the cache: a probe is a memory access). Always inlined: GCC takes a
 * function made of prefetches for one without effect and drops its calls. */
static inline __attribute__((always_inline)) void idtab_prefetch(const struct idtab *t,
                                                                 uint32_t fp) {
  if (!t->cap)
    return;
  size_t j = idtab_home(t, fp);
  __builtin_prefetch(&t->slot[j]);
  if (t->content)
    __builtin_prefetch(&t->content[j]);
}

static size_t idtab_insert(struct idtab *t, uint32_t fp, uint32_t ord) {
  size_t j = idtab_home(t, fp);
  while (t->slot[j].ord1)
    j = idtab_next(t, j);
  t->slot[j] = (struct idslot){.fp = fp, .ord1 = ord + 1};
  t->n++;
  return j;
}

/* Makes room for one more key: grows by half once the load would pass 0.8.
 * Invalidates slot indexes. */
static int idtab_reserve(struct idtab *t) {
  if (t->cap && (t->n + 1) * 5 <= t->cap * 4)
    return 0;
  struct idtab g = {.cap = t->cap ? t->cap + t->cap / 2 : 1024, .customers = t->customers};
  if (g.cap > UINT32_MAX)
    return -E2BIG;
  g.slot = calloc(g.cap, sizeof(*g.slot));
  if (t->customers) {
    g.content = malloc(g.cap * sizeof(*g.content));
    g.status = malloc(g.cap * sizeof(*g.status));
  }
  if (!g.slot || (t->customers && (!g.content || !g.status))) {
    idtab_done(&g);
    return -ENOMEM;
  }
  for (size_t i = 0; i < t->cap; i++) {
    if (!t->slot[i].ord1)
      continue;
    size_t j = idtab_insert(&g, t->slot[i].fp, t->slot[i].ord1 - 1);
    if (t->customers) {
      g.content[j] = t->content[i];
      g.status[j] = t->status[i];
    }
  }
  idtab_done(t);
  *t = g;
  return 0;
}

/* FNV-1a with a final avalanche (fingerprints are its low 32 bits). */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *s = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ s[i]) * UINT64_C(0x100000001b3);
  return h;
}
static uint64_t hash_final(uint64_t h) {
  h ^= h >> 33;
  h *= UINT64_C(0xff51afd7ed558ccd);
  h ^= h >> 33;
  h *= UINT64_C(0xc4ceb9fe1a85ec53);
  return h ^ (h >> 33);
}
static uint64_t hash_id(const char *s, size_t n) {
  return hash_final(hash_bytes(UINT64_C(0xcbf29ce484222325), s, n));
}
static uint64_t hash_field(uint64_t h, const char *s) {
  if (!s)
    return hash_bytes(h, "\x1e", 1);
  return hash_bytes(hash_bytes(h, s, strlen(s)), "\x1f", 1);
}
static uint64_t hash_customer(const struct customer *cu) {
  uint64_t h = UINT64_C(0x84222325cbf29ce4);
  h = hash_field(h, cu->name);
  h = hash_field(h, cu->email);
  h = hash_field(h, cu->phone);
  h = hash_field(h, cu->tz);
  h = hash_field(h, cu->locale);
  h = hash_field(h, cu->segment);
  h = hash_field(h, cu->owner_id);
  return hash_final(h);
}

/* ---- per-row bookkeeping --------------------------------------------------------- */

/* Where rows are, for re-reading: the file offset and line of every
 * ROWS_CHUNK-th row (a re-read seeks there and parses forward), plus two bits
 * per row: "rejected", and "first valid row of its customer" (pass 2 writes
 * the customer there, without looking it up). */
#define ROWS_CHUNK 64

struct rows {
  uint64_t *offset;  /* per chunk: file offset of its first row */
  uint32_t *line;    /* per chunk: physical line of its first row */
  uint8_t *rejected; /* bitmap, one bit per row */
  uint8_t *cu_first; /* bitmap: the row is the first valid one of its customer */
  size_t n;          /* rows */
  size_t cap;        /* rows the arrays can describe (a multiple of ROWS_CHUNK) */
};

static void rows_done(struct rows *r) {
  free(r->offset);
  free(r->line);
  free(r->rejected);
  free(r->cu_first);
  *r = (struct rows){0};
}

static int rows_add(struct rows *r, uint64_t offset, unsigned line) {
  if (r->n == UINT32_MAX - 1)
    return -E2BIG;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64 * ROWS_CHUNK;
    uint64_t *o = realloc(r->offset, cap / ROWS_CHUNK * sizeof(*o));
    if (o)
      r->offset = o;
    uint32_t *l = realloc(r->line, cap / ROWS_CHUNK * sizeof(*l));
    if (l)
      r->line = l;
    uint8_t *b = realloc(r->rejected, cap / 8);
    if (b) {
      memset(b + r->cap / 8, 0, (cap - r->cap) / 8);
      r->rejected = b;
    }
    uint8_t *c = realloc(r->cu_first, cap / 8);
    if (c) {
      memset(c + r->cap / 8, 0, (cap - r->cap) / 8);
      r->cu_first = c;
    }
    if (!o || !l || !b || !c)
      return -ENOMEM;
    r->cap = cap;
  }
  if (r->n % ROWS_CHUNK == 0) {
    r->offset[r->n / ROWS_CHUNK] = offset;
    r->line[r->n / ROWS_CHUNK] = line;
  }
  r->n++;
  return 0;
}

static void rows_reject(struct rows *r, size_t ord) {
  r->rejected[ord / 8] |= 1u << (ord % 8);
}
static bool rows_rejected(const struct rows *r, size_t ord) {
  return r->rejected[ord / 8] & (1u << (ord % 8));
}
static void rows_set_cu_first(struct rows *r, size_t ord) {
  r->cu_first[ord / 8] |= 1u << (ord % 8);
}
static bool rows_cu_first(const struct rows *r, size_t ord) {
  return r->cu_first[ord / 8] & (1u << (ord % 8));
}

/* ---- bulk load: records waiting for a multi-row insert -------------------------------- */

/* A bulk load hands customers and contracts to the store BULK_HANDOFF at a
 * time (store_bulk_customers/contracts, a few multi-row INSERTs), so the
 * validated records are copied out of the validator's per-row buffer into
 * an arena until then. Customers and contracts fill up independently. */
struct pending {
  struct customer cu[BULK_HANDOFF];
  struct contract co[BULK_HANDOFF];
  size_t n_cu, n_co;
  char *cu_arena, *co_arena; /* BULK_ARENA bytes each; owned */
  size_t cu_used, co_used;
};

static struct pending *pending_free(struct pending *p) {
  if (p) {
    free(p->cu_arena);
    free(p->co_arena);
    free(p);
  }
  return NULL;
}

static struct pending *pending_new(void) {
  struct pending *p = calloc(1, sizeof(*p));
  if (p && (!(p->cu_arena = malloc(BULK_ARENA)) || !(p->co_arena = malloc(BULK_ARENA))))
    p = pending_free(p);
  return p;
}

static size_t strsize(const char *s) {
  return s ? strlen(s) + 1 : 0;
}

/* Copies s into the arena (which has room: checked by the caller). */
static char *arena_dup(char *arena, size_t *used, const char *s) {
  if (!s)
    return NULL;
  size_t n = strlen(s) + 1;
  char *d = memcpy(arena + *used, s, n);
  *used += n;
  return d;
}

/* ---- the import ---------------------------------------------------------------------- */

struct problem {
  int col; /* enum validate_col, or -1 for the row as a whole */
  char message[200];
};

struct import {
  struct cli *cli;
  const char *path;
  bool dry_run, skip_invalid, ignore_unknown;

  FILE *f; /* pass 1 and 2 */
  struct csv_reader *r;
  FILE *vf; /* verifier: re-reads earlier rows */
  struct csv_reader *vr;
  struct cal *cal;     /* borrowed from cli */
  struct validate *v;  /* current row */
  struct validate *vv; /* verifier's rows */
  uint64_t size;       /* file size, for progress */

  size_t n_header;                  /* fields per record */
  int col_of_field[CSV_MAX_FIELDS]; /* validate column of a field, -1 = ignored */
  int field_of_col[_VCOL_MAX];      /* field index of a column, -1 = absent */

  struct idtab contracts, customers;
  struct rows rows;

  struct store *store;     /* pass 2; NULL in a dry run without a store */
  bool bulk;               /* pass 2 is one bulk transaction (store_bulk_begin) */
  struct pending *pending; /* bulk load: records not yet handed to the store */
  int64_t now;

  /* counters */
  uint64_t n_rows, inserted, updated, unchanged, rejected;

  /* progress bar (stderr is a TTY) */
  bool progress;
  bool progress_shown; /* a bar is on screen and must be cleared before text */
  int64_t progress_ms; /* last update */
  const char *phase;
};

static void import_done(struct import *im) {
  im->r = csv_free(im->r);
  im->vr = csv_free(im->vr);
  if (im->f)
    fclose(im->f);
  if (im->vf)
    fclose(im->vf);
  im->f = im->vf = NULL;
  im->v = validate_free(im->v);
  im->vv = validate_free(im->vv);
  im->store = store_free(im->store);
  im->pending = pending_free(im->pending);
  idtab_done(&im->contracts);
  idtab_done(&im->customers);
  rows_done(&im->rows);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void progress_clear(struct import *im) {
  if (im->progress_shown) {
    fputs("\r\033[K", stderr);
    im->progress_shown = false;
  }
}

static void progress_update(struct import *im, bool force) {
  if (!im->progress)
    return;
  int64_t now = mono_ms();
  if (!force && now - im->progress_ms < PROGRESS_INTERVAL_MS)
    return;
  im->progress_ms = now;
  uint64_t done = csv_bytes(im->r);
  unsigned pct = im->size ? (unsigned)(MIN(done, im->size) * 100 / im->size) : 100;
  char bar[31];
  memset(bar, '#', pct * 30 / 100);
  memset(bar + pct * 30 / 100, '.', 30 - pct * 30 / 100);
  bar[30] = 0;
  fprintf(stderr, "\r%-10s [%s] %3u%%  %" PRIu64 " rows", im->phase, bar, pct, im->n_rows);
  im->progress_shown = true;
}

/* Prints one problem as FILE:LINE: column: message. */
static void report(struct import *im, unsigned line, const struct problem *p) {
  progress_clear(im);
  if (p->col >= 0)
    fprintf(stderr, "%s:%u: %s: %s\n", im->path, line, validate_col_name(p->col), p->message);
  else
    fprintf(stderr, "%s:%u: %s\n", im->path, line, p->message);
}

static const char *trim(const char *s, size_t *ret_len) {
  if (!s) {
    *ret_len = 0;
    return "";
  }
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    n--;
  *ret_len = n;
  return s;
}

static void row_fields(const struct import *im, const struct csv_record *rec,
                       const char *fields[_VCOL_MAX]) {
  for (size_t c = 0; c < _VCOL_MAX; c++)
    fields[c] = im->field_of_col[c] >= 0 ? rec->fields[im->field_of_col[c]] : NULL;
}

/* Re-reads data row ord with the verifier reader (seeking to its chunk and
 * parsing forward), record line included. The record is valid until the next
 * reread. -ESTALE when the file changed since pass 1. */
static int reread(struct import *im, uint32_t ord, struct csv_record *ret) {
  int r;
  if (!im->vr) {
    if (!(im->vf = fopen(im->path, "re")))
      return -errno;
    if ((r = csv_open(im->vf, &im->vr)) < 0)
      return r;
  }
  size_t chunk = ord / ROWS_CHUNK;
  if ((r = csv_seek(im->vr, im->rows.offset[chunk], im->rows.line[chunk])) < 0)
    return r;
  for (size_t i = chunk * ROWS_CHUNK; i <= ord; i++) {
    r = csv_next(im->vr, ret);
    if (r <= 0)
      return r == 0 || r == -EBADMSG ? -ESTALE : r;
    if (i == chunk * ROWS_CHUNK && ret->offset != im->rows.offset[chunk])
      return -ESTALE;
  }
  return ret->n == im->n_header ? 0 : -ESTALE;
}

static int read_header(struct import *im) {
  struct csv_record rec;
  struct problem p = {.col = -1};
  bool bad = false;
  int r = csv_next(im->r, &rec);
  if (r < 0) {
    fprintf(stderr, "%s:%u: %s\n", im->path, csv_error_line(im->r),
            csv_error(im->r) ? csv_error(im->r) : strerror(-r));
    return EX_DATAERR;
  }
  if (r == 0) {
    cli_error("%s: empty file (expected a header line: contract_id,customer_id,...)", im->path);
    return EX_DATAERR;
  }
  for (size_t c = 0; c < _VCOL_MAX; c++)
    im->field_of_col[c] = -1;
  im->n_header = rec.n;
  for (size_t i = 0; i < rec.n; i++) {
    int c = validate_col_from_name(rec.fields[i], rec.lens[i]);
    size_t n;
    const char *name = trim(rec.fields[i], &n);
    im->col_of_field[i] = c;
    if (c < 0) {
      if (im->ignore_unknown)
        continue;
      snprintf(p.message, sizeof(p.message),
               "unknown column '%.*s' (use --ignore-unknown to skip it)", (int)MIN(n, 64), name);
      report(im, rec.line, &p);
      bad = true;
    } else if (im->field_of_col[c] >= 0) {
      snprintf(p.message, sizeof(p.message), "duplicate column '%s'", validate_col_name(c));
      report(im, rec.line, &p);
      bad = true;
    } else
      im->field_of_col[c] = (int)i;
  }
  static const enum validate_col required[] = {VCOL_CONTRACT_ID, VCOL_CUSTOMER_ID, VCOL_EXPIRES_ON};
  for (size_t i = 0; i < ELEMENTSOF(required); i++)
    if (im->field_of_col[required[i]] < 0) {
      snprintf(p.message, sizeof(p.message), "missing column '%s'", validate_col_name(required[i]));
      report(im, rec.line, &p);
      bad = true;
    }
  if (im->field_of_col[VCOL_EMAIL] < 0 && im->field_of_col[VCOL_PHONE] < 0) {
    snprintf(p.message, sizeof(p.message), "missing column 'email' or 'phone'");
    report(im, rec.line, &p);
    bad = true;
  }
  return bad ? EX_DATAERR : 0;
}

static int cmp_problem(const void *a, const void *b) {
  const struct problem *x = a, *y = b;
  return x->col != y->col ? (x->col < y->col ? -1 : 1) : 0;
}

/* Pass 1 for one record: validate, find duplicates and conflicts, register
 * the ids of a valid row. Returns 0 or a negative errno (fatal). */
static int check_row(struct import *im, const struct csv_record *rec, uint32_t ord) {
  struct problem ps[MAX_PROBLEMS];
  size_t n = 0;
  struct validate_problems vp;
  struct customer cu;
  struct contract co;
  const char *fields[_VCOL_MAX];
  int r;

  if (rec->n != im->n_header) {
    ps[n].col = -1;
    snprintf(ps[n++].message, sizeof(ps[0].message), "%zu fields, but the header has %zu", rec->n,
             im->n_header);
    goto done;
  }
  row_fields(im, rec, fields);
  /* Both ids as validate_row() will keep them (trimmed): hash them now and
   * prefetch their slots, so the memory accesses overlap the validation. */
  size_t len, culen;
  const char *cid = trim(fields[VCOL_CONTRACT_ID], &len);
  const char *cuid = trim(fields[VCOL_CUSTOMER_ID], &culen);
  uint32_t fp = (uint32_t)hash_id(cid, len);
  uint32_t cu_fp = (uint32_t)hash_id(cuid, culen);
  idtab_prefetch(&im->contracts, fp);
  idtab_prefetch(&im->customers, cu_fp);
  r = validate_row(im->v, fields, &cu, &co, &vp);
  if (r < 0)
    return r;
  bool cid_ok = fields[VCOL_CONTRACT_ID] != NULL;
  for (size_t i = 0; i < vp.n; i++) {
    ps[n].col = (int)vp.p[i].col;
    snprintf(ps[n++].message, sizeof(ps[0].message), "%s", vp.p[i].message);
    if (vp.p[i].col == VCOL_CONTRACT_ID)
      cid_ok = false;
  }

  /* contract id repeated in this file. Every row with a usable id registers
   * it, valid or not, so a repeat is reported even while the first row still
   * has other problems. */
  if (cid_ok) {
    bool dup = false;
    const struct idtab *t = &im->contracts;
    for (size_t j = t->cap ? idtab_home(t, fp) : 0; t->cap && t->slot[j].ord1;
         j = idtab_next(t, j)) {
      if (t->slot[j].fp != fp)
        continue;
      struct csv_record old;
      size_t olen;
      if ((r = reread(im, t->slot[j].ord1 - 1, &old)) < 0)
        return r;
      const char *ocid = trim(old.fields[im->field_of_col[VCOL_CONTRACT_ID]], &olen);
      if (olen == len && memcmp(ocid, cid, len) == 0) {
        ps[n].col = VCOL_CONTRACT_ID;
        snprintf(ps[n++].message, sizeof(ps[0].message), "duplicate of line %u", old.line);
        dup = true;
        break;
      }
    }
    if (!dup) {
      if ((r = idtab_reserve(&im->contracts)) < 0)
        return r;
      idtab_insert(&im->contracts, fp, ord);
    }
  }

  /* customer data differing from an earlier row of the same customer (a
   * valid row's cu.id is the trimmed field hashed above) */
  uint64_t cu_content = 0;
  bool cu_known = false;
  if (vp.n == 0) {
    const struct idtab *t = &im->customers;
    cu_content = hash_customer(&cu);
    for (size_t j = t->cap ? idtab_home(t, cu_fp) : 0; t->cap && t->slot[j].ord1;
         j = idtab_next(t, j)) {
      if (t->slot[j].fp != cu_fp)
        continue;
      if (t->content[j] == cu_content) {
        cu_known = true; /* same id (but for a 96-bit collision) and same data */
        break;
      }
      /* same fingerprint, other content: the same id (a conflict) or another
       * customer whose fingerprint collides */
      struct csv_record old;
      const char *ofields[_VCOL_MAX];
      struct customer ocu;
      if ((r = reread(im, t->slot[j].ord1 - 1, &old)) < 0)
        return r;
      row_fields(im, &old, ofields);
      if ((r = validate_row(im->vv, ofields, &ocu, NULL, NULL)) != 0)
        return r < 0 ? r : -ESTALE;
      if (!streq(ocu.id, cu.id))
        continue;
      const struct {
        enum validate_col col;
        const char *a, *b;
      } diff[] = {
          {VCOL_CUSTOMER_NAME, ocu.name, cu.name}, {VCOL_EMAIL, ocu.email, cu.email},
          {VCOL_PHONE, ocu.phone, cu.phone},       {VCOL_TIMEZONE, ocu.tz, cu.tz},
          {VCOL_LOCALE, ocu.locale, cu.locale},    {VCOL_SEGMENT, ocu.segment, cu.segment},
          {VCOL_OWNER, ocu.owner_id, cu.owner_id},
      };
      for (size_t d = 0; d < ELEMENTSOF(diff) && n < MAX_PROBLEMS; d++)
        if (!streq_ptr(diff[d].a, diff[d].b)) {
          ps[n].col = (int)diff[d].col;
          snprintf(ps[n++].message, sizeof(ps[0].message), "differs from line %u for customer '%s'",
                   old.line, cu.id);
        }
      break;
    }
  }

  if (n == 0) {
    /* a valid row: register its customer */
    if (!cu_known) {
      if ((r = idtab_reserve(&im->customers)) < 0)
        return r;
      size_t j = idtab_insert(&im->customers, cu_fp, ord);
      im->customers.content[j] = cu_content;
      im->customers.status[j] = STORE_UNCHANGED;
      rows_set_cu_first(&im->rows, ord);
    }
    return 0;
  }

done:
  qsort(ps, n, sizeof(ps[0]), cmp_problem);
  for (size_t i = 0; i < n; i++)
    report(im, rec->line, &ps[i]);
  rows_reject(&im->rows, ord);
  im->rejected++;
  return 0;
}

static int pass_validate(struct import *im) {
  struct csv_record rec;
  int r;
  im->phase = "validating";
  while ((r = csv_next(im->r, &rec)) > 0) {
    if ((r = rows_add(&im->rows, rec.offset, rec.line)) < 0)
      break;
    im->n_rows++;
    if ((r = check_row(im, &rec, (uint32_t)(im->rows.n - 1))) < 0)
      break;
    if ((im->n_rows & 255) == 0)
      progress_update(im, false);
  }
  if (r == -EBADMSG) {
    progress_clear(im);
    fprintf(stderr, "%s:%u: %s\n", im->path, csv_error_line(im->r), csv_error(im->r));
    fprintf(stderr, "%s: not imported: the file is not valid CSV\n", im->path);
    return EX_DATAERR;
  }
  if (r < 0) {
    progress_clear(im);
    if (r == -ESTALE)
      cli_error("%s: the file changed while being imported", im->path);
    else
      cli_error("%s: %s", im->path, strerror(-r));
    return r == -ENOMEM ? EX_OSERR : EX_IOERR;
  }
  progress_update(im, true);
  return 0;
}

/* What a dry run would do to a customer/contract, compared with the store. */
static bool differs(const char *stored, const char *v) {
  return !streq_ptr(isempty(stored) ? NULL : stored, isempty(v) ? NULL : v);
}

static int dry_customer(struct import *im, const struct customer *cu) {
  struct customer old = {0};
  if (!im->store)
    return STORE_INSERTED;
  int r = store_customer_get(im->store, cu->id, &old);
  if (r == -ENOENT)
    return STORE_INSERTED;
  if (r < 0)
    return r;
  bool d = differs(old.name, cu->name) || differs(old.email, cu->email) ||
           differs(old.phone, cu->phone) || differs(old.tz, cu->tz) ||
           differs(old.locale, cu->locale) || differs(old.segment, cu->segment) ||
           differs(old.owner_id, cu->owner_id);
  customer_clear(&old);
  return d ? STORE_UPDATED : STORE_UNCHANGED;
}

static int dry_contract(struct import *im, const struct contract *co) {
  struct contract old = {0};
  if (!im->store)
    return STORE_INSERTED;
  int r = store_contract_get(im->store, co->id, &old);
  if (r == -ENOENT)
    return STORE_INSERTED;
  if (r < 0)
    return r;
  bool d = differs(old.customer_id, co->customer_id) || differs(old.product, co->product) ||
           differs(old.currency, co->currency) || old.starts_at != co->starts_at ||
           old.expires_at != co->expires_at || old.value_minor != co->value_minor;
  contract_clear(&old);
  return d ? STORE_UPDATED : STORE_UNCHANGED;
}

/* The pass-1 slot of customer cu (its upsert result lives there), or -ESTALE. */
static int customer_slot(struct import *im, const struct customer *cu, size_t *ret) {
  struct idtab *t = &im->customers;
  if (!t->cap)
    return -ESTALE;
  uint32_t fp = (uint32_t)hash_id(cu->id, strlen(cu->id));
  uint64_t content = hash_customer(cu);
  size_t j = idtab_home(t, fp);
  while (t->slot[j].ord1 && !(t->slot[j].fp == fp && t->content[j] == content))
    j = idtab_next(t, j);
  if (!t->slot[j].ord1)
    return -ESTALE;
  *ret = j;
  return 0;
}

static int flush_customers(struct import *im) {
  struct pending *p = im->pending;
  int r = store_bulk_customers(im->store, p->cu, p->n_cu, im->now);
  p->n_cu = p->cu_used = 0;
  return r;
}

static int flush_contracts(struct import *im) {
  struct pending *p = im->pending;
  int r = store_bulk_contracts(im->store, p->co, p->n_co, im->now);
  p->n_co = p->co_used = 0;
  return r;
}

/* Queues a copy of cu for the store. */
static int bulk_customer(struct import *im, const struct customer *cu) {
  struct pending *p = im->pending;
  size_t need = strsize(cu->id) + strsize(cu->name) + strsize(cu->email) + strsize(cu->phone) +
                strsize(cu->tz) + strsize(cu->locale) + strsize(cu->segment) +
                strsize(cu->owner_id);
  int r;
  if (need > BULK_ARENA)
    return -E2BIG;
  if ((p->n_cu == BULK_HANDOFF || p->cu_used + need > BULK_ARENA) && (r = flush_customers(im)) < 0)
    return r;
  p->cu[p->n_cu++] = (struct customer){
      .id = arena_dup(p->cu_arena, &p->cu_used, cu->id),
      .name = arena_dup(p->cu_arena, &p->cu_used, cu->name),
      .email = arena_dup(p->cu_arena, &p->cu_used, cu->email),
      .phone = arena_dup(p->cu_arena, &p->cu_used, cu->phone),
      .tz = arena_dup(p->cu_arena, &p->cu_used, cu->tz),
      .locale = arena_dup(p->cu_arena, &p->cu_used, cu->locale),
      .segment = arena_dup(p->cu_arena, &p->cu_used, cu->segment),
      .owner_id = arena_dup(p->cu_arena, &p->cu_used, cu->owner_id),
      .optout = cu->optout,
  };
  return 0;
}

/* Queues a copy of co for the store. */
static int bulk_contract(struct import *im, const struct contract *co) {
  struct pending *p = im->pending;
  size_t need =
      strsize(co->id) + strsize(co->customer_id) + strsize(co->product) + strsize(co->currency);
  int r;
  if (need > BULK_ARENA)
    return -E2BIG;
  if ((p->n_co == BULK_HANDOFF || p->co_used + need > BULK_ARENA) && (r = flush_contracts(im)) < 0)
    return r;
  struct contract c = *co;
  c.id = arena_dup(p->co_arena, &p->co_used, co->id);
  c.customer_id = arena_dup(p->co_arena, &p->co_used, co->customer_id);
  c.product = arena_dup(p->co_arena, &p->co_used, co->product);
  c.currency = arena_dup(p->co_arena, &p->co_used, co->currency);
  p->co[p->n_co++] = c;
  return 0;
}

/* Pass 2 for one valid row. Returns 0 or a negative errno. */
static int write_row(struct import *im, const struct csv_record *rec, uint32_t ord) {
  const char *fields[_VCOL_MAX];
  struct customer cu;
  struct contract co;
  size_t j;
  int r, cu_result = -1;

  row_fields(im, rec, fields);
  if ((r = validate_row(im->v, fields, &cu, &co, NULL)) != 0)
    return r < 0 ? r : -ESTALE;

  if (im->bulk) {
    /* every contract is new (the table was empty, pass 1 found no repeats) */
    if (rows_cu_first(&im->rows, ord) && (r = bulk_customer(im, &cu)) < 0)
      return r;
    if ((r = bulk_contract(im, &co)) < 0)
      return r;
    im->inserted++;
    return 0;
  }

  /* the customer: written by the first row carrying it (marked in pass 1) */
  if (rows_cu_first(&im->rows, ord)) {
    r = im->dry_run ? dry_customer(im, &cu) : store_customer_upsert(im->store, &cu, im->now);
    if (r < 0)
      return r;
    cu_result = r;
    if ((r = customer_slot(im, &cu, &j)) < 0)
      return r;
    im->customers.status[j] = (uint8_t)cu_result;
  }

  r = im->dry_run ? dry_contract(im, &co) : store_contract_upsert(im->store, &co, im->now);
  if (r < 0)
    return r;
  if (r == STORE_INSERTED) {
    im->inserted++;
    return 0;
  }
  if (r == STORE_UPDATED) {
    im->updated++;
    return 0;
  }
  /* an unchanged contract counts as updated when its customer was */
  if (cu_result < 0) {
    if ((r = customer_slot(im, &cu, &j)) < 0)
      return r;
    cu_result = im->customers.status[j];
  }
  if (cu_result != STORE_UNCHANGED)
    im->updated++;
  else
    im->unchanged++;
  return 0;
}

/* Leaves the write lock free for a while after a batch that took ms. */
static void batch_yield(int64_t ms) {
  int64_t pause = MAX(ms / BATCH_YIELD_DIV, (int64_t)BATCH_YIELD_MIN_MS);
  struct timespec ts = {.tv_sec = pause / 1000, .tv_nsec = (pause % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int pass_write(struct import *im) {
  struct csv_record rec;
  unsigned line = 0;
  size_t in_txn = 0;
  int64_t batch_ms = 0;
  int r = 0, ex;

  if (im->rows.n == 0)
    return 0;
  if (im->dry_run) {
    const char *path;
    if ((ex = cli_db_path(im->cli, &path)))
      return ex;
    /* a dry run never creates the store: a missing one means "all new" */
    if (access(path, F_OK) < 0 && errno == ENOENT)
      im->store = NULL;
    else if ((ex = cli_open_store(im->cli, STORE_READONLY | STORE_NO_CREATE, &im->store)))
      return ex;
  } else if ((ex = cli_open_store(im->cli, 0, &im->store)))
    return ex;

  /* the contract id table is only needed by pass 1 */
  idtab_done(&im->contracts);
  im->phase = im->dry_run ? "comparing" : "writing";
  im->now = time(NULL);
  im->n_rows = 0;
  if (!im->dry_run) {
    /* a first import (no contracts yet) is one transaction that builds the
     * indexes at the end; otherwise batches of IMPORT_BATCH rows */
    if ((r = store_load_begin(im->store)) < 0 || (r = store_bulk_begin(im->store)) < 0)
      goto fail;
    im->bulk = r > 0;
    if (im->bulk) {
      idtab_done(&im->customers); /* every contract is inserted: no status needed */
      in_txn = 1;
      if (!(im->pending = pending_new())) {
        r = -ENOMEM;
        goto fail;
      }
    }
  }
  if ((r = csv_seek(im->r, im->rows.offset[0], im->rows.line[0])) < 0)
    goto fail;
  for (uint32_t ord = 0; ord < im->rows.n; ord++) {
    if ((r = csv_next(im->r, &rec)) <= 0 ||
        (ord % ROWS_CHUNK == 0 && rec.offset != im->rows.offset[ord / ROWS_CHUNK])) {
      r = r < 0 && r != -EBADMSG ? r : -ESTALE;
      goto fail;
    }
    line = rec.line;
    im->n_rows++;
    if (rows_rejected(&im->rows, ord))
      continue;
    if (!im->dry_run && in_txn == 0) {
      if ((r = store_begin(im->store)) < 0)
        goto fail;
      batch_ms = mono_ms();
    }
    if ((r = write_row(im, &rec, ord)) < 0)
      goto fail;
    if (!im->dry_run && !im->bulk && ++in_txn == IMPORT_BATCH) {
      if ((r = store_commit(im->store)) < 0)
        goto fail;
      in_txn = 0;
      batch_yield(mono_ms() - batch_ms);
    }
    if ((im->n_rows & 255) == 0)
      progress_update(im, false);
  }
  if (im->bulk) {
    if ((r = flush_customers(im)) < 0 || (r = flush_contracts(im)) < 0)
      goto fail;
    im->phase = "indexing";
    progress_update(im, true);
  }
  if (in_txn > 0 && (r = store_commit(im->store)) < 0) {
    line = 0; /* not a row's fault */
    goto fail;
  }
  in_txn = 0;
  progress_update(im, true);
  progress_clear(im);
  /* everything is committed: a failed checkpoint only leaves the WAL long */
  if (!im->dry_run && (r = store_load_end(im->store)) < 0)
    fprintf(stderr, "%s: warning: cannot checkpoint the store: %s: %s\n", im->path, strerror(-r),
            store_last_error(im->store));
  return 0;

fail:
  progress_clear(im);
  if (in_txn > 0)
    store_rollback(im->store);
  if (!im->dry_run && im->store)
    (void)store_load_end(im->store);
  if (r == -ESTALE)
    cli_error("%s: the file changed while being imported", im->path);
  else {
    char where[16] = "";
    if (line > 0)
      snprintf(where, sizeof where, ":%u", line);
    cli_error("%s%s: cannot %s: %s%s%s", im->path, where, im->dry_run ? "read store" : "write",
              r == -EBUSY ? "database is locked" : strerror(-r), im->store ? ": " : "",
              im->store ? store_last_error(im->store) : "");
  }
  if (im->bulk)
    fprintf(stderr, "%s: nothing was written (a first import is one transaction)\n", im->path);
  else if (!im->dry_run && im->inserted + im->updated > 0 && line > 0)
    fprintf(stderr, "%s: rows before line %u were written in earlier transactions\n", im->path,
            line - 1);
  else if (!im->dry_run && im->inserted + im->updated > 0)
    fprintf(stderr, "%s: the rows of earlier transactions were written\n", im->path);
  return r == -EBUSY ? EX_UNAVAILABLE : EX_IOERR;
}

static void usage(void) {
  fputs("Usage: renewctl import FILE.csv [--dry-run] [--skip-invalid] [--ignore-unknown]\n"
        "\n"
        "Validate every row of FILE.csv, then insert or update its customers and\n"
        "contracts. Columns (header line, any order, case-insensitive):\n"
        "  contract_id customer_id customer_name email phone timezone locale\n"
        "  segment owner product starts_on expires_on value currency\n"
        "Each problem is printed as FILE:LINE: column: message.\n"
        "\n"
        "  --dry-run         validate and count what would change; write nothing\n"
        "  --skip-invalid    write the valid rows even when some are rejected\n"
        "                    (exit 0; the summary counts the rejected rows)\n"
        "  --ignore-unknown  ignore columns not listed above\n"
        "  --json            print the summary as JSON\n"
        "\n"
        "Without --skip-invalid nothing is written when any row is invalid (exit 65).\n"
        "See docs/import.md.\n",
        stdout);
}

int cmd_import(struct cli *c, int argc, char **argv) {
  enum { OPT_DRY_RUN = 0x3000, OPT_SKIP_INVALID, OPT_IGNORE_UNKNOWN };
  static const struct option options[] = {
      CLI_COMMON_OPTIONS,
      {"dry-run", no_argument, NULL, OPT_DRY_RUN},
      {"skip-invalid", no_argument, NULL, OPT_SKIP_INVALID},
      {"ignore-unknown", no_argument, NULL, OPT_IGNORE_UNKNOWN},
      {0},
  };
  _cleanup_free_ struct import *im = calloc(1, sizeof(*im));
  const char *tz;
  int opt, r, ex = 0;

  if (!im) {
    cli_error("out of memory");
    return EX_OSERR;
  }
  im->cli = c;
  im->customers.customers = true;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
    if (cli_common_option(c, opt, optarg))
      continue;
    switch (opt) {
    case CLI_OPT_HELP:
      usage();
      return 0;
    case OPT_DRY_RUN:
      im->dry_run = true;
      break;
    case OPT_SKIP_INVALID:
      im->skip_invalid = true;
      break;
    case OPT_IGNORE_UNKNOWN:
      im->ignore_unknown = true;
      break;
    default:
      return cli_usage_error("import", "invalid option");
    }
  }
  if (optind + 1 != argc)
    return cli_usage_error("import", optind >= argc ? "missing FILE.csv" : "too many arguments");
  im->path = argv[optind];

  if ((ex = cli_default_tz(c, &tz)))
    return ex;
  im->cal = cli_cal(c);
  if (!im->cal)
    return EX_OSERR;
  if ((r = validate_new(im->cal, tz, &im->v)) < 0 || (r = validate_new(im->cal, tz, &im->vv)) < 0) {
    if (r == -EINVAL)
      cli_error("unknown time zone '%s' in [Daemon] TimeZone=", tz);
    else
      cli_error("out of memory");
    ex = r == -EINVAL ? EX_CONFIG : EX_OSERR;
    goto out;
  }

  struct stat st;
  if (!(im->f = fopen(im->path, "re"))) {
    cli_error("cannot open %s: %s", im->path, strerror(errno));
    ex = EX_NOINPUT;
    goto out;
  }
  if (fstat(fileno(im->f), &st) < 0 || !S_ISREG(st.st_mode)) {
    cli_error("%s: not a regular file (import reads the file twice)", im->path);
    ex = EX_NOINPUT;
    goto out;
  }
  im->size = (uint64_t)st.st_size;
  im->progress = isatty(STDERR_FILENO);
  if ((r = csv_open(im->f, &im->r)) < 0) {
    cli_error("out of memory");
    ex = EX_OSERR;
    goto out;
  }

  if ((ex = read_header(im)) || (ex = pass_validate(im)))
    goto out;
  progress_clear(im);

  bool write = im->rejected == 0 || im->skip_invalid;
  if (write && (ex = pass_write(im)))
    goto out;

  /* summary */
  bool written = write && !im->dry_run && im->inserted + im->updated > 0;
  if (c->json) {
    json_t *j = json_object();
    if (!j || cli_json_set(j, "file", json_string(im->path)) < 0 ||
        cli_json_set(j, "rows", json_integer((json_int_t)im->n_rows)) < 0 ||
        cli_json_set(j, "inserted", json_integer((json_int_t)im->inserted)) < 0 ||
        cli_json_set(j, "updated", json_integer((json_int_t)im->updated)) < 0 ||
        cli_json_set(j, "unchanged", json_integer((json_int_t)im->unchanged)) < 0 ||
        cli_json_set(j, "rejected", json_integer((json_int_t)im->rejected)) < 0 ||
        cli_json_set(j, "dry_run", json_boolean(im->dry_run)) < 0 ||
        cli_json_set(j, "written", json_boolean(written)) < 0) {
      json_decref(j);
      cli_error("out of memory");
      ex = EX_OSERR;
      goto out;
    }
    ex = cli_json_print(j, stdout);
    json_decref(j);
  } else
    printf("%s: %" PRIu64 " row%s: %" PRIu64 " inserted, %" PRIu64 " updated, %" PRIu64
           " unchanged, %" PRIu64 " rejected%s\n",
           im->path, im->n_rows, im->n_rows == 1 ? "" : "s", im->inserted, im->updated,
           im->unchanged, im->rejected,
           !write        ? " (nothing written)"
           : im->dry_run ? " (dry run, nothing written)"
                         : "");
  if (!ex && !write)
    ex = EX_DATAERR;

out:
  progress_clear(im);
  import_done(im);
  return ex;
}
