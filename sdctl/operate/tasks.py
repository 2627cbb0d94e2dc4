"""Reading the task store: list tasks, follow one to its end, and parse `--since`.

`get`, `cancel` and `wait` go through the API (the same key any client has); `list` reads
the table directly with the operator's credentials, through the by-status index when a
status is given.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sdctl.contracts import ledger
from sdctl.contracts.events import Event, Report, ignore
from sdctl.contracts.tasks import FINAL, STATES, STATUS_INDEX, timestamp
from sdctl.errors import SdctlError, UsageError, WaitTimeout

_DURATION = re.compile(r"^(\d+)([smhd])$")


def duration_seconds(value: str) -> int | None:
    """`30s`, `15m`, `2h`, `3d` in seconds; None if it is not such a duration."""
    m = _DURATION.match(value.strip())
    if not m:
        return None
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def since_timestamp(value: str | None, now: datetime | None = None) -> str | None:
    """`--since 15m`, `2h`, `3d` or an ISO time, as the store's ISO-8601 UTC timestamp."""
    if not value:
        return None
    now = now or datetime.now(UTC)
    seconds = duration_seconds(value)
    if seconds is not None:
        at = now - timedelta(seconds=seconds)
    else:
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--since {value!r} is neither a duration (30s, 15m, 2h, 3d) nor an ISO time") from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
    return timestamp(at)


def list_request(table: str, *, status: str | None, runtime: str | None, since: str | None,
                 client: str | None = None) -> tuple[str, dict]:
    """The DynamoDB call (query on the status index, else a scan) that lists matching tasks. Pure."""
    if status is not None and status not in STATES:
        raise UsageError(f"--status {status!r} is not one of {', '.join(STATES)}")
    names: dict[str, str] = {}
    values: dict[str, dict] = {}
    filters = []
    if client:
        names["#cl"] = "client"
        values[":client"] = {"S": client}
        filters.append("#cl = :client")
    if runtime:
        names["#r"] = "runtime"
        values[":runtime"] = {"S": runtime}
        filters.append("#r = :runtime")
    if status:
        names["#s"] = "status"
        values[":status"] = {"S": status}
        key = "#s = :status"
        if since:
            names["#c"] = "created_at"
            values[":since"] = {"S": since}
            key += " AND #c >= :since"
        req = {"TableName": table, "IndexName": STATUS_INDEX, "KeyConditionExpression": key,
               "ScanIndexForward": False}
        op = "query"
    else:
        if since:
            names["#c"] = "created_at"
            values[":since"] = {"S": since}
            filters.append("#c >= :since")
        # the node ledger's rows live in the same table (sdctl/contracts/ledger.py): not tasks
        names["#i"] = "id"
        values[":ledger"] = {"S": ledger.PREFIX}
        filters.append("NOT begins_with(#i, :ledger)")
        req = {"TableName": table}
        op = "scan"
    if filters:
        req["FilterExpression"] = " AND ".join(filters)
    if names:
        req["ExpressionAttributeNames"] = names
    if values:
        req["ExpressionAttributeValues"] = values
    return op, req


def list_tasks(dynamodb, table: str, *, status: str | None = None, runtime: str | None = None,
               since: str | None = None, limit: int = 50, client: str | None = None) -> list[dict]:
    """Newest first."""
    from sdctl.contracts.record import plain

    op, req = list_request(table, status=status, runtime=runtime, since=since, client=client)
    paginator = dynamodb.get_paginator(op)
    items = []
    for page in paginator.paginate(**req):
        items += [plain(item) for item in page.get("Items", [])]
        if op == "query" and len(items) >= limit:
            break
    items.sort(key=lambda t: t.get("created_at", ""), reverse=True)
    return items[:limit]


def describe(record: dict) -> str:
    """One line for a task's state: its place in line, its steps, or how it ended."""
    status = str(record.get("status"))
    place, progress = record.get("queue") or {}, record.get("progress") or {}
    if status == "queued" and place:
        where = f"{'at least ' if place.get('at_least') else ''}#{place['position']} in line"
        eta = (f", ~{place['eta_seconds']:.0f} s" if place.get("eta_seconds") is not None
               else ", no estimate yet" if place.get("eta_basis") else "")
        return f"queued ({where}{eta})"
    if status == "running" and progress:
        if progress["step"] >= progress["steps"]:
            return "storing"
        return (f"running: step {progress['step']}/{progress['steps']} ({progress['percent']:.0f}%), "
                f"~{progress['eta_seconds']:.0f} s left")
    return status


def wait(get: Callable[[], dict], *, task_id: str, timeout: float,
         report: Report = ignore, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic, poll: float = 0.25) -> dict:
    """Poll a task's record until it ends; report every change a user would see (status, place
    in line, steps) as an Event whose data is the record."""
    from sdctl.errors import ApiError

    start, last, busy = clock(), None, 0.0
    while True:
        try:
            record = get()
        except ApiError as e:
            if e.status != 429:
                raise
            busy = min(max(busy * 2, 1.0), 10.0)  # throttled: the usage plan's rate, shared with others
            sleep(busy)
            continue
        status, line = record.get("status"), describe(record)
        if line != last:
            last = line
            report(Event(f"task:{task_id}", line, "ok" if status == "completed" else
                         ("error" if status in FINAL else "progress"), status, record))
        if status in FINAL:
            return record
        if clock() - start > timeout:
            raise WaitTimeout(f"task {task_id} is still {status} after {timeout:.0f}s",
                              hint=f"keep waiting with `sdctl tasks wait {task_id}`")
        sleep(poll if status == "running" else max(poll, 1.0))  # steps move fast; a queue slowly


def require_store(target) -> str:
    if not target.tasks_table:
        raise SdctlError("this deployment has no task store", hint="redeploy with this sdctl version (`sdctl deploy`)")
    return target.tasks_table


def measured_seconds_per_image(dynamodb, table: str, *, since: str | None, sample: int = 1000) -> dict:
    """Runtime seconds per image over recent completed tasks (for `sdctl cost --measured`)."""
    rows = list_tasks(dynamodb, table, status="completed", since=since, limit=sample)
    timed = [t for t in rows if t.get("runtime_seconds") is not None]
    images = sum(len(t.get("image_url") or []) for t in timed)
    # A batched call's seconds are shared: each task's own share is its gpu_seconds.
    seconds = sum(float(t.get("gpu_seconds", t["runtime_seconds"])) for t in timed)
    if not images:
        raise SdctlError("no completed tasks with timings in the task store" + (f" since {since}" if since else ""),
                         hint="run some tasks first, or pass --seconds-per-image")
    priced = [t for t in timed if t.get("cost_usd") is not None]
    priced_images = sum(len(t.get("image_url") or []) for t in priced)
    return {"seconds_per_image": round(seconds / images, 4), "tasks": len(rows), "images": images,
            # What the tasks themselves say they cost (their node's price times their GPU seconds).
            "cost_usd_per_image": round(sum(float(t["cost_usd"]) for t in priced) / priced_images, 6)
            if priced_images else None, "priced_tasks": len(priced)}
