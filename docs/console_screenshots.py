"""Regenerate the screenshots in docs/console.md (a script, not a test): a local stack of the
example config in a temporary folder, `sdctl console --local`, one image made from the
playground, a short burst for the charts, then each page captured by Debian's chromium
(Playwright) into docs/img/console-*.png.

    python docs/console_screenshots.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"


def main() -> None:
    from playwright.sync_api import sync_playwright

    cwd = Path(tempfile.mkdtemp())
    shutil.copy(ROOT / "sdctl.example.yaml", cwd / "sdctl.yaml")
    run = [sys.executable, "-m", "sdctl"]
    subprocess.run([*run, "local", "up", "--detach"], cwd=cwd, check=True, capture_output=True)
    console = subprocess.Popen([*run, "console", "--local", "--interval", "2"], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    OUT.mkdir(exist_ok=True)
    try:
        url = console.stdout.readline().strip()
        base = url.split("/?")[0]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(url)
            for name, value in (("width", "256"), ("height", "256"), ("steps", "8"), ("seed", "7")):
                page.fill(f"input[name={name}]", value)
            page.click("button[type=submit]")
            page.wait_for_selector("#line[data-status=completed]", timeout=180_000)
            page.wait_for_selector("#images img")
            page.screenshot(path=str(OUT / "console-playground.png"))
            for i in range(8):
                subprocess.run([*run, "generate", f"a fox, take {i}", "--local", "--no-wait", "--width", "64",
                                "--height", "64", "--steps", "4"], cwd=cwd, check=True, capture_output=True)
            page.goto(base + "/live")
            page.wait_for_timeout(5000)  # two of the poller's samples after the burst
            page.screenshot(path=str(OUT / "console-live.png"))
            page.goto(base + "/tasks")
            page.screenshot(path=str(OUT / "console-tasks.png"))
            first = page.eval_on_selector("#tasks tr:nth-child(2) a", "a => a.getAttribute('href')")
            page.goto(base + first)
            page.screenshot(path=str(OUT / "console-task.png"))
            page.goto(base + "/cost")
            page.screenshot(path=str(OUT / "console-cost.png"))
            browser.close()
    finally:
        console.terminate()
        subprocess.run([*run, "local", "down"], cwd=cwd, capture_output=True)
        shutil.rmtree(cwd, ignore_errors=True)
    for png in sorted(OUT.glob("console-*.png")):
        print(png.relative_to(ROOT))


if __name__ == "__main__":
    main()
