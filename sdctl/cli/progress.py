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


def tee(*reports: Report) -> Report:
    """One report that hands every event to each of `reports` (a progress bar and a presenter)."""
    def report(event: Event) -> None:
        for r in reports:
            r(event)

    return report
