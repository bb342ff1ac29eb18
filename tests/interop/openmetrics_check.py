"""Parses an exposition with the official Python client's strict OpenMetrics parser (an
implementation Corridor did not write) and checks what a scraper relies on.

    openmetrics_check.py < METRICS   prints {"families": N, "samples": N, "histograms": {name: count}}
                                     or exits non-zero with the parser's complaint
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    families = list(text_string_to_metric_families(text))
    histograms = {}
    for f in families:
        if not f.name.startswith("corridor_"):
            sys.exit(f"{f.name}: not under the corridor_ prefix")
        if f.type == "counter" and any(s.name == f.name for s in f.samples):
            sys.exit(f"{f.name}: a counter sample without _total")
        if f.type == "histogram":
            by_labels = {}
            for s in f.samples:
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                by_labels.setdefault(key, {"buckets": [], "count": None})
                if s.name.endswith("_bucket"):
                    by_labels[key]["buckets"].append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_count"):
                    by_labels[key]["count"] = s.value
            total = 0
            for key, h in by_labels.items():
                counts = [v for _, v in sorted(h["buckets"])]
                if counts != sorted(counts):
                    sys.exit(f"{f.name}{key}: buckets not cumulative")
                if counts and counts[-1] != h["count"]:
                    sys.exit(f"{f.name}{key}: +Inf bucket {counts[-1]} is not the count {h['count']}")
                total += h["count"] or 0
            histograms[f.name] = total
    print(json.dumps({"families": len(families), "samples": sum(len(f.samples) for f in families), "histograms": histograms}))


if __name__ == "__main__":
    main()
