"""`sdctl simulate`: what latency and what bill a traffic pattern gets under a config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sdctl.cli.common import (
    ConfigOpt,
    LocalOpt,
    OutputOpt,
    config_arg,
    emit_json,
    err,
    is_local,
    out,
    output_mode,
)
from sdctl.cli.lazy import Commands
from sdctl.errors import UsageError


def _needs():
    try:
        import matplotlib  # noqa: F401
        import numba  # noqa: F401
    except ImportError as e:
        raise UsageError(f"sdctl simulate needs {e.name}, which is not installed",
                         hint="pip install 'sdctl[sim]'") from None


commands = Commands()


@commands.command()
def simulate(
    ctx: typer.Context,
    rate: Annotated[str | None, typer.Option(help="Poisson arrivals: 2/s, 120/m, 7200/h, 1M/month.")] = None,
    diurnal: Annotated[float, typer.Option(min=0, max=1, help="Daily cycle amplitude (0.6: the peak at 14:00 "
                                                              "is 4x the trough at 02:00); the mean stays --rate.")]
    = 0.0,
    burst: Annotated[list[str] | None, typer.Option(help="COUNT@HH:MM: that many tasks at that time each day, "
                                                         "at the API's throttle rate (repeatable).")] = None,
    trace: Annotated[Path | None, typer.Option(help="Arrivals from a CSV or JSONL file (time[, seconds, runtime]).",
                                               exists=True, dir_okay=False)] = None,
    duration: Annotated[str, typer.Option(help="Simulated time: 90m, 24h, 30d.")] = "24h",
    runtime: Annotated[str | None, typer.Option(help="Runtime to simulate [the config's first].")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a knob: NAME=VALUE (repeatable; "
                                                                  "the knob table lists them).")] = None,
    sweep: Annotated[list[str] | None, typer.Option(help="Run every combination: NAME=V1,V2,... (repeatable).")]
    = None,
    target_p95: Annotated[str | None, typer.Option(help="With --sweep: print the cheapest setting whose p95 "
                                                        "wait is at most this (30s, 2m).")] = None,
    measured: Annotated[bool, typer.Option("--measured", help="Seconds per image from the task store.")] = False,
    since: Annotated[str, typer.Option(help="With --measured: tasks since (15m, 2h, 7d).")] = "7d",
    plot: Annotated[Path | None, typer.Option(help="Write the timeline (queue, replicas, nodes) as a PNG.")]
    = None,
    html: Annotated[Path | None, typer.Option(help="Write a page with the timeline, the knobs and the results.")]
    = None,
    config: ConfigOpt = None,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    mode = output_mode(ctx, output)
    _needs()

    from sdctl.analysis.sim import knobs as kn
    from sdctl.analysis.sim import run as sim
    from sdctl.config import load

    cfg = load(config_arg(ctx, config))
    rt = cfg.runtime(runtime) if runtime else cfg.runtimes[0]
    overrides = dict(_pair(s, "--set") for s in (set_ or []))
    if measured:
        from sdctl.cli.common import target_for
        from sdctl.operate import tasks

        target = target_for(ctx, is_local(local))
        m = tasks.measured_seconds_per_image(target.client("dynamodb"), tasks.require_store(target),
                                             since=tasks.since_timestamp(since))
        overrides.setdefault("seconds_per_image", m["seconds_per_image"])
    k = kn.from_config(rt, **overrides)
    span = kn.parse_seconds(duration)
    if not 0 < span <= 90 * 86400:
        raise UsageError(f"--duration {duration} must be more than 0 and at most 90d")
    arrivals, services, span = _arrivals(cfg, rt, k, span, rate=rate, diurnal=diurnal, burst=burst, trace=trace)
    pricing = sim.pricing_for(cfg, rt)

    def one(knobs):
        return sim.simulate(knobs, arrivals, duration=span, services=services, pricing=pricing)

    report = {"runtime": rt.name, "instance": pricing["instance"], "knobs": sim.knob_table(k)}
    result = _results(report, k, sweep, target_p95, one)
    if plot or html:
        from sdctl.cli import sim_plot

        png = sim_plot.timeline_png(result["timeline"], title=f"{rt.name}: {arrivals.size:,} tasks")
        if plot:
            plot.write_bytes(png)
        if html:
            html.write_text(sim_plot.page(report, png))
    if mode == "json":
        report["timeline"] = result["timeline"]
        return emit_json(report)
    _print(report, result)
    for path in (plot, html):
        if path:
            err.print(f"[dim]wrote {path}[/]")


def _arrivals(cfg, rt, k, span: float, *, rate, diurnal, burst, trace):
    """The arrival times (and, from a trace, each task's seconds), and the span they cover."""
    from sdctl.analysis.sim import knobs as kn
    from sdctl.analysis.sim import traffic

    services = None
    if trace:
        arrivals, services = traffic.parse_trace(trace.read_text(), trace.name, runtime=rt.name)
        span = max(span, float(arrivals[-1]) + 1) if arrivals.size else span
    else:
        profile = traffic.Profile(rate=traffic.parse_rate(rate) if rate else 0.0, diurnal=diurnal,
                                  bursts=tuple(traffic.parse_burst(b) for b in burst or []),
                                  burst_rate=float(cfg.api.throttle.rate_limit))
        arrivals = traffic.generate(profile, span, kn.rng(k.seed, "arrivals"))
    if arrivals.size > 50_000_000:
        raise UsageError(f"{arrivals.size:,} tasks is more than the 50 million one run takes")
    return arrivals, services, span


def _results(report: dict, k, sweep, target_p95, one) -> dict:
    """One run, or with --sweep every combination (and the cheapest meeting --target-p95, which is
    the result shown); the report gains what the user asked for."""
    from sdctl.analysis.sim import knobs as kn
    from sdctl.analysis.sim import run as sim

    if sweep:
        rows = sim.sweep(k, sweep, one)
        report["sweep"] = [{"setting": r["setting"], **_brief(r["result"])} for r in rows]
        if target_p95:
            goal = kn.parse_seconds(target_p95)
            best = sim.cheapest_meeting(rows, goal)
            report["target_p95_seconds"] = goal
            report["cheapest"] = None if best is None else {"setting": best["setting"], **_brief(best["result"])}
        result = (sim.cheapest_meeting(rows, kn.parse_seconds(target_p95)) if target_p95 else None) or rows[0]
        return result["result"]
    else:
        if target_p95:
            raise UsageError("--target-p95 needs --sweep (the settings to choose from)")
        result = one(k)
        report["result"] = {x: v for x, v in result.items() if x != "timeline"}
        return result


def _pair(text: str, flag: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"{flag} {text!r} is not NAME=VALUE")
    return name.strip(), value.strip()


def _brief(r: dict) -> dict:
    return {"wait_p50": r["wait_seconds"]["p50"], "wait_p95": r["wait_seconds"]["p95"],
            "wait_p99": r["wait_seconds"]["p99"], "e2e_p95": r["end_to_end_seconds"]["p95"],
            "completed": r["completed"], "expired": r["expired"], "unserved": r["unserved"],
            "gpu_node_hours": round(sum(r["gpu_node_hours"].values()), 2), "gpu_hours": r["gpu_hours"],
            "node_launches": r["node_launches"], "monthly_usd": (r.get("cost_usd") or {}).get("monthly")}


def _print(report: dict, result: dict) -> None:
    from rich.table import Column, Table

    knobs = Table("knob", "value", "from", title="What was modelled", title_justify="left")
    for row in report["knobs"]:
        knobs.add_row(row["knob"], str(row["value"]), row["source"])
    out.print(knobs)
    if "sweep" in report:
        t = Table("wait p50", "p95", "p99", "e2e p95", "lost", "GPU h", "USD/month",
                  title="Sweep (wait and end to end in seconds)", title_justify="left")
        t.columns.insert(0, Column("setting", overflow="fold", min_width=24))
        for row in report["sweep"]:
            t.add_row(", ".join(f"{k}={v}" for k, v in row["setting"].items()), _s(row["wait_p50"]),
                      _s(row["wait_p95"]), _s(row["wait_p99"]), _s(row["e2e_p95"]),
                      str(row["expired"] + row["unserved"]), f"{row['gpu_node_hours']:,.1f}",
                      f"{row['monthly_usd']:,.2f}")
        out.print(t)
        if "cheapest" in report:
            best = report["cheapest"]
            if best is None:
                out.print(f"no setting meets a p95 wait of {report['target_p95_seconds']:g} s")
            else:
                out.print(f"cheapest with p95 wait <= {report['target_p95_seconds']:g} s: "
                          + ", ".join(f"{k}={v}" for k, v in best["setting"].items())
                          + f" (p95 {best['wait_p95']:g} s, ${best['monthly_usd']:,.2f}/month)")
        return
    r = report["result"]
    t = Table("", "p50", "p95", "p99", title=f"{r['tasks']:,} tasks: {r['completed']:,} completed, "
                                             f"{r['expired']:,} expired, {r['unserved']:,} unserved",
              title_justify="left")
    for label, key in (("wait in queue (s)", "wait_seconds"), ("end to end (s)", "end_to_end_seconds")):
        t.add_row(label, *(_s(r[key][q]) for q in ("p50", "p95", "p99")))
    out.print(t)
    h = r["gpu_node_hours"]
    g = r["gpu_hours"]
    out.print(f"GPU node-hours: {h['spot']:,.1f} spot, {h['on-demand']:,.1f} on-demand; rendering / billed "
              f"{g['rendering']:,.1f} / {g['billed']:,.1f} h ({r['gpu_busy_fraction']:.0%}; {g['idle']:,.1f} h billed "
              f"idle); {r['node_launches']:,} node launches, cold start {r['cold_start_seconds']:g} s; "
              f"{r['spot_interruptions']} spot interruptions")
    c = r.get("cost_usd")
    if c:
        out.print(f"GPU cost ${c['gpu']:,.2f} over the simulated time; ${c['monthly']:,.2f}/month at this "
                  f"traffic (GPU ${c['monthly_gpu']:,.2f} + fixed ${c['monthly_fixed']:,.2f} + per task)")


def _s(v) -> str:
    return "-" if v is None else f"{v:,.2f}"
