"""Prints the YAML 1.1 reading (PyYAML's safe loader, what kubectl's and Python's readers see)
of each YAML stream named on the command line, one JSON line per stream: the list of its
documents. Timestamps and other non-JSON scalars are printed as text, tagged so that a date and
the string spelling it do not compare equal."""
import datetime
import json
import sys

import yaml


def plain(value):
    if isinstance(value, dict):
        return {str(plain_key(k)): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return "!!timestamp " + value.isoformat()
    if isinstance(value, bytes):
        return "!!binary " + value.hex()
    if isinstance(value, float) and value != value:
        return "!!float nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "!!float " + repr(value)
    return value


def plain_key(key):
    # Keys that are not strings (`1:`, `true:`, `null:`) are compared by their 1.1 reading.
    if isinstance(key, str):
        return key
    return json.dumps(plain(key))


for path in sys.argv[1:]:
    with open(path, "rb") as f:
        docs = list(yaml.safe_load_all(f))
    print(json.dumps([plain(d) for d in docs], ensure_ascii=False))
