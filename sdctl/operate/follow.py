"""Follow one task to its images: the record step by step, then the stored result, then the
download. The CLI (`sdctl generate`, `sdctl submit --wait`) and any other front end bring only
how progress is shown and how to ask whether to cancel on Ctrl-C."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from sdctl.contracts.events import Report

Shows = Callable[[str], AbstractContextManager[Report]]


class LeftRunning(KeyboardInterrupt):
    """Ctrl-C while following: the task was cancelled (`cancelled`, or `cancel_requested` while
    its runtime call is interrupted) or keeps running."""

    def __init__(self, task_id: str, *, cancelled: bool = False, cancel_requested: bool = False) -> None:
        super().__init__(task_id)
        self.task_id, self.cancelled, self.cancel_requested = task_id, cancelled, cancel_requested


def record(target, task_id: str) -> dict | None:
    """The task's record from the API, where the stack keeps one (None if it has none or the
    id is unknown)."""
    from sdctl.errors import SdctlError

    if not target.tasks_table:
        return None
    try:
        return target.api().task(task_id)
    except SdctlError:
        return None


def place(record: dict | None) -> str:
    where = (record or {}).get("place_in_line")
    return f", #{where} in line" if where else ""


def follow_and_download(target, task_id: str, prefix: str, *, timeout: float, out_dir: Path,
                        steps: Shows, waiting: Shows,
                        cancel: Callable[[], bool]) -> tuple[dict, list[Path]]:
    """Follow the task (place in line, steps, done; shown by `steps`) until its result is stored
    (`waiting`), then download its images. On Ctrl-C `cancel()` says whether to cancel it;
    either way LeftRunning says what became of the task."""
    from sdctl.operate import client, tasks

    s3 = target.s3()
    try:
        if target.tasks_table:  # the record says where the task is, step by step
            api = target.api()
            with steps("") as report:
                rec = tasks.wait(lambda: api.task(task_id), task_id=task_id, timeout=timeout, report=report)
            if rec.get("status") == "cancelled":  # perhaps while queued: then nothing was stored
                client.finished({**rec, "error": rec.get("error") or {"code": "cancelled",
                                                                      "message": "cancelled by its caller"}})
        with waiting(f"waiting for task {task_id}…") as report:
            doc = client.wait_result(s3, target.bucket, prefix, task_id, timeout=timeout, report=report,
                                     flags=target.flags)
    except KeyboardInterrupt:
        if not cancel():
            raise LeftRunning(task_id) from None
        answer = target.api().cancel(task_id)
        raise LeftRunning(task_id, cancelled=True,
                          cancel_requested=bool(answer.get("cancel_requested"))) from None
    client.finished(doc)
    return doc, client.download(s3, doc.get("image_url", []), out_dir)
