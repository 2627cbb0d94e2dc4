"""The task record: one item per task in the task store (DynamoDB), written by the API handler
(`queued`), updated by the agent (running, progress, completed, failed, cancelled, expired) and
by the handler's cancel, read by the API's GET, the operate commands and the simulator's
measurements. Every attribute is declared once, in TaskRecord: writers name attributes through
`item()` and `update()`, which refuse a name it does not declare, and readers turn an item into
plain values with `plain()`. Standard library only: the Lambda zip and the agent image carry it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class TaskRecord:
    """What the store keeps of a task (None: not set yet). Times are contracts.tasks.timestamp()s."""

    id: str
    status: str  # contracts.tasks.STATES
    runtime: str | None = None
    tasktype: str | None = None
    prefix: str | None = None
    priority: str | None = None
    client: str | None = None  # whose API key sent it
    prompt: str | None = None  # its first characters, for lists
    seed: int | None = None  # as asked; once completed, the seed used
    deadline: str | None = None
    webhook: dict | None = None
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None  # when its runtime call began (the last attempt's)
    finished_at: str | None = None
    attempts: int | None = None
    progress: dict | None = None  # step, steps, percent, eta_seconds while it runs
    cancel_requested: bool | None = None
    runtime_seconds: float | None = None  # the runtime call, whole (a batched call's, shared)
    gpu_seconds: float | None = None  # its share of the call
    cost_usd: float | None = None
    model: str | None = None
    image_url: list | None = None
    output_url: str | None = None
    error: dict | None = None  # code and message (contracts.tasks.ERROR_CODES)
    expires_at: int | None = None  # epoch seconds: DynamoDB's TTL removes the item then
    request_hash: str | None = None  # the handler's own bookkeeping while it publishes
    publishing: bool | None = None


ATTRIBUTES = frozenset(f.name for f in fields(TaskRecord))
#: Bookkeeping no reader is shown.
PRIVATE = frozenset({"expires_at", "request_hash", "publishing"})


def _declared(name: str) -> str:
    if name not in ATTRIBUTES:
        raise ValueError(f"the task record has no attribute {name!r} (sdctl/contracts/record.py)")
    return name


def typed(value) -> dict:
    """A plain value as a DynamoDB attribute value."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list | tuple):
        return {"L": [typed(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {str(k): typed(v) for k, v in value.items()}}
    raise TypeError(f"no DynamoDB type for {type(value).__name__}")


def untyped(value: dict):
    """A DynamoDB attribute value as a plain one (numbers as int where whole, else float)."""
    (kind, v), = value.items()
    if kind == "N":
        number = float(v)
        return int(number) if number.is_integer() and "." not in v and "e" not in v.lower() else number
    if kind in ("S", "BOOL"):
        return v
    if kind == "NULL":
        return None
    if kind == "L":
        return [untyped(x) for x in v]
    if kind == "M":
        return {k: untyped(x) for k, x in v.items()}
    if kind in ("SS", "NS"):
        return [untyped({kind[0]: x}) for x in v]
    raise ValueError(f"unexpected DynamoDB type {kind}")


def key(task_id: str) -> dict:
    return {"id": {"S": task_id}}


def item(**values) -> dict:
    """A whole record as a DynamoDB item (None values left out)."""
    return {_declared(k): typed(v) for k, v in values.items() if v is not None}


def plain(found: dict, *, private: bool = False) -> dict:
    """An item as the API and the CLI show it: plain values, bookkeeping left out."""
    return {k: untyped(v) for k, v in found.items() if private or k not in PRIVATE}


def record(found: dict) -> TaskRecord:
    """An item as a TaskRecord (attributes it does not declare, from a newer writer, left out)."""
    values = plain(found, private=True)
    return TaskRecord(**{k: v for k, v in values.items() if k in ATTRIBUTES})


def update(*, set: dict | None = None, if_missing: dict | None = None, remove: tuple[str, ...] = (),
           condition: str = "", values: dict | None = None) -> dict:
    """UpdateItem's expressions for these attributes: `set` them, set `if_missing` ones only
    where absent, `remove` others; `condition` names attributes as #name and its own values
    (`values`, plain) as :name. Every attribute must be declared in TaskRecord."""
    names, typed_values, parts = {}, {}, []

    def name(attribute: str) -> str:
        names[f"#{_declared(attribute)}"] = attribute
        return f"#{attribute}"

    for attribute, value in (set or {}).items():
        parts.append(f"{name(attribute)} = :{attribute}")
        typed_values[f":{attribute}"] = typed(value)
    for attribute, value in (if_missing or {}).items():
        parts.append(f"{name(attribute)} = if_not_exists({name(attribute)}, :{attribute})")
        typed_values[f":{attribute}"] = typed(value)
    expression = "SET " + ", ".join(parts) if parts else ""
    if remove:
        expression += (" " if expression else "") + "REMOVE " + ", ".join(name(a) for a in remove)
    request = {"UpdateExpression": expression}
    if condition:
        for attribute in re.findall(r"#(\w+)", condition):
            name(attribute)
        request["ConditionExpression"] = condition
        typed_values.update({f":{k}": typed(v) for k, v in (values or {}).items()})
    request["ExpressionAttributeNames"] = names
    if typed_values:
        request["ExpressionAttributeValues"] = typed_values
    return request
