"""Serving the emulator durably: when to snapshot (sdctl/execute/local/emulator/persist.py writes and
restores the snapshots), and the WSGI wrapper that answers a durable request only once its
change is on disk.

A snapshot is taken one second after the first change (a request that is not a Get/List/
Describe/Query/Scan, or a ReceiveMessage that returned messages), and at once for a request
that asks for it: `x-sdctl-durable: 1` (the CLI's clients send it) or `POST /_sdctl/sync` (the
local gateway calls it before it answers 202). Such a request is answered only once a snapshot
that includes its change is on disk (group commit: one snapshot serves every waiter). The
snapshot is written in a forked child while the parent keeps serving.
"""

from __future__ import annotations

import gc
import io
import json
import os
import select
import signal
import sys
import threading
import time
from pathlib import Path

from sdctl.execute.local.emulator.persist import OBJECTS, SnapshotError, write

#: The header a client sends to be answered only once its change is on disk.
DURABLE_HEADER = "x-sdctl-durable"
SYNC_PATH = "/_sdctl/sync"
#: The child's first line once the snapshot is on disk.
DONE = "snapshot-written"
#: How long after the first change a snapshot is taken when nobody waits for one.
INTERVAL = float(os.environ.get("SDCTL_SNAPSHOT_SECONDS") or 1.0)
#: A child that has not finished by then is killed (a lock held at fork time, a full disk).
CHILD_TIMEOUT = 120.0
READ_ONLY = ("Get", "List", "Describe", "Query", "Scan", "BatchGet", "Head")


class Snapshotter:
    """Takes snapshots in forked children: after INTERVAL once something changed, at once when
    someone waits. `changed()` returns the generation a waiter passes to `wait()`."""

    def __init__(self, root: Path, interval: float = INTERVAL):
        self.root = root
        self.interval = interval
        self.cond = threading.Condition()
        self.generation = 0  # changes seen
        self.saved = 0  # changes on disk
        self.first_change_at: float | None = None
        #: The newest change someone waits to see on disk. Not a count of waiters: a waiter
        #: whose snapshot is written but who has not woken yet wants nothing more, and counting
        #: it took a second snapshot at once for the changes made while the first was written.
        self.wanted = 0
        self.failures = 0
        self.last_error: str | None = None
        (root / OBJECTS).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.known = {p.name for p in (root / OBJECTS).iterdir()}
        self.stats = {"snapshots": 0, "seconds": 0.0, "fork_seconds": 0.0}
        # The child must not import: another thread may hold the import lock at the fork.
        import hashlib  # noqa: F401

        import moto.s3.models  # noqa: F401
        self._stop = False
        # One snapshot at a time: two children writing at once could leave the older one last.
        self.taking = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="snapshots", daemon=True)

    def start(self) -> Snapshotter:
        self.thread.start()
        return self

    def changed(self) -> int:
        with self.cond:
            self.generation += 1
            if self.first_change_at is None:
                self.first_change_at = time.monotonic()
            self.cond.notify_all()
            return self.generation

    def wait(self, generation: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            self.wanted = max(self.wanted, generation)
            self.cond.notify_all()
            while self.saved < generation:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SnapshotError(f"no snapshot within {timeout:.0f}s: {self.last_error or 'busy'}")
                self.cond.wait(left)

    def flush(self) -> None:
        """Take a snapshot now if anything changed (on SIGTERM, before exiting)."""
        with self.cond:
            self._stop = True
            self.cond.notify_all()  # the writer thread ends instead of waiting out its timer
            generation = self.generation
        if self.saved < generation:
            self._take(generation)

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self._stop:
                    if self.generation > self.saved and (
                            self.wanted > self.saved or time.monotonic() - self.first_change_at >= self.interval):
                        break
                    timeout = None
                    if self.generation > self.saved:
                        timeout = max(0.0, self.interval - (time.monotonic() - self.first_change_at))
                    self.cond.wait(timeout)
                if self._stop:
                    return
                generation = self.generation
                self.first_change_at = None
            try:
                self._take(generation)
            except SnapshotError as e:
                with self.cond:
                    self.failures += 1
                    self.last_error = str(e)
                    self.first_change_at = time.monotonic()
                print(f"snapshot failed: {e}", file=sys.stderr, flush=True)
                time.sleep(min(5.0, 0.2 * 2 ** min(self.failures, 5)))

    def _take(self, generation: int) -> None:
        with self.taking:
            if self.saved < generation:
                self._fork_and_write(generation)

    def _fork_and_write(self, generation: int) -> None:
        started = time.monotonic()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: a frozen copy of the emulator; write it and leave
            code = 1
            gc.disable()  # a collection would walk, and so copy, every page of the parent's memory
            try:
                os.close(r)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                new = write(self.root, set(self.known))
                os.write(w, "\n".join([DONE, *new]).encode())
                os.close(w)  # the parent goes on now, not after this copy of its memory is torn down
                code = 0
            except BaseException as e:  # noqa: BLE001 - reported through the exit code and stderr
                os.write(2, f"snapshot child: {type(e).__name__}: {e}\n".encode())
            finally:
                os._exit(code)
        forked = time.monotonic()
        os.close(w)
        out = b""
        try:
            deadline = time.monotonic() + CHILD_TIMEOUT
            while True:
                ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    os.kill(pid, signal.SIGKILL)
                    break
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                out += chunk
        finally:
            os.close(r)
        lines = out.decode().split("\n")
        if lines[0] != DONE:
            _, status = os.waitpid(pid, 0)
            raise SnapshotError(f"the snapshot child ended with status {status} (see the emulator's log)")
        threading.Thread(target=os.waitpid, args=(pid, 0), daemon=True).start()  # reap it as it exits
        self.known.update(n for n in lines[1:] if n)
        with self.cond:
            self.saved = max(self.saved, generation)
            self.failures = 0
            self.last_error = None
            self.stats["snapshots"] += 1
            self.stats["seconds"] += time.monotonic() - started
            self.stats["fork_seconds"] += forked - started
            self.cond.notify_all()


# -- which requests change something ---------------------------------------------------------


def operation(environ: dict, body: bytes) -> str | None:
    """The AWS operation a request names: the JSON protocols' X-Amz-Target, the query
    protocol's Action. None for REST APIs (S3, API Gateway), which the method says."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    if b"Action=" in body:
        from urllib.parse import parse_qs

        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        return action[0] if action else None
    return None


def changes_state(method: str, op: str | None, response: bytes | None) -> bool:
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    if op is None:
        return True
    if op == "ReceiveMessage":  # a receive that returned nothing changed nothing
        return response is None or b"ReceiptHandle" in response
    return not op.startswith(READ_ONLY)


class DurableApp:
    """WSGI middleware around moto's app: counts the changes, answers durable requests once
    their change is on disk, and serves POST /_sdctl/sync."""

    def __init__(self, app, snapshots: Snapshotter):
        self.app = app
        self.snapshots = snapshots

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        if environ.get("PATH_INFO") == SYNC_PATH:
            return self._sync(start_response)
        body = b""
        if method == "POST" and "HTTP_X_AMZ_TARGET" not in environ and \
                "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        op = operation(environ, body)
        if not changes_state(method, op, None):
            return self.app(environ, start_response)
        captured: dict = {}

        def capture(status, headers, exc_info=None):
            captured.update(status=status, headers=headers, exc_info=exc_info)
            return lambda data: captured.setdefault("written", []).append(data)

        chunks = list(self.app(environ, capture))
        response = b"".join(captured.get("written", []) + chunks)
        if changes_state(method, op, response):
            generation = self.snapshots.changed()
            if environ.get("HTTP_" + DURABLE_HEADER.upper().replace("-", "_")) == "1":
                try:
                    self.snapshots.wait(generation)
                except SnapshotError as e:
                    return _json(start_response, "503 Service Unavailable", {"message": str(e)})
        start_response(captured["status"], captured["headers"], captured.get("exc_info"))
        return [response]

    def _sync(self, start_response):
        generation = self.snapshots.generation
        try:
            self.snapshots.wait(generation)
        except SnapshotError as e:
            return _json(start_response, "503 Service Unavailable", {"message": str(e)})
        return _json(start_response, "200 OK", {"changes": self.snapshots.generation, **self.snapshots.stats})


def _json(start_response, status: str, body: dict):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def durable_header(request, signature_version=None, **_) -> None:
    """A botocore `before-sign` handler: ask the emulator to answer once the change is on disk
    (signed like every other header, so moto's signature check sees the same request). Not on
    a presigned URL (``s3v4-query``): a browser that opens it sends no such header, and a
    signed header it lacks fails the signature."""
    if str(signature_version or "").endswith(("-query", "-presign-post")):
        return
    request.headers[DURABLE_HEADER] = "1"
