#!/usr/bin/python3
"""Integration test: the answer pages in a real browser.

Headless Chromium (Debian's /usr/bin/chromium) is driven through the DevTools
protocol with a minimal WebSocket client written here (Python stdlib only,
RFC 6455: handshake, masked client frames, fragmented server messages). The
pages themselves have no JavaScript; the test clicks with real mouse events
(Input.dispatchMouseEvent at the element's box), like a person on a phone.

For the decline link of a reminder actually sent (Maildir, English customer),
a snooze link of a Simplified Chinese (zh-CN) and of an Austrian German (de-AT,
served by de/) customer, each page in the customer's language (<html lang>, a
phrase, the date written as that language writes it):
  * the page renders on a phone-sized viewport (390x844, mobile) without
    horizontal scrolling; a screenshot is saved to ARTIFACT_DIR;
  * loading it changed nothing in the store;
  * clicking a reason and the button submits the form (a POST), the thank-you
    page appears (screenshot saved), and the store shows the response with
    the reason chosen in the browser;
  * reloading the thank-you page's URL (a GET) shows "already recorded".
An owner link opened with Accept-Language de, zh-CN (after an unknown fr-CH)
and fr (none shipped: the default, English) shows the owner page in de, zh-CN
and en (screenshots owner-snooze-LANG.png); a customer's page keeps the
customer's locale whatever the browser asks for.

Skips (77) when chromium is not installed.

Usage: test-pages-chromium.py RENEWD RENEWCTL ARTIFACT_DIR
"""
import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptestlib import Daemon, day  # noqa: E402
from itestlib import SKIP, TestFailure, check, free_port, main_wrapper, wait_for  # noqa: E402

CONTRACTS = [
    dict(contract_id="C-300", customer_id="K-300", customer_name="Alice Browser", email="alice@example.com",
         timezone="Europe/Berlin", locale="en", owner="O-1", product="Support Plan",
         expires_on=day(20), value="1200.00", currency="EUR"),
    dict(contract_id="C-301", customer_id="K-301", customer_name="王芳", email="wang@example.com",
         timezone="Asia/Shanghai", locale="zh-CN", owner="O-1", product="支持计划", expires_on=day(30)),
    dict(contract_id="C-302", customer_id="K-302", customer_name="Jürgen Weiß", email="jw@example.de",
         timezone="Europe/Vienna", locale="de-AT", owner="O-1", product="Wartungsvertrag",
         expires_on=day(40), value="1200.50", currency="EUR"),
    dict(contract_id="C-303", customer_id="K-303", customer_name="Bob Quiet", email="bob@example.com",
         timezone="America/New_York", locale="en", owner="O-1", product="Backup", expires_on=day(50)),
]
# what each locale's pages must show: <html lang>, a phrase, a date in that language
LANG = {
    "en": ("en", "Remind me later", r"[A-Z][a-z]+ \d{1,2}, \d{4}"),
    "de": ("de", "Später erinnern", r"\d{1,2}\. (Januar|Jänner|Februar|März|April|Mai|Juni|Juli|August|September|Oktober|November|Dezember) \d{4}"),
    "zh-CN": ("zh-CN", "稍后提醒我", r"\d{4}年\d{1,2}月\d{1,2}日"),
}
OWNERS = [dict(id="O-1", name="Olivia Owner", email="olivia@example.com", timezone="UTC")]


class WebSocket:
    """The client side of RFC 6455, just enough for the DevTools protocol."""

    def __init__(self, url, timeout):
        assert url.startswith("ws://")
        hostport, path = url[5:].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise TestFailure("DevTools closed the WebSocket handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        check(head.split(b"\r\n")[0].split(b" ")[1] == b"101", f"WebSocket handshake: {head[:200]!r}")

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise TestFailure("DevTools closed the WebSocket")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            hdr = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        self.sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        """One complete text message (continuation frames joined; pings answered)."""
        parts = []
        while True:
            b0, b1 = self._read(2)
            op, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if op == 0x9:  # ping
                self.sock.sendall(struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\0\0\0\0" + payload)
                continue
            if op == 0x8:
                raise TestFailure("DevTools closed the WebSocket")
            parts.append(payload)
            if b0 & 0x80:
                return b"".join(parts).decode()

    def close(self):
        self.sock.close()


class Browser:
    def __init__(self, wd, timeout):
        self.timeout = timeout
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=wd.path)
        self.log = open(wd("chromium.log"), "w")
        self.proc = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--disable-default-apps", "--no-default-browser-check",
             f"--user-data-dir={self.profile}", f"--remote-debugging-port={self.port}",
             "--remote-allow-origins=*", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT)
        targets = wait_for(self._targets, timeout, 0.2, "chromium's DevTools endpoint")
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = WebSocket(page["webSocketDebuggerUrl"], timeout)
        self.next_id = 0
        self.events = []
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Network.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2,
                  mobile=True)

    def _targets(self):
        if self.proc.poll() is not None:
            raise TestFailure(f"chromium exited {self.proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=2) as r:
                t = json.load(r)
            return t if any(x.get("type") == "page" for x in t) else None
        except OSError:
            return None

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise TestFailure(f"DevTools {method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, name):
        deadline = time.monotonic() + self.timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == name:
                    del self.events[:i + 1]
                    return e
            if time.monotonic() > deadline:
                raise TestFailure(f"no {name} within {self.timeout}s")
            self.events.append(json.loads(self.ws.recv()))

    def navigate(self, url):
        self.events.clear()
        res = self.call("Page.navigate", url=url)
        check("errorText" not in res, f"navigate {url}: {res}")
        self.wait_event("Page.loadEventFired")

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        check("exceptionDetails" not in r, f"evaluate {expr}: {r}")
        return r["result"].get("value")

    def click(self, selector):
        """A real mouse click in the middle of the element's box."""
        self.eval(f"document.querySelector({json.dumps(selector)}).scrollIntoView({{block: 'center'}})")
        doc = self.call("DOM.getDocument")
        node = self.call("DOM.querySelector", nodeId=doc["root"]["nodeId"], selector=selector)
        check(node.get("nodeId"), f"no element {selector}")
        q = self.call("DOM.getBoxModel", nodeId=node["nodeId"])["model"]["content"]
        x, y = (q[0] + q[2] + q[4] + q[6]) / 4, (q[1] + q[3] + q[5] + q[7]) / 4
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        check(os.path.getsize(path) > 1000, f"screenshot {path} is empty")

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def check_language(b, name, lang, phrase=None):
    """The page is in lang: <html lang>, a phrase of it (default: LANG's) and its date format."""
    want_lang, want_phrase, date_re = LANG[lang]
    text = b.eval("document.body.innerText")
    check(b.eval("document.documentElement.lang") == want_lang,
          f"{name}: <html lang={b.eval('document.documentElement.lang')!r}>, expected {want_lang}")
    check((phrase or want_phrase) in text, f"{name}: no {phrase or want_phrase!r} on the page:\n{text[:500]}")
    check(re.search(date_re, text), f"{name}: no date written as in {lang}:\n{text[:500]}")
    check("{{" not in b.eval("document.documentElement.outerHTML"), f"{name}: an unrendered tag")


def answer(b, d, url, artifacts, name, choose, reason_check, lang=None):
    before = d.snapshot()
    b.navigate(url)
    if lang:
        check_language(b, name, lang, {"en": "Not renewing", "de": "Später erinnern",
                                       "zh-CN": "稍后提醒我"}[lang])
    check(b.eval("document.getElementById('page').dataset.page") == "form",
          f"{name}: not a form page: {b.eval('document.body.innerText')[:300]}")
    check(b.eval("document.documentElement.scrollWidth") <= 390,
          f"{name}: the page scrolls sideways on a phone ({b.eval('document.documentElement.scrollWidth')} px)")
    check(b.eval("document.scripts.length") == 0, f"{name}: the page has scripts")
    b.screenshot(os.path.join(artifacts, f"{name}-form.png"))
    check(d.snapshot() == before, f"{name}: loading the page in a browser changed the store")
    b.click(choose)
    check(b.eval(f"document.querySelector({json.dumps(choose)}).checked") is True,
          f"{name}: the click did not select {choose}")
    b.events.clear()
    b.click("button[type=submit]")
    b.wait_event("Page.loadEventFired")
    page = b.eval("document.getElementById('page').dataset.page")
    check(page == "done", f"{name}: after the click the page is {page!r}: "
                          f"{b.eval('document.body.innerText')[:400]}")
    b.screenshot(os.path.join(artifacts, f"{name}-done.png"))
    if lang:
        check_language(b, f"{name} (done)", lang, {"en": "Thank you", "de": "Vielen Dank",
                                                   "zh-CN": "谢谢"}[lang])
    reason_check()
    b.navigate(url)
    check(b.eval("document.getElementById('page').dataset.page") == "already",
          f"{name}: opening the link again does not say already recorded")
    b.screenshot(os.path.join(artifacts, f"{name}-already.png"))


def body(wd):
    renewd, renewctl, artifacts = sys.argv[1], sys.argv[2], sys.argv[3]
    if not shutil.which("chromium"):
        print("chromium is not installed: skipped")
        return SKIP
    os.makedirs(artifacts, exist_ok=True)
    d = Daemon(wd, renewd, renewctl, CONTRACTS, OWNERS)
    b = None
    try:
        wait_for(lambda: len(d.messages()) >= 2, 30 * d.slow, 0.1, "the first reminders")
        d.quiesce()
        msg = next(m for m in d.messages() if str(m["X-Renewd-Contract"]) == "C-300")
        decline = d.link("C-300", "decline")
        check(decline in d.links_in(msg), "the decline link is not in the message")
        b = Browser(wd, 60 * d.slow)

        def declined():
            r = d.responses("C-300")
            check(len(r) == 1 and r[0]["kind"] == "declined" and r[0]["reason"] == "switched-provider" and
                  r[0]["source"] == "link", f"C-300 responses after the click: {r}")
            check(d.contract("C-300")["state"] == "declined", f"C-300: {d.contract('C-300')}")
        answer(b, d, decline, artifacts, "decline-en", "input[name=reason][value=switched-provider]", declined,
               "en")

        def snoozed():
            r = d.responses("C-301")
            check(len(r) == 1 and r[0]["kind"] == "snoozed", f"C-301 responses after the click: {r}")
            check(d.contract("C-301")["state"] == "snoozed", f"C-301: {d.contract('C-301')}")
        answer(b, d, d.link("C-301", "snooze"), artifacts, "snooze-zh-CN", "input[name=snooze][value='14d']",
               snoozed, "zh-CN")

        # a de-AT customer: the de pages (fallback de-AT -> de), German dates
        def snoozed_de():
            r = d.responses("C-302")
            check(len(r) == 1 and r[0]["kind"] == "snoozed", f"C-302 responses after the click: {r}")
        answer(b, d, d.link("C-302", "snooze"), artifacts, "snooze-de", "input[name=snooze][value='7d']",
               snoozed_de, "de")

        # owner pages follow Accept-Language (the owner has no locale of their own);
        # a customer's page does not (their locale wins)
        owner_link = d.link("C-303", "owner-snooze")
        for accept, lang, phrase in (("de-DE,de;q=0.9,en;q=0.5", "de", "Erinnerungen pausieren"),
                                     ("fr-CH, zh-CN;q=0.8, en;q=0.3", "zh-CN", "暂停提醒"),
                                     ("fr-FR,fr;q=0.9", "en", "Pause the reminders")):
            b.call("Network.setExtraHTTPHeaders", headers={"Accept-Language": accept})
            before = d.snapshot()
            b.navigate(owner_link)
            check_language(b, f"owner page, Accept-Language: {accept}", lang, phrase)
            b.screenshot(os.path.join(artifacts, f"owner-snooze-{lang}.png"))
            check(d.snapshot() == before, "loading the owner page changed the store")
        b.call("Network.setExtraHTTPHeaders", headers={"Accept-Language": "de"})
        b.navigate(d.link("C-301", "decline"))
        check_language(b, "zh-CN customer's page with Accept-Language: de", "zh-CN", "不再续约")
        b.screenshot(os.path.join(artifacts, "decline-zh-CN-form.png"))
        print(f"screenshots in {artifacts}")
    except TestFailure as e:
        raise TestFailure(f"{e}\n--- renewd log (tail) ---\n{d.log_text()[-4000:]}")
    finally:
        if b:
            b.close()
        rc = d.stop()
    check(rc == 0, f"renewd exited {rc}")
    return 0


if __name__ == "__main__":
    sys.exit(main_wrapper("test-pages-chromium", body))
