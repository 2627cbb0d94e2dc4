"""`sdctl simulate`: checked against queueing theory and against the controllers' formulas.

The replica formulas are the HPA's (kubernetes `GetExternalPerPodMetricReplicas`, the
autoscaling/v2 default behaviour) and KEDA's activation and cooldown, as the docstring of
sdctl/analysis/sim/controllers.py states them; each step is asserted here with numbers worked
by hand. No Kubernetes cluster is involved: the simulator is the model, the formulas are the
reference.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sdctl.analysis.sim import controllers as c
from sdctl.analysis.sim import knobs as kn
from sdctl.analysis.sim import run as sim
from sdctl.analysis.sim import traffic
from sdctl.analysis.sim.knobs import Knobs
from sdctl.errors import UsageError
from tests.conftest import EXAMPLE
from tests.helpers import cli

# --- the controllers' formulas, step by step --------------------------------------------------

def test_hpa_keeps_the_count_inside_the_tolerance_and_otherwise_asks_for_ceil_metric_over_target():
    # 10 replicas, target 1 per replica: 10.9 tasks is within 10 %, 11.5 is not
    assert c.hpa_recommendation(10, 10.9, 1.0, 0.1) == 10
    assert c.hpa_recommendation(10, 11.5, 1.0, 0.1) == 12
    assert c.hpa_recommendation(4, 9.0, 2.0, 0.1) == 5  # ceil(9 / 2)
    assert c.hpa_recommendation(4, 0.0, 1.0, 0.1) == 0


def test_hpa_scale_up_is_limited_to_four_pods_or_double_per_period():
    assert c.hpa_scale_up_limit(1, 4, 100) == 5
    assert c.hpa_scale_up_limit(3, 4, 100) == 7
    assert c.hpa_scale_up_limit(10, 4, 100) == 20
    assert c.hpa_next(1, 100, 100, 0, 50, 4, 100) == 5
    assert c.hpa_next(10, 100, 100, 0, 50, 4, 100) == 20
    assert c.hpa_next(40, 100, 100, 0, 50, 4, 100) == 50  # maxReplicas


def test_hpa_scale_down_waits_for_the_highest_recommendation_of_the_window_and_never_goes_below_one():
    # the window's highest recommendation is 8: from 10 it goes to 8, not to the current 2
    assert c.hpa_next(10, 2, 8, 0, 20, 4, 100) == 8
    assert c.hpa_next(10, 2, 2, 0, 20, 4, 100) == 2
    assert c.hpa_next(3, 0, 0, 0, 20, 4, 100) == 1  # the HPA's floor; zero is KEDA's job
    assert c.hpa_next(3, 0, 0, 2, 20, 4, 100) == 2


def test_keda_activates_from_zero_and_returns_to_zero_only_after_the_cooldown():
    assert c.keda_next(0, True, 0, 0, 60) == 1
    assert c.keda_next(0, True, 0, 3, 60) == 3
    assert c.keda_next(0, False, 500, 0, 60) == 0
    assert c.keda_next(2, False, 59, 0, 60) == -1  # the HPA decides
    assert c.keda_next(2, False, 60, 0, 60) == 0
    assert c.keda_next(2, False, 600, 1, 60) == -1  # minReplicas 1: never to zero


def _timeline(result):
    cols = result["timeline"]["columns"]
    return [dict(zip(cols, row, strict=True)) for row in result["timeline"]["rows"]]


def test_a_burst_from_zero_follows_keda_then_the_hpa_tick_by_tick():
    """200 tasks at t=0, scale to zero, queueLength 1, maxReplicas 30: KEDA takes it to 1 at the
    first poll; each 15 s sync then at most doubles or adds 4 (1 -> 5 -> 10 -> 20 -> 30), while
    the queue is far above target. With cold starts of 100 s nothing is served before then, so
    the HPA's metric is the whole queue."""
    k = Knobs(min_replicas=0, max_replicas=30, node_launch_seconds=60, image_gb=1, pull_mb_per_s=1024,
              model_load_seconds=39, service_dist="fixed", seconds_per_image=1.0, seed=3)
    arrivals = np.zeros(200)
    r = sim.simulate(k, arrivals, duration=400, timeline_points=10_000)
    by_t = {int(row["t"]): row for row in _timeline(r)}
    assert by_t[1]["replicas"] == 1
    assert by_t[14]["replicas"] == 1
    assert by_t[15]["replicas"] == 5
    assert by_t[30]["replicas"] == 10
    assert by_t[45]["replicas"] == 20
    assert by_t[60]["replicas"] == 30
    assert by_t[99]["ready"] == 0 and by_t[99]["queued"] == 200
    assert r["completed"] == 200 and r["unserved"] == 0
    # the first pod's node launched at t=1: ready at 1 + 60 + 1 + 39 = 101
    assert r["wait_seconds"]["max"] > 100
    assert min(r["wait_seconds"]["p50"], 200) >= 100


def test_the_first_task_after_idle_waits_one_cold_start():
    k = Knobs(min_replicas=0, node_launch_seconds=75, image_gb=6, pull_mb_per_s=150, model_load_seconds=15,
              service_dist="fixed")
    r = sim.simulate(k, np.array([10.0]), duration=600)
    cold = k.cold_start_seconds()
    assert cold == pytest.approx(75 + 6 * 1024 / 150 + 15)
    # activation at the next 1 s tick, the pod becomes ready on the tick after it is due
    assert cold <= r["wait_seconds"]["max"] <= cold + 3
    assert r["node_launches"] == 1


# --- theory ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("servers", "rho"), [(4, 0.8), (2, 0.6), (8, 0.9)])
def test_fixed_replicas_under_poisson_arrivals_match_erlang_c_within_five_percent(servers, rho):
    mean = 1.5
    lam = rho * servers / mean
    k = Knobs(min_replicas=servers, max_replicas=servers, service_dist="exponential", seconds_per_image=mean,
              warm=True, seed=11, agent_overhead_seconds=0)
    duration = 2_000_000 / lam
    arrivals = traffic.generate(traffic.Profile(rate=lam), duration, np.random.default_rng(5))
    r = sim.simulate(k, arrivals, duration=duration)
    theory = sim.erlang_c_wait(lam, mean, servers)
    assert r["wait_seconds"]["mean"] == pytest.approx(theory, rel=0.05)
    assert r["gpu_busy_fraction"] == pytest.approx(rho, rel=0.02)
    assert r["gpu_node_hours"]["spot"] == pytest.approx(servers * r["ended_at_seconds"] / 3600, rel=0.01)


def test_erlang_c_formula_against_a_textbook_value():
    # M/M/2 with a = 1 (rho 0.5): P(wait) = 1/3, mean wait = P(wait) / (c*mu - lambda) = 1/3
    assert sim.erlang_c_wait(1.0, 1.0, 2) == pytest.approx(1 / 3)
    assert sim.erlang_c_wait(3.0, 1.0, 2) == math.inf


def test_pollaczek_khinchine_formula_against_textbook_values():
    # M/M/1 at rho 0.5, mean 1: Wq = rho / (mu - lambda) = 1; M/D/1 halves it
    assert sim.pollaczek_khinchine_wait(0.5, 1.0, 1.0) == pytest.approx(1.0)
    assert sim.pollaczek_khinchine_wait(0.5, 1.0, 0.0) == pytest.approx(0.5)
    assert sim.pollaczek_khinchine_wait(1.0, 1.0, 0.5) == math.inf


# Through the command, as a user runs it: fixed replicas (min = max), no agent overhead, and
# one of the three render-time laws. About two million arrivals each, so the sample mean of the
# wait is within a few per cent of the formula.
THEORY = [
    # (servers, rho, law, cv, theory)
    (8, 0.9, "exponential", 1.0, "erlang"),
    (4, 0.7, "exponential", 1.0, "erlang"),
    (1, 0.5, "exponential", 1.0, "pk"),
    (1, 0.8, "fixed", 0.0, "pk"),
    (1, 0.5, "fixed", 0.0, "pk"),
    (1, 0.7, "lognormal", 0.5, "pk"),
    (1, 0.85, "lognormal", 1.5, "pk"),
]


@pytest.mark.parametrize(("servers", "rho", "law", "cv", "formula"), THEORY,
                         ids=[f"{t[2]}-c{t[0]}-rho{t[1]}" for t in THEORY])
def test_the_simulate_command_matches_queueing_theory(tmp_path, servers, rho, law, cv, formula):
    mean = 1.5
    lam = rho * servers / mean
    duration = 2_000_000 / lam
    r = cli("simulate", "-c", str(EXAMPLE), "--rate", f"{lam:.6f}/s", "--duration", f"{duration:.0f}s",
            "--set", f"min_replicas={servers}", "--set", f"max_replicas={servers}",
            "--set", f"service_dist={law}", "--set", f"service_cv={cv}", "--set", f"seconds_per_image={mean}",
            "--set", "agent_overhead_seconds=0", "-o", "json", cwd=tmp_path)
    result = json.loads(r.stdout)["result"]
    theory = (sim.erlang_c_wait(lam, mean, servers) if formula == "erlang"
              else sim.pollaczek_khinchine_wait(lam, mean, cv))
    assert result["wait_seconds"]["mean"] == pytest.approx(theory, rel=0.05), (law, servers, rho)
    assert result["gpu_busy_fraction"] == pytest.approx(rho, rel=0.02)


def test_each_random_stream_is_its_own_and_all_follow_the_one_seed():
    a, b = kn.rng(1, "arrivals").exponential(1, 1000), kn.rng(1, "services").exponential(1, 1000)
    # the same seed for two uses gave identical draws; spawned streams are uncorrelated
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.1
    assert np.array_equal(a, kn.rng(1, "arrivals").exponential(1, 1000))
    assert not np.array_equal(a, kn.rng(2, "arrivals").exponential(1, 1000))
    assert kn.engine_seed(1) == kn.engine_seed(1) != kn.engine_seed(2)


# --- faults, limits, cost ----------------------------------------------------------------------

def test_spot_interruptions_replace_nodes_and_lose_nothing():
    k = Knobs(min_replicas=2, max_replicas=4, spot_interruptions_per_node_hour=2.0, seed=4)
    arrivals = traffic.generate(traffic.Profile(rate=1.0), 6 * 3600, np.random.default_rng(2))
    r = sim.simulate(k, arrivals, duration=6 * 3600)
    assert r["spot_interruptions"] > 5
    assert r["completed"] == arrivals.size and r["unserved"] == 0 and r["expired"] == 0
    assert r["node_launches"] >= r["spot_interruptions"]


def test_a_deadline_expires_what_waited_too_long_and_the_gpu_limit_caps_nodes():
    k = Knobs(min_replicas=0, max_replicas=50, gpu_limit=2, deadline_seconds=300, service_dist="fixed",
              seconds_per_image=2.0)
    arrivals = np.zeros(1000)
    r = sim.simulate(k, arrivals, duration=3600, timeline_points=10_000)
    assert max(row["nodes"] for row in _timeline(r)) == 2
    assert r["expired"] > 0 and r["completed"] + r["expired"] == 1000
    assert r["wait_seconds"]["max"] <= 300


def test_cost_is_node_hours_times_the_price_and_on_demand_is_billed_as_such():
    pricing = {"spot": 0.5, "on-demand": 1.0, "monthly_fixed": 100.0, "per_task": 0.0, "as_of": "test"}
    arrivals = traffic.generate(traffic.Profile(rate=0.5), 3600, np.random.default_rng(1))
    spot = sim.simulate(Knobs(min_replicas=1, max_replicas=1), arrivals, duration=3600, pricing=pricing)
    od = sim.simulate(Knobs(min_replicas=1, max_replicas=1, spot_fraction=0), arrivals, duration=3600,
                      pricing=pricing)
    hours = spot["gpu_node_hours"]["spot"]
    assert spot["cost_usd"]["gpu"] == pytest.approx(hours * 0.5, abs=0.01)
    assert od["gpu_node_hours"]["spot"] == 0
    assert od["cost_usd"]["gpu"] == pytest.approx(od["gpu_node_hours"]["on-demand"] * 1.0, abs=0.01)


def test_batching_with_a_speedup_cuts_gpu_seconds_per_image():
    arrivals = np.sort(np.random.default_rng(9).uniform(0, 3600, 7200))
    base = Knobs(min_replicas=1, max_replicas=1, service_dist="fixed", seconds_per_image=0.45, agent_overhead_seconds=0)
    one = sim.simulate(base, arrivals, duration=3600)
    four = sim.simulate(kn.with_overrides(base, {"batch_tasks": "4", "batch_speedup": "1.5"}), arrivals,
                        duration=3600)
    assert four["batched_calls"] > 0
    assert four["gpu_busy_fraction"] < one["gpu_busy_fraction"]
    assert four["wait_seconds"]["p95"] < one["wait_seconds"]["p95"]


def test_sweep_and_target_pick_the_cheapest_setting_that_meets_the_p95():
    arrivals = traffic.generate(traffic.Profile(rate=0.002, bursts=((300, 3600),)), 4 * 3600,
                                np.random.default_rng(1))
    pricing = {"spot": 0.4, "on-demand": 1.0, "monthly_fixed": 0.0, "per_task": 0.0, "as_of": "test"}
    rows = sim.sweep(Knobs(), ["min_replicas=0,2,4"],
                     lambda k: sim.simulate(k, arrivals, duration=4 * 3600, pricing=pricing))
    p95 = {r["setting"]["min_replicas"]: r["result"]["wait_seconds"]["p95"] for r in rows}
    cost = {r["setting"]["min_replicas"]: r["result"]["cost_usd"]["monthly"] for r in rows}
    assert p95["4"] < p95["0"] and cost["4"] > cost["0"]
    goal = sorted(p95.values())[1]
    best = sim.cheapest_meeting(rows, goal)
    assert best["result"]["wait_seconds"]["p95"] <= goal
    assert all(r["result"]["cost_usd"]["monthly"] >= best["result"]["cost_usd"]["monthly"]
               for r in rows if r["result"]["wait_seconds"]["p95"] <= goal)
    assert sim.cheapest_meeting(rows, 0.0) is None


# --- traffic and knobs -------------------------------------------------------------------------

def test_profiles_give_the_asked_mean_rate_and_a_daily_peak():
    rng = np.random.default_rng(1)
    t = traffic.generate(traffic.Profile(rate=2.0, diurnal=0.6), 10 * 86400, rng)
    assert t.size / (10 * 86400) == pytest.approx(2.0, rel=0.01)
    hours = np.bincount(((t % 86400) // 3600).astype(int), minlength=24)
    assert hours.argmax() in (13, 14, 15) and hours.argmin() in (1, 2, 3)
    assert hours.max() / hours.min() > 3
    assert traffic.parse_rate("120/m") == 2.0 and traffic.parse_rate("1M/month") == pytest.approx(0.3805, rel=1e-3)
    assert traffic.parse_burst("500@09:30") == (500, 34200)


def test_a_trace_in_csv_or_jsonl_gives_relative_arrivals_and_render_seconds():
    t, s = traffic.parse_trace("time,seconds\n2026-12-01T10:00:05Z,2\n2026-12-01T10:00:00Z,1.5\n")
    assert t.tolist() == [0.0, 5.0] and s.tolist() == [1.5, 2.0]
    t, s = traffic.parse_trace('{"t": 100}\n{"t": 103.5}\n')
    assert t.tolist() == [0.0, 3.5] and s is None
    t, _ = traffic.parse_trace('{"t": 1, "runtime": "a"}\n{"t": 2, "runtime": "b"}\n{"t": 4}\n', runtime="b")
    assert t.tolist() == [0.0, 2.0]  # runtime a's row is another runtime's traffic


@pytest.mark.parametrize(("text", "message"), [
    ("time\nyesterday\n", "neither seconds nor an ISO 8601 time"),
    ("when\n1\n", "no time field"),
    ('{"t": 1}\nnot json\n', "trace:2: not JSON"),
    ("time,seconds\n1,2\n2,\n", "on some rows but not all"),
])
def test_a_bad_trace_names_its_line(text, message):
    with pytest.raises(UsageError, match=message):
        traffic.parse_trace(text)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"nope": "1"}, "no simulation knob named 'nope'"),
    ({"min_replicas": "lots"}, "is not a int"),
    ({"queue_length": "0"}, "queue_length must be > 0"),
    ({"service_dist": "normal"}, "is not lognormal"),
    ({"cooldown_seconds": "soon"}, "is not a duration"),
])
def test_bad_knobs_are_named(overrides, message):
    with pytest.raises(UsageError, match=message):
        kn.with_overrides(Knobs(), overrides)


# --- the command -------------------------------------------------------------------------------

def test_simulate_command_prints_json_with_knobs_results_cost_and_writes_the_plot(tmp_path):
    png, page = tmp_path / "t.png", tmp_path / "t.html"
    r = cli("simulate", "-c", str(EXAMPLE), "--rate", "0.5/s", "--duration", "2h", "--plot", str(png),
            "--html", str(page), "-o", "json", cwd=tmp_path)
    data = json.loads(r.stdout)
    assert {row["knob"] for row in data["knobs"]} >= {"queue_length", "node_launch_seconds", "seconds_per_image"}
    assert data["result"]["completed"] == data["result"]["tasks"] > 3000
    assert data["result"]["cost_usd"]["monthly"] > data["result"]["cost_usd"]["monthly_fixed"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in page.read_text()
    # rendering against billed: the render time of what completed, and the rest of the bill idle
    g, result = data["result"]["gpu_hours"], data["result"]
    assert g["billed"] == pytest.approx(sum(result["gpu_node_hours"].values()), abs=0.002)
    assert g["rendering"] + g["idle"] == pytest.approx(g["billed"], abs=0.002)
    assert g["rendering"] == pytest.approx(result["gpu_busy_fraction"] * g["billed"], rel=1e-3)
    assert 0.5 < g["rendering"] * 3600 / result["completed"] < 3  # about 1.5 s per image
    text = cli("simulate", "-c", str(EXAMPLE), "--rate", "0.5/s", "--duration", "2h", cwd=tmp_path).stdout
    assert "rendering / billed" in text and "billed idle" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--rate", "fast"], "rate 'fast' is not understood"),
    (["--rate", "1/s", "--duration", "100d"], "at most 90d"),
    (["--rate", "1/s", "--target-p95", "30s"], "--target-p95 needs --sweep"),
    (["--rate", "1/s", "--sweep", "min_replicas"], "is not NAME=V1,V2"),
    (["--burst", "lots"], "is not COUNT@HH:MM"),
    ([], "no traffic"),
])
def test_simulate_refuses_bad_input_with_exit_2(tmp_path, args, message):
    r = cli("simulate", "-c", str(EXAMPLE), "--duration", "1h", *args, cwd=tmp_path, check=False)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr
