#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from fixtures/ (every request envelope) and a few hand-written
inputs. Idempotent: a file is named by the hash of its content. Run from the repository root:
python3 fuzz/seed_corpus.py"""
import glob
import hashlib
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def save(target, content):
    directory = os.path.join(ROOT, "fuzz", "corpus", target)
    os.makedirs(directory, exist_ok=True)
    name = "seed-" + hashlib.sha1(content).hexdigest()[:16]
    with open(os.path.join(directory, name), "wb") as f:
        f.write(content)


def requests(fixture):
    steps = [fixture] + fixture.get("setup", []) + fixture.get("then", [])
    return [s["request"] for s in steps if isinstance(s, dict) and "request" in s]


for path in sorted(glob.glob(os.path.join(ROOT, "fixtures", "*.json"))):
    with open(path) as f:
        fixture = json.load(f)
    for request in requests(fixture):
        save("envelope", json.dumps(request, separators=(",", ":")).encode())
        data = json.dumps(request.get("data", {}), separators=(",", ":"))
        save("normalize", f"{request.get('event_type', '')}\n{data}".encode())

for text in [
    "1700000000\nsha256=00ff deadbeef\n{}",
    "1700000000\n" + "a" * 64 + "\n{\"event_type\":\"test.connection\"}",
    "-1\nsha256=\n",
    "99999999999999999999\n=====\nbody",
]:
    save("signature_header", text.encode())
for text in ["code=d365", "code=%64365&code=x", "code=dynamics-key", "a=1&code=%zz", "code=%aé", "&&=&"]:
    save("query_string", text.encode())
for raw in [b"\x10\x00hello\xffworld", b"\x00\x00", b"\x05\x00abc\xffdef", b"\xff\xff" + b"x" * 100]:
    save("body_reader", raw)
