"""The task lifecycle on the local stack, timed: webhook delivery after completion, DELETE to
`cancelled` for a running task, and how a backlog's high-priority tasks overtake low ones.

It starts a local stack (the built-in runtime with the tiny model, one agent, webhooks to
loopback allowed), a webhook receiver on loopback, and then:

1. N small tasks, one at a time, each with a webhook: the delay from the moment the agent
   recorded the task `completed` (its record's finished_at) to the signed delivery's arrival,
   next to the same delay for the results notification's arrival in the results queue
   (the baseline: what the guidance offers), and their ratio;
2. K slow tasks (150 steps at 256²), each DELETEd once running: the time until GET says
   `cancelled`;
3. a backlog of L low-priority tasks, then L high ones, on the busy runtime: the share of the
   high tasks that started before every low one that had not started when they were sent.

    python bench/task_lifecycle.py [--tasks 20] [--cancels 5] [--backlog 6]
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
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cli(cwd: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "sdctl", *args], cwd=cwd, check=True, capture_output=True,
                          text=True, timeout=600).stdout


def stamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def receiver():
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    arrivals: dict[str, float] = {}

    async def hook(request):
        body = json.loads(await request.body())
        arrivals.setdefault(request.headers["webhook-id"], time.time())
        return JSONResponse({"type": body["type"]})

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/hook", hook, methods=["POST"])]),
                                           host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}/hook", arrivals, server


def task(task_id: str, *, steps=1, size=64, priority=None, hook=None) -> dict:
    meta = {"id": task_id, "runtime": "sdruntime", "tasktype": "text-to-image"}
    if priority:
        meta["priority"] = priority
    if hook:
        meta["webhook"] = {"url": hook}
    return {"task": {"metadata": meta, "content": {"prompt": f"a fox {task_id}", "steps": steps, "width": size,
                                                   "height": size, "seed": 1}}}


def wait(http: httpx.Client, task_id: str, until, seconds=300) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        record = http.get(f"/v1alpha2/tasks/{task_id}").json()
        if until(record):
            return record
        time.sleep(0.02)
    raise TimeoutError(task_id)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--cancels", type=int, default=5)
    parser.add_argument("--backlog", type=int, default=6)
    args = parser.parse_args()

    cwd = Path(tempfile.mkdtemp(prefix="sdctl-lifecycle-"))
    shutil.copy(ROOT / "sdctl.example.yaml", cwd / "sdctl.yaml")
    env_state = os.environ.pop("SDCTL_STATE_DIR", None)
    state = json.loads(cli(cwd, "local", "up", "--detach", "--allow-local-webhooks", "--show-key", "-o", "json"))
    hook, arrivals, server = receiver()
    import boto3

    creds = json.loads((cwd / ".sdctl" / "state.json").read_text())["credentials"]["operator"]
    sqs = boto3.client("sqs", endpoint_url=state["aws_url"], region_name=state["region"],
                       aws_access_key_id=creds["AWS_ACCESS_KEY_ID"], aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])
    results_queue = state["resources"]["results_queue_url"]
    try:
        http = httpx.Client(base_url=state["gateway_url"], headers={"x-api-key": state["api_key"]}, timeout=30)
        # 1. webhook delivery after completion, next to the results notification
        while sqs.receive_message(QueueUrl=results_queue, MaxNumberOfMessages=10).get("Messages"):
            pass  # start with an empty results queue
        hook_delays, note_delays = [], []
        for i in range(args.tasks):
            tid = f"wh-{i}"
            http.post("/v1alpha2", json=task(tid, hook=hook)).raise_for_status()
            seen_note = None
            while seen_note is None:  # the notification, as a results-queue consumer sees it
                for m in sqs.receive_message(QueueUrl=results_queue, MaxNumberOfMessages=10,
                                             WaitTimeSeconds=1).get("Messages", []):
                    if json.loads(json.loads(m["Body"])["Message"]).get("id") == tid:
                        seen_note = time.time()
                    sqs.delete_message(QueueUrl=results_queue, ReceiptHandle=m["ReceiptHandle"])
            record = wait(http, tid, lambda r: r["status"] == "completed")
            deadline = time.monotonic() + 30
            while f"{tid}.completed" not in arrivals and time.monotonic() < deadline:
                time.sleep(0.005)
            done = stamp(record["finished_at"])
            hook_delays.append(arrivals[f"{tid}.completed"] - done)
            note_delays.append(seen_note - done)
        p50_hook, p50_note = statistics.median(hook_delays), statistics.median(note_delays)
        print(f"webhook delivery after completion: p50 {p50_hook * 1000:.0f} ms, max {max(hook_delays) * 1000:.0f} ms "
              f"over {args.tasks} tasks")
        print(f"  baseline, results notification in its queue: p50 {p50_note * 1000:.0f} ms "
              f"(webhook/notification: {p50_hook / p50_note:.2f})")

        # 2. DELETE to cancelled
        cancel = []
        for i in range(args.cancels):
            tid = f"cx-{i}"
            http.post("/v1alpha2", json=task(tid, steps=150, size=256)).raise_for_status()
            wait(http, tid, lambda r: r["status"] == "running")
            asked = time.monotonic()
            assert http.delete(f"/v1alpha2/tasks/{tid}").status_code == 202
            wait(http, tid, lambda r: r["status"] != "running", 30)
            cancel.append(time.monotonic() - asked)
        print(f"DELETE to cancelled (running task): p50 {statistics.median(cancel):.2f} s, "
              f"max {max(cancel):.2f} s over {args.cancels}")

        # 3. priority: a low backlog, then high tasks, on a busy runtime
        for i in range(args.backlog):
            http.post("/v1alpha2", json=task(f"lo-{i}", steps=20, size=128, priority="low")).raise_for_status()
        time.sleep(1.0)  # the first low task is running, the next prefetched
        started_low = {f"lo-{i}" for i in range(args.backlog)
                       if http.get(f"/v1alpha2/tasks/lo-{i}").json()["status"] != "queued"}
        for i in range(args.backlog):
            http.post("/v1alpha2", json=task(f"hi-{i}", steps=20, size=128, priority="high")).raise_for_status()
        records = {tid: wait(http, tid, lambda r: r["status"] == "completed")
                   for tid in [*(f"hi-{i}" for i in range(args.backlog)), *(f"lo-{i}" for i in range(args.backlog))]}
        waiting_low = [r["started_at"] for tid, r in records.items() if tid.startswith("lo-")
                       and tid not in started_low]
        first_low = min(waiting_low) if waiting_low else "9999"
        highs = [r["started_at"] for tid, r in records.items() if tid.startswith("hi-")]
        share = sum(1 for s in highs if s < first_low) / len(highs)
        print(f"high-priority tasks that started before any low one still waiting: {share:.0%} "
              f"({len(highs)} high, {len(waiting_low)} low waiting; {len(started_low)} low already started)")
    finally:
        server.should_exit = True
        cli(cwd, "local", "down")
        if env_state:
            os.environ["SDCTL_STATE_DIR"] = env_state


if __name__ == "__main__":
    main()
