"""How fast `sdctl simulate` is: 10 million tasks over 30 simulated days (a diurnal Poisson
profile, scale to zero, the example config's scaling), next to the same engine interpreted by
CPython (numba's `py_func`, the loop without compilation) over the first hours of the same
traffic, in the same run; the ratio is per simulated hour.

    python bench/simulate.py [--tasks 10000000] [--days 30] [--baseline-hours 2]

The compile step (numba, the first run in a fresh environment) is timed separately.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10_000_000)
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--baseline-hours", type=float, default=2)
    args = ap.parse_args()

    t0 = time.perf_counter()
    from sdctl.analysis.sim import knobs, traffic
    from sdctl.analysis.sim import run as sim
    from sdctl.analysis.sim.knobs import Knobs

    warm = sim.simulate(Knobs(), np.array([1.0, 2.0]), duration=60)  # compiles, or loads the cache
    t_compile = time.perf_counter() - t0

    duration = args.days * 86400
    t1 = time.perf_counter()
    arrivals = traffic.generate(traffic.Profile(rate=args.tasks / duration, diurnal=0.6), duration,
                                knobs.rng(1, "arrivals"))
    t2 = time.perf_counter()
    r = sim.simulate(Knobs(), arrivals, duration=duration)
    t3 = time.perf_counter()

    from sdctl.analysis.sim import engine

    k = Knobs()
    span = args.baseline_hours * 3600
    head = arrivals[arrivals < span]
    t4 = time.perf_counter()
    engine.run.py_func(head, knobs.service_times(k, head.size, knobs.rng(k.seed, "services")),
                       knobs.vector(k, span, 60), np.zeros(1))
    t5 = time.perf_counter()

    per_task = (t3 - t2) / arrivals.size
    per_hour = (t3 - t2) / (duration / 3600)
    py_per_hour = (t5 - t4) / args.baseline_hours
    print(f"{'import + compile (or cache load)':<44} {t_compile:8.2f} s   (warm-up run: {warm['completed']} tasks)")
    print(f"{f'traffic: {arrivals.size} tasks over {args.days:g} days':<44} {t2 - t1:8.2f} s")
    print(f"{'simulate: controllers, pods, nodes, queue':<44} {t3 - t2:8.2f} s   {per_task * 1e9:7.1f} ns/task, "
          f"{per_hour * 1e3:.2f} ms per simulated hour")
    print(f"{f'total for the {arrivals.size} tasks':<44} {t3 - t1:8.2f} s")
    print(f"{f'baseline: the engine interpreted, {args.baseline_hours:g} h ({head.size} tasks)':<44} "
          f"{t5 - t4:8.2f} s   {py_per_hour * 1e3:.2f} ms per simulated hour")
    print(f"{'ratio (interpreted over compiled, per hour)':<44} {py_per_hour / per_hour:8.1f} x")
    print(f"result: p95 wait {r['wait_seconds']['p95']} s, p99 {r['wait_seconds']['p99']} s, "
          f"{sum(r['gpu_node_hours'].values()):,.0f} GPU node-hours, {r['node_launches']:,} launches")


if __name__ == "__main__":
    main()
