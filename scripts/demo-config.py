#!/usr/bin/env python3
"""Prints a renewd.conf drop-in that turns every [Channel NAME] of CONFIG into
a sink standing in for it (Kind= from its Type=): email into the Maildir
MAILDIR exactly as SMTP would send it, SMS into sms/*.txt and webhooks into
webhooks/*.http beside MAILDIR. What the message says about its sender stays
(From=, ReplyTo=, Calendar=, OptOutFooter=, URL=); the other keys are removed
with empty assignments. Also the demo's own secrets-free [Daemon] settings.

Usage: demo-config.py CONFIG MAILDIR [SECRETS_DIR]
"""
import re
import sys

config, maildir = sys.argv[1], sys.argv[2]
secrets = sys.argv[3] if len(sys.argv) > 3 else None
channels = {}
types = {}
section = None
for line in open(config, encoding="utf-8"):
    line = line.strip()
    if not line or line[0] in "#;":
        continue
    m = re.match(r"^\[(\w+)(?:\s+(.+))?\]$", line)
    if m:
        section = (m.group(1), m.group(2))
        if section[0] == "Channel":
            channels.setdefault(section[1], [])
        continue
    if section and section[0] == "Channel" and "=" in line:
        key, value = (x.strip() for x in line.split("=", 1))
        if key == "Type":
            types[section[1]] = value
        elif key not in channels[section[1]]:
            channels[section[1]].append(key)

# what a sink keeps of the channel it stands in for, by that channel's Type=
KEEP = {
    "smtp": ("From", "ReplyTo", "Calendar", "CalendarAlarm"),
    "sms": ("From", "OptOutFooter"),
    "webhook": ("URL",),
    "sink": ("From", "ReplyTo", "Calendar", "CalendarAlarm", "Kind", "OptOutFooter", "URL"),
}
KIND = {"smtp": "email", "sms": "sms", "webhook": "webhook"}

print("[Daemon]")
# Answer links and the API work in the demo: secrets live next to the store.
print(f"LinkKeyFile={secrets}/link-key" if secrets else "LinkKeyFile=")
print(f"ApiTokenFile={secrets}/api-token" if secrets else "ApiTokenFile=")
print("PublicURL=http://127.0.0.1:8787")
for name, keys in channels.items():
    typ = types.get(name, "sink")
    print(f"\n[Channel {name}]")
    print("Type=sink")
    if typ in KIND:
        print(f"Kind={KIND[typ]}")
    for k in keys:
        if k not in KEEP.get(typ, ()):
            print(f"{k}=")
    print(f"Maildir={maildir}")
    print("# a demo does not need every message fsync'ed")
    print("Sync=no")
