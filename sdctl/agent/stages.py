"""One task's stages: prepare (parse, skip what is done, cancelled or expired, fetch inputs),
begin (the last deadline check), execute (the runtime call, alone or batched with others
that differ only in prompt and seed, with `running` recorded in the task store beside it,
watched for cancel and deadline), and `handle`, which runs them in order. The pipeline
(sdctl/agent/pipeline.py) overlaps them: a prefetched task stays `queued` until the runtime
starts it."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

from sdctl.agent.failures import (
    Cancelled,
    Expired,
    PermanentFailure,
    Refused,
    TaskFailure,
    TransientFailure,
)
from sdctl.agent.tasks import notification, parse_message, wants_webhook
from sdctl.agent.watch import Watch
from sdctl.contracts.tasks import output_keys, parse_deadline

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
        return output_keys(meta["prefix"], meta["id"], 0)[1]

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


class Stages:
    def handle(self, message: dict) -> str:
        """Process one message start to end; return what happened (for logs and tests)."""
        job = self.prepare(message)
        if isinstance(job, Job):
            job = self.begin(job) or job
        outcome = job if isinstance(job, str) else self.finish(job, self.execute(job))
        self.deletes.flush()  # one task at a time: its message goes now
        self.metrics.outcome(outcome)
        return outcome

    # The three stages. `run` overlaps them: while the runtime works on one task, the next
    # is prepared and the previous one is stored and announced.
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
            self._release(message)
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
            self._delete(message)
            return state["status"]
        # An earlier attempt may have stored (and announced) the result: ask S3, unless this is
        # the first delivery and the store says `queued`, so no attempt has begun (a store that
        # cannot be read counts as unknown, and S3 is asked). One call fewer on the usual path.
        if not self.store or attempt > 1 or state.get("status") != "queued":
            existing = self._existing_result(job.out_key)
            if existing is not None and existing.get("status") == "completed":
                return self._repeat(job, existing, state.get("status"))
        if job.deadline is not None and time.time() >= job.deadline:
            return self.finish(job, Expired())
        try:
            job.content = self.fetcher.resolve_content(task["content"])
        except TaskFailure as failure:
            return self._fail(message, task, failure, attempt, job.out_key, job.ctx)
        return job

    def _repeat(self, job: Job, existing: dict, recorded: str | None) -> str:
        """A task whose result is stored already: announce it if that may not have happened
        (a crash between upload and publish), then drop the repeat."""
        meta = job.task["metadata"]
        if recorded == "completed":
            log.info("result already stored and announced; dropping the repeat", extra=job.ctx)
        else:
            log.info("result already stored; republishing its notification", extra=job.ctx)
            self._publish(existing.get("notification") or {}, job.task)
            if self.store:
                self.store.quietly("completed", self.store.complete, meta["id"], existing.get("notification") or {},
                                   seconds=(existing.get("seconds") or {}).get("runtime", 0))
        self._delete(job.message)
        return "duplicate"

    def begin(self, job: Job) -> str | None:
        """Just before the runtime call: a task whose deadline passed while it waited here
        expires. Returns the outcome of a task that will not run, None for one that will."""
        if job.deadline is not None and time.time() >= job.deadline:
            return self.finish(job, Expired())
        return None

    def _record_start(self, jobs: list[Job]) -> set[str]:
        """`running` in the task store for each job, as its runtime call starts (on the watch's
        thread); the ids the store refused because they were cancelled or expired first."""
        refused = set()
        for job in jobs:
            meta = job.task["metadata"]
            if self.store and self.store.quietly("running", self.store.start, meta["id"], attempt=job.attempt,
                                                 runtime=meta["runtime"]) is False:
                refused.add(meta["id"])
        return refused

    def _progress(self, job: Job, seen: dict) -> None:
        """A running task's progress: in its record (GET shows it) and, if asked, its webhook."""
        if self.store:
            self.store.quietly("progress", self.store.progress, job.ctx["task_id"], seen)
        if wants_webhook(job.task, "progress") and self.settings.webhook_queue_url:
            from sdctl.contracts.webhooks import webhook_message

            note = notification(job.task, status="progress", bucket=self.settings.bucket, image_keys=[],
                                output_key=job.out_key)
            note["progress"] = seen
            self.sqs.send_message(QueueUrl=self.settings.webhook_queue_url, MessageBody=json.dumps(
                webhook_message(job.task["metadata"]["webhook"], note, step=seen["step"])))

    def _stopped(self, job: Job, watch: Watch):
        """What a call the watch interrupted means for this job, or None if it was not stopped."""
        if job.ctx["task_id"] in watch.refused:
            return Refused()
        if job.ctx["task_id"] in watch.cancelled:
            return Cancelled()
        if watch.timed_out and time.time() >= job.stop_time:
            return PermanentFailure("deadline", "interrupted: the task ran past its deadline "
                                    f"(maxTaskSeconds {self.settings.max_task_seconds}, or deadlinePolicy interrupt)")
        return None

    def execute(self, job: Job):
        """The runtime call: a RuntimeOutput, Cancelled, or the TaskFailure that stopped it."""
        started = self.clock()
        job.marks["started"] = time.time()
        job.stop_time = job.stop_at(self.settings.max_task_seconds)
        with Watch(self.adapter, self.store, [job.ctx["task_id"]], stop_at=job.stop_time,
                   on_progress=lambda seen: self._progress(job, seen),
                   starting=(lambda: self._record_start([job])) if self.store else None) as watch:
            try:
                output = self.adapter.run(job.task["metadata"].get("tasktype", "text-to-image"), job.content)
            except TaskFailure as failure:
                output = failure
        job.runtime_seconds = job.gpu_seconds = self.clock() - started
        job.marks["ran"] = time.time()
        if isinstance(output, TaskFailure) and output.code == "runtime-unavailable":
            output = self._runtime_went_away(job, output)
        stopped = self._stopped(job, watch) if watch.fired else None
        if stopped is not None:
            return stopped
        if isinstance(output, TaskFailure):
            return output
        if not output.images:
            return PermanentFailure("no-images", "the runtime returned no images")
        self._paced(job.runtime_seconds)
        self.metrics.ran(job.runtime_seconds)
        return output

    def _runtime_went_away(self, job: Job, failure: TaskFailure) -> TaskFailure:
        """The runtime could not be reached for this task: if it is down (a crash, an OOM kill,
        a container restart reloading the model), stop taking tasks, keep this one and wait
        for the runtime to be ready again (no longer than the task may run), and only then
        give the task back for its next attempt. So a restart costs one attempt, not all of
        them, and a task that kills the runtime every time still reaches the dead-letter queue
        after its receive count, one crash per attempt."""
        if self.adapter.ready():
            return failure  # a one-off connection error: the usual retry
        log.warning("the runtime went away during a task; holding it until the runtime is ready again",
                    extra={**job.ctx, "error": failure.message})
        self.runtime_down.set()
        try:
            back = self.wait_for_runtime(timeout=max(1.0, job.stop_time - time.time()))
        finally:
            self.runtime_down.clear()
        if not back:
            return failure
        return TransientFailure("runtime-restarted", "the runtime restarted while it worked on this task "
                                f"({failure.message}); the task runs again")

    def _paced(self, seconds_per_task: float) -> None:
        """The runtime's recent seconds per task (a moving average), for receive_count."""
        pace = getattr(self, "_runtime_pace", None)
        self._runtime_pace = seconds_per_task if pace is None else 0.8 * pace + 0.2 * seconds_per_task

    def execute_many(self, jobs: list[Job]) -> list:
        """Run several batchable tasks in one runtime call, split back per task. If the batched
        call fails, each task runs alone, so one bad task cannot fail its neighbours."""
        if len(jobs) == 1:
            return [self.execute(jobs[0])]
        started = self.clock()
        for j in jobs:
            j.marks["started"] = time.time()
            j.stop_time = j.stop_at(self.settings.max_task_seconds)
        with Watch(self.adapter, self.store, [j.ctx["task_id"] for j in jobs],
                   stop_at=min(j.stop_time for j in jobs),
                   starting=(lambda: self._record_start(jobs)) if self.store else None) as watch:
            try:
                outputs = self.adapter.run_many([j.content for j in jobs])
            except TaskFailure as failure:
                outputs = failure
        if watch.fired:  # the ones it was stopped for end here; the others run again, alone
            return [self._stopped(j, watch) or self.execute(j) for j in jobs]
        if isinstance(outputs, TaskFailure):
            log.warning("batched runtime call failed; running its tasks one by one",
                        extra={"tasks": [j.ctx["task_id"] for j in jobs], "code": outputs.code,
                               "error": outputs.message})
            return [self.execute(j) for j in jobs]
        seconds = self.clock() - started
        self._paced(seconds / len(jobs))
        self.metrics.ran(seconds)
        results = []
        ran = time.time()
        for j, output in zip(jobs, outputs, strict=True):
            j.runtime_seconds, j.gpu_seconds = seconds, seconds / len(jobs)
            j.marks["ran"] = ran
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
