"""The event stream's two presenters, as a command uses them (sdctl/cli/progress.py)."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from sdctl.cli.progress import Text, json_lines, tee
from sdctl.contracts.events import Event


class Spinner:
    """What rich's `Console.status` hands a presenter: something whose text can be replaced."""

    def __init__(self):
        self.texts = []

    def update(self, text):
        self.texts.append(text)


def test_text_shows_steps_as_lines_and_progress_on_the_spinner():
    buf, spinner = io.StringIO(), Spinner()
    show = Text(Console(file=buf, no_color=True, width=200), spinner)
    show(Event("release:sd-keda", "helm upgrade --install sd-keda (keda)"))
    show(Event("release:sd-sdruntime", "waiting: {'ready': 0}", "progress", "waiting"))
    show(Event("image:agent", "Step 1/9 : FROM python:3.12-slim", "detail"))
    show(Event("stack:sd-edge", "deployed", "ok", "deployed"))
    lines = buf.getvalue().splitlines()
    assert [line.split("s ", 1)[1] for line in lines] == [
        "helm upgrade --install sd-keda (keda)",  # the message names its source already
        "agent  Step 1/9 : FROM python:3.12-slim",
        "sd-edge  deployed"]
    assert spinner.texts == ["sd-sdruntime: waiting: {'ready': 0}"]


def test_text_without_a_spinner_prints_progress_too():
    """deploy asks before each change set; a spinner would hide the question, so it has none."""
    buf = io.StringIO()
    Text(Console(file=buf, no_color=True, width=200))(Event("stack:sd-edge", "Vpc  CREATE_IN_PROGRESS", "progress"))
    assert buf.getvalue().rstrip().endswith("sd-edge  Vpc  CREATE_IN_PROGRESS")


def test_text_keeps_brackets_a_message_carries():
    buf = io.StringIO()
    Text(Console(file=buf, no_color=True, width=200))(Event("image:agent", "pip install 'sdctl[local]'", "detail"))
    assert "pip install 'sdctl[local]'" in buf.getvalue()


def test_json_lines_write_one_object_per_event_with_every_key():
    buf = io.StringIO()
    report = tee(json_lines(buf), json_lines(buf))
    report(Event("task:t1", "running", "progress", "running", {"attempt": 1}, at=1.0))
    first, second = (json.loads(line) for line in buf.getvalue().splitlines())
    assert first == second == {"event": "progress", "source": "task:t1", "message": "running",
                               "status": "running", "data": {"attempt": 1}, "at": 1.0}


def test_an_event_with_an_unknown_level_is_refused():
    with pytest.raises(ValueError, match="'loud' is not one of"):
        Event("x", "y", "loud")


def test_waiting_on_a_task_reports_each_change_and_rides_out_throttling():
    """`sdctl tasks wait` / `generate`: one event per change a user sees (place in line, steps,
    the end); a 429 from the API's usage plan is waited out, not an error; a queued task is
    polled once a second, a running one four times a second."""
    from sdctl.errors import ApiError
    from sdctl.operate import tasks

    answers = iter([
        {"status": "queued", "queue": {"position": 2, "at_least": False, "eta_seconds": 20.0}},
        ApiError(429, "Too Many Requests"), ApiError(429, "Too Many Requests"),
        {"status": "running", "progress": {"step": 3, "steps": 20, "percent": 15.0, "eta_seconds": 4.0}},
        {"status": "running", "progress": {"step": 3, "steps": 20, "percent": 15.0, "eta_seconds": 4.0}},
        {"status": "running", "progress": {"step": 20, "steps": 20, "percent": 100.0, "eta_seconds": 0.0}},
        {"status": "completed"},
    ])

    def get():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    slept, events = [], []
    record = tasks.wait(get, task_id="t1", timeout=60, report=events.append, sleep=slept.append,
                        clock=lambda: 0.0)
    assert record["status"] == "completed"
    assert [e.message for e in events] == ["queued (#2 in line, ~20 s)",
                                           "running: step 3/20 (15%), ~4 s left", "storing", "completed"]
    assert slept == [1.0, 1.0, 2.0, 0.25, 0.25, 0.25]  # queued, two backoffs, then running


def test_an_api_error_other_than_throttling_ends_the_wait():
    from sdctl.errors import ApiError
    from sdctl.operate import tasks

    def get():
        raise ApiError(403, "Forbidden")

    with pytest.raises(ApiError, match="403"):
        tasks.wait(get, task_id="t1", timeout=60, sleep=lambda s: None, clock=lambda: 0.0)
