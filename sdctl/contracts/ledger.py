"""The node ledger: how long each GPU node was up, kept in the task store beside the tasks, so
`sdctl cost --measured` can set the GPU hours billed against the hours spent rendering.

Kubernetes forgets a node when Karpenter removes it, so the agent keeps the record: on each GPU
node, every agent writes one row for its node (``id`` ``node#<name>``) with the node's launch
(its ``creationTimestamp``: when it registered, which is after EC2 started billing it by the
instance's boot), and moves ``last_seen`` on every HEARTBEAT_SECONDS and when it stops. Rows
sit in the status index under the pseudo-status ``node`` (never a task's state: the API refuses
ids with ``#``, and task lists leave these rows out), so the reader queries one partition instead
of scanning the tasks. They expire with the tasks (``expires_at``).

Standard library only: the agent image carries it.
"""

from __future__ import annotations

from datetime import UTC, datetime

PREFIX = "node#"
STATUS = "node"
HEARTBEAT_SECONDS = 60
ATTRIBUTES = ("node", "instance_type", "capacity", "price_per_hour", "launched_at", "last_seen")


def key(node: str) -> dict:
    return {"id": {"S": PREFIX + node}}


def is_ledger(item_id: str) -> bool:
    return item_id.startswith(PREFIX)


def update(node: str, *, launched_at: str, seen_at: str, instance_type: str, capacity: str,
           price_per_hour: float | None, expires_at: int) -> dict:
    """UpdateItem's arguments (less TableName) that record the node as seen at ``seen_at``. The
    launch and the type are written once; ``last_seen`` only moves forward."""
    values = {":status": {"S": STATUS}, ":launched": {"S": launched_at}, ":seen": {"S": seen_at},
              ":node": {"S": node}, ":type": {"S": instance_type}, ":capacity": {"S": capacity},
              ":expires": {"N": str(int(expires_at))},
              ":price": {"N": str(price_per_hour)} if price_per_hour is not None else {"NULL": True}}
    names = {"#s": "status", "#c": "created_at", **{f"#{i}": a for i, a in enumerate(ATTRIBUTES)},
             "#e": "expires_at"}
    n = {a: f"#{i}" for i, a in enumerate(ATTRIBUTES)}  # every name a placeholder: some are reserved words
    return {
        "Key": key(node),
        "UpdateExpression": f"SET #s = :status, #c = if_not_exists(#c, :launched), "
                            f"{n['launched_at']} = if_not_exists({n['launched_at']}, :launched), {n['node']} = :node, "
                            f"{n['instance_type']} = :type, {n['capacity']} = :capacity, "
                            f"{n['price_per_hour']} = :price, #e = :expires, {n['last_seen']} = :seen",
        # A heartbeat that arrives late never moves last_seen back.
        "ConditionExpression": f"attribute_not_exists({n['last_seen']}) OR {n['last_seen']} < :seen",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def query(table: str, index: str) -> dict:
    """Query's arguments for every row of the ledger."""
    return {"TableName": table, "IndexName": index, "KeyConditionExpression": "#s = :node",
            "ExpressionAttributeNames": {"#s": "status"}, "ExpressionAttributeValues": {":node": {"S": STATUS}}}


def at(text: str) -> datetime:
    """A ledger time (contracts.tasks.timestamp() or Kubernetes' RFC 3339) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
