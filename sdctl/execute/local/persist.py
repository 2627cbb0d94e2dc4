"""The local stack's AWS keeps its data: point-in-time snapshots of the emulator's memory.

moto holds every bucket, queue, table, key and IAM user in one process's memory. This module,
loaded into that process (sdctl/execute/local/emulator.py), writes that memory to a folder
(`.sdctl/aws/` by default) and reads it back when the emulator starts, so a `local down` /
`local up` or a crash of the emulator keeps what the stack held:

    DIR/state.pickle      every service's backends, pickled (object bodies left out)
    DIR/objects/ETAG-SIZE  each S3 object's body, written once (content-addressed)
    DIR/restore.json      what the last start read back, for `sdctl local status`

How a snapshot is taken: the emulator forks. The child is a frozen copy of the whole process
at one instant (the way Redis' BGSAVE works), so the snapshot is consistent across services:
an image put before a message was deleted is in every snapshot that lacks the message. The
child pickles and writes while the parent keeps serving; the parent only pays for the fork.

When: one second after the first change (a request that is not a Get/List/Describe/Query/
Scan, or a ReceiveMessage that returned messages), and at once for a request that asks for
it: `x-sdctl-durable: 1` (the CLI's clients send it) or `POST /_sdctl/sync` (the local gateway
calls it before it answers 202). Such a request is answered only once a snapshot that
includes its change is on disk (group commit: one snapshot serves every waiter).

What a crash (SIGKILL, OOM) loses, exactly: the changes made after the last snapshot, and
none of them had been acknowledged to a user. Concretely, the stack comes back as it was
up to one second earlier: a task a worker finished in that second is in its queue again and
is rendered again (every message taken at the snapshot is delivered again at once, and the
receipt handles given out before the crash are void, so a delete sent after the restore for
work the rollback undid fails instead of losing the task) (its image is overwritten with the same key, its result announced again,
its webhook delivered again with the same `webhook-id`), a message moved to a dead-letter
queue in that second is back in its queue. Accepted tasks, keys created or revoked, redrives
and cancels are kept: each was on disk before its command returned.

    SnapshotError          a snapshot could not be written (the emulator keeps serving and
                           tries again; a durable request gets 503)
"""

from __future__ import annotations

import gc
import io
import json
import os
import pickle
import select
import signal
import sys
import threading
import time
from pathlib import Path

STATE = "state.pickle"
OBJECTS = "objects"
RESTORE = "restore.json"
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
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class SnapshotError(Exception):
    pass


# -- what is saved ---------------------------------------------------------------------------


#: What every BackendDict has; anything else on one is the service's cross-account state (S3's
#: bucket_accounts: which account owns a bucket name), saved beside its backends.
_BASE_ATTRIBUTES = {"backend", "service_name", "_use_boto3_regions", "_additional_regions", "_id"}


def _backends() -> dict:
    """{service: {account: {region: backend}}} for every service that holds something."""
    from moto.core.base_backend import BackendDict

    return {bd.service_name: {account: dict(regions) for account, regions in bd.items()}
            for bd in list(BackendDict._instances) if len(bd)}


def _shared() -> dict:
    from moto.core.base_backend import BackendDict

    return {bd.service_name: {k: v for k, v in vars(bd).items() if k not in _BASE_ATTRIBUTES}
            for bd in list(BackendDict._instances) if len(bd)}


def _body(key) -> bytes:
    """An S3 object's bytes, read without its lock (in the forked child nothing else runs, and
    a lock another thread held at the fork would never be released) and without moving the
    file offset the parent shares for a body spooled to disk."""
    buf = key._value_buffer
    f = buf._file
    if isinstance(f, io.BytesIO):
        return f.getvalue()
    f.flush()
    return os.pread(f.fileno(), key.contentsize, 0)


def _restore_key(cls, name: str, state: dict):
    key = cls.__new__(cls)
    key.__setstate__(dict(state, value=_LOADING["objects"].joinpath(name).read_bytes()))
    _LOADING["names"].add(name)
    return key


_LOADING: dict = {}


class _Pickler(pickle.Pickler):
    def __init__(self, file, objects: Path, known: set[str]):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        from moto.s3.models import FakeKey

        self.fake_key = FakeKey
        self.objects = objects
        self.known = known
        self.new: list[str] = []

    def reducer_override(self, obj):
        if isinstance(obj, self.fake_key):
            name = f"{obj._etag or 'none'}-{obj.contentsize}"
            if obj._etag is None or name not in self.known:
                body = _body(obj)
                if obj._etag is None:
                    import hashlib

                    name = f"{hashlib.md5(body).hexdigest()}-{len(body)}"  # noqa: S324 - S3's ETag
                if name not in self.known:
                    _write_atomic(self.objects / name, body)
                    self.known.add(name)
                    self.new.append(name)
            state = {k: v for k, v in obj.__dict__.items() if k not in ("_value_buffer", "lock")}
            return _restore_key, (type(obj), name, state)
        if isinstance(obj, _LOCK_TYPES[0]):
            return threading.Lock, ()
        if isinstance(obj, _LOCK_TYPES[1]):
            return threading.RLock, ()
        return NotImplemented


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # keys and secrets: the user's only
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write(root: Path, known: set[str]) -> list[str]:
    """Write the snapshot (in the process whose memory it is). Returns the object bodies it
    wrote that `known` lacked."""
    (root / OBJECTS).mkdir(parents=True, exist_ok=True, mode=0o700)
    buf = io.BytesIO()
    pickler = _Pickler(buf, root / OBJECTS, known)
    pickler.dump({"version": _moto_version(), "taken_at": time.time(), "backends": _backends(),
                  "shared": _shared()})
    _write_atomic(root / STATE, buf.getvalue())
    return pickler.new


def restore(root: Path) -> dict:
    """Load the snapshot under `root` into this process's moto, before it serves. Returns what
    was read (also written to restore.json). A snapshot this moto cannot read is moved aside,
    never deleted, and the emulator starts empty."""
    from moto.backends import get_backend

    path = root / STATE
    info: dict = {"restored": False, "at": time.time()}
    if path.exists():
        _LOADING.update(objects=root / OBJECTS, names=set())
        try:
            data = pickle.loads(path.read_bytes())  # noqa: S301 - our own file, mode 0600 folder
            for service, accounts in data["backends"].items():
                backend = get_backend(service)
                for account, regions in accounts.items():
                    holder = backend[account]
                    for region, value in regions.items():
                        dict.__setitem__(holder, region, value)
                vars(backend).update(data["shared"].get(service, {}))
            info.update(restored=True, taken_at=data["taken_at"],
                        services=sorted(data["backends"]), objects=len(_LOADING["names"]),
                        bytes=path.stat().st_size, redelivered=_void_receipts(data["backends"].get("sqs", {})))
            _collect_garbage(root / OBJECTS, _LOADING["names"])
        except Exception as e:  # another moto version, a truncated file: keep it for the user
            aside = path.with_name(f"{STATE}.unreadable-{int(time.time())}")
            os.replace(path, aside)
            info.update(error=f"{type(e).__name__}: {e}", moved_to=str(aside))
        finally:
            _LOADING.clear()
    _write_atomic(root / RESTORE, json.dumps(info).encode())
    return info


def _void_receipts(accounts: dict) -> int:
    """Every message a consumer had taken when the snapshot was written is visible again at
    once, and no receipt handle from before the restore is honoured. What a consumer did with
    such a message after that moment (its image and result stored, say) is gone with the rest
    of that second, so its DeleteMessage, arriving at the restored emulator, must not remove it:
    a message deleted that way would be a task lost. Instead it is delivered again and, the
    result missing, rendered again; the stale delete fails as a stale receipt handle does on SQS.
    Returns how many messages were delivered again."""
    again = 0
    for regions in accounts.values():
        for backend in regions.values():
            for queue in backend.queues.values():
                for m in queue._messages:
                    if m.receipt_handle is None and not m._old_receipt_handles:
                        continue  # never received
                    again += not m.visible
                    m.receipt_handle, m._old_receipt_handles, m.visible_at = None, [], 0.0
                    queue.pending_messages.discard(m)
    return again


def _collect_garbage(objects: Path, referenced: set[str]) -> None:
    for p in objects.iterdir():
        if p.name not in referenced:
            p.unlink(missing_ok=True)


def _moto_version() -> str:
    import moto

    return moto.__version__


def read_restore(root: Path) -> dict | None:
    try:
        return json.loads((root / RESTORE).read_text())
    except (OSError, ValueError):
        return None


# -- when it is saved ------------------------------------------------------------------------


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
