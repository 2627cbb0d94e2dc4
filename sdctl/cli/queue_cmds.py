"""`sdctl queue watch|redrive|purge`: the runtimes' queues."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from sdctl.cli.common import LocalOpt, OutputOpt, emit_json, is_local, out, output_mode, target_for
from sdctl.cli.lazy import group_app

app = group_app("queue")
RuntimeOpt = Annotated[str | None, typer.Option(help="Only this runtime (default: all).")]


def _selected(target, runtime: str | None) -> dict[str, dict[str, str]]:
    if runtime is not None:
        target.runtime(runtime)  # names the runtimes if it is not one
    return {n: q for n, q in target.queues.items() if runtime in (None, n)}


def _table(rows: list[dict]):
    from rich.table import Table

    def num(v, unit=""):
        return "–" if v is None else f"{v}{unit}"

    table = Table(title="queues (oldest: the oldest queued task; rates per minute)", title_justify="left")
    for name in ("runtime", "waiting", "in flight", "delayed", "DLQ", "oldest", "in/min", "done/min"):
        table.add_column(name, no_wrap=True, justify="left" if name == "runtime" else "right")
    for r in rows:
        dlq = f"[red]{r['dead_letter']}[/]" if r["dead_letter"] else "0"
        high, low = (r["lanes"].get(p, {}).get("visible", 0) for p in ("high", "low"))
        # Waiting tasks by lane (high/normal/low) when any is outside the normal lane.
        waiting = str(r["visible"]) + (f" ({high}/{r['visible'] - high - low}/{low})" if high or low else "")
        table.add_row(r["runtime"], waiting, str(r["in_flight"]), str(r["delayed"]), dlq,
                      num(r["oldest_age_s"], " s"), num(r["arrivals_per_min"]), num(r["completions_per_min"]))
    return table


@app.command()
def watch(
    ctx: typer.Context,
    runtime: RuntimeOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit.")] = False,
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between refreshes.")] = 2.0,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    """Per runtime: visible, in flight, delayed, dead-lettered, the oldest queued task's age,
    arrivals and completions per minute. A live table until Ctrl-C (or --once)."""
    import time

    from rich.live import Live

    from sdctl.operate import queues

    mode = output_mode(ctx, output)
    target = target_for(ctx, is_local(local))
    selected = _selected(target, runtime)
    sqs, db = target.client("sqs"), target.client("dynamodb") if target.tasks_table else None

    def snap() -> list[dict]:
        return [queues.snapshot(sqs, db, target.tasks_table, n, q) for n, q in selected.items()]

    if once or mode == "json":
        rows = snap()
        return emit_json(rows) if mode == "json" else out.print(_table(rows))
    # Ctrl-C ends a watch as it ends every command: exit 130 (the README, "Using it").
    if not out.is_terminal:  # a pipe or a log: one table per refresh, written at once
        while True:
            out.print(_table(snap()))
            sys.stdout.flush()
            time.sleep(interval)
    with Live(_table(snap()), console=out.real, auto_refresh=False) as live:
        while True:
            time.sleep(interval)
            live.update(_table(snap()), refresh=True)


@app.command()
def redrive(
    ctx: typer.Context,
    runtime: RuntimeOpt = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Move at most this many messages.")] = None,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    """Move dead-lettered tasks back to their runtime's queue, to be tried again."""
    from sdctl.operate import queues

    mode = output_mode(ctx, output)
    target = target_for(ctx, is_local(local))
    sqs = target.client("sqs")
    report = {}
    for name, q in _selected(target, runtime).items():
        lanes = {p: queues.redrive(sqs, lane["dead_letter_queue_url"], lane["queue_url"], limit=limit)
                 for p, lane in queues.lanes_of(q).items()}  # each lane's back to its own queue
        moved = [r["moved"] for r in lanes.values()]
        report[name] = {"moved": None if None in moved else sum(moved), "method": lanes["normal"]["method"],
                        "lanes": lanes}
    if mode == "json":
        emit_json(report)
    else:
        for name, r in report.items():
            moved = "started" if r["moved"] is None else f"{r['moved']} task(s) moved"
            out.print(f"{name}: {moved} ({r['method']})")


@app.command()
def purge(
    ctx: typer.Context,
    runtime: Annotated[str, typer.Option(help="The runtime whose queue to empty.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Purge without asking.")] = False,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    """Delete every task waiting in one runtime's queue (asks first; --yes to skip). Their
    records in the task store are marked cancelled (code `purged`)."""
    from sdctl.cli.common import confirm
    from sdctl.operate import queues

    mode = output_mode(ctx, output)
    target = target_for(ctx, is_local(local))
    q = _selected(target, runtime)[runtime]
    confirm(ctx, f"Delete every message in runtime {runtime}'s queue?", yes=yes)
    db = target.client("dynamodb") if target.tasks_table else None
    report = queues.purge(target.client("sqs"), db, target.tasks_table, runtime, q)
    if mode == "json":
        emit_json(report)
    else:
        out.print(f"{runtime}: queue purged; {report['tasks_cancelled']} queued task(s) marked cancelled")
