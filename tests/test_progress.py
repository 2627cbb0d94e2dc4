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
