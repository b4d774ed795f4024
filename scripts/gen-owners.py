#!/usr/bin/env python3
"""Writes the demo's sales owners as CSV (id,name,email,phone,webhook,timezone,manager)."""
import csv
import sys

OWNERS = [
    ("alice", "Alice Martin", "alice@sales.example.com", "+4915112345678", "", "Europe/Berlin", "maria"),
    ("bob", "Bob Smith", "bob@sales.example.com", "+12125550123", "", "America/New_York", "maria"),
    ("carol", "Carol Wu", "carol@sales.example.com", "+8613800138000", "", "Asia/Shanghai", "maria"),
    ("dave", "Dave Kumar", "dave@sales.example.com", "+919812345678", "", "Asia/Kolkata", "maria"),
    ("maria", "Maria Rossi", "maria@sales.example.com", "", "", "Europe/Berlin", "head-of-sales"),
    ("head-of-sales", "Hannah Berg", "hannah@sales.example.com", "", "", "Europe/Berlin", ""),
    ("sales-desk", "Sales desk", "desk@sales.example.com", "", "", "Europe/Berlin", "head-of-sales"),
    ("key-accounts", "Key accounts team", "key-accounts@sales.example.com", "", "", "Europe/Berlin", "head-of-sales"),
]
w = csv.writer(sys.stdout, lineterminator="\n")
w.writerow(["id", "name", "email", "phone", "webhook", "timezone", "manager"])
w.writerows(OWNERS)
