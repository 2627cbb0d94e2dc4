"""A queued task's place in line and when it may start, for GET /v1alpha2/tasks/{id}: read
from the task table's status index (DynamoDB), the way the API handler answers it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sdctl.contracts import record as rec
from sdctl.contracts.tasks import STATUS_INDEX, TIMESTAMP_FORMAT, timestamp


def position(db, table: str, record: dict) -> dict:
    """Where a queued task stands: how many of its runtime's queued tasks are older (one page of
    the status index; "at least" beyond it), and an ETA from what is ahead of it and how long
    its runtime's recent renders took: (the running tasks' expected remaining time + the tasks
    ahead x the mean render time) / the tasks running at once. With no render of the last hour
    to go on, no ETA is given, and `eta_basis` says why."""
    runtime = record.get("runtime", "")

    def query(status: str, condition: str, at: str, **kw) -> dict:
        return db.query(TableName=table, IndexName=STATUS_INDEX,
                        KeyConditionExpression=f"#status = :s AND #created_at {condition} :at",
                        FilterExpression="#runtime = :rt",
                        ExpressionAttributeNames={"#status": "status", "#created_at": "created_at",
                                                  "#runtime": "runtime"},
                        ExpressionAttributeValues={":s": {"S": status}, ":at": {"S": at}, ":rt": {"S": runtime}}, **kw)

    page = query("queued", "<", record["created_at"], Select="COUNT")
    ahead, more = page["Count"], "LastEvaluatedKey" in page
    hour_ago = timestamp(datetime.fromtimestamp(time.time() - 3600, UTC))
    recent = [rec.record(i) for i in query("completed", ">=", hour_ago, ScanIndexForward=False, Limit=200)["Items"]]
    seconds = [r.runtime_seconds for r in recent if r.runtime_seconds is not None][:20]
    out = {"position": ahead + 1, "at_least": more, "eta_seconds": None}
    if not seconds:
        out["eta_basis"] = "no render of this runtime in the last hour to estimate from"
        return out
    mean = sum(seconds) / len(seconds)
    running = [rec.record(i) for i in query("running", ">=", "0", Limit=200)["Items"]]
    now = time.time()
    left = [max(0.0, mean - (now - _epoch(r.started_at))) for r in running]
    busy = max(1, len(running))
    out["eta_seconds"] = round((sum(left) + ahead * mean) / busy, 1)
    out["eta_basis"] = f"{len(seconds)} recent render(s), {mean:.1f} s each; {len(running)} running"
    return out


def _epoch(stamp: str | None) -> float:
    if not stamp:
        return time.time()
    try:
        return datetime.strptime(stamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return time.time()
