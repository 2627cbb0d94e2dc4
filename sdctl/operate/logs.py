"""Log lines for `sdctl logs`: the local stack's process log files, or a runtime's pods."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sdctl.contracts.tasks import timestamp


def local_files(log_dir: Path, runtime: str, *, agent: bool) -> list[Path]:
    """The agent-<runtime>-N.log files, or runtime-<runtime>.log (names the supervisor gives them)."""
    pattern = f"agent-{runtime}-*.log" if agent else f"runtime-{runtime}.log"
    files = sorted(log_dir.glob(pattern))
    if not files:
        from sdctl.errors import SdctlError

        what = "agent" if agent else "runtime"
        hint = "this runtime's URL was given with --runtime-url: its logs are wherever you run it" if not agent \
            else f"look in {log_dir}"
        raise SdctlError(f"no {what} log for runtime {runtime} in {log_dir}", hint=hint)
    return files


def _stamp(line: str) -> str | None:
    """The ISO time of a JSON log line (the agent's `ts`), or None for other lines."""
    if not line.startswith("{"):
        return None
    try:
        ts = json.loads(line).get("ts")
    except (ValueError, AttributeError):
        return None
    if not isinstance(ts, int | float):
        return None
    return timestamp(datetime.fromtimestamp(ts, UTC))


def _keep(line: str, since: str | None) -> bool:
    if since is None:
        return True
    stamp = _stamp(line)
    return stamp is None or stamp >= since


def read_files(files: list[Path], *, since: str | None = None) -> Iterator[tuple[str, str]]:
    for path in files:
        with open(path, errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if line and _keep(line, since):
                    yield path.stem, line


def follow_files(files: list[Path], *, since: str | None = None, poll: float = 0.3,
                 stop=lambda: False) -> Iterator[tuple[str, str]]:
    """What is there, then new lines as they are written (like tail -f, across files)."""
    handles = {}
    for path in files:
        f = open(path, errors="replace")  # noqa: SIM115 - kept open while following
        handles[path] = f
        for line in f:
            line = line.rstrip("\n")
            if line and _keep(line, since):
                yield path.stem, line
    try:
        while not stop():
            quiet = True
            for path, f in handles.items():
                line = f.readline()
                while line:
                    quiet = False
                    if line.strip():
                        yield path.stem, line.rstrip("\n")
                    line = f.readline()
            if quiet:
                time.sleep(poll)
    finally:
        for f in handles.values():
            f.close()


def pod_lines(api, *, release: str, namespace: str, container: str, follow: bool,
              since_seconds: int | None) -> Iterator[tuple[str, str]]:
    """Each pod's lines (newest pod last); with follow, stream the newest pod."""
    from kubernetes import client as k

    core = k.CoreV1Api(api)
    pods = core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/instance={release}").items
    pods.sort(key=lambda p: p.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC))
    if not pods:
        from sdctl.errors import SdctlError

        raise SdctlError(f"no pods for {release} in namespace {namespace}",
                         hint="the runtime may be scaled to zero; `sdctl scale status` says why")
    kw = {"container": container, "timestamps": True}
    if since_seconds:
        kw["since_seconds"] = since_seconds
    for pod in pods[:-1] if follow else pods:
        text = core.read_namespaced_pod_log(pod.metadata.name, namespace, **kw)
        for line in text.splitlines():
            yield pod.metadata.name, line
    if follow:
        newest = pods[-1].metadata.name
        resp = core.read_namespaced_pod_log(newest, namespace, follow=True, _preload_content=False, **kw)
        for raw in resp.stream():
            for line in raw.decode(errors="replace").splitlines():
                yield newest, line
