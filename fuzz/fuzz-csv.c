/* fuzz-csv: the CSV reader (core/csv.c) and the row validator behind
 * `renewctl import` (core/validate.c).
 *
 * The input is a CSV file. Its first record is read as the header (column
 * names as the importer maps them), every further record is validated as a
 * contract row. csv.c is compiled into this target with a 7-byte input chunk
 * (fuzz/CMakeLists.txt), so records straddle chunk edges and csv_seek() takes
 * its fseek() path. Checked on the way, beyond the sanitizers:
 *  - each record has 1..CSV_MAX_FIELDS fields, each as long as its lens[]
 *    says (no NUL inside), starting on a later line at a later offset;
 *  - an error is -EBADMSG with a message and a line, and sticks;
 *  - seeking back to the second record reads it again, byte for byte. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cal.h"
#include "core/csv.h"
#include "core/validate.h"
#include "fuzz/fuzz.h"

#define MAX_HEADER 32      /* header fields mapped to columns; later ones are ignored */
#define MAX_RECORDS 100000 /* records read per input (bounds the time per input) */

/* The zone database and validator, loaded once for all inputs: the fuzzer is
 * single-threaded and nothing here depends on an earlier input. */
static struct cal *cal;
static struct validate *val;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  FUZZ_CHECK(cal_new(&cal) == 0);
  FUZZ_CHECK(validate_new(cal, "Europe/Berlin", &val) == 0);
  return 0;
}

/* FNV-1a over a record's fields (lengths included), to compare two reads. */
static uint64_t record_hash(const struct csv_record *rec) {
  uint64_t h = 1469598103934665603u;
  for (size_t i = 0; i < rec->n; i++) {
    const unsigned char *p = (const unsigned char *)rec->fields[i];
    for (size_t k = 0; k <= rec->lens[i]; k++) /* the NUL separates fields */
      h = (h ^ p[k]) * 1099511628211u;
  }
  return h;
}

static void check_record(const struct csv_record *rec) {
  FUZZ_CHECK(rec->n >= 1 && rec->n <= CSV_MAX_FIELDS);
  for (size_t i = 0; i < rec->n; i++)
    FUZZ_CHECK(strlen(rec->fields[i]) == rec->lens[i]);
}

/* Maps the header's fields to columns (-1: not a column the importer knows). */
static void map_header(const struct csv_record *rec, int col_of[MAX_HEADER]) {
  for (size_t i = 0; i < MAX_HEADER; i++)
    col_of[i] = i < rec->n ? validate_col_from_name(rec->fields[i], rec->lens[i]) : -1;
}

static void validate_record(const struct csv_record *rec, const int col_of[MAX_HEADER]) {
  const char *fields[_VCOL_MAX] = {0};
  for (size_t i = 0; i < rec->n && i < MAX_HEADER; i++)
    if (col_of[i] >= 0)
      fields[col_of[i]] = rec->fields[i];
  struct validate_problems problems;
  int r = validate_row(val, fields, NULL, NULL, &problems);
  FUZZ_CHECK(r >= 0 || r == -ENOMEM);
  if (r >= 0)
    FUZZ_CHECK((size_t)r == problems.n && problems.n <= _VCOL_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FILE *f = size ? fmemopen((void *)data, size, "r") : fopen("/dev/null", "re");
  FUZZ_CHECK(f);
  struct csv_reader *r = NULL;
  FUZZ_CHECK(csv_open(f, &r) == 0);

  int col_of[MAX_HEADER];
  struct csv_record rec;
  unsigned n = 0, prev_line = 0, second_line = 0;
  uint64_t prev_offset = 0, second_offset = 0, second_hash = 0;
  int rc = 0;
  while (n < MAX_RECORDS && (rc = csv_next(r, &rec)) == 1) {
    check_record(&rec);
    FUZZ_CHECK(rec.line > prev_line && rec.offset < size);
    FUZZ_CHECK(n == 0 || rec.offset > prev_offset);
    prev_line = rec.line;
    prev_offset = rec.offset;
    if (n == 0)
      map_header(&rec, col_of);
    else
      validate_record(&rec, col_of);
    if (n == 1) {
      second_line = rec.line;
      second_offset = rec.offset;
      second_hash = record_hash(&rec);
    }
    n++;
  }
  if (n < MAX_RECORDS && rc < 0) {
    FUZZ_CHECK(rc == -EBADMSG || rc == -ENOMEM);
    if (rc == -EBADMSG) {
      FUZZ_CHECK(csv_error(r) && csv_error_line(r) >= 1);
      FUZZ_CHECK(csv_next(r, &rec) == rc); /* a broken file is not resynchronised */
    }
  }
  if (n >= 2) {
    FUZZ_CHECK(csv_seek(r, second_offset, second_line) == 0);
    FUZZ_CHECK(csv_next(r, &rec) == 1);
    FUZZ_CHECK(rec.line == second_line && rec.offset == second_offset);
    FUZZ_CHECK(record_hash(&rec) == second_hash);
  }
  csv_free(r);
  fclose(f);
  return 0;
}
