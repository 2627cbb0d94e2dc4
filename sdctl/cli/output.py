"""The output mode every command shares (text or json), with no imports of its own, so the
root command can read `--output` before any command module (or rich) is loaded."""

from __future__ import annotations

from enum import StrEnum


class Output(StrEnum):
    text = "text"
    json = "json"


# What the error printer needs to know about the running command.
RUN = {"output": Output.text}
