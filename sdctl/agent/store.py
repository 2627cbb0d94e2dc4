"""The agent's side of the task store: it records `running` (when the runtime starts the task,
not when the agent receives it), `completed`, `failed`, `cancelled` and `expired`, and learns
that a task was cancelled before it runs or asked to be cancelled while it runs.

The store is advisory for the agent: if DynamoDB cannot be reached the task still runs and
its result is still stored and announced; only the recorded state lags (and says so in the
log). A final state (completed, failed, cancelled, expired) that could not be written is kept
and written again in the background, with backoff, until it is: the store catches up once
DynamoDB does (throttling, a brownout), for up to CATCH_UP_SECONDS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from sdctl.contracts.record import key, update
from sdctl.contracts.tasks import timestamp

log = logging.getLogger("sdctl.agent")


def now() -> str:
    return timestamp()


#: Final states the agent could not record are retried for this long (then logged as lost).
CATCH_UP_SECONDS = 3600
FINAL_WRITES = ("completed", "failed", "cancelled", "expired")


def _state(item: dict) -> dict:
    """What a peek tells of a record: its status and whether a cancel was asked for."""
    return {"status": item.get("status", {}).get("S"),
            "cancel_requested": item.get("cancel_requested", {}).get("BOOL", False)}


class TaskStore:
    def __init__(self, dynamodb, table: str, ttl_days: int = 30, *, clock=time.monotonic):
        self.db = dynamodb
        self.table = table
        self.ttl_days = ttl_days
        self.clock = clock
        self.behind: deque = deque()  # (first failure, what, fn, args, kwargs) still to write
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def status(self, task_id: str) -> str | None:
        item = self.db.get_item(TableName=self.table, Key={"id": {"S": task_id}}, ConsistentRead=True,
                                ProjectionExpression="#s", ExpressionAttributeNames={"#s": "status"}).get("Item")
        return item["status"]["S"] if item and "status" in item else None

    def peek(self, task_id: str) -> dict:
        """The record's status and whether a cancel was asked for ({} without a record)."""
        return _state(self.db.get_item(TableName=self.table, Key={"id": {"S": task_id}}, ConsistentRead=True,
                                       ProjectionExpression="#s, cancel_requested",
                                       ExpressionAttributeNames={"#s": "status"}).get("Item") or {})

    def peek_many(self, task_ids: list[str]) -> dict[str, dict]:
        """:meth:`peek` for up to 100 tasks in one BatchGetItem (the tasks one receive brought:
        one read instead of one per task). An id missing from the answer (DynamoDB left it
        unprocessed) is peeked on its own by the caller."""
        ids = list(dict.fromkeys(task_ids))[:100]  # BatchGetItem refuses duplicate keys
        answer = self.db.batch_get_item(RequestItems={self.table: {
            "Keys": [{"id": {"S": i}} for i in ids], "ConsistentRead": True,
            "ProjectionExpression": "#i, #s, cancel_requested",
            "ExpressionAttributeNames": {"#i": "id", "#s": "status"}}})
        unprocessed = {k["id"]["S"] for k in answer.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])}
        found = {item["id"]["S"]: item for item in answer.get("Responses", {}).get(self.table, [])}
        return {i: _state(found.get(i, {})) for i in ids if i not in unprocessed}

    def start(self, task_id: str, *, attempt: int, runtime: str) -> bool:
        """Record that the runtime starts the task; False if it was cancelled or expired first.
        A task that never went through the API (published straight to SNS) gets a record here.
        A redriven task's earlier error goes: its record tells of this attempt."""
        stamp = now()
        try:
            self._update(task_id, set={"status": "running", "attempts": attempt, "started_at": stamp,
                                       "updated_at": stamp},
                         if_missing={"runtime": runtime, "created_at": stamp,
                                     "expires_at": int(time.time()) + 86400 * self.ttl_days},
                         remove=("error",),
                         condition="attribute_not_exists(#id) OR (#status <> :cancelled AND #status <> :expired)",
                         values={"cancelled": "cancelled", "expired": "expired"})
        except self.db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def complete(self, task_id: str, note: dict, *, seconds: float, seed: int | None = None) -> None:
        stamp = now()
        done = {"status": "completed", "updated_at": stamp, "finished_at": stamp,
                "image_url": list(note.get("image_url", [])), "output_url": note.get("output_url", ""),
                "runtime_seconds": round(seconds, 3)}
        if isinstance(seed, int) and seed >= 0:  # the seed actually used (a request may ask for -1: random)
            done["seed"] = seed
        for attribute in ("model", "gpu_seconds", "cost_usd"):
            if note.get(attribute) is not None:
                done[attribute] = note[attribute]
        # A cancel that came too late is moot; an earlier attempt's error (a redriven task) is past.
        self._update(task_id, set=done, remove=("progress", "cancel_requested", "error"))

    def fail(self, task_id: str, error: dict, *, attempt: int) -> None:
        stamp = now()
        self._update(task_id, set={"status": "failed", "updated_at": stamp, "finished_at": stamp,
                                   "error": {k: str(v) for k, v in error.items()}, "attempts": attempt},
                     remove=("progress", "cancel_requested"))

    def progress(self, task_id: str, seen: dict) -> None:
        """Step k of N, percent and ETA of a running task (written at most once a second)."""
        try:
            self._update(task_id, set={"progress": {k: seen[k] for k in ("step", "steps", "percent", "eta_seconds")},
                                       "updated_at": now()},
                         condition="#status = :running", values={"running": "running"})
        except self.db.exceptions.ConditionalCheckFailedException:
            pass  # it ended meanwhile

    def end(self, task_id: str, status: str, *, seconds: float = 0.0) -> None:
        """`cancelled` or `expired`: the task is over and made no images."""
        stamp = now()
        self._update(task_id, set={"status": status, "updated_at": stamp, "finished_at": stamp,
                                   "runtime_seconds": round(seconds, 3)},
                     if_missing={"created_at": stamp}, remove=("cancel_requested", "progress"))

    def _update(self, task_id: str, **change) -> None:
        self.db.update_item(TableName=self.table, Key=key(task_id), **update(**change))

    def quietly(self, what: str, fn, *args, **kwargs):
        """Run a store update; on failure log it and carry on (the result itself is safe). A
        final state that failed is written again later (:meth:`catch_up`)."""
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            log.warning("could not record the task's state", extra={"what": what, "error": str(e)})
            if what in FINAL_WRITES:
                with self._lock:
                    self.behind.append((self.clock(), what, fn, args, kwargs))
                    if self._thread is None:
                        self._thread = threading.Thread(target=self._catch_up_loop, name="store-catch-up",
                                                        daemon=True)
                        self._thread.start()
                self._wake.set()
            return None

    def catch_up(self) -> int:
        """Write what is behind, oldest first, until the store refuses again; returns how many
        are left. An entry leaves the queue only once written (or given up on)."""
        while True:
            with self._lock:
                if not self.behind:
                    return 0
                since, what, fn, args, kwargs = self.behind[0]
            try:
                fn(*args, **kwargs)
                log.info("recorded the task's state late", extra={"what": what, "late_seconds":
                                                                  round(self.clock() - since, 1)})
            except Exception as e:
                if self.clock() - since <= CATCH_UP_SECONDS:
                    with self._lock:
                        return len(self.behind)
                log.error("gave up recording the task's state", extra={"what": what, "error": str(e)})
            with self._lock:
                self.behind.popleft()

    def _catch_up_loop(self) -> None:
        delay = 1.0
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            before = len(self.behind)
            left = self.catch_up()
            delay = 1.0 if left < before else min(delay * 2, 30.0)
