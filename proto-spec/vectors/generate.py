#!/usr/bin/env python3
"""Writes the golden vectors in this folder.

The classic dialects are encoded by pyiso8583 4.x (`default` and `default_ascii` specs), an
implementation Corridor did not write; the native dialect by the small reference encoder
below, written from SPEC.md alone. The Rust tests decode every vector and compare it with
its `expect`, so code and spec cannot drift.

    python3 -m venv /tmp/v && /tmp/v/bin/pip install pyiso8583==4.0.1
    /tmp/v/bin/python proto-spec/vectors/generate.py
"""

import json
import os
import struct
import tomllib

import iso8583
import iso8583.specs

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "..", "fields.toml"), "rb") as f:
    DICT = {fld["id"]: fld for fld in tomllib.load(f)["field"]}

# Test card numbers only: these never belonged to anyone.
MESSAGES = [
    ("purchase_0200", {
        "t": "0200", "2": "4761739001010010", "3": "000000", "4": "000000012500",
        "7": "1125221530", "11": "000042", "12": "221530", "13": "1125", "14": "2812",
        "18": "5999", "22": "051", "25": "00", "32": "12345678", "35": "4761739001010010=28122011234567890",
        "37": "533022000042", "41": "TERM0001", "42": "MERCHANT0000001",
        "43": "CORRIDOR TEST SHOP       SINGAPORE    SG", "49": "702",
        "52": "0123456789ABCDEF", "55": "9F2608A1B2C3D4E5F607089F2701809F10120110A00003220000000000000000000000FF",
    }),
    ("approval_0210", {
        "t": "0210", "2": "4761739001010010", "3": "000000", "4": "000000012500",
        "7": "1125221530", "11": "000042", "32": "12345678", "37": "533022000042",
        "38": "A1B2C3", "39": "00", "41": "TERM0001", "49": "702",
    }),
    ("sign_on_0800", {"t": "0800", "7": "1125221500", "11": "000001", "70": "001"}),
    ("echo_0800", {"t": "0800", "7": "1125221501", "11": "000002", "33": "9876", "70": "301"}),
    ("reversal_0420", {
        "t": "0420", "2": "371449635398431", "3": "000000", "4": "000000012500",
        "7": "1125221600", "11": "000043", "32": "12345678", "37": "533022000042", "39": "68",
        "41": "TERM0001", "90": "020000004211252215300000012345600000000000",
        "100": "44556677",
    }),
    ("edge_fields", {
        "t": "0100", "2": "4", "28": "D00000150", "32": "", "44": "A 1", "45": "B4761739001010010^TEST/CARD^2812",
        "54": "", "97": "C0000000000012345", "98": "PAYEE NAME               ",
        "102": "0123456789012345678901234567", "104": "QR ref: 00020101021126", "128": "FFFFFFFFFFFFFFFF",
    }),
]


def digits_bcd(value, fixed):
    if len(value) % 2:
        value = "0" + value if fixed else value + "F"
    return bytes.fromhex(value)


def encode_native(doc):
    """The native body, from SPEC.md: BCD MTI, binary bitmaps, binary length prefixes."""
    ids = sorted(int(k) for k in doc if k.isdigit())
    bitmap = 0
    for i in ids:
        bitmap |= 1 << (128 - i)
    if any(i > 64 for i in ids):
        bitmap |= 1 << 127
    out = bytearray(bytes.fromhex(doc["t"]))
    out += (bitmap >> 64).to_bytes(8, "big")
    if bitmap & (1 << 127):
        out += (bitmap & ((1 << 64) - 1)).to_bytes(8, "big")
    for i in ids:
        spec, value = DICT[i], doc[str(i)]
        data = bytes.fromhex(value) if spec["type"] == "b" else value.encode("ascii")
        units = len(data)
        if spec["type"] == "n":
            data = digits_bcd(value, spec["length"] == "fixed")
        if spec["length"] == "ll":
            out += bytes([units])
        elif spec["length"] == "lll":
            out += struct.pack(">H", units)
        out += data
    return bytes(out)


def expect(doc):
    return {"mti": doc["t"], "fields": {k: v.upper() if DICT[int(k)]["type"] == "b" else v
                                        for k, v in sorted(doc.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0)
                                        if k.isdigit()}}


def write(name, obj):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def main():
    for dialect, spec in (("iso87-ascii", iso8583.specs.default), ("iso87-hex", iso8583.specs.default_ascii)):
        vectors = []
        for name, doc in MESSAGES:
            raw, _ = iso8583.encode(dict(doc), spec)
            vectors.append({"name": name, "hex": bytes(raw).hex().upper(), "expect": expect(doc)})
        write(dialect + ".json", {"dialect": dialect, "encoded_by": "pyiso8583 4.0.1", "vectors": vectors})
    vectors = [{"name": name, "hex": encode_native(doc).hex().upper(), "expect": expect(doc)} for name, doc in MESSAGES]
    write("native.json", {"dialect": "native", "encoded_by": "generate.py reference encoder", "vectors": vectors})

    body = encode_native(dict(MESSAGES[2][1]))
    header = struct.pack(">HBBHHIQ", 0x8583, 1, 0, 20, 0, len(body), 0x0102030405060708)
    classic = bytes(iso8583.encode(dict(MESSAGES[2][1]), iso8583.specs.default)[0])
    frames = [
        {"name": "native_sign_on", "framing": "native", "hex": (header + body).hex().upper(),
         "body_hex": body.hex().upper(), "correlation": 0x0102030405060708, "flags": 0},
        {"name": "native_switch_origin_flag_and_extension", "framing": "native",
         "hex": (struct.pack(">HBBHHIQ", 0x8583, 1, 0x01 | 0x02, 24, 0, len(body), 7) + b"\x00" * 4 + body).hex().upper(),
         "body_hex": body.hex().upper(), "correlation": 7, "flags": 3},
        {"name": "bin2", "framing": "bin2", "hex": (struct.pack(">H", len(classic)) + classic).hex().upper(),
         "body_hex": classic.hex().upper()},
        {"name": "bin2_inclusive", "framing": "bin2-incl", "hex": (struct.pack(">H", len(classic) + 2) + classic).hex().upper(),
         "body_hex": classic.hex().upper()},
        {"name": "bin4", "framing": "bin4", "hex": (struct.pack(">I", len(classic)) + classic).hex().upper(),
         "body_hex": classic.hex().upper()},
        {"name": "ascii4", "framing": "ascii4", "hex": (b"%04d" % len(classic) + classic).hex().upper(),
         "body_hex": classic.hex().upper()},
    ]
    write("frames.json", {"vectors": frames})

    ascii_purchase = bytes(iso8583.encode(dict(MESSAGES[0][1]), iso8583.specs.default)[0])
    hex_purchase = bytes(iso8583.encode(dict(MESSAGES[0][1]), iso8583.specs.default_ascii)[0])
    native_purchase = encode_native(dict(MESSAGES[0][1]))
    sign_on_hex = bytes(iso8583.encode(dict(MESSAGES[2][1]), iso8583.specs.default_ascii)[0])

    def with_field(doc, **kv):
        d = dict(doc)
        d.update({k.lstrip("_"): v for k, v in kv.items()})
        return d

    negative = []

    def neg(name, layer, framing_or_dialect, data, error, field=None, note=""):
        v = {"name": name, "layer": layer, "hex": data.hex().upper(), "error": error}
        v["framing" if layer == "frame" else "dialect"] = framing_or_dialect
        if field is not None:
            v["field"] = field
        if note:
            v["note"] = note
        negative.append(v)

    full = struct.pack(">H", len(classic)) + classic
    neg("truncated_bin2_frame", "frame", "bin2", full[:-3], "truncated_frame",
        note="decode returns None (needs more); at end of stream it is an error")
    neg("truncated_native_header", "frame", "native", (header + body)[:11], "truncated_frame")
    neg("truncated_native_body", "frame", "native", (header + body)[:-1], "truncated_frame")
    neg("oversize_bin2", "frame", "bin2", struct.pack(">H", 40000) + b"0800", "frame_too_large",
        note="declared 40000 bytes, over FRAME_BYTES_MAX (16384)")
    neg("oversize_bin4", "frame", "bin4", struct.pack(">I", 0xFFFFFFF0), "frame_too_large")
    neg("oversize_native", "frame", "native", struct.pack(">HBBHHIQ", 0x8583, 1, 0, 20, 0, 1 << 20, 1), "frame_too_large")
    neg("ascii4_non_digit", "frame", "ascii4", b"02X0" + classic, "invalid_length_header")
    neg("bin2_inclusive_too_small", "frame", "bin2-incl", b"\x00\x01", "frame_too_small")
    neg("native_unknown_version", "frame", "native", struct.pack(">HBBHHIQ", 0x8583, 2, 0, 20, 0, len(body), 1) + body,
        "unsupported_version")
    neg("native_bad_magic", "frame", "native", b"GET / HTTP/1.1\r\n\r\n", "bad_magic")
    neg("native_unknown_critical_flag", "frame", "native",
        struct.pack(">HBBHHIQ", 0x8583, 1, 0x80, 20, 0, len(body), 1) + body, "unknown_critical_flags")
    neg("native_header_len_short", "frame", "native",
        struct.pack(">HBBHHIQ", 0x8583, 1, 0, 12, 0, len(body), 1) + body, "invalid_header_length")

    # Message layer, for each dialect.
    for dialect, purchase, mti_len, bitmap_len in (("native", native_purchase, 2, 8),
                                                    ("iso87-ascii", ascii_purchase, 4, 8),
                                                    ("iso87-hex", hex_purchase, 4, 16)):
        neg("missing_field_" + dialect, "message", dialect, purchase[:-10], "missing_field", field=55,
            note="the bitmap announces DE 55 but the message ends inside it")
        neg("trailing_bytes_" + dialect, "message", dialect, purchase + b"\x00\x00", "trailing_bytes")
        neg("truncated_bitmap_" + dialect, "message", dialect, purchase[:mti_len + 3], "truncated")
    # The PAN (DE 2) prefix sits right after MTI and primary bitmap in every purchase.
    neg("llvar_over_max_native", "message", "native",
        native_purchase[:10] + bytes([20]) + native_purchase[11:], "length_over_max", field=2)
    neg("llvar_over_max_iso87-ascii", "message", "iso87-ascii",
        ascii_purchase[:12] + b"25" + ascii_purchase[14:], "length_over_max", field=2)
    neg("llvar_over_max_iso87-hex", "message", "iso87-hex",
        hex_purchase[:20] + b"20" + hex_purchase[22:], "length_over_max", field=2)
    neg("non_digit_in_n_native", "message", "native",
        native_purchase[:11] + b"\x4A" + native_purchase[12:], "invalid_character", field=2,
        note="0x4A holds the nibble A, not a BCD digit")
    neg("non_digit_in_n_iso87-ascii", "message", "iso87-ascii",
        ascii_purchase[:14] + b"4X" + ascii_purchase[16:], "invalid_character", field=2)
    neg("non_digit_in_n_iso87-hex", "message", "iso87-hex",
        hex_purchase[:22] + b"4X" + hex_purchase[24:], "invalid_character", field=2)
    reversal = bytearray(encode_native(MESSAGES[4][1]))
    # MTI (2) and both bitmaps (16), then DE 2's prefix (15) and 8 BCD bytes: "...31" + pad F.
    assert reversal[18] == 15 and reversal[26] == 0x1F
    reversal[26] = 0x10
    neg("bad_pad_nibble_native", "message", "native", bytes(reversal), "invalid_padding", field=2,
        note="a 15-digit PAN must end in the pad nibble F")
    neg("non_hex_bitmap_iso87-hex", "message", "iso87-hex", sign_on_hex[:4] + b"G" + sign_on_hex[5:], "invalid_bitmap")
    neg("non_digit_mti_iso87-ascii", "message", "iso87-ascii", b"02A0" + ascii_purchase[4:], "invalid_mti")
    tertiary = bytearray(encode_native(MESSAGES[4][1]))
    tertiary[10] |= 0x80  # bit 65, first bit of the secondary bitmap
    neg("tertiary_bitmap_native", "message", "native", bytes(tertiary), "unsupported_tertiary_bitmap",
        note="DE 65 announces a third bitmap (DE 129-192), which ISO 8583:1987 does not define")
    write("negative.json", {"vectors": negative})


if __name__ == "__main__":
    main()
