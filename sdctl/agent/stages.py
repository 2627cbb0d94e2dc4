"""One task's stages: prepare (parse, skip what is done or cancelled, fetch inputs), execute
(the runtime call, alone or batched with others that differ only in prompt and seed), and
`handle`, which runs them in order. The pipeline (sdctl/agent/pipeline.py) overlaps them."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

from sdctl.agent.failures import PermanentFailure, TaskFailure
from sdctl.agent.tasks import parse_message
from sdctl.builders.names import output_keys

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

    @property
    def out_key(self) -> str:
        meta = self.task["metadata"]
        return output_keys(meta["prefix"], meta["id"], 0)[1]


class Stages:
    def handle(self, message: dict) -> str:
        """Process one message start to end; return what happened (for logs and tests)."""
        job = self.prepare(message)
        outcome = job if isinstance(job, str) else self.finish(job, self.execute(job))
        self.metrics.outcome(outcome)
        return outcome

    # The three stages. `run` overlaps them: while the runtime works on one task, the next
    # is prepared and the previous one is stored and announced.
    def prepare(self, message: dict) -> Job | str:
        """Parse, skip what is already done, and fetch inputs. Never calls the runtime."""
        attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            task = parse_message(message["Body"])
        except PermanentFailure as e:
            # Without an id nobody can be told; keep the message so SQS moves it to the DLQ.
            log.error("unreadable message; leaving it for the dead-letter queue",
                      extra={"message_id": message.get("MessageId"), "error": e.message})
            self._release(message)
            return "unreadable"
        meta = task["metadata"]
        job = Job(message=message, task=task, attempt=attempt, received=self.clock(),
                  ctx={"task_id": meta["id"], "attempt": attempt})
        sent = message.get("Attributes", {}).get("SentTimestamp")
        if sent:
            self.metrics.queue_wait.observe(max(0.0, time.time() - int(sent) / 1000))
        existing = self._existing_result(job.out_key)
        if existing is not None and existing.get("status") == "completed":
            note = existing.get("notification") or {}
            if self.store and self.store.quietly("status", self.store.status, meta["id"]) == "completed":
                log.info("result already stored and announced; dropping the repeat", extra=job.ctx)
            else:  # stored, but maybe never announced (crash between upload and publish)
                log.info("result already stored; republishing its notification", extra=job.ctx)
                self._publish(note, task)
                if self.store:
                    self.store.quietly("completed", self.store.complete, meta["id"], note,
                                       seconds=(existing.get("seconds") or {}).get("runtime", 0))
            self._delete(message)
            return "duplicate"
        if self.store and self.store.quietly("running", self.store.start, meta["id"], attempt=attempt,
                                             runtime=meta["runtime"]) is False:
            log.info("task was cancelled before it ran; dropping it", extra=job.ctx)
            self._delete(message)
            return "cancelled"
        try:
            job.content = self.fetcher.resolve_content(task["content"])
        except TaskFailure as failure:
            return self._fail(message, task, failure, attempt, job.out_key, job.ctx)
        return job

    def execute(self, job: Job):
        """The runtime call: a RuntimeOutput, or the TaskFailure that stopped it."""
        started = self.clock()
        try:
            output = self.adapter.run(job.task["metadata"].get("tasktype", "text-to-image"), job.content)
            if not output.images:
                raise PermanentFailure("no-images", "the runtime returned no images")
        except TaskFailure as failure:
            return failure
        job.runtime_seconds = self.clock() - started
        self.metrics.ran(job.runtime_seconds)
        return output

    def execute_many(self, jobs: list[Job]) -> list:
        """Run several batchable tasks in one runtime call, split back per task. If the batched
        call fails, each task runs alone, so one bad task cannot fail its neighbours."""
        if len(jobs) == 1:
            return [self.execute(jobs[0])]
        started = self.clock()
        try:
            outputs = self.adapter.run_many([j.content for j in jobs])
        except TaskFailure as failure:
            log.warning("batched runtime call failed; running its tasks one by one",
                        extra={"tasks": [j.ctx["task_id"] for j in jobs], "code": failure.code,
                               "error": failure.message})
            return [self.execute(j) for j in jobs]
        seconds = self.clock() - started
        self.metrics.ran(seconds)
        results = []
        for j, output in zip(jobs, outputs, strict=True):
            j.runtime_seconds = seconds
            results.append(output if output.images else PermanentFailure("no-images", "the runtime returned no images"))
        return results

    def _batch_key(self, job: Job) -> str | None:
        """Tasks with equal keys may share one runtime call: text-to-image, one image each, the
        same settings apart from prompt, negative prompt and seed. None: runs alone."""
        if self.settings.batch_tasks < 2 or not getattr(self.adapter, "batches", False):
            return None
        content = job.content
        if job.task["metadata"].get("tasktype", "text-to-image") != "text-to-image":
            return None
        if any(content.get(k) not in (None, 1) for k in ("batch_size", "n_iter")):
            return None
        if any(content.get(k) for k in ("override_settings", "alwayson_scripts")):
            return None  # a model switch or extension runs alone
        shared = {k: v for k, v in content.items() if k not in ("prompt", "negative_prompt", "seed")}
        return json.dumps(shared, sort_keys=True, default=str)
