"""The pipeline: a prefetcher receives and prepares the next task while runners keep the
runtime busy, and finishers store and announce results, so no AWS call sits between two
runtime calls. Shutdown: SIGTERM stops receiving, returns unstarted messages, lets the running
task finish within the grace period."""

from __future__ import annotations

import logging
import queue
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sdctl.agent.stages import Job
from sdctl.contracts.tasks import notification, wants_webhook

log = logging.getLogger("sdctl.agent")

#: Background AWS work (storing a result, receiving the next task) starts this long after
#: the runner takes its next task, so the GIL and the CPU are free while it sends the
#: runtime request: the moment when a wait idles the runtime.
QUIET_SECONDS = 0.003


class Stop(BaseException):
    """Raised by the signal handler to leave a long poll at once (not an Exception, so no
    `except Exception` around an AWS call swallows it)."""


class Pipeline:
    """The agent's threads over its named parts: `lanes` receives, releases and deletes
    (sdctl/agent/sqs.py); `preparer` prepares (stages.py); `runner` runs on the runtime
    (runner.py); `results` stores and announces (results.py); `heartbeat` keeps held messages
    invisible; `deletes` batches the deletes. Each is built with what it needs and nothing
    else (sdctl/agent/worker.py wires them)."""

    def __init__(self, settings, *, lanes, preparer, runner, results, heartbeat, deletes, metrics, stopping,
                 clock) -> None:
        self.settings, self.lanes, self.preparer, self.runner, self.results = settings, lanes, preparer, runner, results
        self.heartbeat, self.deletes, self.metrics, self.stopping, self.clock = heartbeat, deletes, metrics, stopping, clock
        self.processed = 0
        self._claimed = 0
        self._count_lock = threading.Lock()
        self.running: dict[str, dict] = {}  # message id -> message, for tasks on the runtime now

    def handle(self, message: dict) -> str:
        """Process one message start to end; return what happened (for logs and tests)."""
        job = self.preparer.prepare(message)
        if isinstance(job, Job):
            job = self.preparer.begin(job) or job
        outcome = job if isinstance(job, str) else self.results.finish(job, self.runner.execute(job))
        self.deletes.flush()  # one task at a time: its message goes now
        self.metrics.outcome(outcome)
        return outcome

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
        for held in self.heartbeat.held():
            self.lanes.release(held)
        log.warning("exiting without finishing; held messages returned to the queue", extra={"why": why})
        logging.shutdown()
        os._exit(0)

    def run(self, *, max_tasks: int | None = None) -> None:
        """Keep the runtime busy: a prefetcher thread receives and prepares the next task while
        the runtime works on the current one, and a small pool stores and announces finished
        tasks, so no AWS call sits between two runtime calls. With RUNTIME_CONCURRENCY > 1,
        that many runners each keep one call in flight; a runtime that queues requests
        (AUTOMATIC1111, sdctl's runtime) then starts the next one the moment it finishes."""
        self.lanes.discover_redrive_policy()
        # The runtime's answer must not wait for a finisher thread's boto3 work to yield the
        # GIL (5 ms by default): this process is I/O bound, so switch threads sooner.
        sys.setswitchinterval(0.0005)
        ready: queue.Queue[Job] = queue.Queue(maxsize=max(self.settings.prefetch, self.settings.runtime_concurrency,
                                                          self.settings.batch_tasks))
        finishing = ThreadPoolExecutor(max_workers=4, thread_name_prefix="finish")
        runners: list[threading.Thread] = []
        log.info("agent started; waiting for the runtime", extra={
            "runtime": self.settings.runtime_name, "queue_url": self.settings.queue_url,
            "runtime_url": getattr(self.runner.adapter, "root", ""), "runtime_concurrency": self.settings.runtime_concurrency,
            "batch_tasks": self.settings.batch_tasks, "prefetch": self.settings.prefetch,
            "task_store": self.settings.tasks_table or None})
        try:
            if not self.runner.wait_ready():
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
            self.lanes.finish_polls()  # a lane's long poll still in flight brings its messages here
            # Whatever is still held (prefetched, or taken but not started) goes back at once.
            self.deletes.flush()  # finished tasks' messages go before anything is handed back
            for held in self.heartbeat.held():
                self.lanes.release(held)
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
                job = self._higher_first(ready)
                if job is None:
                    try:
                        job = ready.get(timeout=0.2)
                    except queue.Empty:
                        self._claim(None, release=True)
                        continue
            jobs = [job]
            key = self.runner.batch_key(job)
            while key is not None and len(jobs) < self.settings.batch_tasks and self._claim(max_tasks):
                try:
                    more = ready.get_nowait()
                except queue.Empty:
                    self._claim(None, release=True)
                    break
                if self.runner.batch_key(more) != key:
                    carry.append(more)
                    break
                jobs.append(more)
            jobs = [j for j in jobs if self._begin_quietly(j)]
            if not jobs:
                continue
            for j in jobs:
                self.running[j.message.get("MessageId", "")] = j.message
                if self.settings.notify_running or wants_webhook(j.task, "running"):
                    finishing.submit(self._announce_running, j)
            try:
                results = self.runner.execute_many(jobs)
            finally:
                for j in jobs:
                    self.running.pop(j.message.get("MessageId", ""), None)
            for j, result in zip(jobs, results, strict=True):
                finishing.submit(self._finish, j, result)
            with self._count_lock:
                self.processed += len(jobs)
        if max_tasks is not None and self.processed >= max_tasks:
            self.stopping.set()

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
            # Poll only with room to put what comes: a message taken while the queue is full
            # would sit in this thread's hands, and a long poll in flight at shutdown could
            # take back a message the agent had just returned.
            while (ready.full() or self.runner.down.is_set()) and not self.stopping.is_set():
                self.stopping.wait(0.005)  # no new task while the line is full or the runtime is down
            if self.stopping.is_set():
                break
            messages = self.lanes.receive()
            peeked = self.preparer.peek_all(messages) if messages and not self.stopping.is_set() else {}
            for message in messages:
                job = None if self.stopping.is_set() else self._prepare_quietly(message, peeked)
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
                    self.lanes.release(message)
                if not isinstance(job, Job):
                    self.heartbeat.untrack(message)

    def _higher_first(self, ready: queue.Queue) -> Job | None:
        """A task held here (prefetched) from a lower lane lets a higher-priority one that has
        arrived since run first: the runner takes the higher one from its queue and the held
        task stays next in line. The prefetcher does not poll while the line is full, so the
        two do not race for it."""
        from sdctl.agent.sqs import OVERTAKE_AFTER_SECONDS, QUEUE

        with ready.mutex:
            held = ready.queue[0] if ready.queue else None
        lanes = [url for _, url in self.settings.lanes]
        mine = held.message.get(QUEUE) if held is not None else None
        if mine not in lanes[1:] or self.clock() - held.received < OVERTAKE_AFTER_SECONDS:
            return None
        for url in lanes[:lanes.index(mine)]:
            for message in self.lanes.receive_from(url, wait=0, count=1):
                higher = self._prepare_quietly(message)
                if isinstance(higher, Job):
                    log.info("a higher-priority task goes before a waiting one",
                             extra={"task_id": higher.ctx["task_id"], "waiting": held.ctx["task_id"]})
                    return higher
                if isinstance(higher, str):
                    self.metrics.outcome(higher)
                else:
                    self.lanes.release(message)
                self.heartbeat.untrack(message)
        return None

    def _begin_quietly(self, job: Job) -> bool:
        """True if the job goes to the runtime now; a job that will not (cancelled or expired
        while it waited here) is counted and let go."""
        try:
            outcome = self.preparer.begin(job)
        except Exception as e:  # an AWS hiccup: the message comes back later
            log.warning("could not start a task; it will be retried", extra={**job.ctx, "error": str(e)})
            self.lanes.release(job.message)
            outcome = "retry"
        if outcome is None:
            return True
        self.metrics.outcome(outcome)
        self.heartbeat.untrack(job.message)
        with self._count_lock:
            self.processed += 1
        return False

    def _prepare_quietly(self, message: dict, peeked: dict | None = None) -> Job | str | None:
        try:
            return self.preparer.prepare(message, peeked)
        except Exception as e:  # an AWS hiccup while preparing: the message comes back later
            log.warning("could not prepare a task; it will be retried", extra={"error": str(e)})
            return None

    def _announce_running(self, job: Job) -> None:
        """The optional `status: running` notice, sent beside the runtime call, never before it."""
        note = notification(job.task, status="running", bucket=self.settings.bucket, image_keys=[],
                            output_key=job.out_key)
        note["attempt"] = job.attempt
        try:
            self.results.publish(note, job.task, topic=self.settings.notify_running)
        except Exception as e:  # a lost notice must not cost the task
            log.warning("could not announce running", extra={**job.ctx, "error": str(e)})

    def _finish(self, job: Job, result) -> None:
        time.sleep(QUIET_SECONDS)  # the runner is sending the next request now
        try:
            self.metrics.outcome(self.results.finish(job, result))
        except Exception as e:
            log.error("finishing failed; the task returns when its visibility lapses", extra={**job.ctx, "error": str(e)})
        finally:
            self.heartbeat.untrack(job.message)
