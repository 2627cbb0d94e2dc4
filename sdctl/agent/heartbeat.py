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
        self.queue_url = queue_url
        self.window = window
        self.interval = max(window / 3, 0.5)
        self._receipts: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def track(self, message: dict) -> None:
        with self._lock:
            self._receipts[message["MessageId"]] = message["ReceiptHandle"]
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
            self._thread.start()

    def untrack(self, message: dict) -> None:
        with self._lock:
            self._receipts.pop(message["MessageId"], None)

    def held(self) -> list[str]:
        """Receipt handles of every message being kept invisible now."""
        with self._lock:
            return list(self._receipts.values())

    def stop(self) -> None:
        self._stop.set()

    def beat(self) -> None:
        """Extend every tracked message's window: one batch call per ten messages."""
        with self._lock:
            receipts = list(self._receipts.items())
        for i in range(0, len(receipts), 10):
            chunk = receipts[i:i + 10]
            entries = [{"Id": str(n), "ReceiptHandle": receipt, "VisibilityTimeout": self.window}
                       for n, (_, receipt) in enumerate(chunk)]
            try:
                resp = self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
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
