"""Checks corridor-load's HTML report the way a browser would need it: the document parses,
every chart is well-formed SVG (an XML parser accepts it), has lines with points inside its
view box, and nothing is fetched from elsewhere.

    html_check.py REPORT.html   prints {"charts": N, "points": [per chart]} or exits non-zero
"""
import json
import re
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

SVG = "{http://www.w3.org/2000/svg}"


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.open = []
        self.fetches = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") or (v and v.startswith(("http:", "https:")) and k != "xmlns"):
                self.fetches.append((tag, k, v))
        if tag not in ("meta", "br", "img", "link", "line", "rect", "polyline", "path", "circle"):
            self.open.append(tag)

    def handle_endtag(self, tag):
        if self.open and self.open[-1] == tag:
            self.open.pop()


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    tags = Tags()
    tags.feed(text)
    if tags.fetches:
        sys.exit(f"the report fetches {tags.fetches}")
    if tags.open:
        sys.exit(f"unclosed elements: {tags.open}")
    charts = re.findall(r"<svg.*?</svg>", text, flags=re.S)
    points = []
    for svg in charts:
        root = ET.fromstring(svg)
        _, _, w, h = (float(x) for x in root.get("viewBox").split())
        n = 0
        for line in root.iter(SVG + "polyline"):
            for p in line.get("points").split():
                x, y = (float(v) for v in p.split(","))
                if not (0 <= x <= w and 0 <= y <= h):
                    sys.exit(f"point {x},{y} outside the {w}x{h} view box")
                n += 1
        points.append(n)
    print(json.dumps({"charts": len(charts), "points": points}))


main()
