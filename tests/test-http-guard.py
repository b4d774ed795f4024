"""Integration test of the HTTP listener's defences (issue 9), against the
real renewd in real time (fixture: tests/httptestlib.py). Raw sockets from
several loopback source addresses (127.0.0.2 and up: all of 127/8 is
loopback on Linux).

Checked, in order:
  * connection storms: 5 bursts of 300 sockets from 10 client addresses,
    closed at once; after each the listener answers /healthz at once (this
    wedged the listener for good before: MHD's listen socket was never
    polled again after the connection limit);
  * the per-client limit: 70 connections from one address, those over
    MaxConnectionsPerClient= (64) are closed right after accept();
  * slow headers: 500 sockets from 10 addresses trickle a header byte a
    second; fresh clients are served meanwhile (the table drops the oldest
    incomplete requests), a connection that trickles is dropped after
    RequestTimeout= (5 s) although it is never idle, and the listener
    answers after they close;
  * HTTP framing (RFC 9112), each a response, never a bare close:
    conflicting Content-Length 400, HTTP/1.1 without Host 400, two Hosts
    400, Transfer-Encoding other than chunked 501, both Transfer-Encoding
    and Content-Length 400, folded header lines 400;
  * strings are strings: /r/<valid token>%00junk, a raw NUL or a control
    byte after the token, /u/<token>%00 are 400 and change nothing; a valid
    bearer token followed by NUL and garbage (in any field position) or by
    a control byte is 400; a form field with %00 is 400; the same requests
    without the bytes succeed;
  * [HTTP] keys: a second renewd with MaxConnectionsPerClient=4 and
    RequestTimeout=2s applies them;
  * the self-check: a third renewd whose open-file limit is lowered until
    accept() fails reports its listener stuck after 15 s (and fails its
    watchdog), then accepts again once the clients holding the descriptors
    leave; SIGTERM: exit 0 each time.

Usage: test-http-guard.py RENEWD RENEWCTL
"""
import os
import resource
import socket
import sys
import threading
import time

from httptestlib import API_TOKEN, Daemon, day
from itestlib import TestFailure, check, main_wrapper, wait_for

CONTRACTS = [
    dict(contract_id="C-1", customer_id="K-1", customer_name="Alice Example", email="alice@example.com",
         timezone="UTC", locale="en", segment="smb", product="Support", starts_on=day(-300),
         expires_on=day(30), value="100.00", currency="EUR"),
]


class Sub:
    """A sub-directory of the test's work directory (same interface)."""

    def __init__(self, wd, name):
        self.path = wd(name)
        os.makedirs(self.path, exist_ok=True)

    def __call__(self, *parts):
        return os.path.join(self.path, *parts)


def client_addr(i):
    return f"127.0.0.{2 + i % 10}"


def open_socket(d, src, first=b""):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(10 * d.slow)
    s.connect(("127.0.0.1", d.port))
    if first:
        s.sendall(first)
    return s


def raw(d, data, timeout=20):
    """Sends data on a fresh connection; the status line of the answer, or
    "<bare close>" when the server closed without one."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=timeout * d.slow)
    try:
        s.sendall(data)
        out = b""
        while b"\r\n" not in out:
            b = s.recv(4096)
            if not b:
                break
            out += b
    except ConnectionResetError:
        out = b""
    finally:
        s.close()
    return out.split(b"\r\n")[0].decode("latin-1") if out else "<bare close>"


def status_of(line):
    parts = line.split(" ")
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith("HTTP/1.") else line


def healthz_now(d, timeout=5):
    """(status, seconds) of GET /healthz on a fresh connection."""
    t0 = time.monotonic()
    try:
        r = d.request("GET", "/healthz", timeout=timeout)
        st = r.status if r.json().get("listener") == "ok" else f"{r.status} {r.text}"
    except OSError as e:
        st = repr(e)
    return st, time.monotonic() - t0


def closed_within(s, seconds):
    """Whether the server closed s within seconds (reading what it sends)."""
    s.settimeout(seconds)
    try:
        while True:
            if not s.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def storms(d):
    for burst in range(5):
        socks = [open_socket(d, client_addr(i)) for i in range(300)]
        time.sleep(0.3)
        for s in socks:
            s.close()
        st, took = healthz_now(d, 10)
        check(st == 200, f"burst {burst}: /healthz after 300 connections closed at once: {st}")
        print(f"storm burst {burst}: /healthz in {took * 1000:.1f} ms")


def is_closed(s):
    """Whether the server closed s (without waiting)."""
    s.setblocking(False)
    try:
        return s.recv(4096, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def per_client_limit(d, src, n, limit, what):
    socks = [open_socket(d, src, b"GET / HTTP/1.1\r\n") for _ in range(n)]
    try:
        # those over the limit are closed at accept(), long before the
        # request deadline would close the others
        t0 = time.monotonic()
        closed = 0
        while closed < n - limit and time.monotonic() - t0 < 10 * d.slow:
            time.sleep(0.05)
            closed = sum(1 for s in socks if is_closed(s))
        check(closed == n - limit, f"{what}: {n} connections from {src}: {closed} closed, want "
                                   f"{n - limit}")
    finally:
        for s in socks:
            s.close()


def slow_headers(d):
    socks, lock, stop = [], threading.Lock(), threading.Event()

    def trickle():
        while not stop.wait(1):
            with lock:
                for s in socks:
                    try:
                        s.send(b"X")
                    except OSError:
                        pass

    for i in range(500):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((client_addr(i), 0))
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", d.port))
        except BlockingIOError:
            pass
        socks.append(s)
    time.sleep(0.5)
    for s in socks:
        try:
            s.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        except OSError:
            pass
    th = threading.Thread(target=trickle, daemon=True)
    th.start()
    # one more slow client, watched: dropped at its request deadline although
    # it sends a byte every second (never idle)
    watched = open_socket(d, "127.0.0.13", b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    t0 = time.monotonic()
    with lock:
        socks.append(watched)
    try:
        results = []
        for _ in range(20):
            results.append(healthz_now(d, 10))
            time.sleep(0.25)
        served = [t for st, t in results if st == 200]
        fast = [t for t in served if t < 1]
        print(f"during 500 slow-header sockets: {len(served)} of {len(results)} fresh clients served, "
              f"{len(fast)} in < 1 s (max {max(t for _, t in results):.3f} s)")
        check(len(served) >= 18, f"fresh clients during slow headers: {results}")
        watched.settimeout(30 * d.slow)
        try:
            while watched.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        took = time.monotonic() - t0
        check(4 <= took < 30 * d.slow, f"a trickling client was dropped after {took:.1f} s "
                                       "(RequestTimeout=5s)")
        print(f"a trickling client was dropped after {took:.1f} s")
    finally:
        stop.set()
        th.join()
        for s in socks:
            s.close()
    st, _ = healthz_now(d, 10)
    check(st == 200, f"/healthz after the slow-header sockets closed: {st}")
    storms_after = [open_socket(d, client_addr(i)) for i in range(300)]
    for s in storms_after:
        s.close()
    st, _ = healthz_now(d, 10)
    check(st == 200, f"/healthz after one more burst: {st}")


def framing(d):
    H = b"Host: x\r\nConnection: close\r\n"
    cases = [
        ("conflicting Content-Length", b"POST /sms/inbound HTTP/1.1\r\n" + H +
         b"Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde", 400),
        ("Content-Length list", b"POST /sms/inbound HTTP/1.1\r\n" + H +
         b"Content-Length: 3, 5\r\n\r\nabcde", 400),
        ("no Host in HTTP/1.1", b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", 400),
        ("two Hosts", b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("Transfer-Encoding: gzip", b"POST /sms/inbound HTTP/1.1\r\n" + H +
         b"Transfer-Encoding: gzip\r\n\r\nabc", 501),
        ("Transfer-Encoding: gzip, chunked", b"POST /sms/inbound HTTP/1.1\r\n" + H +
         b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        ("Transfer-Encoding and Content-Length", b"POST /sms/inbound HTTP/1.1\r\n" + H +
         b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400),
        ("folded header line", b"GET /healthz HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", 400),
        # the same rules let ordinary requests through
        ("HTTP/1.0 without Host", b"GET /healthz HTTP/1.0\r\n\r\n", 200),
        ("same Content-Length twice", b"POST /healthz HTTP/1.1\r\n" + H +
         b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 405),
        ("chunked", b"POST /healthz HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         405),
        ("bare LF line ends", b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n", 200),
    ]
    for what, data, want in cases:
        got = raw(d, data)
        check(status_of(got) == want, f"{what}: {got!r}, want {want}")
    print(f"framing: {len(cases)} raw requests answered as RFC 9112 says")


def strings(d):
    link = d.link("C-1", "renew")
    tok = link.split("/r/", 1)[1].encode()
    unsub = d.link("C-1", "unsubscribe-email").split("/u/", 1)[1].encode()
    H = b"Host: x\r\nConnection: close\r\n"
    form = b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\nconfirm=yes"
    before = d.snapshot()
    for what, target in [("%00junk", tok + b"%00junk"), ("%00", tok + b"%00"), ("raw NUL", tok + b"\0junk"),
                         ("%0a", tok + b"%0a"), ("%7f", tok + b"%7F"), ("raw \\x01", tok + b"\x01")]:
        for method, extra in [(b"GET", b"\r\n"), (b"POST", form)]:
            got = raw(d, method + b" /r/" + target + b" HTTP/1.1\r\n" + H + extra)
            check(status_of(got) == 400, f"{method.decode()} /r/<token>{what}: {got!r}")
    got = raw(d, b"POST /u/" + unsub + b"%00 HTTP/1.1\r\n" + H +
              b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 26\r\n\r\n"
              b"List-Unsubscribe=One-Click")
    check(status_of(got) == 400, f"POST /u/<token>%00: {got!r}")
    bad_form = b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 14\r\n\r\nconfirm=yes%00"
    got = raw(d, b"POST /r/" + tok + b" HTTP/1.1\r\n" + H + bad_form)
    check(status_of(got) == 400, f"a form field with %00: {got!r}")
    check(d.snapshot() == before, "a refused request changed the store")

    bearer = b"Authorization: Bearer " + API_TOKEN.encode()
    get = b"GET /api/v1/contracts/C-1 HTTP/1.1\r\n"
    for what, head in [("NUL and garbage", get + H + bearer + b"\0garbage\r\n\r\n"),
                       ("NUL and garbage, first field", get + bearer + b"\0garbage\r\n" + H + b"\r\n"),
                       ("NUL", get + H + bearer + b"\0\r\n\r\n"),
                       ("two NULs", get + H + bearer + b"\0\0\r\n\r\n"),
                       ("a control byte", get + H + bearer + b"\x01\r\n\r\n"),
                       ("DEL", get + H + bearer + b"\x7f\r\n\r\n")]:
        got = raw(d, head)
        check(status_of(got) in (400, 401), f"bearer token followed by {what}: {got!r}")
    # the same requests without the stray bytes succeed
    check(status_of(raw(d, get + H + bearer + b"\r\n\r\n")) == 200, "the valid bearer token")
    check(status_of(raw(d, b"GET /r/" + tok + b" HTTP/1.1\r\n" + H + b"\r\n")) == 200, "the valid link")
    r = d.post_form(link, {"confirm": "yes"})
    check(r.status == 200 and r.page() == "done", f"POST of the valid link: {r.status} {r.page()}")
    print("strings: NUL and control bytes refused in targets, fields and forms")


def configured(wd, renewd, renewctl):
    sub = Sub(wd, "limits")
    os.makedirs(sub("renewd.conf.d"), exist_ok=True)
    with open(sub("renewd.conf.d", "http.conf"), "w") as f:
        f.write("[HTTP]\nMaxConnectionsPerClient=4\nRequestTimeout=2s\n")
    d = Daemon(sub, renewd, renewctl, CONTRACTS)
    try:
        per_client_limit(d, "127.0.0.20", 6, 4, "MaxConnectionsPerClient=4")
        s = open_socket(d, "127.0.0.21", b"GET / HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        while not closed_within(s, 0.5):
            s.send(b"X")
            check(time.monotonic() - t0 < 20 * d.slow, "RequestTimeout=2s: not dropped in 20 s")
        took = time.monotonic() - t0
        s.close()
        check(took >= 1.5, f"RequestTimeout=2s: dropped after {took:.1f} s")
        print(f"[HTTP] keys: per-client limit 4, a trickling client dropped after {took:.1f} s")
    except TestFailure as e:
        raise TestFailure(f"{e}\n--- renewd log (tail) ---\n{d.log_text()[-4000:]}")
    finally:
        rc = d.stop()
    check(rc == 0, f"renewd with [HTTP] keys exited {rc}")


def stuck(wd, renewd, renewctl):
    """The self-check, on a listener that really cannot accept: renewd's open
    file limit is lowered (prlimit) until accept() fails with EMFILE while
    trickling clients hold every descriptor (RequestTimeout=5min keeps them).
    Connections then wait in the backlog with none accepted: after 15 s the
    daemon logs that the listener is stuck (and fails its watchdog); once the
    clients go, it accepts again and says so."""
    sub = Sub(wd, "stuck")
    os.makedirs(sub("renewd.conf.d"), exist_ok=True)
    with open(sub("renewd.conf.d", "http.conf"), "w") as f:
        f.write("[HTTP]\nRequestTimeout=5min\n")
    d = Daemon(sub, renewd, renewctl, CONTRACTS)
    socks, waiting = [], None
    try:
        d.quiesce()
        n_fds = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (n_fds + 8, n_fds + 8))
        for i in range(20):
            socks.append(open_socket(d, client_addr(i), b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "))
        waiting = open_socket(d, "127.0.0.14", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        while "the listener is stuck" not in d.log_text():
            check(d.proc.poll() is None, f"renewd exited {d.proc.returncode}")
            check(time.monotonic() - t0 < 60 * d.slow, "the self-check did not fire within 60 s")
            for s in socks:
                try:
                    s.send(b"X")
                except OSError:
                    pass
            time.sleep(1)
        took = time.monotonic() - t0
        check(took >= 10, f"the self-check fired after {took:.1f} s (15 s expected)")
        check("failing the watchdog" in d.log_text(), "the daemon did not fail its watchdog")
        print(f"self-check: a listener that cannot accept was reported stuck after {took:.1f} s")
        for s in socks:
            s.close()
        socks = []
        waiting.settimeout(30 * d.slow)
        line = waiting.recv(4096).split(b"\r\n")[0]
        check(line.startswith(b"HTTP/1.1 200"), f"the waiting client after the others closed: {line!r}")
        wait_for(lambda: "accepts connections again" in d.log_text(), 30 * d.slow, 0.2,
                 "the listener's recovery")
        st, _ = healthz_now(d, 10)
        check(st == 200, f"/healthz after the recovery: {st}")
    except TestFailure as e:
        raise TestFailure(f"{e}\n--- renewd log (tail) ---\n{d.log_text()[-4000:]}")
    finally:
        for s in socks + ([waiting] if waiting else []):
            s.close()
        rc = d.stop()
    check(rc == 0, f"the renewd whose listener was stuck exited {rc}")


def body(wd):
    renewd, renewctl = sys.argv[1], sys.argv[2]
    d = Daemon(wd, renewd, renewctl, CONTRACTS)
    try:
        r = d.get("/healthz")
        check(r.status == 200 and r.json().get("listener") == "ok", f"/healthz: {r.status} {r.text}")
        storms(d)
        per_client_limit(d, "127.0.0.12", 70, 64, "the default per-client limit")
        slow_headers(d)
        framing(d)
        strings(d)
        check("listener is stuck" not in d.log_text(), "the self-check fired")
    except TestFailure as e:
        raise TestFailure(f"{e}\n--- renewd log (tail) ---\n{d.log_text()[-6000:]}")
    finally:
        rc = d.stop()
    check(rc == 0, f"renewd exited {rc} after SIGTERM")
    configured(wd, renewd, renewctl)
    stuck(wd, renewd, renewctl)
    return 0


if __name__ == "__main__":
    sys.exit(main_wrapper("test-http-guard", body))
