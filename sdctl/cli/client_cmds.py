"""`sdctl generate`, `sdctl submit` and `sdctl fetch`: use the image service."""

from __future__ import annotations

import time
from pathlib import Path
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
from sdctl.cli.lazy import Commands

OutOpt = Annotated[Path, typer.Option("--out", help="Folder to write images into.")]


def _wait_and_download(target, task_id: str, prefix: str, timeout: float, out_dir: Path, mode,
                       cancel_on_exit: bool = False) -> tuple[dict, list[Path]]:
    """operate.follow with this terminal's progress lines; Ctrl-C asks whether to cancel the
    task (or cancels with --cancel-on-exit) and exits 130; the task otherwise keeps running."""
    import sys

    from sdctl.cli.progress import reporting, task_lines
    from sdctl.operate.follow import LeftRunning, follow_and_download

    def cancel() -> bool:
        return cancel_on_exit or (sys.stdin.isatty() and
                                  typer.confirm(f"\ncancel task {task_id}?", default=False, err=True))

    try:
        return follow_and_download(target, task_id, prefix, timeout=timeout, out_dir=out_dir,
                                   steps=lambda _: task_lines(mode), waiting=lambda m: reporting(mode, m),
                                   cancel=cancel)
    except LeftRunning as left:
        if left.cancelled:
            err.print(f"task {task_id}: " + ("cancelling (its runtime call is interrupted)"
                                              if left.cancel_requested else "cancelled"))
        else:
            err.print(f"task {task_id} keeps going; fetch it later with `sdctl fetch {task_id}{target.flags}`")
        raise


commands = Commands()


@commands.command()
def generate(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    runtime: Annotated[str | None, typer.Option(help="Runtime name (default: the first configured).")] = None,
    negative: Annotated[str, typer.Option(help="Negative prompt.")] = "",
    steps: Annotated[int, typer.Option(min=1, max=150)] = 20,
    width: Annotated[int, typer.Option(min=64, max=2048, help="Multiple of 8.")] = 512,
    height: Annotated[int, typer.Option(min=64, max=2048, help="Multiple of 8.")] = 512,
    seed: Annotated[int, typer.Option(min=-1, max=2**32 - 1, help="-1 for random.")] = -1,
    count: Annotated[int, typer.Option(min=1, max=16, help="Images to make.")] = 1,
    sampler: Annotated[str | None, typer.Option(help="Sampler name, e.g. 'Euler a'.")] = None,
    task_id: Annotated[str | None, typer.Option("--id", help="Task id (default: a new UUID).")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the images.")] = True,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait.")] = 300,
    cancel_on_exit: Annotated[bool, typer.Option("--cancel-on-exit",
                                                 help="Ctrl-C cancels the task instead of asking.")] = False,
    out_dir: OutOpt = Path("outputs"),
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    from sdctl.errors import UsageError
    from sdctl.operate import client

    mode = output_mode(ctx, output)
    if width % 8 or height % 8:
        raise UsageError(f"--width {width} and --height {height} must be multiples of 8")
    started = time.monotonic()
    target = target_for(ctx, is_local(local))
    body = client.text_to_image(prompt, runtime=target.runtime(runtime), task_id=task_id, negative=negative,
                                steps=steps, width=width, height=height, seed=seed, count=count,
                                sampler=sampler)
    accepted = client.ImageApi(target.api_url, target.api_key).submit(body)
    task_id = accepted["id"]
    prefix = body["task"]["metadata"].get("prefix") or target.prefix
    result = {"id": task_id, "runtime": accepted["runtime"], "output_location": accepted["output_location"]}
    if not wait:
        result["status"] = "queued"
        _print(result, mode, lambda: out.print(f"queued {task_id} → {accepted['output_location']}"))
        return
    doc, files = _wait_and_download(target, task_id, prefix, timeout, out_dir, mode, cancel_on_exit)
    result.update(status=doc["status"], files=[str(p) for p in files], seed=doc.get("info", {}).get("seed"),
                  seconds=round(time.monotonic() - started, 3))

    def text():
        for p in files:
            out.print(str(p))
        err.print(f"[dim]{len(files)} image(s) for task {task_id} in {result['seconds']:.2f}s[/]")

    _print(result, mode, text)

@commands.command()
def submit(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A v1alpha2 task (.json) or one per line (.jsonl).", exists=True,
                                         dir_okay=False)],
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Requests in flight (.jsonl).")] = 8,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow every task to its end and download "
                                                                "the completed ones' images into --out.")] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for all tasks.")] = 600,
    out_dir: OutOpt = Path("outputs"),
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    from sdctl.errors import UsageError
    from sdctl.operate import client

    mode = output_mode(ctx, output)
    from sdctl.cli import submit_many as many

    bodies, bad = many.read_tasks(file)
    if not bodies and not bad:
        raise UsageError(f"{file} holds no tasks")
    target = target_for(ctx, is_local(local))
    if file.suffix != ".jsonl":
        [(_, body)] = bodies
        accepted = client.ImageApi(target.api_url, target.api_key).submit(body)
        entry = dict(accepted, status="queued")
        if wait:
            meta = body["task"]["metadata"]
            doc, files = _wait_and_download(target, accepted["id"], meta.get("prefix") or target.prefix,
                                            timeout, out_dir, mode)
            entry.update(status=doc["status"], files=[str(p) for p in files])
        _print(entry, mode, lambda: out.print(
            f"{entry['id']}: {entry['status']} {' '.join(entry.get('files', [])) or entry['output_location']}"))
        return
    report = many.submit_many(target, bodies, bad, concurrency=concurrency, wait=wait, timeout=timeout)
    if wait:  # as for one task: every completed task's images into --out
        report["summary"]["files"] = many.download_completed(target, report["tasks"], dict(bodies), out_dir)
    _print(report, mode, lambda: many.print_report(report))
    s = report["summary"]
    if s["rejected"] or (wait and s.get("completed", 0) != s["accepted"] + s["duplicate"]):
        raise typer.Exit(1)

@commands.command()
def fetch(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(metavar="ID", help="Task id.")],
    out_dir: OutOpt = Path("outputs"),
    prefix: Annotated[str | None, typer.Option(help="Key prefix the task used (default: the config's).")] = None,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    from sdctl.errors import SdctlError
    from sdctl.operate import client, follow

    mode = output_mode(ctx, output)
    client.check_id(task_id)
    target = target_for(ctx, is_local(local))
    s3 = target.s3()
    doc = client.read_result(s3, target.bucket, prefix or target.prefix, task_id)
    if doc is None:
        record = follow.record(target, task_id)
        state = (record or {}).get("status")
        if state in ("cancelled", "expired", "failed"):  # ended before a result was stored
            why = ((record or {}).get("error") or {}).get("message")
            raise SdctlError(f"task {task_id} was {state}" + (f": {why}" if why else "") + "; it has no images",
                             hint=f"`sdctl tasks get {task_id}{target.flags}` shows its states")
        where = f" ({state}{follow.place(record)})" if state else " (queued, running, or unknown)"
        raise SdctlError(f"task {task_id} has no result yet{where}",
                         hint=f"`sdctl tasks wait {task_id}{target.flags}`, then fetch it; or check the id "
                              "and --prefix")
    client.finished(doc)
    files = client.download(s3, doc.get("image_url", []), out_dir)
    result = {"id": task_id, "status": doc["status"], "files": [str(p) for p in files]}
    _print(result, mode, lambda: [out.print(str(p)) for p in files])


def _print(data, mode, text) -> None:
    if mode == "json":
        emit_json(data)
    else:
        text()
