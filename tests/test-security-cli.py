#!/usr/bin/env python3
"""Security regression test: `renewctl show` and `renewctl history` print
store values to a terminal. Values written by other writers (a CRM sync, the
sqlite3 shell, the API's free-text fields, a remote server's error text) may
hold escape sequences and line breaks; before the fix `renewctl show` wrote
them raw (a customer name could clear the screen or forge output lines).
Also: `renewctl preview` of a webhook does not print HeadersFile= credentials.

Usage: test-security-cli.py PATH/TO/renewctl
"""
import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

RENEWCTL = sys.argv[1] if len(sys.argv) > 1 else "renewctl"
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}", file=sys.stderr)
    else:
        print(f"ok: {what}")


CONFIG = """\
[Daemon]
Database={db}
TimeZone=UTC

[Policy standard]
Segments=*
Tiers=notice

[Tier notice]
Offset=-P30D
Channels=email

[Channel email]
Type=sink
Maildir={tmp}/maildir

[Channel hook]
Type=webhook
URL=https://hooks.example/x
HeadersFile={tmp}/hook-headers
"""

EVIL = "Evil\x1b[2J\x1b]0;pwned\x07\r\nrenewctl: FAKE LINE\x7f"


def main():
    tmp = tempfile.mkdtemp(prefix="renewd-test-security-cli-")
    try:
        db = os.path.join(tmp, "renewd.db")
        conf = os.path.join(tmp, "renewd.conf")
        with open(conf, "w") as f:
            f.write(CONFIG.format(db=db, tmp=tmp) + "Headers=X-Team: renewals\n")
        with open(os.path.join(tmp, "hook-headers"), "w") as f:
            f.write("Authorization: Bearer t0ps3cret\n")
        exp = dt.date.today() + dt.timedelta(days=200)
        with open(os.path.join(tmp, "c.csv"), "w") as f:
            f.write("contract_id,customer_id,customer_name,email,owner,expires_on\n")
            f.write(f"C-1,CU-1,Ann,ann@example.com,alice,{exp}\n")
        p = subprocess.run([RENEWCTL, "--config", conf, "import", os.path.join(tmp, "c.csv")],
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, f"import: {p.stderr.strip()}")

        # a foreign writer puts control characters everywhere a value is shown
        con = sqlite3.connect(db)
        con.execute("UPDATE customers SET name=?, segment=? WHERE id='CU-1'", (EVIL, EVIL))
        con.execute("UPDATE contracts SET product=? WHERE id='C-1'", (EVIL,))
        con.execute("INSERT INTO owners(id, name, email, webhook) VALUES ('alice', ?, "
                    "'alice@example.com', ?)", (EVIL, "https://h.example/x\x1b[2J"))
        con.execute("INSERT INTO responses(contract_id, term, kind, source, channel, reason, "
                    "detail, created_at) VALUES ('C-1', 1, 'message', 'api', ?, ?, ?, 1)",
                    (EVIL, EVIL, EVIL))
        con.execute("INSERT INTO events(contract_id, at, kind, detail) VALUES ('C-1', 2, ?, ?)",
                    ("note", EVIL))
        con.commit()
        con.close()

        for args in (["show", "C-1"], ["history", "C-1"]):
            p = subprocess.run([RENEWCTL, "--config", conf, *args], capture_output=True,
                               timeout=60)
            out = p.stdout
            what = " ".join(args)
            check(p.returncode == 0, f"{what}: exit {p.returncode} ({p.stderr!r})")
            check(b"\x1b" not in out, f"{what}: no ESC reaches the terminal")
            check(b"\x07" not in out and b"\r" not in out and b"\x7f" not in out,
                  f"{what}: no BEL, CR or DEL")
            check(not any(line.startswith(b"renewctl: FAKE") for line in out.split(b"\n")),
                  f"{what}: no forged line")
        p = subprocess.run([RENEWCTL, "--config", conf, "show", "C-1"], capture_output=True,
                           timeout=60)
        check(b"Evil\\x1b[2J\\x1b]0;pwned\\x07\\x0d\\x0arenewctl: FAKE LINE\\x7f" in p.stdout,
              "show: the name is shown escaped")

        # renewctl preview shows the request a webhook would make, but not
        # the credentials from HeadersFile=
        p = subprocess.run([RENEWCTL, "--config", conf, "preview", "C-1", "notice", "--channel",
                            "hook"], capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, f"preview --channel hook: exit {p.returncode} ({p.stderr!r})")
        check("t0ps3cret" not in p.stdout + p.stderr, "preview: the HeadersFile= credential is hidden")
        check("Authorization: (from HeadersFile=, not shown)" in p.stdout,
              f"preview: the header is named ({p.stdout[:300]!r})")
        check("X-Team: renewals" in p.stdout, "preview: plain Headers= still shown")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{failures} check(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
