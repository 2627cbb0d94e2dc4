"""What a long operation reports while it works: one event type, one stream.

Every executor and every long operate call takes a `report: Report` and calls it with an
`Event`; none of them prints. The CLI chooses the presenter (`sdctl/cli/progress.py`): rich
text on stderr, or JSON lines on stderr under `--output json`, so a script reads progress
from stderr and the result from stdout.

    Event(source="stack:sd-network", message="Vpc CREATE_COMPLETE",
          level="ok", status="CREATE_COMPLETE", data={"logical_id": "Vpc"})

`source` says what the event is about, as `kind:name` (stack, release, image, local, task,
karpenter, s3, ...). `level` says how to show it:

    step      a phase begins ("helm upgrade --install keda")
    progress  a state that replaces the previous one (a spinner's text, a task's status)
    detail    a line of someone else's output (a build log); shown dim
    ok        something finished well
    warning   worth a look, not a failure
    error     something failed (the operation may still go on)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

LEVELS = ("step", "progress", "detail", "ok", "warning", "error")


@dataclass(frozen=True)
class Event:
    source: str
    message: str
    level: str = "step"
    status: str | None = None
    data: Mapping = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"event level {self.level!r} is not one of {', '.join(LEVELS)}")

    def to_dict(self) -> dict:
        """One JSON line's object; every key always present, so scripts read it without guards."""
        return {"event": self.level, "source": self.source, "message": self.message, "status": self.status,
                "data": dict(self.data), "at": round(self.at, 3)}


Report = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The report of a caller that wants no progress."""
