#!/usr/bin/env python3
"""The pyiso8583 side of the interoperability test (tests/interop_pyiso8583.rs).

    gen COUNT SEED   print COUNT random messages per classic dialect, encoded by pyiso8583,
                     one JSON object a line: {"dialect", "hex", "mti", "fields"}
    decode           read {"dialect", "hex"} lines on stdin, print what pyiso8583 decodes:
                     {"mti", "fields"} (bitmaps left out), or {"error": "..."}

Values follow Corridor's field dictionary (proto-spec/fields.toml), so every message is valid
on both sides; binary fields are uppercase hex, as in `corridor msg`.
"""

import json
import os
import random
import string
import sys
import tomllib

import iso8583
import iso8583.specs

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "..", "..", "proto-spec", "fields.toml"), "rb") as f:
    DICT = {fld["id"]: fld for fld in tomllib.load(f)["field"]}

def corridor_spec(base):
    """pyiso8583's spec with DE 126 as Corridor's dictionary has it: binary LLLVAR of up to 499
    bytes (an EMV QR payload's UTF-8 bytes), encoded the way the spec encodes DE 55."""
    spec = dict(base)
    de55 = base["55"]
    unit = 2 if de55["data_enc"] == "ascii" else 1
    spec["126"] = dict(de55, desc="QR Code Payload", max_len=DICT[126]["max"] * unit)
    return spec


SPECS = {"iso87-ascii": corridor_spec(iso8583.specs.default), "iso87-hex": corridor_spec(iso8583.specs.default_ascii)}
CHARSETS = {
    "n": string.digits,
    "an": string.ascii_letters + string.digits + " ",
    "ans": string.ascii_letters + string.digits + " " + string.punctuation,
    "ns": string.digits + " " + string.punctuation,
    "z": string.digits + "=D",
}
BITMAPS = {1, 65}


def value(rng, spec):
    n = spec["max"] if spec["length"] == "fixed" else rng.randint(0, spec["max"])
    if spec["type"] == "b":
        return bytes(rng.getrandbits(8) for _ in range(n)).hex().upper()
    if spec["type"] == "xn":
        return rng.choice("CD") + "".join(rng.choice(string.digits) for _ in range(n - 1))
    return "".join(rng.choice(CHARSETS[spec["type"]]) for _ in range(n))


def gen(count, seed):
    rng = random.Random(seed)
    for dialect, spec in SPECS.items():
        for _ in range(count):
            ids = [i for i in range(2, 129) if i not in BITMAPS and rng.random() < 0.25]
            doc = {"t": "%04d" % rng.randint(0, 9999)}
            for i in ids:
                doc[str(i)] = value(rng, DICT[i])
            fields = {k: v for k, v in doc.items() if k.isdigit()}
            raw, _ = iso8583.encode(dict(doc), spec)
            print(json.dumps({"dialect": dialect, "hex": bytes(raw).hex().upper(), "mti": doc["t"], "fields": fields}))


def decode():
    for line in sys.stdin:
        req = json.loads(line)
        try:
            doc, _ = iso8583.decode(bytes.fromhex(req["hex"]), SPECS[req["dialect"]])
        except Exception as e:  # noqa: BLE001 - every failure is reported to the Rust side
            print(json.dumps({"error": str(e)}))
            continue
        fields = {k: v for k, v in doc.items() if k.isdigit() and int(k) not in BITMAPS}
        print(json.dumps({"mti": doc["t"], "fields": fields}))
        sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1] == "decode":
        decode()
    else:
        sys.exit("usage: pyiso8583_peer.py gen COUNT SEED | decode")
