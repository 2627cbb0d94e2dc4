"""The instant AUTOMATIC1111-compatible stub (tests/stub_runtime.py) as the benches start it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_stub(latency: float = 0.0, seconds: float = 30) -> tuple[subprocess.Popen, str]:
    """Start the stub on a free port and return it once it answers, with its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.stub_runtime", str(port), str(latency)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(f"{url}/calls", timeout=1)
            return proc, url
        except httpx.TransportError:
            if time.monotonic() > deadline:
                proc.terminate()
                raise
            time.sleep(0.05)
