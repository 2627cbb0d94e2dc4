"""While the runtime works on a task, report how far it is (at most once a second: step k of
N, percent, ETA, to the task store and the task's `progress` webhook), and stop it when it
should not go on: the caller cancelled it
(DELETE on a running task sets `cancel_requested` in the task store), its deadline passed
under `deadlinePolicy: interrupt`, or it ran past `maxTaskSeconds`. The runtime is told to
interrupt (`/sdapi/v1/interrupt`, ComfyUI's `/interrupt`); the call then returns and the
stages turn it into `cancelled` or a `deadline` failure.

The store is read every POLL_SECONDS per running call: one consistent GetItem, far below a
table's capacity even with hundreds of GPUs.

`starting`, when given, runs first on the watch's thread, beside the runtime call rather than
before it (a task store write is one AWS round trip the runtime would otherwise sit idle
for): it records the tasks `running` and returns the ids the store refused (cancelled or
expired meanwhile), whose call is then interrupted at once."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("sdctl.agent")

POLL_SECONDS = 0.5
#: At most one progress write (task store, webhook) per second per call.
PROGRESS_SECONDS = 1.0


class Watch:
    def __init__(self, adapter, store, task_ids: list[str], *, stop_at: float | None,
                 poll: float = POLL_SECONDS, clock=time.time, on_progress=None, starting=None):
        self.adapter, self.store, self.task_ids = adapter, store, task_ids
        self.stop_at, self.poll, self.clock = stop_at, poll, clock
        self.on_progress = on_progress if hasattr(adapter, "progress") else None
        self._last_progress: tuple | None = None
        self._next_progress = 0.0
        self.starting = starting
        self.cancelled: set[str] = set()
        self.refused: set[str] = set()
        self.timed_out = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)

    @property
    def fired(self) -> bool:
        return self.timed_out or bool(self.cancelled) or bool(self.refused)

    def __enter__(self) -> Watch:
        if (self.store is not None or self.stop_at is not None or self.on_progress is not None
                or self.starting is not None):
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _report_progress(self) -> None:
        now = time.monotonic()
        if self.on_progress is None or now < self._next_progress:
            return
        self._next_progress = now + PROGRESS_SECONDS
        seen = self.adapter.progress()
        if seen and (seen["step"], seen["steps"]) != self._last_progress:
            self._last_progress = (seen["step"], seen["steps"])
            try:
                self.on_progress(seen)
            except Exception as e:  # progress is a courtesy: never the task's failure
                log.warning("could not record progress", extra={"tasks": self.task_ids, "error": str(e)})

    def _run(self) -> None:
        if self.starting is not None:
            self.refused = set(self.starting())
            if self.refused:
                log.info("interrupting the runtime", extra={"tasks": sorted(self.refused),
                                                            "why": "cancelled before it started"})
                self.adapter.interrupt()
                return
        while not self._done.wait(self.poll):
            self._report_progress()
            if self.stop_at is not None and self.clock() >= self.stop_at:
                self.timed_out = True
            elif self.store is not None:
                for task_id in self.task_ids:
                    state = self.store.quietly("cancel check", self.store.peek, task_id) or {}
                    if state.get("cancel_requested"):
                        self.cancelled.add(task_id)
            if self.fired:
                log.info("interrupting the runtime", extra={"tasks": sorted(self.cancelled) or self.task_ids,
                                                            "why": "deadline" if self.timed_out else "cancelled"})
                self.adapter.interrupt()
                return
