"""A task on its way through the agent (Job), and the first of its stages: prepare (parse, skip
what is done, cancelled or expired, fetch inputs) and begin (the last deadline check). The run
is sdctl/agent/runner.py; storing and announcing, sdctl/agent/results.py. The pipeline
(sdctl/agent/pipeline.py) overlaps them: a prefetched task stays `queued` until the runtime
starts it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sdctl.agent.failures import (
    Expired,
    PermanentFailure,
    TaskFailure,
)
from sdctl.agent.tasks import parse_message
from sdctl.contracts.tasks import parse_deadline, result_key

log = logging.getLogger("sdctl.agent")


@dataclass
class Job:
    """A received task on its way through the stages."""

    message: dict
    task: dict
    attempt: int
    received: float
    ctx: dict
    content: dict = field(default_factory=dict)
    runtime_seconds: float = 0.0
    gpu_seconds: float = 0.0  # its share of the runtime call (all of it, unless batched)
    stop_time: float = 0.0  # when its runtime call is to be interrupted (set as it starts)
    #: Wall-clock marks (epoch seconds) of its way through this agent, kept in the result
    #: document as `timeline` so a slow task shows which hop was slow: sent (into its queue,
    #: by SQS), received, started and ran (the runtime call), stored (images and document).
    marks: dict = field(default_factory=dict)

    @property
    def out_key(self) -> str:
        meta = self.task["metadata"]
        return result_key(meta["prefix"], meta["id"])

    @property
    def deadline(self) -> float | None:
        """The task's deadline (epoch seconds), if the caller set one."""
        at = parse_deadline(self.task["metadata"].get("deadline"))
        return at.timestamp() if at else None

    def stop_at(self, max_task_seconds: float) -> float:
        """When a runtime call for this task must be interrupted: maxTaskSeconds from now, or
        the deadline if that is sooner and the caller chose `deadlinePolicy: interrupt`."""
        limit = time.time() + max_task_seconds
        if self.task["metadata"].get("deadlinePolicy") == "interrupt" and self.deadline is not None:
            return min(limit, self.deadline)
        return limit


class Preparer:
    """Prepare a received task without calling the runtime: parse it, drop what is cancelled,
    expired or already done (announcing a stored result that may not have been), fetch its
    inputs; and `begin`, the last deadline check before its runtime call."""

    def __init__(self, settings, *, store, fetcher, lanes, results, metrics, clock) -> None:
        self.settings, self.store, self.fetcher = settings, store, fetcher
        self.lanes, self.results, self.metrics, self.clock = lanes, results, metrics, clock

    def peek_all(self, messages: list[dict]) -> dict[str, dict]:
        """The task store's state of every task in one receive, in one read (``prepare`` takes
        it from here instead of reading each record alone); {} without a store, for a single
        message, or when the read fails (each task is then peeked on its own)."""
        if not self.store or len(messages) < 2:
            return {}
        ids = []
        for message in messages:
            try:
                ids.append(parse_message(message["Body"])["metadata"]["id"])
            except (PermanentFailure, KeyError, TypeError):
                continue  # prepare says what is wrong with it
        if len(ids) < 2:
            return {}
        return self.store.quietly("status", self.store.peek_many, ids) or {}

    def prepare(self, message: dict, peeked: dict[str, dict] | None = None) -> Job | str:
        """Parse, skip what is already done, and fetch inputs. Never calls the runtime.
        ``peeked``: the store's states from :meth:`peek_all`, if read already."""
        attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            task = parse_message(message["Body"])
        except PermanentFailure as e:
            # Without an id nobody can be told; keep the message so SQS moves it to the DLQ.
            log.error("unreadable message; leaving it for the dead-letter queue",
                      extra={"message_id": message.get("MessageId"), "error": e.message})
            self.lanes.release(message)
            return "unreadable"
        meta = task["metadata"]
        job = Job(message=message, task=task, attempt=attempt, received=self.clock(),
                  ctx={"task_id": meta["id"], "attempt": attempt}, marks={"received": time.time()})
        sent = message.get("Attributes", {}).get("SentTimestamp")
        if sent:
            job.marks["sent"] = int(sent) / 1000
            self.metrics.queue_wait.observe(max(0.0, job.marks["received"] - job.marks["sent"]))
        state = (peeked or {}).get(meta["id"])
        if state is None:
            state = (self.store.quietly("status", self.store.peek, meta["id"]) if self.store else None) or {}
        if state.get("status") in ("cancelled", "expired"):
            log.info(f"task was {state['status']} before it ran; dropping it", extra=job.ctx)
            self.lanes.delete(message)
            return state["status"]
        # An earlier attempt may have stored (and announced) the result: ask S3, unless this is
        # the first delivery and the store says `queued`, so no attempt has begun (a store that
        # cannot be read counts as unknown, and S3 is asked). One call fewer on the usual path.
        if not self.store or attempt > 1 or state.get("status") != "queued":
            existing = self.results.existing_result(job.out_key)
            if existing is not None and existing.get("status") == "completed":
                return self._repeat(job, existing, state.get("status"))
        if job.deadline is not None and time.time() >= job.deadline:
            return self.results.finish(job, Expired())
        try:
            job.content = self.fetcher.resolve_content(task["content"])
        except TaskFailure as failure:
            return self.results.fail(message, task, failure, attempt, job.out_key, job.ctx)
        return job

    def _repeat(self, job: Job, existing: dict, recorded: str | None) -> str:
        """A task whose result is stored already: announce it if that may not have happened
        (a crash between upload and publish), then drop the repeat."""
        meta = job.task["metadata"]
        if recorded == "completed":
            log.info("result already stored and announced; dropping the repeat", extra=job.ctx)
        else:
            log.info("result already stored; republishing its notification", extra=job.ctx)
            self.results.publish(existing.get("notification") or {}, job.task)
            if self.store:
                self.store.quietly("completed", self.store.complete, meta["id"], existing.get("notification") or {},
                                   seconds=(existing.get("seconds") or {}).get("runtime", 0))
        self.lanes.delete(job.message)
        return "duplicate"

    def begin(self, job: Job) -> str | None:
        """Just before the runtime call: a task whose deadline passed while it waited here
        expires. Returns the outcome of a task that will not run, None for one that will."""
        if job.deadline is not None and time.time() >= job.deadline:
            return self.results.finish(job, Expired())
        return None
