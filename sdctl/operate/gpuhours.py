"""GPU hours billed against GPU hours rendering on a deployed stack (`sdctl cost --measured`).

Rendering: the ``gpu_seconds`` every finished task recorded (a batched call's shared out), from
the task store's status index. Billed: the node ledger (sdctl/contracts/ledger.py), each GPU
node from its launch to its last heartbeat. A node whose agents have stopped lived on empty for
``consolidateAfter`` before Karpenter removed it: that tail is added (the config's largest).
A node whose heartbeat is recent is up now and counts until now. Both are clipped to the window.
What this cannot see: the boot before a node registered (tens of seconds each, the EC2 bill has
them) and nodes that never ran an agent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sdctl.contracts import ledger
from sdctl.contracts.tasks import FINAL, STATUS_INDEX

#: A ledger row seen this recently belongs to a node that is up now.
UP_WITHIN = timedelta(seconds=3 * ledger.HEARTBEAT_SECONDS)


def billed_seconds(rows: list[dict], *, since: datetime, now: datetime, tail_seconds: float) -> tuple[float, int, int]:
    """(node seconds inside [since, now], nodes counted, nodes up now) from ledger rows."""
    total, counted, up = 0.0, 0, 0
    for row in rows:
        launched, seen = ledger.at(row["launched_at"]), ledger.at(row["last_seen"])
        alive = now - seen <= UP_WITHIN
        end = now if alive else min(now, seen + timedelta(seconds=tail_seconds))
        span = (end - max(launched, since)).total_seconds()
        if span > 0:
            total += span
            counted += 1
            up += alive
    return total, counted, up


def rendering_seconds(dynamodb, table: str, *, since: str) -> tuple[float, int]:
    """(GPU seconds, tasks) of the tasks created since ``since`` that finished, read page by page."""
    seconds, tasks = 0.0, 0
    paginator = dynamodb.get_paginator("query")
    for status in FINAL:
        for page in paginator.paginate(
                TableName=table, IndexName=STATUS_INDEX, KeyConditionExpression="#s = :s AND #c >= :since",
                ProjectionExpression="gpu_seconds, runtime_seconds",
                ExpressionAttributeNames={"#s": "status", "#c": "created_at"},
                ExpressionAttributeValues={":s": {"S": status}, ":since": {"S": since}}):
            for item in page.get("Items", []):
                value = item.get("gpu_seconds") or item.get("runtime_seconds")
                if value and "N" in value:
                    seconds += float(value["N"])
                    tasks += 1
    return seconds, tasks


def measured(dynamodb, table: str, *, since: datetime, now: datetime, tail_seconds: float) -> dict:
    """Rendering and billed GPU hours since ``since`` (billed None where no node wrote a ledger
    row: the local stack, or a stack whose agents predate it)."""
    from sdctl.contracts.tasks import timestamp

    rendering, tasks = rendering_seconds(dynamodb, table, since=timestamp(since))
    rows = []
    for page in dynamodb.get_paginator("query").paginate(**ledger.query(table, STATUS_INDEX)):
        rows += [{k: v["S"] for k, v in item.items() if k in ("launched_at", "last_seen") and "S" in v}
                 for item in page.get("Items", [])]
    billed, nodes, up = billed_seconds([r for r in rows if len(r) == 2], since=since, now=now,
                                       tail_seconds=tail_seconds)
    # hours to 6 places (3.6 ms): a few short renders are not rounded away to nothing
    out = {"since": timestamp(since), "rendering_gpu_hours": round(rendering / 3600, 6), "tasks": tasks,
           "billed_gpu_hours": None, "idle_gpu_hours": None, "rendering_share": None, "nodes": nodes, "nodes_up": up}
    if nodes:
        out.update(billed_gpu_hours=round(billed / 3600, 6), idle_gpu_hours=round(max(0.0, billed - rendering) / 3600, 6),
                   rendering_share=round(min(1.0, rendering / billed), 4) if billed else None)
    return out
