"""The task contract, written once: which task types each runtime type takes, what a task id
and an S3 key prefix may be, the task store's states, timestamp format and status index.

Used by the config (runtime types), the agent (parsing queue messages), the task store's
readers (tasks, queues) and the local plan. The API handler (lambda_src/handler.py) ships
alone in its Lambda zip, so it keeps a copy; tests/test_contracts.py keeps the two equal.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sdctl.contracts.runtimes import task_types

#: metadata.tasktype each runtime type accepts (the wire contract; each type's module says).
TASK_TYPES: dict[str, tuple[str, ...]] = task_types()
#: metadata.id and metadata.runtime.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: One segment of an S3 key prefix: S3's "safe characters".
PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9!_.*'()-]+$")
PREFIX_MAX = 512
DEFAULT_PREFIX = "output"

#: The tag on every API key that names its client: the API handler records the caller's
#: client on each task (`client`), `sdctl tasks list --client` filters on it. The stack's own
#: key is the `default` client.
CLIENT_TAG = "sdctl:client"
DEFAULT_CLIENT = "default"

#: Task store states, and those a task never leaves. `expired`: its deadline passed while it
#: was still queued, so it never ran.
STATES = ("queued", "running", "completed", "failed", "cancelled", "expired")
FINAL = ("completed", "failed", "cancelled", "expired")
#: metadata.priority: one queue (a lane) per priority per runtime; agents drain them in this
#: order. A task without one (every guidance client's) is `normal`.
PRIORITIES = ("high", "normal", "low")
DEFAULT_PRIORITY = "normal"
#: metadata.ttlSeconds: at most SQS's longest retention (14 days); a task cannot wait longer.
TTL_MAX_SECONDS = 1209600
#: metadata.deadlinePolicy: `drop` (default) never starts a task past its deadline;
#: `interrupt` also stops a running one at its deadline.
DEADLINE_POLICIES = ("drop", "interrupt")
#: The global secondary index by (status, created_at), for listings and queue views.
STATUS_INDEX = "by-status"
#: Timestamps in the store: ISO 8601 in UTC with microseconds, so they sort as text.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def is_safe_prefix(prefix: str) -> bool:
    """An S3 key prefix with no leading '/', and no empty, '.' or '..' segment (a trailing '/'
    is allowed and ignored)."""
    if not isinstance(prefix, str) or not prefix or len(prefix) > PREFIX_MAX or prefix.startswith("/"):
        return False
    return all(p not in (".", "..") and PREFIX_SEGMENT.match(p) for p in prefix.rstrip("/").split("/"))


def parse_deadline(value) -> datetime | None:
    """An RFC 3339 date-time with its offset (`2026-12-02T10:00:00Z`), as an aware datetime;
    None for anything else (no offset, not a string, not a date)."""
    if not isinstance(value, str) or "T" not in value.upper():
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at.astimezone(UTC) if at.tzinfo is not None else None


#: The extension an image is stored under, by its media type (PNG unless the runtime says).
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def output_keys(prefix: str, task_id: str, count: int, media_types: list[str] | None = None) -> tuple[list[str], str]:
    """S3 keys for a task's images and its result JSON (`<prefix>/<id>/<id>-<n>.png`, or .jpg or
    .webp by each image's media type; `<prefix>/<id>/<id>.out`). They depend on the id only, so a
    retried task overwrites its own objects instead of adding new ones."""
    base = f"{prefix.rstrip('/')}/{task_id}"
    types = list(media_types or []) + ["image/png"] * count
    return ([f"{base}/{task_id}-{n}.{EXTENSIONS.get(types[n - 1], 'png')}" for n in range(1, count + 1)],
            f"{base}/{task_id}.out")


def result_key(prefix: str, task_id: str) -> str:
    return output_keys(prefix, task_id, 0)[1]


def timestamp(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).astimezone(UTC).strftime(TIMESTAMP_FORMAT)


#: Every `error.code` a failed task can carry, with what it means; the agent raises only these
#: (tests/test_contracts.py checks the agent's sources and docs/wire-contract.md against it).
ERROR_CODES = {
    "invalid-task": "the task's content is not what its task type takes",
    "unsupported-tasktype": "the runtime does not do this task type",
    "unsupported-runtime": "the agent has no adapter for the runtime's type",
    "unknown-model": "the task names a model the runtime does not have",
    "model-switch-disabled": "the task names another model and the runtime has dynamicModel off",
    "unsafe-input": "an input URL is not https, or its host resolves to a non-public address",
    "input-fetch-failed": "an input could not be fetched (retried while the failure may pass: a timeout, "
                          "a 429 or 5xx, a name that did not resolve)",
    "input-too-large": "an input is over the size the agent fetches",
    "input-too-slow": "an input took longer than the agent waits for it",
    "runtime-rejected": "the runtime refused the request (4xx)",
    "runtime-error": "the runtime failed while it worked (5xx)",
    "runtime-timeout": "the runtime did not answer within maxTaskSeconds",
    "runtime-unavailable": "the runtime could not be reached",
    "runtime-bad-response": "the runtime's answer could not be read",
    "runtime-interrupted": "the runtime was interrupted by something other than the task's caller",
    "runtime-restarted": "the runtime restarted while it worked on the task",
    "pipeline-failed": "a ComfyUI node failed",
    "no-images": "the runtime answered with no image",
    "deadline": "interrupted: it ran past maxTaskSeconds, or past its deadline under deadlinePolicy: interrupt",
}


def error_codes_markdown() -> str:
    """docs/wire-contract.md's list of error codes."""
    return "\n".join(f"- `{code}`: {what}" for code, what in ERROR_CODES.items())


def notification(task: dict, *, status: str, bucket: str, image_keys: list[str], output_key: str,
                 error: dict | None = None, model: str | None = None) -> dict:
    """The result notification of the wire contract: what the results topic, a webhook event
    and a result document (`.out`) tell of a task. The agent sends it for every ending; the
    API handler for a task cancelled while queued."""
    meta = task["metadata"]
    note = {
        "id": meta["id"],
        "runtime": meta["runtime"],
        "result": status == "completed",
        "status": status,
        "image_url": [f"s3://{bucket}/{k}" for k in image_keys],
        "output_url": f"s3://{bucket}/{output_key}",
        "context": meta.get("context", ""),
    }
    if model:
        note["model"] = model
    if error:
        note["error"] = error
    return note


def wants_webhook(task: dict, status: str) -> bool:
    """Whether the task's webhook asked for this event."""
    return status in ((task.get("metadata") or {}).get("webhook") or {}).get("events", ())
