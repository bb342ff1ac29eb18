"""Opens a page in headless Chromium and reads it as a person would see it, through the
DevTools protocol over --remote-debugging-pipe (the standard library only: no websocket).

    browser_page.py URL SCREENSHOT.png SAMPLES GAP_S

Loads URL, waits until the page has rendered at least one live update, then SAMPLES times,
GAP_S seconds apart, reads the figures the page shows (the elements' text and data
attributes) and prints one JSON line per sample; saves a screenshot after the last one. Every
wait is bounded; it exits non-zero with the reason on stderr.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1440,1100",
    "--remote-debugging-pipe",
]
WAIT_MAX_S = 30.0

READ = r"""
(() => {
  const v = (id) => document.getElementById(id);
  const rows = (sel, attr) => Array.from(document.querySelectorAll(sel)).map((r) => r.getAttribute(attr));
  return JSON.stringify({
    updates: Number(document.body.dataset.updates || 0),
    at: Number(document.body.dataset.at || 0),
    state: v("state").textContent,
    requests_in: v("requests_in").dataset.value,
    requests_in_text: v("requests_in").textContent,
    answered: v("answered_sub").dataset.answered,
    approved: v("answered_sub").dataset.approved,
    tps: v("tps").dataset.value,
    approval: v("approval").dataset.value,
    latency: v("latency").textContent,
    tps_points: Number(v("chart_tps").dataset.points || 0),
    p99_points: Number(v("chart_p99").dataset.points || 0),
    destinations: rows("#destinations tr[data-destination]", "data-destination"),
    links: Array.from(document.querySelectorAll("#links tr[data-link]")).map((r) => [r.dataset.link, r.dataset.state]),
    anomalies: rows("#anomalies .anomaly", "data-kind"),
    cluster_shown: !v("cluster_panel").hidden,
    cluster: Array.from(document.querySelectorAll("#cluster tr[data-shard]")).map((r) => [Number(r.dataset.shard), r.dataset.replicating, r.querySelector("[data-lease-age]").dataset.leaseAge, r.querySelector("[data-marks-again]").dataset.marksAgain]),
    external: Array.from(document.querySelectorAll("[src],[href]")).map((e) => e.getAttribute("src") || e.getAttribute("href")),
  });
})()
"""


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    sys.exit("no chromium on the PATH (Debian: apt-get install chromium)")


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="corridor-browser-")
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()

        # Chromium reads commands on fd 3 and writes answers on fd 4: the shell puts the
        # pipes there for the process it becomes.
        redirect = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}'
        self.proc = subprocess.Popen(
            ["sh", "-c", redirect, find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_chrome_r, from_chrome_w),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.out = os.fdopen(to_chrome_w, "wb", buffering=0)
        self.inp = os.fdopen(from_chrome_r, "rb", buffering=0)
        self.buf = b""
        self.next_id = 0

    def call(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.time() + WAIT_MAX_S
        while time.time() < deadline:
            while b"\0" not in self.buf:
                chunk = self.inp.read(65536)
                if not chunk:
                    sys.exit(f"chromium closed the pipe during {method}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\0", 1)
            reply = json.loads(line)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    sys.exit(f"{method}: {reply['error']}")
                return reply.get("result", {})
        sys.exit(f"no answer to {method} within {WAIT_MAX_S} s")

    def close(self):
        try:
            self.call("Browser.close")
        except SystemExit:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    url, shot, samples, gap = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    b = Browser()
    try:
        target = b.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = b.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        b.call("Page.enable", session=session)
        b.call("Runtime.enable", session=session)
        b.call("Page.navigate", {"url": url}, session=session)

        def read():
            r = b.call("Runtime.evaluate", {"expression": READ, "returnByValue": True}, session=session)
            value = r.get("result", {}).get("value")
            return json.loads(value) if isinstance(value, str) else None

        deadline = time.time() + WAIT_MAX_S
        first = None
        while time.time() < deadline:
            try:
                first = read()
            except SystemExit:
                first = None
            if first and first["updates"] >= 1:
                break
            time.sleep(0.2)
        else:
            sys.exit(f"the page showed no live update within {WAIT_MAX_S} s: {first}")
        for i in range(samples):
            if i:
                time.sleep(gap)
            print(json.dumps(read()), flush=True)
        png = b.call("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
        with open(shot, "wb") as f:
            f.write(base64.b64decode(png))
    finally:
        b.close()


if __name__ == "__main__":
    main()
