"""Where the GPU bill goes: billed against rendering hours for the example config under four
traffic patterns, each run as `sdctl simulate` runs it (one command line per pattern, printed):

- steady: Poisson at 0.38 tasks/s (1 M a month);
- diurnal: the docs' 1 M a month on a daily cycle (--diurnal 0.6) plus 500 tasks at 09:00;
- sparse: a few tasks an hour (Poisson at 4/h);
- burst: a recorded-style trace, bursts of 120 and 300 tasks at 10:00 and 15:00 over a trickle
  (written to a temporary CSV and read with --trace).

For each: wait p50/p95/p99, billed and rendering GPU hours over the simulated week, the share
rendering, the idle billed hours, node launches (cold starts) and the month's cost. `--set
NAME=VALUE` (repeatable) runs the same patterns with a knob changed, to compare settings.

    python bench/waste.py [--days 7] [--set queue_length=8 ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def burst_trace(days: int) -> Path:
    """A recorded-style trace: a trickle of one task every 2 minutes, and each day a burst of 120
    at 10:00 and 300 at 15:00 arriving over a minute (as a batch job's submitter sends them)."""
    rows = ["time"]
    for day in range(days):
        base = day * 86400
        rows += [str(base + t) for t in range(0, 86400, 120)]
        rows += [f"{base + 36000 + i * 0.5:.1f}" for i in range(120)]
        rows += [f"{base + 54000 + i * 0.2:.1f}" for i in range(300)]
    rows[1:] = sorted(rows[1:], key=float)
    path = Path(tempfile.mkdtemp()) / "burst.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    duration = f"{args.days}d"
    patterns = {
        "steady 0.38/s": ["--rate", "1M/month"],
        "diurnal 0.6 + 500 at 09:00": ["--rate", "1M/month", "--diurnal", "0.6", "--burst", "500@09:00"],
        "sparse 4/h": ["--rate", "4/h"],
        "bursts (trace)": ["--trace", str(burst_trace(args.days))],
    }
    print(f"example config, {duration} simulated" + (f", {' '.join(args.sets)}" if args.sets else ""))
    print("| pattern | wait p50 | p95 | p99 | GPU h billed | rendering | rendering / billed | idle h | "
          "node launches | USD / month |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, flags in patterns.items():
        cmd = [sys.executable, "-m", "sdctl", "-c", str(ROOT / "sdctl.example.yaml"), "-o", "json", "simulate",
               *flags, "--duration", duration, *[x for s in args.sets for x in ("--set", s)]]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["result"]
        w, g = r["wait_seconds"], r["gpu_hours"]
        print(f"| {name} | {w['p50']:.1f} s | {w['p95']:.1f} s | {w['p99']:.1f} s | {g['billed']:.1f} | "
              f"{g['rendering']:.1f} | {r['gpu_busy_fraction']:.0%} | {g['idle']:.1f} | {r['node_launches']} | "
              f"{r['cost_usd']['monthly']:.2f} |")


if __name__ == "__main__":
    main()
