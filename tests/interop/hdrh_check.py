"""Reads corridor-load's HdrHistogram outputs with HdrHistogram_py (PyPI `hdrhistogram`), an
implementation we did not write.

    hdrh_check.py hgrm LOG HGRM   decode the one histogram in LOG, print its percentile
                                  distribution (scaled ns -> ms) and compare it with HGRM
    hdrh_check.py hlog LOG        decode every interval of LOG, print them as JSON
"""
import io
import json
import sys

from hdrh.histogram import HdrHistogram


def intervals(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or line.startswith('"StartTimestamp"'):
                continue
            parts = line.split(",")
            if parts[0].startswith("Tag="):
                parts = parts[1:]
            start, duration, max_ms, payload = parts
            out.append((float(start), float(duration), float(max_ms), HdrHistogram.decode(payload)))
    return out


def numbers(text):
    rows = []
    for line in text.splitlines():
        cols = line.split()
        if not cols or cols[0] == "Value" or line.startswith("#"):
            continue
        rows.append([float(c) for c in cols])
    return rows


def main():
    mode = sys.argv[1]
    if mode == "hgrm":
        # HdrHistogram_py's own percentile iterator steps differently from the Java, C and
        # Rust ones (whose steps the .hgrm follows), so each of our rows is checked against
        # its value at that percentile, and the footer against its totals.
        (_, _, _, h), = intervals(sys.argv[2])
        text = open(sys.argv[3]).read()
        rows = numbers(text)
        for value_ms, percentile, total, *rest in rows:
            theirs = h.get_value_at_percentile(percentile * 100) / 1e6
            # Equivalent within the histogram's precision (3 significant digits).
            if abs(value_ms - theirs) > 2e-3 * max(theirs, 1e-3) + 1e-3:
                sys.exit(f"at percentile {percentile}: {value_ms} ms here, {theirs} ms in HdrHistogram_py")
            if rest and abs(rest[0] - 1 / (1 - percentile)) > 0.01 * rest[0]:
                sys.exit(f"1/(1-p) column wrong at {percentile}: {rest[0]}")
        footer = {}
        for line in text.splitlines():
            if line.startswith("#["):
                for part in line.strip("#[]").split(","):
                    k, v = part.split("=")
                    footer[k.strip()] = float(v)
        checks = {
            "Total count": h.get_total_count(),
            "Max": h.get_max_value() / 1e6,
            "Mean": h.get_mean_value() / 1e6,
            "StdDeviation": h.get_stddev() / 1e6,
            "SubBuckets": h.sub_bucket_count,
        }
        for k, v in checks.items():
            if abs(footer[k] - v) > 2e-3 * max(abs(v), 1e-3) + 1e-3:
                sys.exit(f"footer {k}: {footer[k]} here, {v} in HdrHistogram_py")
        if rows[-1][1] != 1.0 or rows[-1][2] != h.get_total_count():
            sys.exit(f"the last row must be the 100th percentile with every value: {rows[-1]}")
        print(json.dumps({"rows": len(rows), "total": h.get_total_count()}))
    elif mode == "hlog":
        print(json.dumps([
            {"start": s, "duration": d, "max_ms": m, "total": h.get_total_count(),
             "p99_ns": h.get_value_at_percentile(99), "max_ns": h.get_max_value()}
            for s, d, m, h in intervals(sys.argv[2])
        ]))
    else:
        sys.exit(f"unknown mode {mode}")


main()
