"""The agent's SQS side: receive with a long poll, delete when done, release (return a
message now, or after a backoff), and read the queue's redrive policy. The visibility
heartbeat for held messages is sdctl/agent/heartbeat.py."""

from __future__ import annotations

import json
import logging

log = logging.getLogger("sdctl.agent")


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

    def receive(self) -> list[dict]:
        try:
            resp = self.sqs.receive_message(
                QueueUrl=self.settings.queue_url,
                MaxNumberOfMessages=self.settings.batch_size,
                WaitTimeSeconds=self.settings.wait_seconds,
                VisibilityTimeout=self.settings.visibility_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        except Exception as e:  # network or throttling: back off and try again
            log.warning("receive failed; retrying", extra={"error": str(e)})
            self.stopping.wait(1.0)
            return []
        messages = resp.get("Messages", [])
        for m in messages:
            self.heartbeat.track(m)
        return messages

    def _delete(self, message: dict) -> None:
        self.sqs.delete_message(QueueUrl=self.settings.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _release(self, message: dict, delay: int = 0) -> None:
        try:
            self.sqs.change_message_visibility(QueueUrl=self.settings.queue_url,
                                               ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay)
        except Exception as e:
            log.warning("could not release the message; it returns when its visibility expires",
                        extra={"error": str(e)})
