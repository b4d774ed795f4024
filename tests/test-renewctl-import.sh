#!/usr/bin/env bash
# Integration test: runs the real renewctl binary on small CSV files in a temp
# directory and checks exact stderr/stdout, exit codes, and the store's content
# (with the sqlite3 shell) and JSON output (with python3).
#
#   test-renewctl-import.sh PATH/TO/renewctl
set -u

RENEWCTL=$(realpath "$1")
T=$(mktemp -d /tmp/renewctl-import-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# run NAME EXPECTED_EXIT ARGS...: runs renewctl with a default config that does
# not exist (built-in defaults), stdout in NAME.out, stderr in NAME.err.
run() {
  local name=$1 want=$2
  shift 2
  "$RENEWCTL" "$@" >"$name.out" 2>"$name.err"
  local got=$?
  if [ "$got" != "$want" ]; then
    fail "$name: exit $got, expected $want"
    sed 's/^/    stderr: /' "$name.err" >&2
  fi
}

# expect_file NAME FILE: FILE must equal the text on stdin.
expect_file() {
  local name=$1 file=$2
  if ! diff -u - "$file" >"$name.diff"; then
    fail "$name: $file differs:"
    cat "$name.diff" >&2
  fi
}

q() { sqlite3 -batch -noheader store.db "$1"; }

HEADER=contract_id,customer_id,customer_name,email,phone,timezone,locale,segment,owner,product,starts_on,expires_on,value,currency

# ---- 1. a file with several bad rows: every problem, nothing written -------------
cat >bad.csv <<'EOF'
contract_id,customer_id,customer_name,email,phone,timezone,expires_on,value,currency
B1,CU1,Ann,ann@example.com,,Europe/Berlin,2027-02-30,,
B2,CU2,"Bob
Builder",bob@,,Mars/Olympus,2027-01-01,-5,EUR
B3,CU3,Cy,,0044 20 7946,,2027-01-01,1.234,
B1,CU4,Di,di@example.com,,,2027-01-01,,
B5,CU5,"Quote ""Q""",q@example.com,,,2028-02-29,,

B6,CU6,Eve,eve@example.com,,UTC,2027-01-01,,
B7,CU6,Eve,eve2@example.com,,Asia/Tokyo,2027-01-02,,
B8,CU8,"multi
line
start",,,,2027-13-01,,
B9,CU9,Gus,gus@example.com,,,2027-01-01
EOF
run bad 65 --db store.db import bad.csv
expect_file bad bad.err <<'EOF'
bad.csv:2: expires_on: invalid date '2027-02-30'
bad.csv:3: customer_name: contains a control character
bad.csv:3: email: invalid email 'bob@'
bad.csv:3: timezone: unknown time zone 'Mars/Olympus'
bad.csv:3: value: negative value '-5'
bad.csv:5: phone: not E.164: '0044 20 7946'
bad.csv:5: value: more than 2 decimals: '1.234'
bad.csv:5: currency: required when value is given
bad.csv:6: contract_id: duplicate of line 2
bad.csv:10: email: differs from line 9 for customer 'CU6'
bad.csv:10: timezone: differs from line 9 for customer 'CU6'
bad.csv:11: customer_name: contains a control character
bad.csv:11: email: email or phone required
bad.csv:11: expires_on: invalid date '2027-13-01'
bad.csv:14: 7 fields, but the header has 9
EOF
expect_file bad bad.out <<'EOF'
bad.csv: 9 rows: 0 inserted, 0 updated, 0 unchanged, 7 rejected (nothing written)
EOF
[ -e store.db ] && fail "bad: the store was created although nothing is written"

# a CSV syntax error: reported with its line, nothing written
printf '%s\nS1,CS1,"unterminated,s@example.com,,,,,,,,2027-01-01,,\nS2,CS2,x,s2@example.com,,,,,,,,2027-01-01,,\n' \
  "$HEADER" >syntax.csv
run syntax 65 --db store.db import syntax.csv
expect_file syntax syntax.err <<'EOF'
syntax.csv:2: unterminated quoted field
syntax.csv: not imported: the file is not valid CSV
EOF
printf 'contract_id,customer_id,email,expires_on\nS1,CS1,a"b@example.com,2027-01-01\n' >stray.csv
run stray 65 --db store.db import stray.csv
expect_file stray stray.err <<'EOF'
stray.csv:2: quote inside an unquoted field
stray.csv: not imported: the file is not valid CSV
EOF

# header problems
printf 'Contract_ID, customer_id ,EMAIL,expires_on,colour,email\n' >hdr.csv
run hdr 65 --db store.db import hdr.csv
expect_file hdr hdr.err <<'EOF'
hdr.csv:1: unknown column 'colour' (use --ignore-unknown to skip it)
hdr.csv:1: duplicate column 'email'
EOF
printf 'contract_id,product\n' >hdr2.csv
run hdr2 65 --db store.db import hdr2.csv
expect_file hdr2 hdr2.err <<'EOF'
hdr2.csv:1: missing column 'customer_id'
hdr2.csv:1: missing column 'expires_on'
hdr2.csv:1: missing column 'email' or 'phone'
EOF
[ -e store.db ] && fail "header/syntax errors created the store"

# problems far apart (re-reads seek to a chunk of 64 rows and parse forward)
{
  echo "contract_id,customer_id,email,expires_on"
  for i in $(seq 1 200); do echo "L$i,LC$i,l$i@example.com,2027-01-01"; done
  echo "L70,LC999,x@example.com,2027-01-01"
  echo "L201,LC130,other@example.com,2027-01-01"
  echo "L199,LC1,l1@example.com,2027-01-01"
} >long.csv
run long 65 --db store.db import long.csv
expect_file long long.err <<'EOF'
long.csv:202: contract_id: duplicate of line 71
long.csv:203: email: differs from line 131 for customer 'LC130'
long.csv:204: contract_id: duplicate of line 200
EOF

# ---- 2. a valid file: inserted ---------------------------------------------------
# (BOM, CRLF, blank line, quoted comma, CJK name, unknown column ignored)
printf '\xef\xbb\xbf%s,notes\n' "$HEADER" >good.csv
cat >>good.csv <<'EOF'
C1,CU1,王小明,xm@example.com,,Asia/Shanghai,zh-CN,enterprise,alice,Pro,2026-03-01,2027-02-28,1200.50,CNY,x
C2,CU1,王小明,xm@example.com,,Asia/Shanghai,zh-CN,enterprise,alice,Basic,,2026-12-31,99,CNY,

C3,CU2,"Smith, John",john@example.com,+44 20 7946 0958,Europe/London,en,smb,bob,"Pro ""Plus""",,2027-01-15,,,"a, b"
EOF
sed -i 's/$/\r/' good.csv
run unknown 65 --db store.db import good.csv
grep -q "good.csv:1: unknown column 'notes'" unknown.err || fail "unknown column not reported"
run good 0 --db store.db import good.csv --ignore-unknown
expect_file good good.out <<'EOF'
good.csv: 3 rows: 3 inserted, 0 updated, 0 unchanged, 0 rejected
EOF
expect_file good good.err </dev/null
[ "$(q 'select count(*) from contracts')" = 3 ] || fail "good: 3 contracts expected"
[ "$(q 'select count(*) from customers')" = 2 ] || fail "good: 2 customers expected"
[ "$(q "select phone from customers where id='CU2'")" = "+442079460958" ] || fail "good: phone"
# valid through 2027-02-28 in Shanghai = expires 2027-03-01T00:00+08:00
[ "$(q "select expires_at, value_minor, currency from contracts where id='C1'")" = "1803830400|120050|CNY" ] ||
  fail "good: C1 expiry/value"
[ "$(q "select product from contracts where id='C3'")" = 'Pro "Plus"' ] || fail "good: quoted product"
seq0=$(q 'select max(change_seq) from contracts')
events0=$(q 'select count(*) from events')

# ---- 3. the same file again: all unchanged ---------------------------------------
run again 0 --db store.db import good.csv --ignore-unknown
expect_file again again.out <<'EOF'
good.csv: 3 rows: 0 inserted, 0 updated, 3 unchanged, 0 rejected
EOF
[ "$(q 'select max(change_seq) from contracts')" = "$seq0" ] || fail "again: change_seq moved"
[ "$(q 'select count(*) from events')" = "$events0" ] || fail "again: events were added"

# ---- 4. an updated file: updated in place, change counter bumped, events -----------
cat >updated.csv <<EOF
$HEADER
C1,CU1,王小明,xm@example.com,,Asia/Shanghai,zh-CN,enterprise,alice,Pro,2026-03-01,2028-02-29,1200.50,CNY
C2,CU1,王小明,xm@example.com,,Asia/Shanghai,zh-CN,enterprise,alice,Basic Plus,,2026-12-31,99,CNY
C3,CU2,"Smith, John",john@example.com,+44 20 7946 0958,Europe/London,en,smb,bob,"Pro ""Plus""",,2027-01-15,,
C4,CU3,Zoë,zoe@example.com,,,,,,,,2027-06-30,0,EUR
EOF
# a dry run first: counts, but nothing changes
run dry 0 --db store.db import --dry-run updated.csv
expect_file dry dry.out <<'EOF'
updated.csv: 4 rows: 1 inserted, 2 updated, 1 unchanged, 0 rejected (dry run, nothing written)
EOF
[ "$(q 'select max(change_seq) from contracts')" = "$seq0" ] || fail "dry: change_seq moved"
[ "$(q 'select count(*) from contracts')" = 3 ] || fail "dry: a contract was written"
run upd 0 --db store.db import updated.csv --json
python3 - upd.out <<'EOF' || fail "upd: JSON summary"
import json, sys
j = json.load(open(sys.argv[1]))
want = {"file": "updated.csv", "rows": 4, "inserted": 1, "updated": 2, "unchanged": 1,
        "rejected": 0, "dry_run": False, "written": True}
assert j == want, j
EOF
[ "$(q "select change_seq > $seq0 from contracts where id='C1'")" = 1 ] || fail "upd: C1 change_seq not bumped"
[ "$(q "select change_seq > $seq0 from contracts where id='C2'")" = 1 ] || fail "upd: C2 change_seq not bumped"
[ "$(q "select change_seq <= $seq0 from contracts where id='C3'")" = 1 ] || fail "upd: C3 change_seq bumped"
[ "$(q "select term from contracts where id='C1'")" = 2 ] || fail "upd: C1 expiry change did not start term 2"
[ "$(q "select term, product from contracts where id='C2'")" = "1|Basic Plus" ] || fail "upd: C2"
[ "$(q "select kind || ' ' || detail from events where contract_id='C2'")" = "contract.updated fields=product" ] ||
  fail "upd: C2 event: $(q "select kind, detail from events where contract_id='C2'")"
[ "$(q "select count(*) from events where contract_id='C1' and kind='contract.new_term'")" = 1 ] ||
  fail "upd: C1 new_term event"

# a customer change counts every contract of that customer as updated
sed 's/john@example.com/john.smith@example.com/' updated.csv >cust.csv
run cust 0 --db store.db import cust.csv
expect_file cust cust.out <<'EOF'
cust.csv: 4 rows: 0 inserted, 1 updated, 3 unchanged, 0 rejected
EOF
[ "$(q "select count(*) from events where kind='customer.updated' and detail like '%CU2%email%'")" = 1 ] ||
  fail "cust: customer.updated event"

# --skip-invalid writes the valid rows and exits 0
cat >skip.csv <<EOF
$HEADER
C5,CU5,Al,al@example.com,,,,,,,,2027-02-30,,
C6,CU6,Bo,bo@example.com,,,,,,,,2027-03-01,,
EOF
run skip 0 --db store.db import skip.csv --skip-invalid
expect_file skip skip.err <<'EOF'
skip.csv:2: expires_on: invalid date '2027-02-30'
EOF
expect_file skip skip.out <<'EOF'
skip.csv: 2 rows: 1 inserted, 0 updated, 0 unchanged, 1 rejected
EOF
[ "$(q "select count(*) from contracts where id in ('C5','C6')")" = 1 ] || fail "skip: C6 only"

# ---- 5. list and show ----------------------------------------------------------------
run list 0 --db store.db list
expect_file list list.out <<'EOF'
ID  CUSTOMER     SEGMENT     EXPIRES     STATE   TERM        VALUE
C2  王小明       enterprise  2026-12-31  active     1    99.00 CNY
C3  Smith, John  smb         2027-01-15  active     1
C6  Bo                       2027-03-01  active     1
C4  Zoë                      2027-06-30  active     1     0.00 EUR
C1  王小明       enterprise  2028-02-29  active     2  1200.50 CNY
EOF
run list_seg 0 --db store.db list --segment enterprise --state active
[ "$(cut -c1-3 list_seg.out | tr -d ' ' | tr '\n' ' ')" = "ID C2 C1 " ] || fail "list --segment"
run list_bad_state 64 --db store.db list --state sleeping
run list_bad_within 64 --db store.db list --expiring-within 30
run list_json 0 --json --db store.db list
python3 - list_json.out <<'EOF' || fail "list --json"
import json, sys
a = json.load(open(sys.argv[1]))
assert [c["id"] for c in a] == ["C2", "C3", "C6", "C4", "C1"], a
c1 = a[-1]
assert c1["customer_name"] == "王小明" and c1["timezone"] == "Asia/Shanghai", c1
assert c1["expires_at"] == "2028-02-29T16:00:00Z" and c1["expires_on"] == "2028-02-29", c1
assert c1["starts_at"] == "2026-02-28T16:00:00Z", c1
assert c1["value"] == "1200.50" and c1["value_minor"] == 120050 and c1["currency"] == "CNY", c1
assert c1["state"] == "active" and c1["term"] == 2 and c1["segment"] == "enterprise", c1
assert a[1]["value"] is None and a[1]["currency"] is None, a[1]
EOF

run show 0 --db store.db show C1
grep -q '^Contract C1$' show.out || fail "show: header"
grep -q '^  Customer     王小明 (CU1)$' show.out || fail "show: customer"
grep -q '^  State        active, term 2$' show.out || fail "show: state"
grep -q 'event     contract.new_term term=2 expires_at=2028-02-29T16:00:00Z' show.out || fail "show: history"
grep -q '^Owner alice (not in the store)$' show.out || fail "show: owner"
run show_json 0 --db store.db show C2 --json
python3 - show_json.out <<'EOF' || fail "show --json"
import json, sys
j = json.load(open(sys.argv[1]))
assert set(j) == {"contract", "customer", "owner", "history"}, j.keys()
assert j["contract"]["id"] == "C2" and j["contract"]["product"] == "Basic Plus", j["contract"]
assert j["customer"]["id"] == "CU1" and j["customer"]["optout"] == [], j["customer"]
assert j["owner"] is None
h = j["history"]
assert [e["type"] for e in h] == ["event"] and h[0]["kind"] == "contract.updated", h
assert h[0]["at"].endswith("Z") and len(h[0]["at"]) == 20, h
EOF
run show_missing 66 --db store.db show NOPE
expect_file show_missing show_missing.err <<'EOF'
renewctl: no contract 'NOPE'
EOF

# --expiring-within counts from now. Its own store holds dates relative to
# today only, so the check holds on any date: one contract expiring in 10 days,
# one in 400 days.
soon=$(date -u -d '+10 days' +%F)
later=$(date -u -d '+400 days' +%F)
printf 'contract_id,customer_id,email,expires_on,timezone\nC9,CU9,s@example.com,%s,UTC\nC10,CU10,t@example.com,%s,UTC\n' \
  "$soon" "$later" >soon.csv
run soon 0 --db within.db import soon.csv
run within30 0 --db within.db list --expiring-within 30d --json
python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); assert [c["id"] for c in a] == ["C9"], a' \
  within30.out || fail "list --expiring-within 30d"
run within2 0 --db within.db list --expiring-within 2d --json
expect_file within2 within2.out <<'EOF'
[]
EOF
run within1w 0 --db within.db list --expiring-within 1w
expect_file within1w within1w.err <<'EOF'
No contracts.
EOF

# ---- 6. options, exit codes, store errors ------------------------------------------
run usage 64 --db store.db import
run usage2 64 frobnicate
run nofile 66 --db store.db import missing.csv
expect_file nofile nofile.err <<'EOF'
renewctl: cannot open missing.csv: No such file or directory
EOF
run nostore 66 --db "$T/nodir/renewd.db" list
expect_file nostore nostore.err <<EOF
renewctl: cannot open store $T/nodir/renewd.db: no such file (has renewd run yet? use --db)
EOF
run noconfig 78 --config "$T/missing.conf" list
run version 0 --version
grep -q '^renewctl [0-9]' version.out || fail "--version"

# the default zone and database come from the config file
cat >renewd.conf <<EOF
[Daemon]
TimeZone=Asia/Tokyo
Database=$T/cfg.db
[Policy p]
Segments=*
Tiers=t
[Tier t]
Offset=-P1D
Channels=c
[Channel c]
Type=sink
EOF
printf 'contract_id,customer_id,email,expires_on\nT1,TC1,t@example.com,2027-03-01\n' >tz.csv
run cfg 0 --config renewd.conf import tz.csv
[ "$(sqlite3 cfg.db "select c.expires_at, u.tz from contracts c join customers u on u.id = c.customer_id")" = "1803913200|Asia/Tokyo" ] ||
  fail "config TimeZone=/Database= not used"

if [ "$(id -u)" != 0 ]; then
  chmod 000 store.db
  run perm 66 --db store.db list
  grep -q 'Permission denied (run as root or as the renewd user)' perm.err || fail "permission message"
  chmod 644 store.db
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s); files kept in $T" >&2
  trap - EXIT
  exit 1
fi
echo "all renewctl import checks passed"
