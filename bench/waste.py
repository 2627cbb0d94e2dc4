"""Where the GPU bill goes: billed against rendering hours for the example config under four
traffic patterns, each run as `sdctl simulate` runs it (one command line per pattern):

- steady: Poisson at 0.38 tasks/s (1 M a month);
- diurnal: the docs' 1 M a month on a daily cycle (--diurnal 0.6) plus 500 tasks at 09:00;
- sparse: a few tasks an hour (Poisson at 4/h);
- burst: a recorded-style trace, bursts of 120 and 300 tasks at 10:00 and 15:00 over a trickle
  (written to a temporary CSV and read with --trace).

For each: wait p50/p95/p99, billed and rendering GPU hours over the simulated week, the share
rendering, the idle billed hours, node launches (cold starts) and the month's cost; first with
the HPA behaviour Kubernetes gives by default (no scale-up window, a 300 s scale-down window:
sdctl's settings before the sweep), then with the config's defaults, then the change. Then warm
windows (``scaling.warm``) against scale-to-zero. `--set NAME=VALUE` (repeatable) changes a knob
in every run; `--sweep NAME=V1,V2` (repeatable) prints each pattern under every combination
instead.

    python bench/waste.py [--days 7] [--set queue_length=2 ...] [--sweep hpa_down_window_seconds=300,720]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "sdctl.example.yaml"
#: Kubernetes' own HPA behaviour: what the chart ran with before it set any.
BEFORE = ["hpa_up_window_seconds=0", "hpa_down_window_seconds=300"]
DOCS = ["--rate", "1M/month", "--diurnal", "0.6", "--burst", "500@09:00"]
#: Warm windows priced against scale-to-zero, each under the traffic whose burst it meets: the
#: docs' 500 tasks at 09:00, and the trace's bursts at 10:00 and 15:00.
WARM = {
    "diurnal 0.6 + 500 at 09:00": (DOCS, {
        "8 warm pods 08:50-09:15": [{"start": "50 8 * * *", "end": "15 9 * * *", "replicas": 8}],
        "16 warm pods 08:50-09:15": [{"start": "50 8 * * *", "end": "15 9 * * *", "replicas": 16}]}),
    "bursts (trace)": (None, {
        "4 warm pods 09:55-10:10 and 14:55-15:10": [
            {"start": "55 9 * * *", "end": "10 10 * * *", "replicas": 4},
            {"start": "55 14 * * *", "end": "10 15 * * *", "replicas": 4}]}),
}

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


def simulate(flags: list[str], days: int, sets: list[str], config: Path = EXAMPLE, sweep=()) -> dict:
    cmd = [sys.executable, "-m", "sdctl", "-c", str(config), "-o", "json", "simulate", *flags,
           "--duration", f"{days}d", *[x for s in sets for x in ("--set", s)],
           *[x for s in sweep for x in ("--sweep", s)]]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def row(name: str, r: dict) -> str:
    w, g = r["wait_seconds"], r["gpu_hours"]
    return (f"| {name} | {w['p50']:.1f} s | {w['p95']:.2f} s | {w['p99']:.1f} s | {g['billed']:.1f} | "
            f"{g['rendering']:.1f} | {r['gpu_busy_fraction']:.0%} | {g['idle']:.1f} | {r['node_launches']} | "
            f"{r['cost_usd']['monthly']:.2f} |")


HEAD = ("| pattern | wait p50 | p95 | p99 | GPU h billed | rendering | rendering / billed | idle h | "
        "node launches | USD / month |\n|---|---|---|---|---|---|---|---|---|---|")


def with_warm(windows: list[dict]) -> Path:
    """The example config with warm windows, as a user would write them."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["runtimes"][0].setdefault("scaling", {})["warm"] = windows
    path = Path(tempfile.mkdtemp()) / "sdctl.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def patterns(days: int) -> dict[str, list[str]]:
    return {
        "steady 0.38/s": ["--rate", "1M/month"],
        "diurnal 0.6 + 500 at 09:00": DOCS,
        "sparse 4/h": ["--rate", "4/h"],
        "bursts (trace)": ["--trace", str(burst_trace(days))],
    }


def tables(days: int, sets: list[str]) -> None:
    traffic = patterns(days)
    runs = {}
    for label, extra in (("before", BEFORE), ("after", [])):
        print(f"\n{label}: example config, {days}d simulated, " + (" ".join(extra + sets) or "its defaults"))
        print(HEAD)
        for name, flags in traffic.items():
            runs[label, name] = simulate(flags, days, extra + sets)["result"]
            print(row(name, runs[label, name]))
    print("\nafter against before\n| pattern | p95 | p99 | idle GPU h | billed GPU h | USD / month |\n|---|---|---|---|---|---|")
    for name in traffic:
        b, a = runs["before", name], runs["after", name]
        print(f"| {name} | {_ratio(a['wait_seconds']['p95'], b['wait_seconds']['p95'])} | "
              f"{_ratio(a['wait_seconds']['p99'], b['wait_seconds']['p99'])} | "
              f"{_ratio(a['gpu_hours']['idle'], b['gpu_hours']['idle'])} | "
              f"{_ratio(a['gpu_hours']['billed'], b['gpu_hours']['billed'])} | "
              f"{_ratio(a['cost_usd']['monthly'], b['cost_usd']['monthly'])} |")
    print(f"\nwarm windows (scaling.warm) against scale-to-zero, {days}d simulated\n{HEAD}")
    for name, (flags, choices) in WARM.items():
        flags = flags or traffic[name]
        print(row(f"{name}: scale to zero", runs["after", name]))
        for label, windows in choices.items():
            print(row(f"{name}: {label}", simulate(flags, days, sets, config=with_warm(windows))["result"]))

def _ratio(after: float, before: float) -> str:
    if not before:
        return f"{after:g} (was {before:g})"
    return f"{(after - before) / before:+.0%}"


def sweep(days: int, sets: list[str], specs: list[str]) -> None:
    for name, flags in patterns(days).items():
        report = simulate(flags, days, sets, sweep=specs)
        print(f"\n{name}, {days}d simulated\n| setting | p95 | p99 | GPU h billed | idle h | USD / month |\n"
              "|---|---|---|---|---|---|")
        for r in report["sweep"]:
            setting = ", ".join(f"{k}={v}" for k, v in r["setting"].items())
            print(f"| {setting} | {r['wait_p95']:.2f} s | {r['wait_p99']:.1f} s | {r['gpu_hours']['billed']:.1f} | "
                  f"{r['gpu_hours']['idle']:.1f} | {r['monthly_usd']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--sweep", dest="sweeps", action="append", default=[])
    args = ap.parse_args()
    if args.sweeps:
        sweep(args.days, args.sets, args.sweeps)
    else:
        tables(args.days, args.sets)


if __name__ == "__main__":
    main()
