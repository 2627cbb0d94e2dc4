"""10,000 tasks at once through the local gateway: nothing lost, nothing twice, no 5xx, and the
agents' memory flat.

It starts an instant AUTOMATIC1111-compatible stub (tests/stub_runtime.py, latency 0) and a
local stack with N agents that use it, writes N tasks (unique ids and prompts) to a .jsonl,
and sends them with `sdctl submit --concurrency 32 --local -o json`, as a user would. While
they run it samples each agent's resident memory (/proc/PID/status) against the number of
runtime calls so far. At the end it lists the output bucket and the stub's calls per prompt:

    lost        accepted tasks without a result document
    duplicates  prompts the runtime rendered more than once, or tasks with more than one image
    5xx         answers the gateway gave that `sdctl submit` had to retry (429s are counted apart)
    RSS growth  each agent's memory at the end over its memory after warm-up (10-20 % done)

    python bench/load.py [--tasks 10000] [--agents 4] [--concurrency 32] [--rate 100 --burst 200]

The API throttle (the usage plan's rate and burst) is written into the stack's config, so the
gateway enforces it and bulk submit backs off on its 429s. Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.stub import start_stub  # noqa: E402
from bench.submit_latency import snapshot_stats  # noqa: E402


def cli(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdctl", *args], cwd=cwd, check=check, capture_output=True,
                          text=True, timeout=7200)



def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def run(tasks: int, agents: int, concurrency: int, rate: float, burst: int, timeout: float) -> dict:
    stub, runtime = start_stub(0)
    cwd = Path(tempfile.mkdtemp(prefix="sdctl-load-"))
    try:
        (cwd / "sdctl.yaml").write_text(f"stackName: load\napi: {{throttle: {{rateLimit: {rate}, burstLimit: {burst}}}}}\n"
                                        "runtimes:\n  - {name: sdruntime, type: sdwebui}\n")
        os.environ.pop("SDCTL_STATE_DIR", None)
        state = json.loads(cli(cwd, "local", "up", "--detach", "--agents", str(agents), "--runtime-url",
                               f"sdruntime={runtime}", "--show-key", "-o", "json").stdout)
        pids = [p["pid"] for p in state["processes"] if p["role"] == "agent"]
        with (cwd / "tasks.jsonl").open("w") as f:
            for i in range(tasks):
                f.write(json.dumps({"task": {"metadata": {"id": f"load-{i:05d}", "runtime": "sdruntime",
                                                          "tasktype": "text-to-image"},
                                             "content": {"prompt": f"load {i:05d}", "steps": 1, "width": 64,
                                                         "height": 64, "seed": 1}}}) + "\n")
        samples: list[tuple[int, list[int | None]]] = []
        done = threading.Event()

        def calls() -> int:
            try:
                return sum(httpx.get(f"{runtime}/calls", timeout=5).json().values())
            except (httpx.HTTPError, ValueError):
                return -1

        def sample() -> None:
            while not done.wait(2.0):
                samples.append((calls(), [rss_kib(p) for p in pids]))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.time()
        sub = cli(cwd, "submit", "tasks.jsonl", "--concurrency", str(concurrency), "--local", "-o", "json",
                  check=False)
        t_submitted = time.time()
        report = json.loads(sub.stdout)
        summary = report["summary"]
        end = time.monotonic() + timeout
        while calls() < summary["accepted"] and time.monotonic() < end:
            time.sleep(1)
        t_done = time.time()
        time.sleep(3)  # the last results are stored and deleted after their call
        done.set()
        sampler.join()

        import boto3

        creds = json.loads((cwd / ".sdctl" / "state.json").read_text())["credentials"]["operator"]
        s3 = boto3.client("s3", endpoint_url=state["aws_url"], region_name=state["region"],
                          aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])
        docs, images = set(), Counter()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=state["resources"]["bucket"],
                                                                  Prefix="output/"):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                task_id = key.split("/")[1]
                if key.endswith(".out"):
                    docs.add(task_id)
                elif key.endswith(".png"):
                    images[task_id] += 1
        per_prompt = httpx.get(f"{runtime}/calls", timeout=10).json()
        snapshots = snapshot_stats(state)  # what keeping the data cost (none with --ephemeral)
        data = cwd / ".sdctl" / "aws"
        data_mib = sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) / 2**20 if data.exists() else 0
        accepted = {r["id"] for r in report["tasks"] if r["result"] == "accepted"}
        warm = [rss for n, rss in samples if 0.1 * tasks <= n <= 0.2 * tasks]
        last = [rss for n, rss in samples if n >= 0.9 * tasks]
        growth = []
        for i in range(len(pids)):
            a = [s[i] for s in warm if s[i]]
            b = [s[i] for s in last if s[i]]
            growth.append(round((statistics.median(b) / statistics.median(a) - 1) * 100, 1) if a and b else None)
        return {
            "tasks": tasks, "agents": agents, "concurrency": concurrency, "throttle": {"rate": rate, "burst": burst},
            "accepted": summary["accepted"], "rejected": summary["rejected"], "duplicate_submits": summary["duplicate"],
            "lost": len(accepted - docs),
            "duplicate_renders": sum(1 for n in per_prompt.values() if n > 1),
            "tasks_with_more_than_one_image": sum(1 for n in images.values() if n > 1),
            "server_errors_5xx": summary.get("server_errors"), "throttled_429": summary.get("throttled"),
            "accepted_per_second": summary.get("accepted_per_second"),
            "submit_latency_ms": summary.get("latency_ms"),
            "completed_per_second": round(len(docs) / max(1e-9, t_done - t0), 1),
            "submit_seconds": round(t_submitted - t0, 1), "all_done_seconds": round(t_done - t0, 1),
            "agent_rss_mib_after_warmup": [round(statistics.median([s[i] for s in warm if s[i]]) / 1024, 1)
                                           if warm else None for i in range(len(pids))],
            "agent_rss_growth_pct": growth,
            "emulator_snapshots": snapshots and {
                "count": snapshots["snapshots"], "mean_ms": round(snapshots["seconds"] / max(1, snapshots["snapshots"])
                                                                  * 1000, 1),
                "fork_mean_ms": round(snapshots["fork_seconds"] / max(1, snapshots["snapshots"]) * 1000, 1)},
            "kept_data_mib": round(data_mib, 1),
        }
    finally:
        cli(cwd, "local", "down", check=False)
        stub.terminate()
        shutil.rmtree(cwd, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--burst", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()
    r = run(args.tasks, args.agents, args.concurrency, args.rate, args.burst, args.timeout)
    for k, v in r.items():
        print(f"{k:32} {v}")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
