"""The two presenters of the event stream (sdctl/contracts/events.py), both on stderr so that
stdout holds only the result:

    text   rich: a spinner line that `progress` events replace, and one line per other event,
           each with the seconds since the command started
    json   JSON lines, one object per event (`{"event": "ok", "source": "stack:…", …}`), for
           scripts and CI that run with `--output json`

    with reporting(mode, "deploying") as report:
        deploy.deploy(ctx, ..., report=report)
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.markup import escape

from sdctl.cli.common import Output, err
from sdctl.contracts.events import Event, Report

STYLE = {"step": "", "detail": "dim", "ok": "green", "warning": "yellow", "error": "red", "progress": "yellow"}


def json_lines(stream=None) -> Report:
    def report(event: Event) -> None:
        out = stream or sys.stderr
        out.write(json.dumps(event.to_dict(), default=str) + "\n")
        out.flush()

    return report


class Text:
    """Spinner for `progress`, a line for everything else."""

    def __init__(self, console=err, status=None):
        self.console, self.status, self.started = console, status, time.monotonic()

    def __call__(self, event: Event) -> None:
        name = event.source.split(":", 1)[-1]
        if event.level == "progress" and self.status is not None:
            self.status.update(escape(f"{name}: {event.message}"))
            return
        style = STYLE[event.level]
        text = escape(event.message)
        where = f"{escape(name)}  " if name and name not in event.message else ""
        body = f"[{style}]{text}[/]" if style else text
        self.console.print(f"[dim]{time.monotonic() - self.started:6.1f}s[/] {where}{body}")


@contextmanager
def reporting(mode: Output, title: str) -> Iterator[Report]:
    """The presenter for this output mode; in text mode with a spinner titled `title`."""
    if mode == Output.json:
        yield json_lines()
        return
    with err.status(escape(title)) as status:
        yield Text(err, status)


class TaskLine:
    """One live line per task on a terminal: queued (place in line) → running (a bar of its
    steps) → storing → done. Without a terminal, a plain line per change."""

    def __init__(self, console=err):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.live = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("steps"), TimeElapsedColumn(), console=getattr(console, "real", console))
        self.rows: dict[str, int] = {}

    def __enter__(self) -> TaskLine:
        if self.console.is_terminal:
            self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        self.live.stop()

    def __call__(self, event: Event) -> None:
        name = event.source.split(":", 1)[-1]
        if not self.console.is_terminal:
            self.console.print(f"{escape(name)}: {escape(event.message)}")
            return
        if name not in self.rows:
            self.rows[name] = self.live.add_task(name, total=None)
        row = self.rows[name]
        progress = (event.data or {}).get("progress") or {}
        if progress:
            self.live.update(row, total=progress["steps"], completed=progress["step"])
        if event.status == "completed":
            task = self.live.tasks[self.rows[name]]
            self.live.update(row, completed=task.total or 1, total=task.total or 1)
        if event.status == "completed":
            what = "done"
        elif progress and event.message.startswith("running"):
            what = "running"  # the bar, its count and the time say the rest
        else:
            what = event.message
        self.live.update(row, description=escape(f"{name[:12]}: {what}"))


@contextmanager
def task_lines(mode: Output) -> Iterator[Report]:
    """The presenter of a task's lifecycle: live lines, or JSON lines under --output json."""
    if mode == Output.json:
        yield json_lines()
        return
    with TaskLine(err) as line:
        yield line


def tee(*reports: Report) -> Report:
    """One report that hands every event to each of `reports` (a progress bar and a presenter)."""
    def report(event: Event) -> None:
        for r in reports:
            r(event)

    return report
