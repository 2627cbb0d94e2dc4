"""Run a task on the runtime: alone, or batched with others that differ only in prompt and
seed; `running` recorded in the task store as the call starts, progress passed on, the call
watched for cancel and deadline (sdctl/agent/watch.py); a runtime that went away waited for."""

from __future__ import annotations

import json
import logging
import threading
import time

from sdctl.agent.failures import (
    Cancelled,
    PermanentFailure,
    Refused,
    RuntimeUnusable,
    TaskFailure,
    TransientFailure,
)
from sdctl.agent.stages import Job
from sdctl.agent.watch import Watch
from sdctl.contracts.tasks import notification, wants_webhook

log = logging.getLogger("sdctl.agent")


class Runner:
    def __init__(self, settings, *, adapter, store, sqs, lanes, metrics, clock, stopping, deletion_cost=None) -> None:
        from sdctl.agent.podcost import NoCost

        self.settings, self.adapter, self.store, self.sqs = settings, adapter, store, sqs
        self.deletion_cost = deletion_cost or NoCost()  # this pod's, while a call runs (podcost.py)
        self.lanes, self.metrics, self.clock, self.stopping = lanes, metrics, clock, stopping
        self.down = threading.Event()  # set while a call waits for a restarted runtime: take no new task
        self.unusable: str | None = None  # why the runtime can never take a task, once known

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Until the runtime answers ready (True), the timeout passes or the agent stops (False)."""
        deadline = None if timeout is None else self.clock() + timeout
        delay = 0.2
        while not self.stopping.is_set():
            try:
                up = self.adapter.ready()
            except RuntimeUnusable as e:
                self.unusable = str(e)
                log.error("the runtime cannot take tasks; the agent stops", extra={"why": self.unusable})
                _termination_message(self.unusable)
                return False
            if up:
                log.info("runtime is ready", extra={"runtime_url": getattr(self.adapter, "root", "")})
                return True
            if deadline is not None and self.clock() > deadline:
                return False
            self.stopping.wait(delay)
            delay = min(delay * 2, 5.0)
        return False

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
            self.deletion_cost.started()
            try:
                output = self.adapter.run(job.task["metadata"].get("tasktype", "text-to-image"), job.content,
                                          task_id=job.ctx["task_id"])
            except TaskFailure as failure:
                output = failure
            finally:
                self.deletion_cost.ended()
        job.runtime_seconds = job.gpu_seconds = self.clock() - started
        job.marks["ran"] = time.time()
        if isinstance(output, TaskFailure) and output.code == "runtime-unavailable":
            output = self._runtime_went_away(job, output)
        stopped = self._stopped(job, watch) if watch.fired else None
        if stopped is not None:
            return stopped
        if isinstance(output, TaskFailure):
            return output
        if not output.images and output.value is None:
            return PermanentFailure("no-images", "the runtime returned no images")
        self.lanes.paced(job.runtime_seconds)
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
        self.down.set()
        try:
            back = self.wait_ready(timeout=max(1.0, job.stop_time - time.time()))
        finally:
            self.down.clear()
        if not back:
            return failure
        return TransientFailure("runtime-restarted", "the runtime restarted while it worked on this task "
                                f"({failure.message}); the task runs again")

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
            self.deletion_cost.started()
            try:
                outputs = self.adapter.run_many([j.content for j in jobs])
            except TaskFailure as failure:
                outputs = failure
            finally:
                self.deletion_cost.ended()
        if watch.fired:  # the ones it was stopped for end here; the others run again, alone
            return [self._stopped(j, watch) or self.execute(j) for j in jobs]
        if isinstance(outputs, TaskFailure):
            log.warning("batched runtime call failed; running its tasks one by one",
                        extra={"tasks": [j.ctx["task_id"] for j in jobs], "code": outputs.code,
                               "error": outputs.message})
            return [self.execute(j) for j in jobs]
        seconds = self.clock() - started
        self.lanes.paced(seconds / len(jobs))
        self.metrics.ran(seconds)
        results = []
        ran = time.time()
        for j, output in zip(jobs, outputs, strict=True):
            j.runtime_seconds, j.gpu_seconds = seconds, seconds / len(jobs)
            j.marks["ran"] = ran
            results.append(output if output.images else PermanentFailure("no-images", "the runtime returned no images"))
        return results

    def batch_key(self, job: Job) -> str | None:
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


def _termination_message(why: str) -> None:
    """Where Kubernetes reads why a container ended (terminationMessagePath): `scale status`
    and `doctor` show it beside the pod."""
    try:
        with open("/dev/termination-log", "w") as f:
            f.write(why[:4000])
    except OSError:
        pass
