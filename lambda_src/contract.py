"""The handler's own copy of the task contract (sdctl/contracts/tasks.py): it ships with the
handler alone in the Lambda zip, so it cannot import sdctl; tests/test_contracts.py keeps the
two equal. Standard library only."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9!_.*'()-]+$")
TASK_TYPES = {
    "sdwebui": ("text-to-image", "image-to-image", "extra-single-image"),
    "diffusers": ("text-to-image", "image-to-image", "extra-single-image"),
    "comfyui": ("pipeline",),
}
STATES = ("queued", "running", "completed", "failed", "cancelled", "expired")
FINAL = ("completed", "failed", "cancelled", "expired")
TTL_MAX_SECONDS = 1209600
DEADLINE_POLICIES = ("drop", "interrupt")


class Invalid(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def safe_prefix(prefix: str) -> bool:
    if not prefix or len(prefix) > 512 or prefix.startswith("/"):
        return False
    return all(p not in (".", "..") and PREFIX_SEGMENT.match(p) for p in prefix.rstrip("/").split("/"))


def deadline_fields(meta: dict) -> dict:
    """metadata.deadline (RFC 3339) or metadata.ttlSeconds, as one UTC `deadline`; and the
    policy. Nothing when neither is given (a guidance client's task is unchanged)."""
    if "deadline" in meta and "ttlSeconds" in meta:
        raise Invalid("task.metadata.ttlSeconds", "give task.metadata.deadline or task.metadata.ttlSeconds, not both")
    out = {}
    if "ttlSeconds" in meta:
        ttl = meta["ttlSeconds"]
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= TTL_MAX_SECONDS:
            raise Invalid("task.metadata.ttlSeconds",
                          f"task.metadata.ttlSeconds must be a whole number of seconds from 1 to {TTL_MAX_SECONDS}")
        out["deadline"] = datetime.fromtimestamp(time.time() + ttl, UTC)
    elif "deadline" in meta:
        at = parse_deadline(meta["deadline"])
        if at is None:
            raise Invalid("task.metadata.deadline",
                          "task.metadata.deadline must be an RFC 3339 date-time with its offset, "
                          "e.g. 2026-12-02T10:00:00Z")
        if at.timestamp() <= time.time():
            raise Invalid("task.metadata.deadline", f"task.metadata.deadline {meta['deadline']} has passed")
        out["deadline"] = at
    if "deadlinePolicy" in meta:
        if meta["deadlinePolicy"] not in DEADLINE_POLICIES:
            raise Invalid("task.metadata.deadlinePolicy",
                          f"task.metadata.deadlinePolicy must be one of {', '.join(DEADLINE_POLICIES)}")
        if "deadline" not in out:
            raise Invalid("task.metadata.deadlinePolicy", "task.metadata.deadlinePolicy needs a deadline or ttlSeconds")
        out["deadlinePolicy"] = meta["deadlinePolicy"]
    if "deadline" in out:
        out["deadline"] = out["deadline"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out


def parse_deadline(value) -> datetime | None:
    if not isinstance(value, str) or "T" not in value.upper():
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at.astimezone(UTC) if at.tzinfo is not None else None
