"""The agent loop: receive a task, run it on the runtime, store the results, notify, ack.

Delivery is at-least-once (SQS); results are effectively-once because every key depends on
the task id only. A message is deleted only after its results are stored and notified, or
after a permanent failure has been reported. Transient failures leave the message for
redelivery; its last allowed attempt reports `failed` and lets SQS move it to the
dead-letter queue, so nothing is dropped.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sdctl.agent.failures import PermanentFailure, TaskFailure, TransientFailure
from sdctl.agent.heartbeat import Heartbeat
from sdctl.agent.settings import AgentSettings
from sdctl.agent.tasks import notification, parse_message
from sdctl.builders.names import output_keys

log = logging.getLogger("sdctl.agent")

#: Background AWS work (storing a result, receiving the next task) starts this long after
#: the runner takes its next task, so the GIL and the CPU are free while it sends the
#: runtime request: the moment when a wait idles the runtime.
QUIET_SECONDS = 0.003


class Stop(BaseException):
    """Raised by the signal handler to leave a long poll at once (not an Exception, so no
    `except Exception` around an AWS call swallows it)."""


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


class Agent:
    def __init__(self, settings: AgentSettings, *, sqs, s3, sns, adapter, clock: Callable[[], float] = time.monotonic,
                 fetcher=None, store=None):
        from sdctl.agent.inputs import Fetcher

        self.settings = settings
        self.store = store  # the task store (sdctl.agent.store.TaskStore), if the deployment has one
        self.fetcher = fetcher or Fetcher(s3=s3, allowed_buckets={settings.bucket, *settings.input_buckets})
        self.sqs = sqs
        self.s3 = s3
        self.sns = sns
        self.adapter = adapter
        self.clock = clock
        self.stopping = threading.Event()
        self.processed = 0
        self._claimed = 0
        self._count_lock = threading.Lock()
        self.max_receive_count = settings.max_receive_count
        self.has_dead_letter_queue = False
        self.heartbeat = Heartbeat(sqs, settings.queue_url, settings.visibility_seconds)
        self.running: dict[str, dict] = {}  # message id -> message, for tasks on the runtime now
        from sdctl.agent.observe import Metrics

        self.metrics = Metrics(settings.runtime_name)

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

    # -- lifecycle --------------------------------------------------------------------
    def install_signal_handlers(self, grace_seconds: float | None = None) -> None:
        """SIGTERM/SIGINT: stop receiving; return unstarted messages; let the running task
        finish within the grace period, else return it too; exit 0. A second signal exits at once."""
        grace = self.settings.max_task_seconds if grace_seconds is None else grace_seconds

        def on_term(signum, frame):
            if self.stopping.is_set():
                self._abandon("second signal")
            self.stopping.set()
            if not self.running:
                log.info("signal received while idle; exiting", extra={"signal": signum})
                raise Stop()
            log.info("signal received; finishing the current task, then exiting",
                     extra={"signal": signum, "grace_seconds": grace})
            timer = threading.Timer(grace, self._abandon, args=("grace period over",))
            timer.daemon = True
            timer.start()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)

    def _abandon(self, why: str) -> None:
        """Return every message we hold (the running one included) and exit now."""
        import os

        self.heartbeat.stop()
        for receipt in self.heartbeat.held():
            self._release({"ReceiptHandle": receipt})
        log.warning("exiting without finishing; held messages returned to the queue", extra={"why": why})
        logging.shutdown()
        os._exit(0)

    def wait_for_runtime(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else self.clock() + timeout
        delay = 0.2
        while not self.stopping.is_set():
            if self.adapter.ready():
                log.info("runtime is ready", extra={"runtime_url": getattr(self.adapter, "root", "")})
                return True
            if deadline is not None and self.clock() > deadline:
                return False
            self.stopping.wait(delay)
            delay = min(delay * 2, 5.0)
        return False

    def run(self, *, max_tasks: int | None = None) -> None:
        """Keep the runtime busy: a prefetcher thread receives and prepares the next task while
        the runtime works on the current one, and a small pool stores and announces finished
        tasks, so no AWS call sits between two runtime calls. With RUNTIME_CONCURRENCY > 1,
        that many runners each keep one call in flight; a runtime that queues requests
        (AUTOMATIC1111, sdctl's runtime) then starts the next one the moment it finishes."""
        self.discover_redrive_policy()
        # The runtime's answer must not wait for a finisher thread's boto3 work to yield the
        # GIL (5 ms by default): this process is I/O bound, so switch threads sooner.
        sys.setswitchinterval(0.0005)
        ready: queue.Queue[Job] = queue.Queue(maxsize=max(self.settings.prefetch, self.settings.runtime_concurrency,
                                                          self.settings.batch_tasks))
        finishing = ThreadPoolExecutor(max_workers=4, thread_name_prefix="finish")
        runners: list[threading.Thread] = []
        log.info("agent started; waiting for the runtime", extra={
            "runtime": self.settings.runtime_name, "queue_url": self.settings.queue_url,
            "runtime_url": getattr(self.adapter, "root", ""), "runtime_concurrency": self.settings.runtime_concurrency,
            "batch_tasks": self.settings.batch_tasks, "prefetch": self.settings.prefetch,
            "task_store": self.settings.tasks_table or None})
        try:
            if not self.wait_for_runtime():
                return
            threading.Thread(target=self._prefetch, args=(ready,), name="prefetch", daemon=True).start()
            for i in range(1, self.settings.runtime_concurrency):
                runner = threading.Thread(target=self._run_tasks, args=(ready, finishing, max_tasks),
                                          name=f"runner-{i}", daemon=True)
                runner.start()
                runners.append(runner)
            self._run_tasks(ready, finishing, max_tasks)
        except Stop:
            pass
        finally:
            self.stopping.set()
            for runner in runners:  # each finishes its call (the grace timer bounds this)
                runner.join()
            finishing.shutdown(wait=True)  # started tasks are stored, announced and deleted
            # Whatever is still held (prefetched, or taken but not started) goes back at once.
            for receipt in self.heartbeat.held():
                self._release({"ReceiptHandle": receipt})
            self.heartbeat.stop()

    def _run_tasks(self, ready: queue.Queue, finishing: ThreadPoolExecutor, max_tasks: int | None) -> None:
        """One runner: take a prepared task (or several that batch together), run it on the
        runtime, hand the results to the finishers."""
        carry: list[Job] = []  # taken while gathering a batch but not part of it: runs next
        while not self.stopping.is_set():
            if carry:
                job = carry.pop()
            elif not self._claim(max_tasks):
                break
            else:
                try:
                    job = ready.get(timeout=0.2)
                except queue.Empty:
                    self._claim(None, release=True)
                    continue
            jobs = [job]
            key = self._batch_key(job)
            while key is not None and len(jobs) < self.settings.batch_tasks and self._claim(max_tasks):
                try:
                    more = ready.get_nowait()
                except queue.Empty:
                    self._claim(None, release=True)
                    break
                if self._batch_key(more) != key:
                    carry.append(more)
                    break
                jobs.append(more)
            for j in jobs:
                self.running[j.message.get("MessageId", "")] = j.message
                if self.settings.notify_running:
                    finishing.submit(self._announce_running, j)
            try:
                results = self.execute_many(jobs)
            finally:
                for j in jobs:
                    self.running.pop(j.message.get("MessageId", ""), None)
            for j, result in zip(jobs, results, strict=True):
                finishing.submit(self._finish, j, result)
            with self._count_lock:
                self.processed += len(jobs)
        if max_tasks is not None and self.processed >= max_tasks:
            self.stopping.set()

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

    def _claim(self, max_tasks: int | None, release: bool = False) -> bool:
        """Reserve one of `max_tasks` (tests and benchmarks stop after that many)."""
        with self._count_lock:
            if release:
                self._claimed -= 1
                return True
            if max_tasks is not None and self._claimed >= max_tasks:
                return False
            self._claimed += 1
            return True

    def _prefetch(self, ready: queue.Queue) -> None:
        while not self.stopping.is_set():
            for message in self.receive():
                job = None if self.stopping.is_set() else self._prepare_quietly(message)
                if isinstance(job, str):
                    self.metrics.outcome(job)
                if isinstance(job, Job):
                    while not self.stopping.is_set():
                        try:
                            ready.put(job, timeout=0.2)
                            self.stopping.wait(QUIET_SECONDS)
                            break
                        except queue.Full:
                            continue
                    else:
                        job = None
                if job is None:
                    self._release(message)
                if not isinstance(job, Job):
                    self.heartbeat.untrack(message)

    def _prepare_quietly(self, message: dict) -> Job | str | None:
        try:
            return self.prepare(message)
        except Exception as e:  # an AWS hiccup while preparing: the message comes back later
            log.warning("could not prepare a task; it will be retried", extra={"error": str(e)})
            return None

    def _announce_running(self, job: Job) -> None:
        """The optional `status: running` notice, sent beside the runtime call, never before it."""
        note = notification(job.task, status="running", bucket=self.settings.bucket, image_keys=[],
                            output_key=job.out_key)
        note["attempt"] = job.attempt
        try:
            self._publish(note, job.task)
        except Exception as e:  # a lost notice must not cost the task
            log.warning("could not announce running", extra={**job.ctx, "error": str(e)})

    def _finish(self, job: Job, result) -> None:
        time.sleep(QUIET_SECONDS)  # the runner is sending the next request now
        try:
            self.metrics.outcome(self.finish(job, result))
        except Exception as e:
            log.error("finishing failed; the task returns when its visibility lapses", extra={**job.ctx, "error": str(e)})
        finally:
            self.heartbeat.untrack(job.message)

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

    # -- one message --------------------------------------------------------------------
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

    def finish(self, job: Job, result) -> str:
        """Store images and the result document, announce it, then delete the message."""
        message, task, ctx = job.message, job.task, job.ctx
        if isinstance(result, TaskFailure):
            return self._fail(message, task, result, job.attempt, job.out_key, ctx)
        meta = task["metadata"]
        image_keys, out_key = output_keys(meta["prefix"], meta["id"], len(result.images))
        note = notification(task, status="completed", bucket=self.settings.bucket, image_keys=image_keys,
                            output_key=out_key, model=result.model)
        document = {**note, "parameters": result.parameters, "info": result.info,
                    "seconds": {"runtime": round(job.runtime_seconds, 3),
                                "total": round(self.clock() - job.received, 3)},
                    "attempt": job.attempt, "notification": note}
        try:
            for key, png in zip(image_keys, result.images, strict=True):
                self.s3.put_object(Bucket=self.settings.bucket, Key=key, Body=png, ContentType="image/png")
            self._put_json(out_key, document)
            self._publish(note, task)
        except Exception as e:
            log.warning("storing or notifying failed; the task will be retried", extra={**ctx, "error": str(e)})
            self._release(message)
            return "retry"
        if self.store:
            self.store.quietly("completed", self.store.complete, meta["id"], note, seconds=job.runtime_seconds,
                               seed=(result.info or {}).get("seed"))
        self._delete(message)
        self.metrics.task_seconds.observe(self.clock() - job.received)
        log.info("task completed", extra={**ctx, "images": len(image_keys),
                                          "seconds": document["seconds"]["total"]})
        return "completed"

    def _fail(self, message: dict, task: dict, failure: TaskFailure, attempt: int, out_key: str, ctx: dict) -> str:
        last = attempt >= self.max_receive_count
        if isinstance(failure, TransientFailure) and not last:
            log.warning("transient failure; the task will be retried",
                        extra={**ctx, "code": failure.code, "error": failure.message})
            self._release(message, delay=min(2 ** attempt, 60))
            return "retry"
        note = notification(task, status="failed", bucket=self.settings.bucket, image_keys=[],
                            output_key=out_key, error=failure.to_dict())
        try:
            self._put_json(out_key, {**note, "notification": note, "attempt": attempt})
            self._publish(note, task)
        except Exception as e:
            log.warning("could not report the failure; the task will be retried",
                        extra={**ctx, "error": str(e)})
            self._release(message)
            return "retry"
        if self.store:
            self.store.quietly("failed", self.store.fail, task["metadata"]["id"], failure.to_dict(), attempt=attempt)
        if isinstance(failure, TransientFailure) and self.has_dead_letter_queue:
            # Last allowed attempt: reported as failed; SQS moves it to the DLQ on its next receive.
            log.error("task failed on its last attempt; moving to the dead-letter queue",
                      extra={**ctx, "code": failure.code, "error": failure.message})
            self._release(message)
            return "dead-letter"
        log.error("task failed", extra={**ctx, "code": failure.code, "error": failure.message})
        self._delete(message)
        return "failed"

    # -- AWS calls ------------------------------------------------------------------------
    def _existing_result(self, key: str) -> dict | None:
        try:
            obj = self.s3.get_object(Bucket=self.settings.bucket, Key=key)
        except self.s3.exceptions.NoSuchKey:
            return None
        except Exception:
            return None
        try:
            return json.loads(obj["Body"].read())
        except ValueError:
            return None

    def _put_json(self, key: str, document: dict) -> None:
        self.s3.put_object(Bucket=self.settings.bucket, Key=key, ContentType="application/json",
                           Body=json.dumps(document, separators=(",", ":")).encode())

    def _publish(self, note: dict, task: dict) -> None:
        if not note:
            return
        self.sns.publish(
            TopicArn=self.settings.topic_arn,
            Message=json.dumps(note, separators=(",", ":")),
            MessageAttributes={
                "runtime": {"DataType": "String", "StringValue": task["metadata"]["runtime"]},
                "status": {"DataType": "String", "StringValue": note["status"]},
            },
        )

    def _delete(self, message: dict) -> None:
        self.sqs.delete_message(QueueUrl=self.settings.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _release(self, message: dict, delay: int = 0) -> None:
        try:
            self.sqs.change_message_visibility(QueueUrl=self.settings.queue_url,
                                               ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay)
        except Exception as e:
            log.warning("could not release the message; it returns when its visibility expires",
                        extra={"error": str(e)})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message and any `extra` fields."""

    SKIP = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        data = {"ts": round(record.created, 3), "level": record.levelname.lower(), "msg": record.getMessage()}
        data.update({k: v for k, v in vars(record).items() if k not in self.SKIP and k != "message"})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("sdctl")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def build(settings: AgentSettings) -> Agent:
    """Create the AWS clients and the adapter from settings."""
    import boto3
    from botocore.config import Config as BotoConfig

    from sdctl.agent.adapters import adapter_for

    session = boto3.session.Session(region_name=settings.region)
    cfg = BotoConfig(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=20,
                     read_timeout=settings.wait_seconds + 10)
    clients = {name: session.client(name, endpoint_url=settings.endpoint_url, config=cfg)
               for name in ("sqs", "s3", "sns")}
    adapter = adapter_for(settings.runtime_type, settings.api_base_url,
                          timeout=settings.max_task_seconds, dynamic_model=settings.dynamic_model)
    store = None
    if settings.tasks_table:
        from sdctl.agent.store import TaskStore

        store = TaskStore(session.client("dynamodb", endpoint_url=settings.endpoint_url, config=cfg),
                          settings.tasks_table, settings.task_ttl_days)
    return Agent(settings, adapter=adapter, store=store, **clients)
