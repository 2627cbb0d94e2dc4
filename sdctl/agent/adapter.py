"""The one interface every runtime adapter keeps, whatever the runtime's API: the agent asks
whether the runtime is ready, runs a task (or several, where the type batches), reads the call's
progress, interrupts it, and closes. A type's module (sdctl/contracts/runtimes) names its
adapter; `for_kind` makes one for a runtime of that type.

Failures are classified (sdctl/agent/failures.py) so the agent knows what to do with the
message."""

from __future__ import annotations

import httpx

from sdctl.agent.failures import PermanentFailure, RuntimeOutput


class Adapter:
    #: GET here answers 200 once the runtime can take a task.
    ready_path = "/"
    #: POST here stops the call in flight (None: the type has no such call; see `interrupt`).
    interrupt_path: str | None = None
    #: Whether run_many takes several tasks in one call (agent.batchTasks).
    batches = False

    def __init__(self, root: str, http: httpx.Client) -> None:
        self.root, self.http = root, http

    @classmethod
    def for_kind(cls, kind, base_url: str, *, timeout: float, settings=None) -> Adapter:
        """One for a runtime of `kind` at `base_url`; `settings` (AgentSettings) for what the
        adapter takes from the runtime's config."""
        raise NotImplementedError

    def ready(self) -> bool:
        try:
            return self.http.get(self.ready_path, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def run(self, tasktype: str, content: dict, *, task_id: str | None = None) -> RuntimeOutput:
        """One task's call (`task_id`: for a runtime that names its calls, so a redelivered task
        does not start a second one)."""
        raise NotImplementedError

    def run_many(self, contents: list[dict]) -> list[RuntimeOutput]:
        raise PermanentFailure("unsupported-runtime", "this runtime takes one task per call")

    def progress(self) -> dict | None:
        """Where the call in flight is: step, steps, percent, eta_seconds; None when unknown."""
        return None

    def interrupt(self) -> None:
        """Stop the call in flight (cancel, or a deadline); a failure to reach the runtime is
        not an error: the call then ends by itself."""
        if self.interrupt_path is None:
            return
        try:
            self.http.post(self.interrupt_path, timeout=5)
        except httpx.HTTPError:
            pass

    def close(self) -> None:
        self.http.close()
