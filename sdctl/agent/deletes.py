"""Deleting finished messages in batches: up to ten per DeleteMessageBatch call, sent when ten
wait for one queue or when the oldest has waited LINGER_SECONDS, and at once on `flush`
(shutdown, and after each task when the agent handles tasks one by one).

A delete that waits here is for a task already stored and announced: if the agent dies
before the batch goes out, the message becomes visible again after its visibility window
and the next attempt finds the task `completed` and drops it (sdctl/agent/stages.py). A
failed entry is logged and left to the same path."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("sdctl.agent")

LINGER_SECONDS = 0.5
BATCH = 10  # SQS's limit per DeleteMessageBatch


class Deletes:
    def __init__(self, sqs, *, linger: float = LINGER_SECONDS, clock=time.monotonic):
        self.sqs, self.linger, self.clock = sqs, linger, clock
        self._pending: dict[str, list[tuple[str, float]]] = {}  # queue URL -> [(receipt, since)]
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.calls = 0

    def add(self, queue_url: str, receipt: str) -> None:
        with self._cond:
            self._pending.setdefault(queue_url, []).append((receipt, self.clock()))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deletes", daemon=True)
                self._thread.start()
            self._cond.notify()

    def flush(self) -> None:
        """Send every pending delete now (the calling thread makes the calls)."""
        with self._cond:
            pending, self._pending = self._pending, {}
        for queue_url, entries in pending.items():
            for i in range(0, len(entries), BATCH):
                self._send(queue_url, [r for r, _ in entries[i:i + BATCH]])

    def _due(self) -> tuple[str, list[str]] | None:
        """A full batch, or the entries of a queue whose oldest has lingered long enough."""
        now = self.clock()
        for queue_url, entries in self._pending.items():
            if len(entries) >= BATCH or (entries and now - entries[0][1] >= self.linger):
                taken, self._pending[queue_url] = entries[:BATCH], entries[BATCH:]
                return queue_url, [r for r, _ in taken]
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                due = self._due()
                while due is None:
                    oldest = min((e[0][1] for e in self._pending.values() if e), default=None)
                    self._cond.wait(None if oldest is None else max(0.0, oldest + self.linger - self.clock()))
                    due = self._due()
            self._send(*due)

    def _send(self, queue_url: str, receipts: list[str]) -> None:
        self.calls += 1
        try:
            resp = self.sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipts)])
        except Exception as e:
            log.warning("could not delete finished messages; they return and are dropped as done",
                        extra={"messages": len(receipts), "error": str(e)})
            return
        for failed in resp.get("Failed", []):
            log.warning("could not delete a finished message; it returns and is dropped as done",
                        extra={"error": failed.get("Message") or failed.get("Code")})
