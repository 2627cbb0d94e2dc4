"""The agent's side of the task store: it records `running`, `completed` and `failed`, and
learns that a task was cancelled before it runs.

The store is advisory for the agent: if DynamoDB cannot be reached the task still runs and
its result is still stored and announced; only the recorded state lags (and says so in the log).
"""

from __future__ import annotations

import logging
import time

from sdctl.contracts.tasks import timestamp

log = logging.getLogger("sdctl.agent")


def now() -> str:
    return timestamp()


class TaskStore:
    def __init__(self, dynamodb, table: str, ttl_days: int = 30):
        self.db = dynamodb
        self.table = table
        self.ttl_days = ttl_days

    def status(self, task_id: str) -> str | None:
        item = self.db.get_item(TableName=self.table, Key={"id": {"S": task_id}}, ConsistentRead=True,
                                ProjectionExpression="#s", ExpressionAttributeNames={"#s": "status"}).get("Item")
        return item["status"]["S"] if item and "status" in item else None

    def start(self, task_id: str, *, attempt: int, runtime: str) -> bool:
        """Record that an agent has taken the task; False if it was cancelled first. A task
        that never went through the API (published straight to SNS) gets a record here."""
        stamp = now()
        try:
            self.db.update_item(
                TableName=self.table, Key={"id": {"S": task_id}},
                ConditionExpression="attribute_not_exists(id) OR #s <> :cancelled",
                UpdateExpression="SET #s = :running, attempts = :attempt, started_at = :now, updated_at = :now, "
                                 "runtime = if_not_exists(runtime, :runtime), "
                                 "created_at = if_not_exists(created_at, :now), "
                                 "expires_at = if_not_exists(expires_at, :expires)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":cancelled": {"S": "cancelled"}, ":running": {"S": "running"},
                                           ":attempt": {"N": str(attempt)}, ":now": {"S": stamp},
                                           ":runtime": {"S": runtime},
                                           ":expires": {"N": str(int(time.time()) + 86400 * self.ttl_days)}})
        except self.db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def complete(self, task_id: str, note: dict, *, seconds: float, seed: int | None = None) -> None:
        values = {":completed": {"S": "completed"}, ":now": {"S": now()},
                  ":images": {"L": [{"S": u} for u in note.get("image_url", [])]},
                  ":output": {"S": note.get("output_url", "")}, ":seconds": {"N": str(round(seconds, 3))}}
        expression = "SET #s = :completed, updated_at = :now, finished_at = :now, image_url = :images, " \
                     "output_url = :output, runtime_seconds = :seconds"
        if isinstance(seed, int) and seed >= 0:  # the seed actually used (a request may ask for -1: random)
            values[":seed"] = {"N": str(seed)}
            expression += ", seed = :seed"
        if note.get("model"):
            values[":model"] = {"S": str(note["model"])}
            expression += ", model = :model"
        self.db.update_item(TableName=self.table, Key={"id": {"S": task_id}}, UpdateExpression=expression,
                            ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues=values)

    def fail(self, task_id: str, error: dict, *, attempt: int) -> None:
        self.db.update_item(
            TableName=self.table, Key={"id": {"S": task_id}},
            UpdateExpression="SET #s = :failed, updated_at = :now, finished_at = :now, #e = :error, attempts = :a",
            ExpressionAttributeNames={"#s": "status", "#e": "error"},
            ExpressionAttributeValues={":failed": {"S": "failed"}, ":now": {"S": now()}, ":a": {"N": str(attempt)},
                                       ":error": {"M": {k: {"S": str(v)} for k, v in error.items()}}})

    def quietly(self, what: str, fn, *args, **kwargs):
        """Run a store update; on failure log it and carry on (the result itself is safe)."""
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            log.warning("could not record the task's state", extra={"what": what, "error": str(e)})
            return None
