"""`sdctl cost`: what a month of images costs, line by line."""

from __future__ import annotations

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

LOCAL_CAVEAT = ("these seconds per image were measured on the local stack, whose runtime renders on this "
                "machine's CPU: they are priced here as GPU time on the config's instance, which they are not; "
                "measure on a deployed stack, or pass --seconds-per-image")


def _print_guidance(g: dict) -> None:
    """The guidance's own cost table, sdctl's model under its assumptions, and what it leaves out."""
    theirs = g["theirs"]
    out.print(_table("The guidance's table (as printed, April 2024)", theirs["lines"], theirs["lines_sum"],
                     {"their text says": f"{theirs['stated_total']:,.2f}"}))
    rep = g["reproduced"]
    out.print(_table("sdctl's model, with the guidance's assumptions", rep["lines"], rep["total"],
                     {"difference": f"{g['difference_pct']:+.2f} % (vs their text "
                                    f"{g['difference_vs_stated_pct']:+.2f} %)",
                      "per image": f"{rep['per_image']:.6f}"}))
    left = g["left_out"]
    out.print(_table("What their table leaves out", left["lines"], left["total"],
                     {"their total with it": f"{left['with_them']:,.2f}"}))


def usd(value: float) -> str:
    """A unit price written out in plain decimals, as the price lists write them (3.5, 0.33,
    0.0000133334), never in exponent form."""
    from decimal import Decimal

    return format(Decimal(repr(float(value))).normalize(), "f")


def _table(title: str, lines: list[dict], total: float, extra: dict | None = None):
    from rich.table import Table

    table = Table("service", "dimension", "quantity", "unit USD", "USD / month", title=title, title_justify="left")
    for x in lines:
        table.add_row(x["service"], x["dimension"], f"{x['quantity']:,.2f}", usd(x["unit"]), f"{x['total']:,.2f}")
    table.add_section()
    table.add_row("[bold]total[/]", "", "", "", f"[bold]{total:,.2f}[/]")
    for k, v in (extra or {}).items():
        table.add_row(k, "", "", "", v)
    return table


def _compare(profiles: dict, current: str):
    from rich.table import Table

    names = list(profiles)
    table = Table("service", "dimension", *(f"{n} USD / month" + (" (this file)" if n == current else "")
                                            for n in names),
                  title="This config under each profile", title_justify="left")
    keys: list[tuple[str, str]] = []
    by = {}
    for n in names:
        for x in profiles[n]["lines"]:
            k = (x["service"], x["dimension"])
            if k not in keys:
                keys.append(k)
            by[(n, k)] = x["total"]
    for k in keys:
        table.add_row(*k, *(f"{by[(n, k)]:,.2f}" if (n, k) in by else "-" for n in names))
    table.add_section()
    table.add_row("[bold]total[/]", "", *(f"[bold]{profiles[n]['total']:,.2f}[/]" for n in names))
    table.add_row("fixed (idle)", "", *(f"{profiles[n]['fixed']:,.2f}" for n in names))
    return table


def _price_performance(rows: list[dict], a):
    from rich.table import Table

    table = Table("GPU type", f"{a.capacity} USD / hour", f"USD / 1000 images at {a.seconds_per_image:g} s",
                  "cheapest if it renders in", title="Price per image of each listed GPU type",
                  title_justify="left", caption="sdctl has no speed figures for these GPUs: measure each "
                  "(`sdctl cost --measured`); a type is the cheaper one when it renders faster than the last column.")
    for r in rows:
        table.add_row(r["instance"], f"{r['usd_per_hour']:.4f}", f"{r['usd_per_1000_images']:.4f}",
                      f"<= {r['break_even_seconds_per_image']:g} s")
    return table


commands = Commands()


@commands.command()
def cost(
    ctx: typer.Context,
    images: Annotated[int, typer.Option(min=0, help="Images per month.")] = 1_000_000,
    seconds_per_image: Annotated[float | None, typer.Option(min=0.01, help="GPU seconds per image [1.5].")] = None,
    instance: Annotated[str | None, typer.Option(help="GPU instance type [the config's first].")] = None,
    spot: Annotated[bool | None, typer.Option("--spot/--on-demand", help="Capacity type [the config's first].",
                                              show_default=False)] = None,
    price_per_hour: Annotated[float | None, typer.Option(min=0, help="GPU price per hour (a live quote).")] = None,
    measured: Annotated[bool, typer.Option("--measured", help="Seconds per image from the task store.")] = False,
    since: Annotated[str, typer.Option(help="With --measured: tasks since (15m, 2h, 7d).")] = "7d",
    guidance: Annotated[bool, typer.Option("--guidance", help="Reproduce the guidance's table, show what it "
                                                             "leaves out, and compare with sdctl.")] = False,
    compare: Annotated[bool, typer.Option("--compare", help="This config under each profile (lean, ha) side "
                                                           "by side, and each listed GPU type's price per "
                                                           "image.")] = False,
    config: ConfigOpt = None,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    from sdctl.analysis import cost as model
    from sdctl.config import load

    mode = output_mode(ctx, output)
    cfg = load(config_arg(ctx, config))
    secs, measured_from = seconds_per_image, None
    if measured:
        from sdctl.cli.common import target_for
        from sdctl.operate import tasks

        target = target_for(ctx, is_local(local))
        measured_from = tasks.measured_seconds_per_image(target.client("dynamodb"), tasks.require_store(target),
                                                         since=tasks.since_timestamp(since))
        secs = measured_from["seconds_per_image"]
        measured_from["gpu_hours"] = _gpu_hours(target, cfg, since)
        if is_local(local):
            measured_from["caveat"] = LOCAL_CAVEAT
    capacity = None if spot is None else ("spot" if spot else "on-demand")
    a = model.sdctl_assumptions(cfg, images=images, seconds_per_image=secs, instance=instance,
                                capacity=capacity, gpu_price_per_hour=price_per_hour)
    ours = model.estimate(a, model.prices_for(cfg.region))
    report = {"estimate": ours, "measured": measured_from}
    if guidance:
        report["guidance"] = model.compare_guidance()
    if compare:
        report["profiles"] = {}
        for name in ("lean", "ha"):
            other = cfg.with_profile(name)
            pa = model.sdctl_assumptions(other, images=images, seconds_per_image=secs, instance=instance,
                                         capacity=capacity, gpu_price_per_hour=price_per_hour)
            report["profiles"][name] = model.estimate(pa, model.prices_for(cfg.region))
        rt = cfg.runtimes[0]
        report["price_performance"] = model.price_performance(rt.nodes.instance_types, a.capacity,
                                                              a.seconds_per_image, model.prices_for(cfg.region))
    if mode == "json":
        return emit_json(report)
    if compare:
        out.print(_compare(report["profiles"], cfg.profile))
        out.print(_price_performance(report["price_performance"], a))
    if guidance:
        _print_guidance(report["guidance"])
    title = (f"Stack {cfg.stack_name} ({cfg.profile}): {a.images:,} images, {a.seconds_per_image} s each, "
             f"{a.instance} {a.capacity}")
    if not compare:  # the comparison above already holds this config's column
        out.print(_table(title, ours["lines"], ours["total"], {
            "per image": f"{ours['per_image']:.6f}", "per 1000 images": f"{ours['per_1000_images']:.4f}"}))
    gpu = ours["lines"][0]
    err.print(f"[dim]prices: {ours['prices_source']}, as of {ours['prices_as_of']}; GPU price: {gpu['note']}[/]")
    if measured_from and measured_from.get("caveat"):
        err.print(f"[yellow]note:[/] {measured_from['caveat']}")
    if measured_from:
        err.print(f"[dim]measured: {measured_from['seconds_per_image']} s per image over "
                  f"{measured_from['images']} image(s) in the task store[/]")
        _print_gpu_hours(measured_from["gpu_hours"])
        if measured_from.get("cost_usd_per_image") is not None:
            err.print(f"[dim]measured: ${measured_from['cost_usd_per_image']:.6f} per image as its "
                      f"{measured_from['priced_tasks']} priced task(s) recorded it[/]")


def _gpu_hours(target, cfg, since: str) -> dict:
    """Rendering against billed GPU hours over --since (sdctl/operate/gpuhours.py)."""
    from datetime import UTC, datetime

    from sdctl.operate import gpuhours, tasks

    now = datetime.now(UTC)
    start = datetime.fromisoformat(tasks.since_timestamp(since, now).replace("Z", "+00:00"))
    # an empty node lives consolidateAfter before Karpenter removes it ("Never": until now)
    tails = [float("inf") if rt.nodes.consolidate_after == "Never" else tasks.duration_seconds(rt.nodes.consolidate_after)
             for rt in cfg.runtimes]
    return gpuhours.measured(target.client("dynamodb"), tasks.require_store(target), since=start, now=now,
                             tail_seconds=max(tails or [0.0]))


def _print_gpu_hours(g: dict) -> None:
    if g["billed_gpu_hours"] is None:
        err.print(f"[dim]measured: {g['rendering_gpu_hours']:.3g} GPU h rendering by {g['tasks']} task(s); no GPU "
                  "node wrote the node ledger (on EKS each agent does), so billed hours are not known[/]")
        return
    share = "" if g["rendering_share"] is None else f" ({g['rendering_share']:.0%})"
    err.print(f"[dim]measured: rendering / billed: {g['rendering_gpu_hours']:.3g} of {g['billed_gpu_hours']:.3g} "
              f"GPU h{share}, {g['idle_gpu_hours']:.3g} h idle, over {g['nodes']} node(s), {g['nodes_up']} up now[/]")
