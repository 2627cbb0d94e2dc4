"""How busy does one agent keep the runtime?

A stub AUTOMATIC1111 runtime answers every txt2img after a fixed latency L. N tasks wait in
the queue of a moto server (over HTTP). The same process runs the baseline first, the
agent's stages one after another (receive, check, run, upload, announce, delete: what the
guidance's agent does), then the pipelined `Agent.run` with one runtime call at a time (the
default), then with two in flight (RUNTIME_CONCURRENCY=2: the runtime queues the second
and starts it the moment the first ends), and prints, for each:
wall time, tasks/s, runtime busy fraction (N*L / wall) and per-task overhead, plus the
ratio against the baseline, and the agent's own CPU per task (this process's CPU time over
the run: the emulator and the stub run in processes of their own) with how many tasks per
second one agent core could carry at that cost. The agent has its task store (DynamoDB), as
every deployment does. `--aws-delay-ms 10` slows every AWS call the agent makes by that
much (real AWS is slower than the emulator). `--split` gives S3 and DynamoDB a moto server
each (SNS and SQS share one: SNS delivers into SQS), so the emulator is not what limits a
fast runtime; `--profile` prints where the pipelined agent's CPU goes.

    python bench/agent_throughput.py --latency 0.2 --tasks 100 [--aws-delay-ms 10] [--split] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3  # noqa: E402
import uvicorn  # noqa: E402
from PIL import Image  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from sdctl.agent.adapters import A1111Adapter  # noqa: E402
from sdctl.agent.settings import AgentSettings  # noqa: E402
from sdctl.agent.worker import Agent  # noqa: E402
from sdctl.builders.local_plan import local_plan  # noqa: E402
from sdctl.config import parse  # noqa: E402
from sdctl.execute.local.provision import provision  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_stub(port: int, latency: float) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "blue").save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode()
    busy = asyncio.Lock()

    async def txt2img(request):
        async with busy:  # one generation at a time; others wait their turn, like a real runtime
            # asyncio.sleep overshoots by a millisecond or two; sleep short, then spin to L.
            deadline = time.perf_counter() + latency
            await asyncio.sleep(max(0.0, latency - 0.005))
            while time.perf_counter() < deadline:
                pass
        return JSONResponse({"images": [png], "parameters": {}, "info": json.dumps({"seed": 1})})

    async def options(request):
        return JSONResponse({"sd_model_checkpoint": "stub"})

    app = Starlette(routes=[Route("/sdapi/v1/txt2img", txt2img, methods=["POST"]), Route("/sdapi/v1/options", options)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def start_process(argv: list[str], url: str) -> subprocess.Popen:
    """The emulator and the stub run in their own processes, as they would beside a real agent."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return proc
        except urllib.error.HTTPError:
            return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{argv} did not start")


def clients(urls: dict[str, str], delay_ms: float):
    session = boto3.session.Session(region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    out = {}
    for name in ("sqs", "s3", "sns", "dynamodb"):
        c = session.client(name, endpoint_url=urls[name])
        if delay_ms:
            c.meta.events.register("before-send", lambda **kw: time.sleep(delay_ms / 1000))
        out[name] = c
    return out


def fill(sqs, queue_url: str, n: int, tag: str, dynamodb=None, table: str = "") -> None:
    """n tasks in the queue, each with the `queued` record the API writes before it publishes."""
    if dynamodb is not None:
        for i in range(0, n, 25):
            dynamodb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": {
                "id": {"S": f"{tag}-{j}"}, "status": {"S": "queued"}, "runtime": {"S": "sdruntime"}}}}
                for j in range(i, min(n, i + 25))]})
    for i in range(0, n, 10):
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[{"Id": str(j), "MessageBody": json.dumps({
            "metadata": {"id": f"{tag}-{i + j}", "runtime": "sdruntime", "tasktype": "text-to-image",
                         "prefix": "bench"}, "content": {"prompt": "x"}})} for j in range(min(10, n - i))])


def measure(mode: str, *, urls: dict[str, str], res: dict, runtime_url: str, n: int, delay_ms: float,
            concurrency: int = 1, profile: bool = False) -> tuple[float, float]:
    """(wall seconds, agent CPU seconds) for n tasks."""
    from sdctl.agent.app import aws_clients
    from sdctl.agent.store import TaskStore

    rt = res["runtimes"]["sdruntime"]
    settings = AgentSettings(queue_url=rt["queue_url"], topic_arn=res["results_topic_arn"], bucket=res["bucket"],
                             runtime_name="sdruntime", runtime_type="sdwebui", api_base_url=runtime_url,
                             region="us-west-2", wait_seconds=1, visibility_seconds=30,
                             runtime_concurrency=concurrency, tasks_table=res["tasks_table"])
    setup = clients(urls, 0)
    fill(setup["sqs"], rt["queue_url"], n, f"{mode}-{time.monotonic_ns()}", setup["dynamodb"], res["tasks_table"])
    # The agent's clients as the agent makes them (sdctl/agent/app.py), pointed at the emulator.
    made = aws_clients(settings, endpoints=urls)
    if delay_ms:
        for c in made.values():
            c.meta.events.register("before-send", lambda **kw: time.sleep(delay_ms / 1000))
    dynamodb = made.pop("dynamodb")
    agent = Agent(settings, adapter=A1111Adapter(runtime_url, timeout=30), **made,
                  store=TaskStore(dynamodb, settings.tasks_table))
    agent.adapter.run("text-to-image", {"prompt": "warm-up"})
    if profile:  # every thread's CPU (cProfile sees only the calling thread): pip install yappi
        import yappi

        yappi.set_clock_type("cpu")
        yappi.start()
    cpu = time.process_time()
    started = time.perf_counter()
    if mode == "baseline":
        done = 0
        while done < n:
            for m in agent.lanes.receive():
                agent.handle(m)
                agent.heartbeat.untrack(m)
                done += 1
    else:
        agent.run(max_tasks=n)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    agent.heartbeat.stop()
    if profile:
        import yappi

        yappi.stop()
        print(f"--- where the {mode} agent's CPU went, all threads ---")
        stats = yappi.get_func_stats()
        print_by_package(stats)
        stats.sort("ttot").print_all(columns={0: ("name", 90), 1: ("ncall", 8), 3: ("ttot", 8)})
        yappi.clear_stats()
    return wall, cpu


def print_by_package(stats) -> None:
    """Each function's own CPU (not its callees') summed by the package or stdlib module it is
    in, largest first, as a share of the whole: which library the agent's CPU goes to."""
    import re
    from collections import Counter

    own: Counter = Counter()
    for s in stats:
        m = (re.search(r"site-packages/([^/]+)", s.module) or re.search(r"/(sdctl/[^/]+)/", s.module)
             or re.search(r"python3\.\d+/([^/]+?)(\.py)?(/|$)", s.module))
        own[m.group(1) if m else s.module] += s.tsub
    total = sum(own.values()) or 1.0
    print(f"{'package':32} {'own CPU s':>10} {'share':>7}")
    for name, seconds in own.most_common(15):
        print(f"{name:32} {seconds:10.3f} {seconds / total:7.1%}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--tasks", type=int, default=50)
    ap.add_argument("--aws-delay-ms", type=float, default=0.0)
    ap.add_argument("--split", action="store_true", help="a moto server per service group")
    ap.add_argument("--profile", action="store_true", help="profile the pipelined run")
    ap.add_argument("--serve-stub", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_stub:
        return serve_stub(args.serve_stub, args.latency)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # the emulator's; the agent's session reads them
        os.environ.setdefault(key, "x")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("sdctl").setLevel(logging.WARNING)
    stub_port = free_port()
    servers, urls = [], {}
    for group in ((("sqs", "sns", "s3", "dynamodb"),) if not args.split else (("sqs", "sns"), ("s3",), ("dynamodb",))):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        servers.append(start_process([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], url))
        urls.update(dict.fromkeys(group, url))
    runtime_url = f"http://127.0.0.1:{stub_port}"
    stub = start_process([sys.executable, __file__, "--serve-stub", str(stub_port), "--latency", str(args.latency)],
                         runtime_url + "/sdapi/v1/options")
    c = clients(urls, 0)
    res = provision(local_plan(parse("runtimes: [{name: sdruntime, type: sdwebui}]\n"), visibility_seconds=30),
                    sns=c["sns"], sqs=c["sqs"], s3=c["s3"], dynamodb=c["dynamodb"])
    n, lat = args.tasks, args.latency
    rows = {}
    adapter = A1111Adapter(runtime_url, timeout=30)
    started = time.perf_counter()
    for _ in range(min(n, 20)):
        adapter.run("text-to-image", {"prompt": "x"})
    floor = (time.perf_counter() - started) / min(n, 20)
    print(f"runtime call alone (no queue, no AWS): {floor * 1000:.1f} ms for L = {args.latency * 1000:.0f} ms")
    for mode, concurrency in (("baseline", 1), ("pipelined", 1), ("2-in-flight", 2)):
        wall, cpu = measure(mode, urls=urls, res=res, runtime_url=runtime_url, n=n, delay_ms=args.aws_delay_ms,
                            concurrency=concurrency, profile=args.profile and mode == "pipelined")
        rows[mode] = {"wall_s": round(wall, 3), "tasks_per_s": round(n / wall, 3), "busy": round(n * lat / wall, 4),
                      "overhead_ms_per_task": round((wall - n * lat) / n * 1000, 1),
                      "agent_cpu_ms_per_task": round(cpu / n * 1000, 2), "tasks_per_core_s": round(n / cpu, 1)}
    base = rows["baseline"]["wall_s"]
    print(f"latency {lat}s, {n} tasks, AWS delay {args.aws_delay_ms} ms per call, "
          f"{'moto split per service' if args.split else 'one moto server'}")
    print(f"{'mode':12} {'wall s':>8} {'tasks/s':>8} {'busy':>7} {'overhead ms':>12} {'speed vs baseline':>18} "
          f"{'agent CPU ms/task':>18} {'tasks/s per core':>17}")
    for mode, r in rows.items():
        print(f"{mode:12} {r['wall_s']:8.3f} {r['tasks_per_s']:8.3f} {r['busy']:7.4f} "
              f"{r['overhead_ms_per_task']:12.1f} {base / r['wall_s']:17.2f}x {r['agent_cpu_ms_per_task']:18.2f} "
              f"{r['tasks_per_core_s']:17.1f}")
    print(json.dumps({"latency": lat, "tasks": n, "aws_delay_ms": args.aws_delay_ms, "split": args.split, **rows}))
    for server in servers:
        server.terminate()
    stub.terminate()


if __name__ == "__main__":
    main()
