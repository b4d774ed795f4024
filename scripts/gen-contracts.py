#!/usr/bin/env python3
"""Generates a CSV of realistic contracts for demos, tests and benchmarks.

Usage: gen-contracts.py COUNT [--start YYYY-MM-DD] [--days N] [--seed S] > contracts.csv

Contracts expire on dates spread over --days days from --start, across segments,
time zones on every continent, English, Chinese (zh-CN) and German (de, the
customers in Europe/Berlin) locales, with owners.
Deterministic for a given seed.
"""
import argparse
import csv
import datetime
import random
import sys

ZONES = [
    "Europe/Berlin", "Europe/London", "America/New_York", "America/Los_Angeles",
    "America/St_Johns", "America/Sao_Paulo", "Asia/Kolkata", "Asia/Shanghai", "Asia/Tokyo",
    "Australia/Sydney", "Australia/Lord_Howe", "Africa/Johannesburg", "Africa/Casablanca",
    "Pacific/Auckland", "UTC",
]
SEGMENTS = ["smb", "smb", "smb", "enterprise", "high-value"]
PRODUCTS = ["Cloud Backup", "Support Plus", "Analytics Pro", "Managed Firewall", "Email Suite"]
FIRST = ["Ada", "Grace", "Linus", "Mei", "Ravi", "Sofia", "Jonas", "Aiko", "Omar", "Lena"]
LAST = ["Lovelace", "Hopper", "Berg", "Chen", "Patel", "Rossi", "Weber", "Sato", "Haddad", "Novak"]
CN = ["王小明", "李华", "张伟", "刘洋", "陈静"]
OWNERS = ["alice", "bob", "carol", "dave"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("count", type=int)
    ap.add_argument("--start", default=datetime.date.today().isoformat())
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    start = datetime.date.fromisoformat(a.start)
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["contract_id", "customer_id", "customer_name", "email", "phone", "timezone",
                "locale", "segment", "owner", "product", "starts_on", "expires_on", "value",
                "currency"])
    for i in range(1, a.count + 1):
        zone = rnd.choice(ZONES)
        chinese = zone == "Asia/Shanghai" or rnd.random() < 0.1
        name = rnd.choice(CN) if chinese else f"{rnd.choice(FIRST)} {rnd.choice(LAST)}"
        expires = start + datetime.timedelta(days=rnd.randrange(a.days))
        starts = expires - datetime.timedelta(days=365)
        seg = rnd.choice(SEGMENTS)
        phone = f"+{rnd.choice([1, 44, 49, 61, 81, 86, 91])}{rnd.randrange(10**9, 10**10)}" if rnd.random() < 0.7 else ""
        w.writerow([f"C-{i:07d}", f"K-{i:07d}", name, f"customer{i}@example.com", phone, zone,
                    "zh-CN" if chinese else "de" if zone == "Europe/Berlin" else "en", seg, rnd.choice(OWNERS), rnd.choice(PRODUCTS),
                    starts.isoformat(), expires.isoformat(),
                    f"{rnd.randrange(100, 100000)}.{rnd.randrange(100):02d}",
                    rnd.choice(["EUR", "USD", "CNY", "GBP"])])


if __name__ == "__main__":
    main()
