"""The agent's SQS side: receive, delete when done, release (return a message now, or after a
backoff), and read the queue's redrive policy. The visibility heartbeat for held messages is
sdctl/agent/heartbeat.py.

A runtime has one queue per priority lane (high, normal, low). Each receive asks the lanes in
priority order (no waiting) and takes from the first that has work. When none has, every
lane is long-polled at once (each for at most LANE_WAIT_SECONDS, from a small pool), so a
task arriving on any lane is taken the moment it lands, not after a poll of another lane
runs out; what a lane's poll brings after the first answer is kept for the next receive,
highest lane first. So lower lanes never starve under a steady stream of higher ones, once
STARVATION_LIMIT tasks in a row came from the highest lane the next receive asks the lower
lanes first.
Each message remembers its queue: deletes, releases and heartbeats go to the queue it came
from."""

from __future__ import annotations

import json
import logging
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_any

log = logging.getLogger("sdctl.agent")

LANE_WAIT_SECONDS = 1
#: With RECEIVE_BATCH unset, a receive takes about this many seconds of work.
AHEAD_SECONDS = 1.0
STARVATION_LIMIT = 20
#: A prefetched task older than this checks the higher lanes before it starts (and gives way).
OVERTAKE_AFTER_SECONDS = 0.05
QUEUE = "_sdctl_queue_url"  # where a received message came from (not an SQS field)


def queue_of(message: dict, default: str) -> str:
    return message.get(QUEUE) or default


class Lanes:
    """Receive (from the lanes, highest first), release (now or after a backoff) and delete (in
    batches) a runtime's messages; the queue's redrive policy says which attempt is the last."""

    def __init__(self, sqs, settings, *, heartbeat, deletes, stopping) -> None:
        self.sqs, self.settings, self.heartbeat, self.deletes, self.stopping = sqs, settings, heartbeat, deletes, stopping
        self.max_receive_count = settings.max_receive_count
        self.has_dead_letter_queue = False
        self.pace: float | None = None  # the runtime's recent seconds per task (see paced)
        self._served_high = 0
        self._lane_polls: dict[str, Future] = {}
        self._lane_pool: ThreadPoolExecutor | None = None

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
        if len(lanes) > 1 and self._served_high >= STARVATION_LIMIT:
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
        if len(order) == 1:
            return self.receive_from(order[0][1], wait=self.settings.wait_seconds, count=self.receive_count())
        polls = self._lane_polls
        brought = self._polled(order)
        if brought:
            return self._served(order, brought)
        for _, url in order:  # a quick look, highest lane first; a lane being long-polled is watched already
            if url in polls:
                continue
            messages = self.receive_from(url, wait=0, count=self.receive_count())
            if messages:
                return self._served(order, messages)
        if self._lane_pool is None:
            self._lane_pool = ThreadPoolExecutor(max_workers=len(order), thread_name_prefix="lane-poll")
        wait = min(self.settings.wait_seconds, LANE_WAIT_SECONDS)
        for _, url in order:
            if url not in polls and not self.stopping.is_set():
                try:
                    polls[url] = self._lane_pool.submit(self.receive_from, url, wait=wait,
                                                        count=self.receive_count())
                except RuntimeError:  # the pool was shut down: the agent is stopping
                    return []
        if polls:
            wait_for_any(list(polls.values()), timeout=wait + 5, return_when=FIRST_COMPLETED)
        return self._served(order, self._polled(order))

    def _polled(self, order: list[tuple[str, str]]) -> list[dict]:
        """What the lanes' finished long polls brought, highest lane first."""
        polls = self._lane_polls
        brought = []
        for _, url in order:
            poll = polls.get(url)
            if poll is not None and poll.done():
                del polls[url]
                brought += poll.result()
        rank = {url: i for i, (_, url) in enumerate(self.settings.lanes)}
        return sorted(brought, key=lambda m: rank.get(m.get(QUEUE), 0))

    def finish_polls(self) -> None:
        """At shutdown: wait for the lanes' long polls still in flight (at most LANE_WAIT_SECONDS),
        so what they bring is held, and so released, rather than taken after the agent let go."""
        for poll in list(self._lane_polls.values()):
            poll.result()
        self._lane_polls.clear()
        if self._lane_pool is not None:
            self._lane_pool.shutdown(wait=True)
            self._lane_pool = None

    def _served(self, order: list[tuple[str, str]], messages: list[dict]) -> list[dict]:
        if messages:
            top = messages[0].get(QUEUE) == self.settings.lanes[0][1] and order[0][0] == self.settings.lanes[0][0]
            self._served_high = self._served_high + len(messages) if top else 0
        return messages

    def delete(self, message: dict) -> None:
        """The task is done: its message goes in the next delete batch (sdctl/agent/deletes.py)."""
        self.deletes.add(queue_of(message, self.settings.queue_url), message["ReceiptHandle"])

    def receive_count(self) -> int:
        """How many messages one receive asks for: RECEIVE_BATCH if set; else about a second of
        work at the runtime's recent pace (one at a time for tasks of a second or more, up to
        ten for turbo models), so a fast runtime costs fewer calls and a slow one never holds
        tasks that another agent could start sooner."""
        if self.settings.batch_size:
            return self.settings.batch_size
        count = 1 if not self.pace else max(1, min(10, int(AHEAD_SECONDS / self.pace)))
        if len(self.settings.lanes) > 1:  # no more than the starvation guard lets the top lane have
            count = max(1, min(count, STARVATION_LIMIT - self._served_high))
        return count

    def paced(self, seconds_per_task: float) -> None:
        """The runtime's recent seconds per task (a moving average), for receive_count."""
        self.pace = seconds_per_task if self.pace is None else 0.8 * self.pace + 0.2 * seconds_per_task

    def release(self, message: dict, delay: int = 0) -> None:
        try:
            self.sqs.change_message_visibility(QueueUrl=queue_of(message, self.settings.queue_url),
                                               ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay)
        except Exception as e:
            log.warning("could not release the message; it returns when its visibility expires",
                        extra={"error": str(e)})
