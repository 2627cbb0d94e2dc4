"""The wire contract of a request (POST /v1alpha2), checked once: the API handler validates
every task with this before it records or publishes anything (docs/wire-contract.md).
Standard library only: it ships in the Lambda zip."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sdctl.contracts.request_errors import Invalid
from sdctl.contracts.tasks import (
    DEADLINE_POLICIES,
    ID_PATTERN,
    PRIORITIES,
    TASK_TYPES,
    TTL_MAX_SECONDS,
    is_safe_prefix,
    parse_deadline,
    timestamp,
)
from sdctl.contracts.webhooks import webhook_fields

__all__ = ["METADATA_KEYS", "Invalid", "deadline_fields", "validate"]

METADATA_KEYS = {"id", "runtime", "tasktype", "prefix", "context", "deadline", "ttlSeconds", "deadlinePolicy",
                 "webhook", "priority", "maxAttempts"}
#: metadata.maxAttempts: how many times a task may run at most; fewer than its queue allows ends
#: it `failed` sooner (an expensive or side-effecting task need not be tried three times).
MAX_ATTEMPTS = 100


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
        out["deadline"] = timestamp(out["deadline"])
    return out


def validate(body, runtimes: dict, *, default_prefix: str = "output", allow_loopback: bool = False) -> dict:
    """Check a request body against the wire contract; return the normalised task. Every
    problem is an Invalid naming the field."""
    if not isinstance(body, dict):
        raise Invalid("body", "the body must be a JSON object")
    task = body.get("task")
    if not isinstance(task, dict):
        raise Invalid("task", "'task' must be an object with 'metadata' and 'content'")
    unknown = sorted(set(task) - {"metadata", "content"})
    if unknown:
        raise Invalid(f"task.{unknown[0]}", f"unknown field task.{unknown[0]}")
    meta = task.get("metadata")
    if not isinstance(meta, dict):
        raise Invalid("task.metadata", "'task.metadata' must be an object")
    unknown = sorted(set(meta) - METADATA_KEYS)
    if unknown:
        raise Invalid(f"task.metadata.{unknown[0]}", f"unknown field task.metadata.{unknown[0]}")
    for key in ("id", "runtime"):
        value = meta.get(key)
        if not isinstance(value, str) or not ID_PATTERN.match(value):
            raise Invalid(f"task.metadata.{key}",
                          f"task.metadata.{key} must be 1-64 letters, digits, '-' or '_'")
    runtime = meta["runtime"]
    if runtime not in runtimes:
        known = ", ".join(sorted(runtimes)) or "none"
        raise Invalid("task.metadata.runtime", f"unknown runtime {runtime!r}; deployed: {known}")
    allowed = TASK_TYPES.get(runtimes[runtime], ())
    tasktype = meta.get("tasktype")
    if tasktype not in allowed:
        raise Invalid("task.metadata.tasktype",
                      f"task.metadata.tasktype must be one of {', '.join(allowed)} "
                      f"for a {runtimes[runtime]} runtime")
    prefix = meta.get("prefix", default_prefix)
    if not isinstance(prefix, str) or not is_safe_prefix(prefix):
        raise Invalid("task.metadata.prefix",
                      "task.metadata.prefix must be a relative S3 key prefix: segments of "
                      "letters, digits and !_.*'()- separated by '/', no '.' or '..', no leading '/'")
    content = task.get("content")
    if not isinstance(content, dict):
        raise Invalid("task.content", "'task.content' must be an object (the runtime's request)")
    normalised = {"id": meta["id"], "runtime": runtime, "tasktype": tasktype,
                  "prefix": prefix.rstrip("/"), "context": meta.get("context", "")}
    if "priority" in meta:
        if meta["priority"] not in PRIORITIES:
            raise Invalid("task.metadata.priority", f"task.metadata.priority must be one of {', '.join(PRIORITIES)}")
        normalised["priority"] = meta["priority"]
    if "maxAttempts" in meta:
        value = meta["maxAttempts"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS:
            raise Invalid("task.metadata.maxAttempts", f"task.metadata.maxAttempts must be an integer from 1 to "
                                                       f"{MAX_ATTEMPTS}")
        normalised["maxAttempts"] = value
    normalised.update(deadline_fields(meta))
    normalised.update(webhook_fields(meta, allow_loopback=allow_loopback))
    return {"metadata": normalised, "content": content}
