"""The local stack's AWS keeps its data: point-in-time snapshots of the emulator's memory.

moto holds every bucket, queue, table, key and IAM user in one process's memory. This module,
loaded into that process (sdctl/execute/local/emulator/server.py), writes that memory to a folder
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

import io
import json
import os
import pickle
import threading
import time
from pathlib import Path

STATE = "state.pickle"
OBJECTS = "objects"
RESTORE = "restore.json"
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
