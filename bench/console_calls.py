"""What `sdctl console` costs AWS and how fast its page loads, measured on a local stack.

Starts a local stack of the example config in a temporary folder (`sdctl local up --detach`),
then `sdctl console --local`; opens its pages in Debian's chromium (Playwright) and reports the
playground's and the Live page's first load (navigation start to the load event, median of N).
Then, for one open Live tab and for ten, counts the AWS calls the console made over a window
(its shared poller's counter, /api/stats) and prints them per minute, with their ratio: the
tabs share one poller, so ten should cost what one does.

    python bench/console_calls.py [--window 60] [--loads 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def sdctl(*args: str, cwd: Path) -> str:
    return subprocess.run([sys.executable, "-m", "sdctl", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def calls_per_minute(base: str, cookies: dict, window: float) -> float:
    first = httpx.get(f"{base}/api/stats", cookies=cookies).json()["aws_calls"]
    time.sleep(window)
    last = httpx.get(f"{base}/api/stats", cookies=cookies).json()["aws_calls"]
    return (last - first) * 60 / window


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=float, default=60)
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--interval", type=float, default=5.0)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    cwd = Path(tempfile.mkdtemp())
    shutil.copy(ROOT / "sdctl.example.yaml", cwd / "sdctl.yaml")
    sdctl("local", "up", "--detach", cwd=cwd)
    console = subprocess.Popen([sys.executable, "-m", "sdctl", "console", "--local", "--interval", str(args.interval)],
                               cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = console.stdout.readline().strip()
        base = url.split("/?")[0]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            context = browser.new_context()
            page = context.new_page()
            page.goto(url)
            cookies = {c["name"]: c["value"] for c in context.cookies()}
            for path in ("/", "/live"):
                times = []
                for _ in range(args.loads):
                    page.goto(base + path)
                    times.append(page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                                               " return n.loadEventEnd - n.startTime; }"))
                print(f"first load {path:6} median {statistics.median(times):6.1f} ms over {args.loads} loads")
            page.goto(base + "/live")
            one = calls_per_minute(base, cookies, args.window)
            tabs = [context.new_page() for _ in range(9)]
            for tab in tabs:
                tab.goto(base + "/live")
            ten = calls_per_minute(base, cookies, args.window)
            print(f"AWS calls per minute: 1 tab {one:.1f}, 10 tabs {ten:.1f} (ratio {ten / one:.2f}); "
                  f"poll interval {args.interval:g} s, example config (1 runtime, 3 lanes)")
            print(json.dumps({"one_tab_per_min": round(one, 1), "ten_tabs_per_min": round(ten, 1)}))
            browser.close()
    finally:
        console.terminate()
        subprocess.run([sys.executable, "-m", "sdctl", "local", "down"], cwd=cwd, capture_output=True)
        shutil.rmtree(cwd, ignore_errors=True)


if __name__ == "__main__":
    main()
