"""One poller per stack feeds every open tab: it reads the queues (and, locally, the processes)
every `interval` seconds and the tasks a tab follows, keeps the last hour, and the pages and the
event stream read what it holds. So ten tabs cost AWS no more calls than one.

Per cycle, per runtime (operate/queues.py `snapshot`, what `sdctl queue status` reads):
GetQueueAttributes on each lane's queue and dead-letter queue (6 calls with three lanes) and 8
task-store queries (the oldest queued task, arrivals in each of the 6 states, completions),
one page each while the last minute holds under a page of tasks; per followed task, one GET of
its record (at most FOLLOW_MAX tasks, each until it ends). At the default 5 s interval and one
runtime that is 14 calls a cycle, 168 a minute, whatever the number of tabs. `calls` counts
them (bench/console_calls.py prints them).
"""

from __future__ import annotations

import collections
import threading
import time

from sdctl.contracts.tasks import FINAL

#: The poll interval's floor: the console never asks AWS more often than this.
MIN_INTERVAL = 2.0
DEFAULT_INTERVAL = 5.0
#: Tasks followed at once (the playground's and the task pages'): the oldest is dropped past it.
FOLLOW_MAX = 20
HISTORY_SECONDS = 3600


class Poller:
    def __init__(self, target, *, interval: float = DEFAULT_INTERVAL, processes=None, scale=None,
                 clock=time.time) -> None:
        self.target, self.clock = target, clock
        #: On AWS: each runtime's scale chain from its lanes' depths (operate/scalechain.py), read
        #: from the cluster's API (no AWS call beyond the EKS token).
        self.scale = scale
        self.interval = max(MIN_INTERVAL, interval)
        self.processes = processes  # () -> list of the local stack's processes, or None on AWS
        self.calls = 0
        self.history: collections.deque = collections.deque(maxlen=int(HISTORY_SECONDS / self.interval) + 1)
        self.tasks: dict[str, dict] = {}  # followed task id -> its last record
        self.follow_order: collections.deque = collections.deque()
        self.changed = threading.Condition()
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for name in ("sqs", "dynamodb"):
            target.client(name).meta.events.register("before-call", self._count)

    def _count(self, **_) -> None:
        self.calls += 1

    def follow(self, task_id: str) -> None:
        with self.changed:
            if task_id not in self.tasks:
                self.tasks[task_id] = {"id": task_id, "status": "unknown"}
                self.follow_order.append(task_id)
                while len(self.follow_order) > FOLLOW_MAX:
                    self.tasks.pop(self.follow_order.popleft(), None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="console-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.changed:
            self.changed.notify_all()

    def latest(self) -> dict | None:
        return self.history[-1] if self.history else None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval)

    def poll_once(self) -> None:
        from sdctl.operate import queues

        sample: dict = {"at": self.clock(), "runtimes": {}}
        try:
            for name, q in self.target.queues.items():
                sample["runtimes"][name] = queues.snapshot(self.target.client("sqs"), self.target.client("dynamodb"),
                                                           self.target.tasks_table, name, q)
            if self.processes is not None:
                sample["processes"] = self.processes()
            self.error = None
        except Exception as e:  # noqa: BLE001 - shown on the page; the next cycle tries again
            self.error = f"{type(e).__name__}: {e}"
        try:
            if self.scale is not None and sample["runtimes"]:
                sample["scale"] = self.scale({n: r["lanes"] for n, r in sample["runtimes"].items()})
        except Exception as e:  # noqa: BLE001 - the queues still show; the chain says why it is missing
            sample["scale_error"] = f"{type(e).__name__}: {e}"
        self._poll_tasks()
        with self.changed:
            self.history.append(sample)
            self.changed.notify_all()

    def _poll_tasks(self) -> None:
        api = self.target.api()
        for task_id in list(self.follow_order):
            if self.tasks.get(task_id, {}).get("status") in FINAL:
                continue
            try:
                record = api.task(task_id)
            except Exception:  # noqa: BLE001 - not recorded yet, or briefly unreachable
                continue
            self.calls += 1  # through the API: one call of its own
            with self.changed:
                if task_id in self.tasks:
                    self.tasks[task_id] = record

    def wait_for_change(self, since: float, timeout: float) -> dict | None:
        """The newest sample after `since` (epoch seconds), waiting up to `timeout`."""
        with self.changed:
            self.changed.wait_for(lambda: self._stop.is_set() or (self.latest() or {}).get("at", 0) > since,
                                  timeout=timeout)
            return self.latest()
