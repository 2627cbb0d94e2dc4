"""`make demo`: start the local stack, generate one image, print its path, stop the stack (a
stack the user had already started is used and left running, with its tasks).

Runs the real CLI as a user would, so the demo proves what the README promises.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

PROMPT = "a red fox in fresh snow, watercolor"


def sdctl(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Run sdctl; with `capture`, keep its stdout (the JSON result) and its stderr (the JSON
    progress lines, shown only if the command fails)."""
    r = subprocess.run([sys.executable, "-m", "sdctl", *args], text=True,
                       stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None)
    if r.returncode != 0:
        if capture:
            sys.stderr.write(r.stderr[-4000:])
        raise subprocess.CalledProcessError(r.returncode, r.args, r.stdout, r.stderr)
    return r


def main() -> int:
    config = "sdctl.yaml" if Path("sdctl.yaml").exists() else "sdctl.example.yaml"
    started = time.monotonic()
    up = json.loads(sdctl("local", "up", "--detach", "-c", config, "-o", "json", capture=True).stdout)
    ours = not up.get("already_running")
    try:
        t = time.monotonic()
        result = json.loads(sdctl("generate", PROMPT, "--local", "--seed", "42", "--out", "outputs",
                                  "--output", "json", capture=True).stdout)
        generate_seconds = time.monotonic() - t
    finally:
        if ours:
            sdctl("local", "down")
    path = Path(result["files"][0]).absolute()
    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            print(f"error: {path} is not a PNG", file=sys.stderr)
            return 1
    print(f"demo: task {result['id']} generated in {generate_seconds:.2f}s "
          f"(whole demo {time.monotonic() - started:.1f}s)", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
