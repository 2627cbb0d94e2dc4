"""From `POST` to the result notification on the local stack, with a runtime that answers at
once, one task at a time, broken down per hop.

It starts an instant AUTOMATIC1111-compatible stub (tests/stub_runtime.py, latency 0) and a
local stack whose agent uses it (`local up --runtime-url`), subscribes nothing new (the
stack's results queue is what a notification consumer reads), and sends N tasks one after
another: each POST, then a long poll of the results queue until its notice arrives. The
hops come from the client's clock and the task's result document (`timeline`: SentTimestamp
from SQS, then the agent's received / started / ran / stored marks), all on this machine's
clock:

    gateway + handler     POST sent -> answer received (the handler publishes before answering)
    into the task queue   POST sent -> SQS SentTimestamp (ms resolution)
    receive wait          SentTimestamp -> the agent has the message
    prepare + record      received -> the runtime call starts (checks, `running` in the store)
    runtime call          started -> ran
    store                 ran -> images and document stored
    notify                stored -> the notice read from the results queue (publish, SNS -> SQS,
                          the consumer's long poll; not the consumer's own delete after it)

It prints p50 / p95 / max of each and of the whole, next to the runtime call alone (the floor
no queue can beat: one HTTP call to the stub from this process).

    python bench/submit_latency.py [--tasks 200]
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
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.stub import start_stub  # noqa: E402


def cli(cwd: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "sdctl", *args], cwd=cwd, check=True, capture_output=True,
                          text=True, timeout=600).stdout



def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and of its children it has reaped (the emulator's
    snapshot children), from /proc/PID/stat."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def measure(tasks: int, runtime: str, up_args: tuple[str, ...] = ()) -> dict:
    """Start a local stack (with `up_args`), send `tasks` tasks one at a time after five
    warm-ups, stop it. Returns the hops (seconds per task), the runtime call alone, and the
    emulator's CPU seconds and snapshot counters over the measured tasks."""
    cwd = Path(tempfile.mkdtemp(prefix="sdctl-latency-"))
    shutil.copy(ROOT / "sdctl.example.yaml", cwd / "sdctl.yaml")
    os.environ.pop("SDCTL_STATE_DIR", None)
    state = json.loads(cli(cwd, "local", "up", "--detach", "--runtime-url", f"sdruntime={runtime}",
                           "--show-key", *up_args, "-o", "json"))
    import boto3

    creds = json.loads((cwd / ".sdctl" / "state.json").read_text())["credentials"]["operator"]
    session = boto3.session.Session(region_name=state["region"], aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])
    sqs = session.client("sqs", endpoint_url=state["aws_url"])
    s3 = session.client("s3", endpoint_url=state["aws_url"])
    results = state["resources"]["results_queue_url"]
    aws_pid = next(p["pid"] for p in state["processes"] if p["role"] == "aws")
    try:
        http = httpx.Client(base_url=state["gateway_url"], headers={"x-api-key": state["api_key"]}, timeout=30)
        floor = []
        with httpx.Client() as direct:
            for _ in range(20):
                started = time.perf_counter()
                direct.post(f"{runtime}/sdapi/v1/txt2img", json={"prompt": "x"}).raise_for_status()
                floor.append(time.perf_counter() - started)
        while sqs.receive_message(QueueUrl=results, MaxNumberOfMessages=10).get("Messages"):
            pass
        rows = []
        cpu_before = snaps_before = None
        for i in range(-5, tasks):  # five warm-up tasks first, not counted
            if i == 0:
                cpu_before, snaps_before = cpu_seconds(aws_pid), snapshot_stats(state)
            tid = f"lat-{i + 5}"
            body = {"task": {"metadata": {"id": tid, "runtime": "sdruntime", "tasktype": "text-to-image"},
                             "content": {"prompt": "a fox", "steps": 1, "width": 64, "height": 64, "seed": 1}}}
            t0 = time.time()
            http.post("/v1alpha2", json=body).raise_for_status()
            t1 = time.time()
            note = None
            while note is None:
                read = sqs.receive_message(QueueUrl=results, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=5).get("Messages", [])
                for m in read:
                    got = json.loads(json.loads(m["Body"])["Message"])
                    if got.get("id") == tid:
                        note, t2 = got, time.time()  # the consumer has it: its own delete comes after
                if read:
                    sqs.delete_message_batch(QueueUrl=results, Entries=[
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(read)])
            if i >= 0:
                rows.append((t0, t1, t2, note))
        emulator_cpu = cpu_seconds(aws_pid) - cpu_before
        snaps_after = snapshot_stats(state)
        hops: dict[str, list[float]] = {k: [] for k in (
            "gateway + handler", "into the task queue", "receive wait", "prepare + record", "runtime call", "store",
            "notify", "POST -> notification")}
        for t0, t1, t2, note in rows:
            bucket, key = note["output_url"][5:].split("/", 1)
            tl = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["timeline"]
            hops["gateway + handler"].append(t1 - t0)
            hops["into the task queue"].append(tl["sent"] - t0)
            hops["receive wait"].append(tl["received"] - tl["sent"])
            hops["prepare + record"].append(tl["started"] - tl["received"])
            hops["runtime call"].append(tl["ran"] - tl["started"])
            hops["store"].append(tl["stored"] - tl["ran"])
            hops["notify"].append(t2 - tl["stored"])
            hops["POST -> notification"].append(t2 - t0)
        snapshots = None
        if snaps_before and snaps_after:
            snapshots = {k: snaps_after[k] - snaps_before[k] for k in ("snapshots", "seconds", "fork_seconds")}
        data = cwd / ".sdctl" / "aws"
        size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) if data.exists() else 0
        return {"hops": hops, "floor": floor, "emulator_cpu": emulator_cpu, "snapshots": snapshots,
                "data_bytes": size}
    finally:
        cli(cwd, "local", "down", "--wipe")
        shutil.rmtree(cwd, ignore_errors=True)


def snapshot_stats(state: dict) -> dict | None:
    """The emulator's snapshot counters (sdctl/execute/local/emulator/persist.py); None if it keeps none."""
    if not state.get("data"):
        return None
    return httpx.post(f"{state['aws_url']}/_sdctl/sync", timeout=30).json()


def report(tasks: int, hops: dict[str, list[float]], floor: list[float]) -> None:
    print(f"{tasks} tasks, one at a time; runtime call alone from this process: "
          f"p50 {statistics.median(floor) * 1000:.1f} ms")
    print(f"{'hop':24} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, values in hops.items():
        print(f"{name:24} {pct(values, 50) * 1000:8.1f} {pct(values, 95) * 1000:8.1f} {max(values) * 1000:8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=200)
    args = ap.parse_args()

    stub, runtime = start_stub(0)
    try:
        got = measure(args.tasks, runtime)
    finally:
        stub.terminate()
    hops = got["hops"]
    report(args.tasks, hops, got["floor"])
    total = hops["POST -> notification"]
    print(json.dumps({"tasks": args.tasks, "p50_ms": round(pct(total, 50) * 1000, 1),
                      "p95_ms": round(pct(total, 95) * 1000, 1),
                      "hops_p50_ms": {k: round(pct(v, 50) * 1000, 1) for k, v in hops.items()}}))


if __name__ == "__main__":
    main()
