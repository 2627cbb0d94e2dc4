"""One simulation, a sweep over knobs, and the cheapest setting that meets a target p95."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import numpy as np

from sdctl.analysis import cost as cost_model
from sdctl.analysis.sim import knobs as kn
from sdctl.analysis.sim import layout
from sdctl.analysis.sim.knobs import Knobs
from sdctl.errors import UsageError

MONTH = 730 * 3600.0


def erlang_c_wait(lam: float, mean_service: float, servers: int) -> float:
    """Mean wait in queue of an M/M/c queue (Erlang C)."""
    a = lam * mean_service
    rho = a / servers
    if rho >= 1:
        return math.inf
    term, total = 1.0, 1.0
    for k in range(1, servers):
        term *= a / k
        total += term
    last = term * a / servers / (1 - rho)
    p_wait = last / (total + last)
    return p_wait * mean_service / (servers - servers * rho)


def pollaczek_khinchine_wait(lam: float, mean_service: float, cv: float) -> float:
    """Mean wait in queue of an M/G/1 queue (Pollaczek-Khinchine): lambda E[S^2] / 2(1 - rho),
    with E[S^2] = mean^2 (1 + cv^2). cv 0 is M/D/1, cv 1 is M/M/1."""
    rho = lam * mean_service
    if rho >= 1:
        return math.inf
    return lam * mean_service ** 2 * (1 + cv ** 2) / (2 * (1 - rho))


def simulate(k: Knobs, arrivals: np.ndarray, *, duration: float, services: np.ndarray | None = None,
             pricing: dict | None = None, timeline_points: int = 2000) -> dict:
    """Run once. ``pricing``: {"spot": USD/h, "on-demand": USD/h, "monthly_fixed": USD,
    "per_task": USD} (see :func:`pricing_for`)."""
    from sdctl.analysis.sim import engine, warm

    n = int(arrivals.shape[0])
    if services is None:
        services = kn.service_times(k, n, kn.rng(k.seed, "services"))
    services = np.asarray(services, dtype=np.float64) + k.agent_overhead_seconds
    tail = (k.cooldown_seconds + k.hpa_down_window_seconds + min(k.consolidate_after_seconds, 86400)
            + k.cold_start_seconds() + 600)
    horizon = max(duration, float(arrivals[-1]) if n else 0.0) + tail
    sample = max(1, int(horizon // timeline_points))
    floor = warm.floor_per_minute(k.warm_windows, int(horizon // 60) + 1)
    wait, e2e, c, timeline = engine.run(np.ascontiguousarray(arrivals, dtype=np.float64),
                                        np.ascontiguousarray(services),
                                        kn.vector(k, horizon, sample), floor)
    served = wait[~np.isnan(wait)]
    done = e2e[~np.isnan(e2e)]

    def pct(x, q):
        return round(float(np.percentile(x, q)), 3) if x.size else None

    spot_h, od_h = float(c[layout.C_SPOT_SECONDS]) / 3600, float(c[layout.C_OD_SECONDS]) / 3600
    result = {
        "tasks": n,
        "completed": int(c[layout.C_SERVED]),
        "expired": int(c[layout.C_EXPIRED]),
        "unserved": int(c[layout.C_UNSERVED]),
        "cut_by_interruption": int(c[layout.C_CUT]),
        "wait_seconds": {"mean": round(float(served.mean()), 3) if served.size else None,
                         "p50": pct(served, 50), "p95": pct(served, 95), "p99": pct(served, 99),
                         "max": round(float(served.max()), 3) if served.size else None},
        "end_to_end_seconds": {"p50": pct(done, 50), "p95": pct(done, 95), "p99": pct(done, 99)},
        "gpu_node_hours": {"spot": round(spot_h, 3), "on-demand": round(od_h, 3)},
        "gpu_busy_fraction": round(float(c[layout.C_BUSY_SECONDS]) / max(1e-9, (spot_h + od_h) * 3600), 4),
        # What the bill pays for against what renders: the rest is nodes booting, pulling,
        # loading, and idling through the scale-down window and consolidateAfter.
        "gpu_hours": {"billed": round(spot_h + od_h, 3),
                      "rendering": round(float(c[layout.C_BUSY_SECONDS]) / 3600, 3),
                      "idle": round(max(0.0, spot_h + od_h - float(c[layout.C_BUSY_SECONDS]) / 3600), 3)},
        "node_launches": int(c[layout.C_LAUNCHES]),
        "spot_interruptions": int(c[layout.C_INTERRUPTIONS]),
        "batched_calls": int(c[layout.C_BATCHES]),
        "simulated_seconds": duration,
        "ended_at_seconds": float(c[layout.C_END]),
        "cold_start_seconds": round(k.cold_start_seconds(), 1),
        "timeline": {"columns": ["t", "queued", "busy", "replicas", "ready", "nodes"],
                     "rows": timeline.round(3).tolist()},
    }
    if pricing:
        gpu = spot_h * pricing["spot"] + od_h * pricing["on-demand"]
        scale = MONTH / duration if duration else 0
        result["cost_usd"] = {
            "gpu": round(gpu, 2),
            "gpu_per_1000_images": round(gpu / result["completed"] * 1000, 4) if result["completed"] else None,
            "monthly": round(gpu * scale + pricing["monthly_fixed"] + pricing["per_task"] * n * scale, 2),
            "monthly_gpu": round(gpu * scale, 2),
            "monthly_fixed": pricing["monthly_fixed"],
            "prices": {"instance": pricing.get("instance"), "spot_per_hour": pricing["spot"],
                       "on_demand_per_hour": pricing["on-demand"],
                       "as_of": pricing["as_of"]},
        }
    return result


def pricing_for(cfg, runtime) -> dict:
    """GPU prices for the runtime's cheapest listed instance type (the one Karpenter prefers,
    as in `sdctl cost`), the config's fixed monthly lines (EKS, system nodes, NAT) and its
    per-task lines (API, Lambda, SNS, SQS, S3, DynamoDB), from the cost model and its price
    table."""
    prices = cost_model.prices_for(cfg.region)
    instance = cost_model.cheapest_instance(runtime.nodes.instance_types, runtime.nodes.capacity_types[0], prices)
    a = cost_model.sdctl_assumptions(cfg, instance=instance)
    spot, _ = cost_model.gpu_price(replace(a, capacity="spot"), prices)
    od, _ = cost_model.gpu_price(replace(a, capacity="on-demand"), prices)
    est = cost_model.estimate(replace(a, images=1_000_000), prices)
    gpu_line = est["lines"][0]["total"]
    per_task = (est["variable"] - gpu_line) / 1_000_000
    return {"instance": instance, "spot": spot, "on-demand": od, "monthly_fixed": est["fixed"],
            "per_task": per_task, "as_of": est["prices_as_of"]}


def knob_table(k: Knobs) -> list[dict]:
    return [{"knob": name, "value": value, "source": kn.SOURCES.get(name, "")} for name, value in asdict(k).items()]


def sweep(k: Knobs, specs: list[str], run_one) -> list[dict]:
    """Every combination of ``name=v1,v2,...`` specs; ``run_one(knobs)`` -> result."""
    axes = []
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not values:
            raise UsageError(f"--sweep {spec!r} is not NAME=V1,V2,...", hint="e.g. --sweep min_replicas=0,1,2")
        axes.append((name.strip(), [v.strip() for v in values.split(",") if v.strip()]))
    combos = [{}]
    for name, values in axes:
        combos = [{**c, name: v} for c in combos for v in values]
    if len(combos) > 200:
        raise UsageError(f"the sweep has {len(combos)} combinations; at most 200")
    out = []
    for combo in combos:
        r = run_one(kn.with_overrides(k, combo))
        out.append({"setting": combo, "result": r})
    return out


def cheapest_meeting(rows: list[dict], target_p95: float) -> dict | None:
    """The sweep row with the lowest monthly cost whose p95 wait is at most the target (and
    that lost nothing); ties go to the lower p95."""
    ok = [r for r in rows if r["result"]["wait_seconds"]["p95"] is not None
          and r["result"]["wait_seconds"]["p95"] <= target_p95
          and r["result"]["unserved"] == 0 and r["result"]["expired"] == 0]
    if not ok:
        return None

    def key(r):
        c = r["result"].get("cost_usd") or {}
        return (c.get("monthly", sum(r["result"]["gpu_node_hours"].values())), r["result"]["wait_seconds"]["p95"])

    return min(ok, key=key)
