#!/usr/bin/env python3
"""Prints a renewd.conf drop-in that turns every [Channel NAME] of CONFIG into
the Maildir sink writing to MAILDIR (removing the channel's other keys with
empty assignments), and the demo's own secrets-free [Daemon] settings.

Usage: demo-config.py CONFIG MAILDIR [SECRETS_DIR]
"""
import re
import sys

config, maildir = sys.argv[1], sys.argv[2]
secrets = sys.argv[3] if len(sys.argv) > 3 else None
channels = {}
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
        key = line.split("=", 1)[0].strip()
        if key not in ("Type",) and key not in channels[section[1]]:
            channels[section[1]].append(key)

print("[Daemon]")
# Answer links and the API work in the demo: secrets live next to the store.
print(f"LinkKeyFile={secrets}/link-key" if secrets else "LinkKeyFile=")
print(f"ApiTokenFile={secrets}/api-token" if secrets else "ApiTokenFile=")
print("PublicURL=http://127.0.0.1:8787")
for name, keys in channels.items():
    print(f"\n[Channel {name}]")
    print("Type=sink")
    for k in keys:
        print(f"{k}=")
    print(f"Maildir={maildir}")
    print("# a demo does not need every message fsync'ed")
    print("Sync=no")
