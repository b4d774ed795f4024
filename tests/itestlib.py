"""itestlib: shared helpers of renewd's Python integration tests (tests/test-*.py).

The tests run the real binaries (renewd, renewctl) against a store and
configuration in a private temporary directory, removed at the end unless the
test failed or RENEWD_TEST_KEEP=1 is set (then its path is printed). Nothing
here talks to the network except 127.0.0.1.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77  # ctest SKIP_RETURN_CODE


class TestFailure(Exception):
    """An assertion of an integration test failed (message says what)."""


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


class Workdir:
    """A temporary directory kept when the test fails (or RENEWD_TEST_KEEP=1)."""

    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix=f"renewd-{name}-")
        self.keep = os.environ.get("RENEWD_TEST_KEEP") == "1"

    def __call__(self, *parts):
        return os.path.join(self.path, *parts)

    def done(self, ok):
        if ok and not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            print(f"test files kept in {self.path}", file=sys.stderr)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def run(cmd, timeout=300, check_rc=True, env=None, input=None):
    """Runs cmd, returns CompletedProcess (text). Fails the test on a non-zero
    exit when check_rc."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, input=input)
    if check_rc and p.returncode != 0:
        raise TestFailure(f"{' '.join(cmd)} exited {p.returncode}\nstdout:\n{p.stdout[-4000:]}\n"
                          f"stderr:\n{p.stderr[-4000:]}")
    return p


def write_link_key(wd):
    """Writes wd/link.key and returns its path: customer email and SMS carry
    signed links, so renewd refuses a configuration without LinkKeyFile=."""
    path = wd("link.key")
    write(path, "itest-link-key-0123456789abcdef0123\n")
    return path


def sql(db, script, timeout=60):
    """Runs SQL through the sqlite3 command-line shell (a foreign writer, as a
    CRM sync job would be). Returns stdout."""
    p = run(["sqlite3", "-bail", "-batch", db], timeout=timeout, check_rc=False,
            input=".timeout 10000\n" + script)
    if p.returncode != 0 or "Error" in p.stderr:
        raise TestFailure(f"sqlite3 {db} failed ({p.returncode}): {p.stderr}\nscript:\n{script[:2000]}")
    return p.stdout


def sql_quote(v):
    if v is None:
        return "NULL"
    if isinstance(v, (int, float)):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def renewctl_has(renewctl, words):
    """Whether `renewctl help` lists a command line starting with words."""
    p = run([renewctl, "help"], check_rc=False)
    return any(line.strip().startswith(words) for line in p.stdout.splitlines())


def import_owners(renewctl, db, config, owners, workdir):
    """owners: list of dicts id,name,email,phone,webhook,timezone,manager.
    Uses `renewctl owners import` when renewctl has it, else the sqlite3 shell
    (renewctl opens the store first so that the schema exists)."""
    import csv
    if renewctl_has(renewctl, "owners import"):
        path = workdir("owners.csv")
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            cols = ["id", "name", "email", "phone", "webhook", "timezone", "manager"]
            w.writerow(cols)
            for o in owners:
                w.writerow([o.get(c, "") or "" for c in cols])
        run([renewctl, "--db", db, "--config", config, "owners", "import", path])
        return "renewctl owners import"
    rows = []
    for o in owners:
        rows.append("INSERT INTO owners(id,name,email,phone,webhook,tz,manager_id) VALUES (" +
                    ",".join(sql_quote(o.get(k) or None) for k in
                             ("id", "name", "email", "phone", "webhook", "timezone", "manager")) +
                    ");")
    sql(db, "BEGIN;\n" + "\n".join(rows) + "\nCOMMIT;\n")
    return "sqlite3"


def ensure_store(renewctl, db, config, workdir):
    """Creates the store with its schema by importing one contract, C-seed,
    expiring in 2099 (nothing is ever due for it in a test)."""
    path = workdir("seed.csv")
    write(path, "contract_id,customer_id,customer_name,email,phone,timezone,locale,segment,"
                "owner,product,starts_on,expires_on,value,currency\n"
                "C-seed,K-seed,Seed,seed@example.com,,UTC,en,smb,,Seed,,2099-12-31,1.00,EUR\n")
    run([renewctl, "--db", db, "--config", config, "import", path])


def wait_for(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it returns a true value or timeout seconds pass;
    returns that value, or raises TestFailure."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TestFailure(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def sanitized_slowdown():
    """A factor for deadlines: sanitizer builds run the daemon several times slower."""
    return 4 if os.environ.get("RENEWD_SANITIZED") == "1" else 1


def main_wrapper(name, body):
    """Runs body(workdir) and turns the outcome into an exit status."""
    wd = Workdir(name)
    ok = False
    t0 = time.monotonic()
    try:
        rc = body(wd)
        ok = rc in (0, None, SKIP)
        print(f"{name}: {'SKIP' if rc == SKIP else 'PASS'} in {time.monotonic() - t0:.1f}s")
        return rc or 0
    except TestFailure as e:
        print(f"{name}: FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        wd.done(ok)
