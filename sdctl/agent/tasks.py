"""Parse queue messages into tasks and build result documents (pure functions)."""

from __future__ import annotations

import json

from sdctl.agent.failures import PermanentFailure
from sdctl.contracts.tasks import DEFAULT_PREFIX, ID_PATTERN, is_safe_prefix


def parse_message(body: str) -> dict:
    """The task in an SQS message body: an SNS envelope, a raw task, or a v1alpha2 body."""
    try:
        data = json.loads(body)
    except ValueError:
        raise PermanentFailure("invalid-task", "the message body is not JSON") from None
    if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
        try:
            data = json.loads(data["Message"])
        except (TypeError, ValueError):
            raise PermanentFailure("invalid-task", "the SNS message is not JSON") from None
    if isinstance(data, dict) and isinstance(data.get("task"), dict):
        data = data["task"]
    if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
        raise PermanentFailure("invalid-task", "the message holds no task metadata", field="task.metadata")
    meta = data["metadata"]
    for key in ("id", "runtime"):
        if not isinstance(meta.get(key), str) or not ID_PATTERN.match(meta[key]):
            raise PermanentFailure("invalid-task", f"task.metadata.{key} is missing or invalid",
                                   field=f"task.metadata.{key}")
    prefix = meta.get("prefix") or DEFAULT_PREFIX
    if not is_safe_prefix(prefix):
        raise PermanentFailure("invalid-task", "task.metadata.prefix is not a safe key prefix",
                               field="task.metadata.prefix")
    if not isinstance(data.get("content"), dict):
        raise PermanentFailure("invalid-task", "task.content must be an object", field="task.content")
    meta = dict(meta, prefix=prefix.rstrip("/"))
    return {"metadata": meta, "content": data["content"]}
