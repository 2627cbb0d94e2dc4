"""`sdctl tasks get|list|cancel|wait`: where is my task?"""

from __future__ import annotations

from typing import Annotated

import typer

from sdctl.cli.common import (
    LocalOpt,
    OutputOpt,
    emit_json,
    err,
    is_local,
    out,
    output_mode,
    target_for,
)
from sdctl.cli.lazy import group_app

app = group_app("tasks")
def _checked_id(value: str) -> str:
    """Checked before anything is asked of the stack (exit 2): see operate.client.check_id."""
    from sdctl.operate.client import check_id

    return check_id(value)


IdArg = Annotated[str, typer.Argument(metavar="ID", help="Task id.", callback=_checked_id)]
COLOURS = {"queued": "cyan", "running": "yellow", "completed": "green", "failed": "red", "cancelled": "magenta",
           "expired": "magenta"}


def _show(record: dict) -> None:
    colour = COLOURS.get(record.get("status"), "white")
    from sdctl.operate.tasks import describe

    out.print(f"[bold]{record['id']}[/] [{colour}]{record.get('status')}[/]  runtime {record.get('runtime', '?')}"
              f"  attempts {record.get('attempts', 0)}")
    if record.get("queue") or record.get("progress"):  # place in line and ETA, or step k of N
        out.print(f"  now: {describe(record)}", markup=False)
        basis = (record.get("queue") or {}).get("eta_basis")
        if basis:
            out.print(f"  estimate: {basis}", markup=False)
    for key in ("created_at", "started_at", "finished_at", "deadline", "runtime_seconds", "model", "prompt",
                "seed", "steps", "cost_usd", "output_url"):
        if record.get(key) not in (None, ""):
            out.print(f"  {key}: {record[key]}", markup=False)
    for url in record.get("image_url") or []:
        out.print(f"  image: {url}", markup=False)
    if record.get("error"):
        e = record["error"]
        out.print(f"  [red]error[/] {e.get('code')}: {e.get('message')}")


@app.command()
def get(ctx: typer.Context, task_id: IdArg, local: LocalOpt = False, output: OutputOpt = None) -> None:
    """A task's state, attempts, timestamps, result URLs or error."""
    mode = output_mode(ctx, output)
    record = target_for(ctx, is_local(local)).api().task(task_id)
    emit_json(record) if mode == "json" else _show(record)


def stored(ctx: typer.Context, local: bool, *, status: str | None, runtime: str | None, since: str | None,
           limit: int, client: str | None = None) -> tuple:
    """(the target, its task store's tasks matching these, newest first): `tasks list` and
    `gallery` read them alike."""
    from sdctl.operate import tasks

    since_at = tasks.since_timestamp(since)
    target = target_for(ctx, is_local(local))
    if runtime is not None:
        target.runtime(runtime)  # names the runtimes if it is not one
    return target, tasks.list_tasks(target.client("dynamodb"), tasks.require_store(target), status=status,
                                    runtime=runtime, since=since_at, limit=limit, client=client)


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="queued, running, completed, failed or cancelled.")] = None,
    runtime: Annotated[str | None, typer.Option(help="Only this runtime.")] = None,
    client: Annotated[str | None, typer.Option(help="Only tasks this client's API key submitted "
                                                    "(`default`: the stack's own key).")] = None,
    since: Annotated[str | None, typer.Option(help="Created since: 30s, 15m, 2h, 3d or an ISO time.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    """Recent tasks, newest first."""
    from rich.table import Table

    mode = output_mode(ctx, output)
    _, rows = stored(ctx, local, status=status, runtime=runtime, since=since, limit=limit, client=client)
    if mode == "json":
        return emit_json(rows)
    # An id is never cut (it is what `fetch` and `tasks get` take); the prompt gives way first.
    table = Table("id", "status", "runtime", "client", "created", "seconds", "error", "prompt", box=None)
    table.columns[0].no_wrap, table.columns[0].min_width = True, max([len(t["id"]) for t in rows] + [2])
    table.columns[0].overflow = "ignore"
    table.columns[-1].overflow = table.columns[-2].overflow = "ellipsis"
    for t in rows:
        colour = COLOURS.get(t.get("status"), "white")
        table.add_row(t["id"], f"[{colour}]{t.get('status')}[/]", t.get("runtime", ""), t.get("client", ""),
                      t.get("created_at", "")[:19], str(t.get("runtime_seconds", "")),
                      ((t.get("error") or {}).get("code") or ""), (t.get("prompt") or "")[:40])
    out.print(table)
    err.print(f"[dim]{len(rows)} task(s)[/]")


@app.command()
def cancel(ctx: typer.Context, task_id: IdArg, local: LocalOpt = False, output: OutputOpt = None) -> None:
    """Cancel a task: a queued one at once; a running one by interrupting its runtime call,
    waiting (up to 30 s) until it has ended. Exit 1, with its state, if it finished first."""
    mode = output_mode(ctx, output)
    api = target_for(ctx, is_local(local)).api()
    result = api.cancel(task_id)
    if result.get("cancel_requested"):
        from sdctl.cli.progress import reporting
        from sdctl.operate import tasks

        with reporting(mode, f"{task_id}: interrupting the runtime…") as report:
            result = tasks.wait(lambda: api.task(task_id), task_id=task_id, timeout=30, report=report)
    emit_json(result) if mode == "json" else out.print(f"{task_id}: [magenta]{result.get('status')}[/]")
    if result.get("status") != "cancelled":
        raise typer.Exit(1)


@app.command()
def wait(
    ctx: typer.Context,
    task_id: IdArg,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait.")] = 600,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    """Wait until a task is completed (exit 0), failed or cancelled (exit 1)."""
    from sdctl.operate import tasks

    mode = output_mode(ctx, output)
    api = target_for(ctx, is_local(local)).api()
    from sdctl.cli.progress import task_lines

    with task_lines(mode) as report:
        record = tasks.wait(lambda: api.task(task_id), task_id=task_id, timeout=timeout, report=report)
    emit_json(record) if mode == "json" else _show(record)
    if record.get("status") != "completed":
        raise typer.Exit(1)
