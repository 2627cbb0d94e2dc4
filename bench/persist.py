"""What keeping the local stack's data costs per task (sdctl/execute/local/emulator/persist.py).

The same run as bench/submit_latency.py (an instant stub runtime, tasks sent one at a time,
POST to result notification), twice in one invocation: once with `local up --ephemeral` (moto
in memory only, the baseline) and once as `local up` runs by default (snapshots under
.sdctl/aws/, each accepted POST answered once it is on disk). Prints, for each, the POST's
own latency (gateway + handler + the wait for the snapshot), POST to notification, the
emulator's CPU seconds per task, the snapshots taken and what they cost, and the ratios.

    python bench/persist.py [--tasks 200]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.stub import start_stub  # noqa: E402
from bench.submit_latency import measure, pct  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=200)
    args = ap.parse_args()
    stub, runtime = start_stub(0)
    try:
        runs = {"ephemeral": measure(args.tasks, runtime, ("--ephemeral",)), "kept": measure(args.tasks, runtime)}
    finally:
        stub.terminate()
    rows = {}
    for name, got in runs.items():
        post, total = got["hops"]["gateway + handler"], got["hops"]["POST -> notification"]
        rows[name] = {"post_p50_ms": pct(post, 50) * 1000, "post_p95_ms": pct(post, 95) * 1000,
                      "e2e_p50_ms": pct(total, 50) * 1000, "e2e_p95_ms": pct(total, 95) * 1000,
                      "emulator_cpu_ms_per_task": got["emulator_cpu"] / args.tasks * 1000}
        if got["snapshots"]:
            s = got["snapshots"]
            rows[name].update(snapshots_per_task=s["snapshots"] / args.tasks,
                              snapshot_ms=s["seconds"] / max(1, s["snapshots"]) * 1000,
                              fork_ms=s["fork_seconds"] / max(1, s["snapshots"]) * 1000,
                              data_kib_per_task=got["data_bytes"] / (args.tasks + 5) / 1024)
    print(f"{args.tasks} tasks, one at a time, instant runtime")
    print(f"{'':28} {'ephemeral':>10} {'kept':>10} {'ratio':>7}")
    for key in ("post_p50_ms", "post_p95_ms", "e2e_p50_ms", "e2e_p95_ms", "emulator_cpu_ms_per_task"):
        a, b = rows["ephemeral"][key], rows["kept"][key]
        print(f"{key:28} {a:10.1f} {b:10.1f} {b / a:7.2f}")
    for key in ("snapshots_per_task", "snapshot_ms", "fork_ms", "data_kib_per_task"):
        print(f"{key:28} {'':>10} {rows['kept'].get(key, 0):10.2f}")
    print(json.dumps({"tasks": args.tasks, **{k: {kk: round(vv, 2) for kk, vv in v.items()} for k, v in rows.items()}}))


if __name__ == "__main__":
    main()
