"""What a Cog call costs a task over an AUTOMATIC1111 call, both to a model that answers at once.

Two servers run beside this process: the real Cog HTTP server (PyPI's cog and coglet) serving
tests/data/cog/predict.py with no step time and one step, and bench/agent_throughput.py's stub
AUTOMATIC1111 runtime with no latency; both answer a 64x64 PNG. The agent's adapters
(sdctl/agent/cog.py, sdctl/agent/adapters.py) then run the same text-to-image task against
each, alternately, run for run, and the medians of the round trips (request, the model's
answer, the image decoded) are printed with their ratio and difference: the per-task overhead
of the Cog path (its prediction-by-id PUT, the webhook for the logs, the data-URI output).

    python bench/cog_overhead.py [--tasks 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sdctl.agent.adapters import A1111Adapter  # noqa: E402
from sdctl.agent.cog import CogAdapter  # noqa: E402
from sdctl.contracts.runtimes import kind  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url: str, ok) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            if ok(httpx.get(url, timeout=2)):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=200)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp())
    shutil.copy(ROOT / "tests/data/cog/predict.py", folder / "predict.py")
    (folder / ".cog").mkdir()  # the schema `cog build` writes, so the adapter checks its mapping as on AWS
    shutil.copy(ROOT / "tests/data/cog/openapi_schema.json", folder / ".cog" / "openapi_schema.json")
    cog_port, stub_port = free_port(), free_port()
    bin_dir = str(Path(sys.executable).parent)
    procs = [
        subprocess.Popen([sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"], cwd=folder,
                         env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PORT": str(cog_port),
                              "COG_PREDICT_TYPE_STUB": "predict.py:Predictor", "COG_TEST_STEP_SECONDS": "0"},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, str(ROOT / "bench/agent_throughput.py"), "--serve-stub", str(stub_port),
                          "--latency", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        wait(f"http://127.0.0.1:{cog_port}/health-check", lambda r: r.json().get("status") == "READY")
        wait(f"http://127.0.0.1:{stub_port}/sdapi/v1/options", lambda r: r.status_code == 200)
        cog = CogAdapter(f"http://127.0.0.1:{cog_port}", timeout=30, kind=kind("cog"))
        a1111 = A1111Adapter(f"http://127.0.0.1:{stub_port}", timeout=30)
        assert cog.ready() and a1111.ready()
        task = {"prompt": "a red fox", "steps": 1, "width": 64, "height": 64, "seed": 1}
        times: dict[str, list[float]] = {"sdwebui (stub, instant)": [], "cog (real server, instant model)": []}
        for i in range(args.tasks + 10):
            for name, adapter in zip(times, (a1111, cog), strict=True):
                started = time.perf_counter()
                out = adapter.run("text-to-image", task, task_id=f"bench-{i}")
                elapsed = time.perf_counter() - started
                assert out.images
                if i >= 10:  # the first calls warm the connections and the model's worker
                    times[name].append(elapsed * 1000)
        med = {name: statistics.median(t) for name, t in times.items()}
        for name, t in times.items():
            print(f"{name:34} median {med[name]:7.2f} ms  p90 {statistics.quantiles(t, n=10)[-1]:7.2f} ms"
                  f"  ({len(t)} calls)")
        base, cog_ms = med["sdwebui (stub, instant)"], med["cog (real server, instant model)"]
        print(f"cog / sdwebui: {cog_ms / base:.2f}x; per-task overhead of the Cog path: {cog_ms - base:+.2f} ms")
    finally:
        for p in procs:
            p.terminate()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
