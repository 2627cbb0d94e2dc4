"""The agent's SQS side: receive, delete when done, release (return a message now, or after a
backoff), and read the queue's redrive policy. The visibility heartbeat for held messages is
sdctl/agent/heartbeat.py.

A runtime has one queue per priority lane (high, normal, low). Each receive asks the lanes in
priority order and takes from the first that has work; only the last one asked waits (a
long poll of at most LANE_WAIT_SECONDS, so a high task arriving meanwhile waits no longer).
So lower lanes never starve under a steady stream of higher ones, every STARVATION_LIMIT-th
receive in a row served by a higher lane asks the lower lanes first. Each message remembers
its queue: deletes, releases and heartbeats go to the queue it came from."""

from __future__ import annotations

import json
import logging

log = logging.getLogger("sdctl.agent")

LANE_WAIT_SECONDS = 1
STARVATION_LIMIT = 20
#: A prefetched task older than this checks the higher lanes before it starts (and gives way).
OVERTAKE_AFTER_SECONDS = 0.05
QUEUE = "_sdctl_queue_url"  # where a received message came from (not an SQS field)


def queue_of(message: dict, default: str) -> str:
    return message.get(QUEUE) or default


class QueueSide:
    def discover_redrive_policy(self) -> None:
        """Read the queue's redrive policy: it, not a setting, decides when a task's attempt is
        its last. Without a dead-letter queue, the last attempt reports failed and deletes."""
        try:
            attrs = self.sqs.get_queue_attributes(QueueUrl=self.settings.queue_url,
                                                  AttributeNames=["RedrivePolicy"])["Attributes"]
        except Exception as e:
            log.warning("cannot read the queue's redrive policy; using MAX_RECEIVE_COUNT",
                        extra={"error": str(e)})
            return
        policy = json.loads(attrs.get("RedrivePolicy") or "{}")
        if policy.get("maxReceiveCount"):
            self.max_receive_count = int(policy["maxReceiveCount"])
            self.has_dead_letter_queue = True

    def lane_order(self) -> list[tuple[str, str]]:
        lanes = list(self.settings.lanes)
        if len(lanes) > 1 and getattr(self, "_served_high", 0) >= STARVATION_LIMIT:
            self._served_high = 0
            return lanes[1:] + lanes[:1]  # the lower lanes first, this once
        return lanes

    def receive_from(self, url: str, *, wait: int, count: int) -> list[dict]:
        """Up to `count` messages from one lane's queue, each tracked and tagged with its queue;
        [] after a failure (logged, with a pause)."""
        try:
            resp = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=wait,
                VisibilityTimeout=self.settings.visibility_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        except Exception as e:  # network or throttling: back off and try again
            log.warning("receive failed; retrying", extra={"error": str(e), "queue_url": url})
            self.stopping.wait(1.0)
            return []
        messages = resp.get("Messages", [])
        for m in messages:
            m[QUEUE] = url
            self.heartbeat.track(m)
        return messages

    def receive(self) -> list[dict]:
        order = self.lane_order()
        for i, (_, url) in enumerate(order):
            last = i == len(order) - 1
            wait = self.settings.wait_seconds if len(order) == 1 else (
                min(self.settings.wait_seconds, LANE_WAIT_SECONDS) if last else 0)
            messages = self.receive_from(url, wait=wait, count=self.settings.batch_size)
            if not messages:
                continue
            top = order[0][0] == self.settings.lanes[0][0]
            self._served_high = getattr(self, "_served_high", 0) + 1 if top and i == 0 else 0
            return messages
        return []

    def _delete(self, message: dict) -> None:
        self.sqs.delete_message(QueueUrl=queue_of(message, self.settings.queue_url),
                                ReceiptHandle=message["ReceiptHandle"])

    def _release(self, message: dict, delay: int = 0) -> None:
        try:
            self.sqs.change_message_visibility(QueueUrl=queue_of(message, self.settings.queue_url),
                                               ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay)
        except Exception as e:
            log.warning("could not release the message; it returns when its visibility expires",
                        extra={"error": str(e)})
