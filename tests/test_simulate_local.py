"""The simulator against a recorded burst on the real local stack.

The stack is the one `sdctl local up --detach` starts (moto server, gateway, supervisor, one
queue agent); the runtime is tests/stub_runtime.py, which renders one call at a time in a
fixed time, like one GPU. A burst of tasks goes in through the gateway; each result document's
`timeline` gives when its message entered the queue (`sent`), when the runtime call began and
ended, and when the result was stored. From those the test records the tasks outstanding
(queued + in flight, what KEDA counts with `scaleOnInFlight`) at every second, then feeds the
simulator the same arrival times and the same per-call seconds with one warm replica, and
compares. The agent's own time between two calls (the runtime idle while the agent hands it
the next task) is measured from the same timelines and given to the simulator as
`agent_overhead_seconds`.

Tolerance, stated: at every second the simulated count of outstanding tasks is within
max(3, 10 % of the peak) of the recorded one, and the last completion is within 5 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from sdctl.builders.sim import engine, knobs
from sdctl.builders.sim import run as sim
from sdctl.builders.sim.knobs import Knobs
from tests.test_chaos import chaos_stack, submit, wait_results  # noqa: F401  (chaos_stack is a fixture)

pytestmark = pytest.mark.e2e

BURST = 60
LATENCY = 0.25


def outstanding(arrivals: np.ndarray, done: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    return np.array([(arrivals <= t).sum() - (done <= t).sum() for t in seconds])


def test_a_recorded_burst_on_the_local_stack_is_reproduced_by_the_simulator(chaos_stack):  # noqa: F811
    state = chaos_stack(max_receive=3, agents=1, latency=LATENCY)
    ids = [f"burst-{i:03d}" for i in range(BURST)]
    submit(state, ids, "burst")
    docs = wait_results(state, ids, 120)
    lines = [docs[i]["timeline"] for i in ids]
    t0 = min(x["sent"] for x in lines)
    arrivals = np.sort(np.array([x["sent"] - t0 for x in lines]))
    stored = np.array([x["stored"] - t0 for x in lines])
    in_order = sorted(lines, key=lambda x: x["sent"])
    calls = np.array([x["ran"] - x["started"] for x in in_order])
    assert calls.min() >= LATENCY * 0.95  # every call took the stub's render time
    # the agent's own time between two calls, while the next task was already waiting
    by_start = sorted(lines, key=lambda x: x["started"])
    gaps = [b["started"] - a["ran"] for a, b in zip(by_start, by_start[1:], strict=False) if b["sent"] < a["ran"]]
    overhead = float(np.median(gaps))

    k = Knobs(min_replicas=1, max_replicas=1, warm=True, seed=1, agent_overhead_seconds=overhead)
    horizon = float(stored.max()) + 5
    assert sim.simulate(k, arrivals, duration=horizon, services=calls)["completed"] == BURST
    # the same run's end-to-end seconds per task, in arrival order
    _, e2e, _, _ = engine.run(arrivals, calls + overhead, knobs.vector(k, horizon, 1))
    simulated_done = arrivals + e2e.astype(np.float64)

    seconds = np.arange(0, int(np.ceil(stored.max())) + 2, 1.0)
    recorded = outstanding(arrivals, stored, seconds)
    modelled = outstanding(arrivals, simulated_done, seconds)
    peak = recorded.max()
    tolerance = max(3, 0.1 * peak)
    worst = np.abs(recorded - modelled).max()
    print(f"burst of {BURST}: peak {peak} outstanding, worst per-second difference {worst}, last completion "
          f"recorded {stored.max():.2f} s, modelled {simulated_done.max():.2f} s, agent gap {overhead * 1000:.1f} ms")
    assert peak >= BURST // 2, f"the burst never queued up (peak {peak}): the test measures nothing"
    assert worst <= tolerance, f"outstanding tasks differ by {worst} at some second (allowed {tolerance}):\n" \
                               f"recorded {recorded.tolist()}\nmodelled {modelled.tolist()}"
    assert simulated_done.max() == pytest.approx(stored.max(), rel=0.05)
