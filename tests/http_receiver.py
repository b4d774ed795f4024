#!/usr/bin/env python3
"""A small scriptable HTTP receiver for renewd's delivery tests (stdlib only).

Records every request (visible at once, "answered" filled in when the answer
is written: "pending" until then) and logs it as one JSON line (method, path, headers, body, form
fields, what it answered, and its own independent checks of HTTP basic auth
and of Standard Webhooks signatures) and answers according to a script: a
sequence of actions consumed one per request, then a default action. An
action is a dict:

    {"status": 500}                      answer 500
    {"status": 429, "retry_after": "2"}  with a Retry-After header
    {"hang": 3.0, "status": 200}         wait 3 s before answering (timeouts)
    {"status": 201, "body": "{...}"}     with this body
    {"drop": true}                       close the connection without answering
    {"forget": true, ...}                (twilio) leave the message out of lookups

With twilio=True a GET of .../Messages.json answers like Twilio's "Read
multiple Message resources": {"messages": [...]} with every POSTed message
(as soon as its request arrived: Twilio creates it then) whose To matches the
To= query parameter, newest first; lookups take no action from the script.

Used as a module (Receiver(...).start(), .set_script(), .records(), .stop())
or standalone:

    http_receiver.py --port 0 --port-file P --log requests.jsonl \
        [--script '[{"status":500}]'] [--default '{"status":204}'] \
        [--secret whsec_...]... [--basic user:password] [--twilio]

The signature check is written from the Standard Webhooks specification,
deliberately sharing no code with renewd: the key is the base64 part of
"whsec_<base64>", the signed content "<webhook-id>.<webhook-timestamp>.<body>",
the signature base64(HMAC-SHA256), the header a space-separated list of
"v1,<signature>" entries.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify_standard_webhook(secrets, headers, body):
    """True/False when a signature header is present, None when absent."""
    sig = headers.get("webhook-signature")
    if sig is None:
        return None
    msg_id = headers.get("webhook-id", "")
    ts = headers.get("webhook-timestamp", "")
    signed = msg_id.encode() + b"." + ts.encode() + b"." + body
    entries = [e.split(",", 1) for e in sig.split(" ") if "," in e]
    for secret in secrets:
        key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for version, value in entries:
            if version == "v1" and hmac.compare_digest(value, expected):
                return True
    return False


def verify_basic(expected, headers):
    auth = headers.get("authorization")
    if expected is None:
        return None
    if not auth or not auth.startswith("Basic "):
        return False
    try:
        return base64.b64decode(auth[6:]).decode() == expected
    except Exception:
        return False


class Receiver:
    def __init__(self, port=0, log_path=None, script=None, default=None, secrets=(),
                 basic=None, twilio=False, host="127.0.0.1"):
        self.host = host
        self.port = port
        self.log_path = log_path
        self.secrets = list(secrets)
        self.basic = basic
        self.twilio = twilio
        self.default = default or ({"status": 201} if twilio else {"status": 204})
        self._script = list(script or [])
        self._lock = threading.Lock()
        self._records = []
        self._count = 0
        self._server = None
        self._thread = None
        self._cond = threading.Condition(self._lock)

    # -- control ---------------------------------------------------------------
    def set_script(self, script, default=None):
        with self._lock:
            self._script = list(script)
            if default is not None:
                self.default = default

    def records(self):
        with self._lock:
            return list(self._records)

    def wait_for(self, predicate, timeout=30.0):
        """Waits until predicate(records) is true; returns the records."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._records):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"receiver: condition not met; {len(self._records)} requests")
                self._cond.wait(left)
            return list(self._records)

    def url(self, path="/hook"):
        return f"http://{self.host}:{self.port}{path}"

    def start(self):
        handler = self._make_handler()
        ThreadingHTTPServer.allow_reuse_address = True
        ThreadingHTTPServer.daemon_threads = True
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- internals -------------------------------------------------------------
    def _next_action(self):
        with self._lock:
            self._count += 1
            if self._script:
                return self._script.pop(0), self._count
            return dict(self.default), self._count

    def _arrived(self, rec):
        with self._cond:
            self._records.append(rec)
            self._cond.notify_all()

    def _record(self, rec):
        with self._cond:
            if self.log_path:
                with open(self.log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec, sort_keys=True) + "\n")
            self._cond.notify_all()

    def _make_handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # quiet
                pass

            def _twilio_list(self, t0, headers):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                to = (q.get("To") or [None])[0]
                with receiver._lock:
                    msgs = [{"sid": f"SM{r['n']:032d}", "to": r["form"].get("To"),
                             "from": r["form"].get("From"), "body": r["form"].get("Body"),
                             "direction": "outbound-api", "status": "sent"}
                            for r in receiver._records
                            if r["method"] == "POST" and "form" in r
                            and not r["action"].get("forget") and r["form"].get("To") == to]
                out = json.dumps({"messages": msgs[::-1], "page": 0, "page_size": 100}).encode()
                rec = {"n": 0, "t": t0, "method": "GET", "path": self.path, "headers": headers,
                       "body": "", "sig_ok": None, "auth_ok": verify_basic(receiver.basic, headers),
                       "action": {}, "answered": 200, "query": {k: v[0] for k, v in q.items()}}
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                receiver._arrived(rec)

            def _handle(self):
                t0 = time.time()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                if receiver.twilio and self.command == "GET" and "Messages.json" in self.path:
                    return self._twilio_list(t0, headers)
                action, n = receiver._next_action()
                rec = {
                    "n": n, "t": t0, "method": self.command, "path": self.path,
                    "headers": headers, "body": body.decode("utf-8", "replace"),
                    "sig_ok": verify_standard_webhook(receiver.secrets, headers, body),
                    "auth_ok": verify_basic(receiver.basic, headers),
                    "action": action, "answered": "pending",
                }
                ctype = headers.get("content-type", "")
                if ctype.startswith("application/x-www-form-urlencoded"):
                    rec["form"] = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
                receiver._arrived(rec)  # visible to the test before the answer
                if action.get("hang"):
                    time.sleep(float(action["hang"]))
                if action.get("drop"):
                    rec["answered"] = None
                    receiver._record(rec)
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                status = int(action.get("status", 200))
                out = action.get("body")
                if out is None and receiver.twilio and 200 <= status < 300:
                    out = json.dumps({"sid": f"SM{n:032d}", "status": "queued"})
                out_b = (out or "").encode()
                try:
                    self.send_response(status)
                    if "retry_after" in action:
                        self.send_header("Retry-After", str(action["retry_after"]))
                    if out_b:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out_b)))
                    self.end_headers()
                    if out_b and status != 204:
                        self.wfile.write(out_b)
                    rec["answered"] = status
                except OSError:
                    rec["answered"] = None  # the client gave up (timeout)
                receiver._record(rec)

            do_POST = _handle
            do_PUT = _handle
            do_GET = _handle

        return Handler


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (for configs written before the server starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log", required=True)
    ap.add_argument("--script", default="[]")
    ap.add_argument("--default")
    ap.add_argument("--secret", action="append", default=[])
    ap.add_argument("--basic")
    ap.add_argument("--twilio", action="store_true")
    a = ap.parse_args()
    r = Receiver(port=a.port, log_path=a.log, script=json.loads(a.script),
                 default=json.loads(a.default) if a.default else None, secrets=a.secret,
                 basic=a.basic, twilio=a.twilio).start()
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(r.port))
        os.rename(tmp, a.port_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    r.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
