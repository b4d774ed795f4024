#!/usr/bin/python3
"""smtp_server: a scriptable SMTP server on 127.0.0.1 for renewd's email tests.

Built on Debian's python3-aiosmtpd (run with /usr/bin/python3). Features:
  * a free port chosen by the kernel;
  * optional STARTTLS (or implicit TLS, smtps://) with a self-signed certificate for 127.0.0.1 made with
    openssl(1) in a temporary directory (make_cert()); require_tls refuses
    MAIL before STARTTLS;
  * optional AUTH PLAIN/LOGIN against one username/password (auth_require_tls
    as aiosmtpd: AUTH only over TLS unless told otherwise);
  * scripted replies: "451 4.3.0" at the end of DATA for the first fail_first
    messages, "550 5.1.1" at RCPT for the addresses in reject; with
    hold_data=S every DATA is held S seconds and then answered hold_reply
    (default "451 4.3.0"), like a slow relay refusing at the end; with
    delay_data=S every DATA waits S seconds before it is handled as usual;
  * records every accepted message (raw bytes, exactly as received, plus a
    JSON sidecar with the envelope, TLS and AUTH state, the reply) to a
    directory, and counts TCP connections (one protocol instance per
    connection; STARTTLS does not count twice), DATA attempts and replies.

Use it in-process:
    srv = SmtpServer(directory, tls=True, auth=("renewd", "s3cret")).start()
    ... srv.port, srv.messages(), srv.stats() ...
    srv.stop()
or standalone for manual tests:
    /usr/bin/python3 tests/smtp_server.py --dir /tmp/mail [--tls] [--auth user:pw]
"""
import argparse
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


# aiosmtpd itself sets the deprecated Session.login_data on AUTH and says so
# on its logger for every login
logging.getLogger("mail.log").setLevel(logging.CRITICAL)  # also quiet failed TLS handshakes


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(directory):
    """A self-signed certificate for 127.0.0.1/localhost; returns (cert, key) paths."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


class _Handler:
    def __init__(self, srv):
        self.srv = srv

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        srv = self.srv
        if address.lower() in srv.reject:
            reply = f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
            srv._event("rcpt", address=address, reply=reply)
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        srv = self.srv
        with srv.lock:
            srv.data_attempts += 1
            attempt = srv.data_attempts
        if srv.delay_data:
            import asyncio
            await asyncio.sleep(srv.delay_data)
        if srv.hold_data:
            import asyncio
            srv._event("data-held", attempt=attempt, rcpt=list(envelope.rcpt_tos))
            await asyncio.sleep(srv.hold_data)
            reply = srv.hold_reply
            srv._event("data", attempt=attempt, reply=reply, rcpt=list(envelope.rcpt_tos))
            return reply
        if attempt <= srv.fail_first:
            reply = "451 4.3.0 Temporary failure, please try again later"
            srv._event("data", attempt=attempt, reply=reply, rcpt=list(envelope.rcpt_tos))
            return reply
        with srv.lock:
            srv.accepted += 1
            n = srv.accepted
        qid = f"Q{attempt:05d}{os.getpid() % 1000:03d}X"
        reply = f"250 2.0.0 Ok: queued as {qid}"
        base = os.path.join(srv.dir, f"msg-{n:04d}")
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        meta = {
            "n": n,
            "queue_id": qid,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "tls": session.ssl is not None or
            server.transport.get_extra_info("ssl_object") is not None,
            "auth_login": session.auth_data.login.decode()
            if session.authenticated and isinstance(session.auth_data, LoginPassword) else None,
            "peer": list(session.peer) if session.peer else None,
            "connection": getattr(server, "conn_no", None),
            "at": time.time(),
        }
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        srv._event("data", attempt=attempt, reply=reply, rcpt=list(envelope.rcpt_tos))
        return reply


class _CountingController(Controller):
    """One SMTP protocol instance per TCP connection: count them here."""

    def __init__(self, srv, *args, **kw):
        self.srv = srv
        super().__init__(*args, **kw)

    def factory(self):
        with self.srv.lock:
            self.srv.connections += 1
            n = self.srv.connections
        s = SMTP(self.handler, **self.SMTP_kwargs)
        s.conn_no = n
        return s


class SmtpServer:
    def __init__(self, directory, tls=False, require_tls=False, auth=None, auth_require_tls=True,
                 fail_first=0, reject=(), port=None, implicit_tls=False, hold_data=0, delay_data=0,
                 hold_reply="451 4.3.0 Temporary failure, please try again later"):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.port = port or free_port()
        self.tls = tls or implicit_tls
        self.implicit_tls = implicit_tls
        self.require_tls = require_tls
        self.auth = auth
        self.auth_require_tls = auth_require_tls
        self.fail_first = fail_first
        self.hold_data = hold_data
        self.delay_data = delay_data
        self.hold_reply = hold_reply
        self.reject = {a.lower() for a in reject}
        self.lock = threading.Lock()
        self.connections = 0
        self.data_attempts = 0
        self.accepted = 0
        self.auth_ok = 0
        self.auth_failed = 0
        self.events = []
        self.cert = self.key = None
        self.controller = None

    def _event(self, kind, **kw):
        with self.lock:
            self.events.append(dict(kind=kind, **kw))
            self._write_stats()

    def _write_stats(self):
        with open(os.path.join(self.dir, "stats.json"), "w") as f:
            json.dump(self.stats_locked(), f)

    def stats_locked(self):
        return {"connections": self.connections, "data_attempts": self.data_attempts,
                "accepted": self.accepted, "auth_ok": self.auth_ok,
                "auth_failed": self.auth_failed, "events": list(self.events)}

    def stats(self):
        with self.lock:
            return self.stats_locked()

    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and self.auth is not None and
              auth_data.login.decode() == self.auth[0] and
              auth_data.password.decode() == self.auth[1])
        with self.lock:
            if ok:
                self.auth_ok += 1
            else:
                self.auth_failed += 1
        # handled=False: aiosmtpd answers "535 5.7.8" itself on failure
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def start(self):
        kw = {}
        if self.tls:
            certdir = tempfile.mkdtemp(prefix="smtp-cert-", dir=self.dir)
            self.cert, self.key = make_cert(certdir)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.cert, self.key)
            if self.implicit_tls:
                kw["ssl_context"] = ctx  # smtps://: TLS from the first byte
            else:
                kw["tls_context"] = ctx
                kw["require_starttls"] = self.require_tls
        if self.auth:
            kw["authenticator"] = self._authenticator
            kw["auth_required"] = True
            kw["auth_require_tls"] = self.auth_require_tls
        self.controller = _CountingController(self, _Handler(self), hostname="127.0.0.1",
                                              port=self.port, server_hostname="mx.test",
                                              ready_timeout=10, **kw)
        self.controller.start()
        with self.lock:
            self.connections = 0  # start() opened one to check the server is up
        return self

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    def messages(self):
        """Accepted messages in order: list of (raw bytes, meta dict)."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.startswith("msg-") and name.endswith(".eml"):
                base = os.path.join(self.dir, name[:-4])
                with open(base + ".eml", "rb") as f, open(base + ".json") as g:
                    out.append((f.read(), json.load(g)))
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--require-tls", action="store_true")
    ap.add_argument("--auth", help="USER:PASSWORD")
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--reject", action="append", default=[])
    a = ap.parse_args()
    srv = SmtpServer(a.dir, tls=a.tls, require_tls=a.require_tls,
                     auth=tuple(a.auth.split(":", 1)) if a.auth else None,
                     fail_first=a.fail_first, reject=a.reject, port=a.port).start()
    print(json.dumps({"port": srv.port, "cert": srv.cert}), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    sys.exit(main())
