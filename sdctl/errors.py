"""The small typed hierarchy of errors sdctl reports to users.

Every error carries the exit code the CLI uses (0 ok, 1 failure, 2 usage/config) and an
optional hint that says what to do about it.
"""

from __future__ import annotations


class SdctlError(Exception):
    """A failure the user can act on. Exit code 1."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict:
        data: dict = {"type": type(self).__name__, "message": self.message}
        if self.hint:
            data["hint"] = self.hint
        return data


class UsageError(SdctlError):
    """The command was called wrongly. Exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration file is missing or invalid. Exit code 2.

    `problems` lists every problem found, each a dict with `path`, `line` and `message`.
    """

    def __init__(self, message: str, problems: list[dict] | None = None, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.problems = problems or []

    def to_dict(self) -> dict:
        data = super().to_dict()
        data["problems"] = self.problems
        return data

    def lines(self) -> list[str]:
        """Each problem as `file:line: path: message`, the way the CLI prints it."""
        out = []
        for p in self.problems:
            where = p.get("file", "")
            if p.get("line"):
                where += f":{p['line']}"
            field = f" {p['path']}:" if p.get("path") else ""
            out.append(f"{where}:{field} {p['message']}")
        return out


class ApiError(SdctlError):
    """The image API answered with an error status."""

    def __init__(self, status: int, message: str, *, body: object = None, hint: str | None = None):
        super().__init__(f"API answered {status}: {message}", hint=hint)
        self.status = status
        self.body = body

    def to_dict(self) -> dict:
        data = super().to_dict()
        data["status"] = self.status
        return data


class TaskFailed(SdctlError):
    """A task reached the `failed` state."""

    def __init__(self, task_id: str, reason: str, *, result: dict | None = None):
        super().__init__(f"task {task_id} failed: {reason}")
        self.task_id = task_id
        self.reason = reason
        self.result = result or {}


class WaitTimeout(SdctlError):
    """Waiting for something took longer than allowed."""


class LocalStackError(SdctlError):
    """The local stack is not running or could not start."""
