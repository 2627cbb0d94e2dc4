"""What can go wrong with a task, as the agent decides what to do with its message:

    TaskFailure
    ├── TransientFailure   retry later (timeouts, 5xx, throttling, connection refused): the
    │                      message goes back to the queue; the receive count bounds retries
    └── PermanentFailure   never retry (the runtime rejected it, unknown model, bad input,
                           past its deadline while running): a `failed` notice, and the
                           message is deleted

and the two ends that are no failure: Cancelled (the caller asked while it ran) and Expired
(its deadline passed while it was queued); each gets its notice and the message is deleted.

and what a runtime call returns when it works (RuntimeOutput).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class TaskFailure(Exception):
    retry = False

    def __init__(self, code: str, message: str, *, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        d = {"code": self.code, "message": self.message}
        if self.field:
            d["field"] = self.field
        return d


class TransientFailure(TaskFailure):
    retry = True


class PermanentFailure(TaskFailure):
    retry = False


class RuntimeUnusable(Exception):
    """The runtime can never take a task as it is (its model's setup failed; the config maps an
    input the model lacks): the agent says why and stops, rather than wait for it forever."""


class Cancelled(Exception):
    """The caller cancelled the task while the runtime ran it; the call was interrupted."""


class Expired(Exception):
    """The task's deadline passed before it started; it never reaches the runtime."""


class Refused(Exception):
    """The task store refused to record the task `running`: it was cancelled (or expired)
    before the runtime started it. Its call, sent alongside, was interrupted; nothing is kept."""


@dataclass
class RuntimeOutput:
    images: list[bytes]
    parameters: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    model: str | None = None
    #: Each image's media type (PNG unless the runtime says otherwise: image/jpeg, image/webp).
    media_types: list[str] = field(default_factory=list)
    #: The runtime's own measurements of the call (Cog's `metrics`, e.g. predict_time).
    metrics: dict = field(default_factory=dict)
    #: An answer that is not a file (a `predict` task's text or JSON), kept in the result document.
    value: object = None
