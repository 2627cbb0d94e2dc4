"""Keep messages that are being worked on invisible, and no longer.

Messages are received with a short visibility window; while a message is tracked, a
background thread extends its window before it runs out. If the agent dies, the window
lapses and SQS hands the message to another agent within seconds, not after the longest
task's duration.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("sdctl.agent")


class Heartbeat:
    def __init__(self, sqs, queue_url: str, window: int):
        self.sqs = sqs
        self.queue_url = queue_url  # messages that do not say which queue they came from
        self.window = window
        self.interval = max(window / 3, 0.5)
        self._receipts: dict[str, tuple[str, str]] = {}  # message id -> (queue URL, receipt handle)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def track(self, message: dict) -> None:
        from sdctl.agent.sqs import queue_of

        with self._lock:
            self._receipts[message["MessageId"]] = (queue_of(message, self.queue_url), message["ReceiptHandle"])
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
            self._thread.start()

    def untrack(self, message: dict) -> None:
        with self._lock:
            self._receipts.pop(message["MessageId"], None)

    def held(self) -> list[dict]:
        """Every message being kept invisible now, as much of it as a release needs."""
        from sdctl.agent.sqs import QUEUE

        with self._lock:
            return [{"ReceiptHandle": receipt, QUEUE: queue} for queue, receipt in self._receipts.values()]

    def stop(self) -> None:
        self._stop.set()

    def beat(self) -> None:
        """Extend every tracked message's window: one batch call per ten messages."""
        with self._lock:
            held = list(self._receipts.items())
        by_queue: dict[str, list[tuple[str, str]]] = {}
        for message_id, (queue, receipt) in held:
            by_queue.setdefault(queue, []).append((message_id, receipt))
        for queue, receipts in by_queue.items():
            self._beat(queue, receipts)

    def _beat(self, queue: str, receipts: list[tuple[str, str]]) -> None:
        for i in range(0, len(receipts), 10):
            chunk = receipts[i:i + 10]
            entries = [{"Id": str(n), "ReceiptHandle": receipt, "VisibilityTimeout": self.window}
                       for n, (_, receipt) in enumerate(chunk)]
            try:
                resp = self.sqs.change_message_visibility_batch(QueueUrl=queue, Entries=entries)
            except Exception as e:  # the next beat tries again; the window still has 2/3 left
                log.warning("could not extend visibility", extra={"messages": len(chunk), "error": str(e)})
                continue
            for failed in resp.get("Failed", []):
                # Usually a message finished (and was deleted) between the snapshot and the call.
                message_id = chunk[int(failed["Id"])][0]
                if self._is_tracked(message_id):
                    log.warning("could not extend visibility",
                                extra={"message_id": message_id, "error": failed.get("Message") or failed.get("Code")})

    def _is_tracked(self, message_id: str) -> bool:
        with self._lock:
            return message_id in self._receipts

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()
