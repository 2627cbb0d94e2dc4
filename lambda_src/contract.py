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
STATUS_INDEX = "by-status"
CLIENT_TAG = "sdctl:client"
DEFAULT_CLIENT = "default"
METADATA_KEYS = {"id", "runtime", "tasktype", "prefix", "context", "deadline", "ttlSeconds", "deadlinePolicy",
                 "webhook", "priority"}
PRIORITIES = ("high", "normal", "low")
DEFAULT_PRIORITY = "normal"
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


# -- webhooks (Standard Webhooks, standardwebhooks.com) --------------------------------------------
WEBHOOK_EVENTS = ("running", "progress", "completed", "failed", "expired", "cancelled")
DEFAULT_WEBHOOK_EVENTS = ("completed", "failed", "expired", "cancelled")
WEBHOOK_URL_MAX = 2048
#: Seconds before each retry of a delivery that failed (timeout, connection error, 429, 5xx):
#: about 25 hours in all, then the event goes to the webhooks dead-letter queue.
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 28800)
#: After `sdctl webhooks secret --rotate`, the old secret signs beside the new one this long.
ROTATION_OVERLAP_SECONDS = 86400


def webhook_fields(meta: dict, *, allow_loopback: bool = False) -> dict:
    """metadata.webhook: {url, events?}, normalised with the default events. An https URL whose
    host is a name or a public address (the deliverer checks the name's addresses again before
    each delivery); http://127.0.0.1 only on a local stack started to allow it."""
    import ipaddress
    from urllib.parse import urlsplit

    if "webhook" not in meta:
        return {}
    hook = meta["webhook"]
    if not isinstance(hook, dict) or set(hook) - {"url", "events"}:
        raise Invalid("task.metadata.webhook", "task.metadata.webhook must be an object with url and optional events")
    url = hook.get("url")
    if not isinstance(url, str) or len(url) > WEBHOOK_URL_MAX:
        raise Invalid("task.metadata.webhook.url", f"task.metadata.webhook.url must be a URL of at most "
                                                   f"{WEBHOOK_URL_MAX} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise Invalid("task.metadata.webhook.url", "task.metadata.webhook.url is not a valid URL") from None
    loopback = allow_loopback and parts.scheme in ("http", "https") and host == "127.0.0.1"
    if not loopback:
        if parts.scheme != "https" or not host or parts.username or parts.password:
            raise Invalid("task.metadata.webhook.url", "task.metadata.webhook.url must be https://host/... "
                                                       "(no credentials in it)")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if host.lower() == "localhost" or (address is not None and not address.is_global):
            raise Invalid("task.metadata.webhook.url", "task.metadata.webhook.url must reach a public address")
    events = hook.get("events", list(DEFAULT_WEBHOOK_EVENTS))
    if not isinstance(events, list) or not events or any(e not in WEBHOOK_EVENTS for e in events):
        raise Invalid("task.metadata.webhook.events",
                      f"task.metadata.webhook.events must be a non-empty list of: {', '.join(WEBHOOK_EVENTS)}")
    return {"webhook": {"url": url, "events": sorted(set(events), key=WEBHOOK_EVENTS.index)}}


def webhook_event_id(task_id: str, status: str, step: int | None = None) -> str:
    """`webhook-id`: the same for every delivery of one event, so receivers dedupe on it."""
    return f"{task_id}.{status}" + (f".{step}" if step is not None else "")


def sign(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: one `v1,<base64 HMAC-SHA256>` per secret (`whsec_<base64>`), space
    separated (two during a rotation), over `{id}.{timestamp}.{body}`."""
    import base64
    import hashlib
    import hmac

    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(base64.b64decode(s.removeprefix("whsec_")), signed,
                                                      hashlib.sha256).digest()).decode() for s in secrets)


def verify(secret: str, headers: dict, body: bytes, *, tolerance: int = 300, now: float | None = None) -> None:
    """Raise ValueError unless `headers` carry a signature of `body` by `secret` within the
    timestamp tolerance (what a receiver does)."""
    import hmac

    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, stamp, given = lower["webhook-id"], int(lower["webhook-timestamp"]), lower["webhook-signature"]
    except (KeyError, ValueError):
        raise ValueError("missing or malformed webhook-id, webhook-timestamp or webhook-signature") from None
    if abs((now if now is not None else time.time()) - stamp) > tolerance:
        raise ValueError(f"webhook-timestamp {stamp} is outside the {tolerance} s tolerance")
    expected = sign([secret], msg_id, stamp, body)
    if not any(hmac.compare_digest(expected, s) for s in given.split(" ") if s.startswith("v1,")):
        raise ValueError("no signature matches the secret")


def webhook_message(hook: dict, note: dict, *, step: int | None = None) -> dict:
    """What goes on the webhooks queue for one event of a task: where to deliver it and the
    payload (`{"type": "task.<status>", "timestamp", "data": <the notification>}`). Written by the
    agent and the API handler, read by the deliverer (lambda_src/webhooks.py)."""
    return {"id": webhook_event_id(note["id"], note["status"], step), "url": hook["url"],
            "payload": {"type": f"task.{note['status']}",
                        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "data": note}}


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
    if not isinstance(prefix, str) or not safe_prefix(prefix):
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
    normalised.update(deadline_fields(meta))
    normalised.update(webhook_fields(meta, allow_loopback=allow_loopback))
    return {"metadata": normalised, "content": content}
