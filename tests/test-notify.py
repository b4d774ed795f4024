#!/usr/bin/python3
"""Integration test: renewd's service-manager protocol, reload and exit codes.

renewd runs in real time under a fake NOTIFY_SOCKET (an AF_UNIX datagram
socket this test owns) with WATCHDOG_USEC set, against a small store and a
sink-only configuration. Asserted, in this order:
  * READY=1 after start-up (and a STATUS= line before it, and WATCHDOG=1 pings);
  * SIGHUP with a valid change: RELOADING=1 (with MONOTONIC_USEC=), then READY=1,
    and the log says the configuration was reloaded;
  * SIGHUP with a broken file (unknown key): RELOADING=1, READY=1 again, the
    daemon still runs, and its log names the problem as file:line and says the
    reload was rejected;
  * SIGTERM: STOPPING=1, exit status 0;
  * the READY/RELOADING/STOPPING messages come in exactly that order;
  * `renewd --check-config`: 0 on a valid file, 78 with file:line on stderr on
    an invalid one; `renewd --help`: 0 with a usage text.

Usage: test-notify.py RENEWD RENEWCTL
"""
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itestlib import (TestFailure, check, ensure_store, free_port, main_wrapper, run,  # noqa: E402
                      sanitized_slowdown, write, write_link_key)

CONFIG = """\
[Daemon]
Database={db}
Listen=127.0.0.1:{port}
TimeZone=Europe/Berlin
Horizon=48h
RefillInterval={refill}
ChangePollInterval=1s
LinkKeyFile={link_key}

[SendWindow]
Hours=09:00-18:00
Days=Mon..Fri

[Policy standard]
Segments=*
Tiers=notice final

[Tier notice]
Offset=-P30D
Channels=email

[Tier final]
Offset=-P7D
Channels=email

[Channel email]
Type=sink
Maildir={maildir}
"""


class Notifications:
    """The fake service manager's end of NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages = []  # each a dict of the datagram's assignments, in arrival order

    def pump(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                return
            fields = {}
            for line in data.decode("utf-8", "replace").split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    fields[k] = v
            self.messages.append(fields)

    def wait(self, key, value, timeout, after, proc=None, log=None):
        """Waits for a message with key=value at index >= after; returns its index.
        Fails at once when proc (if given) exits first."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(after, len(self.messages)):
                if self.messages[i].get(key) == value:
                    return i
            exited = proc is not None and proc.poll() is not None
            if exited or time.monotonic() >= deadline:
                why = f"renewd exited {proc.returncode}" if exited else f"{timeout}s passed"
                raise TestFailure(f"no {key}={value} ({why}); got {self.messages[after:]}"
                                  + (f"\nlog:\n{log()[-3000:]}" if log else ""))
            self.pump()

    def close(self):
        self.sock.close()


def body(wd):
    renewd, renewctl = sys.argv[1], sys.argv[2]
    slow = sanitized_slowdown()
    db, conf, maildir = wd("renewd.db"), wd("renewd.conf"), wd("maildir")
    params = dict(db=db, port=free_port(), maildir=maildir, refill="10min",
                  link_key=write_link_key(wd))
    write(conf, CONFIG.format(**params))

    # --help and --check-config
    p = run([renewd, "--help"], check_rc=False)
    check(p.returncode == 0 and "Usage" in p.stdout, f"renewd --help: exit {p.returncode}, stdout {p.stdout!r}")
    p = run([renewd, "--check-config", "--config", conf], check_rc=False)
    check(p.returncode == 0, f"--check-config on a valid file: exit {p.returncode}\n{p.stderr}")
    bad = wd("bad.conf")
    lines = CONFIG.format(**params).split("\n")
    lines.insert(4, "Frobnicate=yes")  # line 5, inside [Daemon]
    write(bad, "\n".join(lines))
    p = run([renewd, "--check-config", "--config", bad], check_rc=False)
    check(p.returncode == 78, f"--check-config on an invalid file: exit {p.returncode}, expected 78\n{p.stderr}")
    check(f"{bad}:5:" in p.stderr and "Frobnicate" in p.stderr,
          f"--check-config does not name {bad}:5 and the key:\n{p.stderr}")

    # A store with one contract due within the horizon, so the daemon has work.
    ensure_store(renewctl, db, conf, wd)

    nsock = Notifications(wd("notify.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=nsock.path, WATCHDOG_USEC="1000000")
    env.pop("WATCHDOG_PID", None)
    log = open(wd("renewd.log"), "w+", encoding="utf-8")
    proc = subprocess.Popen([renewd, "--config", conf, "--log-target", "console"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)

    def logtext():
        log.flush()
        with open(wd("renewd.log"), encoding="utf-8", errors="replace") as f:
            return f.read()

    try:
        i_ready = nsock.wait("READY", "1", 30 * slow, 0, proc, logtext)
        check(any("STATUS" in m for m in nsock.messages[:i_ready + 1]),
              f"no STATUS= message before READY=1: {nsock.messages}")
        # Watchdog pings (WATCHDOG_USEC=1s: sd-event pings at least every 0.5 s).
        nsock.wait("WATCHDOG", "1", 10 * slow, 0, proc, logtext)
        check(proc.poll() is None, f"renewd exited {proc.returncode} after READY\n{logtext()}")

        # Valid change: reload accepted.
        params["refill"] = "5min"
        write(conf, CONFIG.format(**params))
        n = len(nsock.messages)
        proc.send_signal(signal.SIGHUP)
        i_rel = nsock.wait("RELOADING", "1", 10 * slow, n, proc, logtext)
        check("MONOTONIC_USEC" in nsock.messages[i_rel],
              f"RELOADING=1 without MONOTONIC_USEC=: {nsock.messages[i_rel]}")
        nsock.wait("READY", "1", 10 * slow, i_rel + 1, proc, logtext)
        check("configuration reloaded" in logtext(), f"no 'configuration reloaded' in the log:\n{logtext()}")

        # Broken file: reload rejected, old configuration kept, still running.
        broken = CONFIG.format(**params).split("\n")
        broken.insert(4, "Frobnicate=yes")  # line 5, inside [Daemon]
        write(conf, "\n".join(broken))
        n = len(nsock.messages)
        proc.send_signal(signal.SIGHUP)
        i_rel = nsock.wait("RELOADING", "1", 10 * slow, n, proc, logtext)
        nsock.wait("READY", "1", 10 * slow, i_rel + 1, proc, logtext)
        time.sleep(0.3)
        check(proc.poll() is None, f"renewd exited {proc.returncode} after a rejected reload\n{logtext()}")
        text = logtext()
        check(f"{conf}:5:" in text and "Frobnicate" in text,
              f"the log does not name {conf}:5 and the unknown key:\n{text}")
        check("reload rejected" in text, f"the log does not say the reload was rejected:\n{text}")

        # Stop.
        n = len(nsock.messages)
        proc.send_signal(signal.SIGTERM)
        nsock.wait("STOPPING", "1", 10 * slow, n)
        try:
            rc = proc.wait(timeout=30 * slow)
        except subprocess.TimeoutExpired:
            raise TestFailure("renewd did not exit within 30 s of SIGTERM")
        check(rc == 0, f"renewd exited {rc} after SIGTERM, expected 0\n{logtext()}")
        nsock.pump()

        seq = [k for m in nsock.messages for k in ("READY", "RELOADING", "STOPPING") if m.get(k) == "1"]
        check(seq == ["READY", "RELOADING", "READY", "RELOADING", "READY", "STOPPING"],
              f"state messages out of order: {seq}")
        print(f"notify messages: {len(nsock.messages)}, state sequence {seq}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        nsock.close()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main_wrapper("test-notify", body))
