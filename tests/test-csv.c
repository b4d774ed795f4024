/* Unit tests for core/csv: quoting, doubled quotes, embedded newlines and their
 * start lines, CRLF/CR/LF, BOM, blank lines, UTF-8, errors with line numbers,
 * records spanning input chunks, csv_seek() and byte counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/csv.h"
#include "core/util.h"

/* Parses text and renders every record as "LINE:f1|f2|...\n" into out; on an
 * error appends "ERR LINE: message\n". Returns the last csv_next() result. */
static int render(const char *text, size_t len, struct buf *out) {
  FILE *f = fmemopen((void *)text, len, "r");
  assert_non_null(f);
  struct csv_reader *r = NULL;
  assert_int_equal(csv_open(f, &r), 0);
  struct csv_record rec;
  int k;
  while ((k = csv_next(r, &rec)) > 0) {
    assert_true(rec.n >= 1);
    buf_printf(out, "%u:", rec.line);
    for (size_t i = 0; i < rec.n; i++) {
      assert_int_equal(strlen(rec.fields[i]), rec.lens[i]);
      buf_printf(out, "%s%s", i ? "|" : "", rec.fields[i]);
    }
    buf_puts(out, "\n");
  }
  if (k < 0) {
    buf_printf(out, "ERR %u: %s\n", csv_error_line(r), csv_error(r) ? csv_error(r) : "?");
    /* sticky */
    assert_int_equal(csv_next(r, &rec), k);
  } else
    assert_int_equal(csv_bytes(r), len);
  csv_free(r);
  fclose(f);
  return k;
}

static void check(const char *text, const char *expect, int expect_k) {
  struct buf out = {0};
  buf_puts(&out, "");
  int k = render(text, strlen(text), &out);
  assert_string_equal(out.data, expect);
  assert_int_equal(k, expect_k);
  buf_free(&out);
}

static void test_table(void **state) {
  static const struct {
    const char *in, *out;
    int k;
  } cases[] = {
      {"", "", 0},
      {"a", "1:a\n", 0},
      {"a,b,c\n1,2,3\n", "1:a|b|c\n2:1|2|3\n", 0},
      {"a,b\n1,2", "1:a|b\n2:1|2\n", 0}, /* no final newline */
      {"a,,c\n,\n", "1:a||c\n2:|\n", 0}, /* empty fields */
      {"a,\n", "1:a|\n", 0},             /* trailing empty field */
      {"a,", "1:a|\n", 0},
      /* quoting */
      {"\"a,b\",c\n", "1:a,b|c\n", 0},
      {"\"say \"\"hi\"\"\",x\n", "1:say \"hi\"|x\n", 0},
      {"\"\"\n", "1:\n", 0}, /* a quoted empty field is a record, not a blank line */
      {"\"\",\"\"\n", "1:|\n", 0},
      {"\"\"\"\"\n", "1:\"\n", 0},
      /* embedded newlines: the record reports its start line */
      {"h\n\"line1\nline2\",x\nnext\n", "1:h\n2:line1\nline2|x\n4:next\n", 0},
      {"\"a\n\nb\n\",c\nd\n", "1:a\n\nb\n|c\n5:d\n", 0},
      {"\"a\r\nb\",c\r\nd\r\n", "1:a\r\nb|c\n3:d\n", 0},
      /* CRLF, lone CR */
      {"a,b\r\nc,d\r\n", "1:a|b\n2:c|d\n", 0},
      {"a\rb\rc", "1:a\n2:b\n3:c\n", 0},
      {"\"q\"\r\nz\r\n", "1:q\n2:z\n", 0},
      /* BOM only at the very start */
      {"\xEF\xBB\xBF"
       "id,name\n1,x\n",
       "1:id|name\n2:1|x\n", 0},
      {"a\n\xEF\xBB\xBF", "1:a\n2:\xEF\xBB\xBF\n", 0},
      /* blank lines anywhere */
      {"\n\na\n\n\nb\n\n", "3:a\n6:b\n", 0},
      {"\r\n\r\na\r\n\r\nb", "3:a\n5:b\n", 0},
      /* a line of spaces is data, not blank */
      {"  \n", "1:  \n", 0},
      /* UTF-8 passes through untouched */
      {"id,name\nC1,王小明\nC2,\"Zoë, Ltd\"\n", "1:id|name\n2:C1|王小明\n3:C2|Zoë, Ltd\n", 0},
      /* errors, with lines */
      {"a\n\"abc\n", "1:a\nERR 2: unterminated quoted field\n", -EBADMSG},
      {"a\nb\n\"x\ny\nz", "1:a\n2:b\nERR 3: unterminated quoted field\n", -EBADMSG},
      {"a\nab\"c\n", "1:a\nERR 2: quote inside an unquoted field\n", -EBADMSG},
      {"a\n\"x\ny\"z\n", "1:a\nERR 3: unexpected 'z' after closing quote\n", -EBADMSG},
      {"\"x\" ,y\n", "ERR 1: unexpected ' ' after closing quote\n", -EBADMSG},
      {"\"x\"\xE7\n", "ERR 1: unexpected byte 0xe7 after closing quote\n", -EBADMSG},
      {"a\r\nb\r\n\"c\r\nd\"e", "1:a\n2:b\nERR 4: unexpected 'e' after closing quote\n", -EBADMSG},
  };
  for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
    print_message("case %zu\n", i);
    check(cases[i].in, cases[i].out, cases[i].k);
  }
}

static void test_nul(void **state) {
  static const char in[] = "a\nb\0c\n";
  struct buf out = {0};
  buf_puts(&out, "");
  assert_int_equal(render(in, sizeof(in) - 1, &out), -EBADMSG);
  assert_string_equal(out.data, "1:a\nERR 2: NUL byte in field\n");
  buf_free(&out);
}

/* Records and quoted fields crossing the 256 KiB input chunk, long fields,
 * many records: compares with the expected fields and start lines. */
static void test_big(void **state) {
  FILE *f = tmpfile();
  assert_non_null(f);
  const unsigned n = 20000;
  for (unsigned i = 0; i < n; i++) {
    if (i % 7 == 0)
      fprintf(f, "%u,\"multi\nline %u, \"\"q\"\"\",end\r\n", i, i);
    else if (i % 1000 == 5)
      fprintf(f, "%u,%0*d,end\n\n", i, 70000, 0); /* long field, then a blank line */
    else
      fprintf(f, "%u,plain %u,end\n", i, i);
  }
  long size = ftell(f);
  rewind(f);
  struct csv_reader *r = NULL;
  assert_int_equal(csv_open(f, &r), 0);
  struct csv_record rec;
  unsigned line = 1;
  uint64_t offset_of_1234 = 0;
  unsigned line_of_1234 = 0;
  for (unsigned i = 0; i < n; i++) {
    assert_int_equal(csv_next(r, &rec), 1);
    assert_int_equal(rec.n, 3);
    assert_int_equal(rec.line, line);
    char buf[64];
    snprintf(buf, sizeof(buf), "%u", i);
    assert_string_equal(rec.fields[0], buf);
    assert_string_equal(rec.fields[2], "end");
    if (i == 1234) {
      offset_of_1234 = rec.offset;
      line_of_1234 = rec.line;
    }
    if (i % 7 == 0) {
      snprintf(buf, sizeof(buf), "multi\nline %u, \"q\"", i);
      assert_string_equal(rec.fields[1], buf);
      line += 2;
    } else if (i % 1000 == 5) {
      assert_int_equal(rec.lens[1], 70000);
      line += 2;
    } else {
      snprintf(buf, sizeof(buf), "plain %u", i);
      assert_string_equal(rec.fields[1], buf);
      line += 1;
    }
  }
  assert_int_equal(csv_next(r, &rec), 0);
  assert_int_equal(csv_bytes(r), (uint64_t)size);

  /* seek back far (outside the current chunk) and near */
  assert_int_equal(csv_seek(r, offset_of_1234, line_of_1234), 0);
  assert_int_equal(csv_next(r, &rec), 1);
  assert_string_equal(rec.fields[0], "1234");
  assert_int_equal(rec.line, line_of_1234);
  assert_int_equal(rec.offset, offset_of_1234);
  uint64_t o = rec.offset;
  assert_int_equal(csv_next(r, &rec), 1);
  assert_string_equal(rec.fields[0], "1235");
  assert_int_equal(csv_seek(r, o, 9), 0);
  assert_int_equal(csv_next(r, &rec), 1);
  assert_string_equal(rec.fields[0], "1234");
  assert_int_equal(rec.line, 9);
  csv_free(r);
  fclose(f);
}

static void test_too_long(void **state) {
  FILE *f = tmpfile();
  assert_non_null(f);
  fputs("a\nb,\"", f);
  for (unsigned i = 0; i < CSV_MAX_RECORD / 10 + 10; i++)
    fputs("xxxxxxxxx\n", f);
  rewind(f);
  struct csv_reader *r = NULL;
  assert_int_equal(csv_open(f, &r), 0);
  struct csv_record rec;
  assert_int_equal(csv_next(r, &rec), 1);
  assert_int_equal(csv_next(r, &rec), -EBADMSG);
  assert_int_equal(csv_error_line(r), 2);
  assert_string_equal(csv_error(r), "record longer than 1 MiB");
  csv_free(r);
  fclose(f);
}

static void test_args(void **state) {
  struct csv_reader *r = NULL;
  assert_int_equal(csv_open(NULL, &r), -EINVAL);
  assert_null(csv_free(NULL));
  assert_null(csv_error(NULL));
  assert_int_equal(csv_next(NULL, NULL), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),    cmocka_unit_test(test_nul),  cmocka_unit_test(test_big),
      cmocka_unit_test(test_too_long), cmocka_unit_test(test_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
