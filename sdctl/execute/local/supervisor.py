"""Start, watch and restart the local stack's processes, as a Deployment would."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from sdctl.contracts.agent_env import UNUSABLE_EXIT
from sdctl.contracts.events import Event
from sdctl.errors import LocalStackError

#: Stop order: consumers first, the emulator last.
STOP_ORDER = ("agent", "gateway", "webhooks", "runtime", "aws")


@dataclass
class ProcSpec:
    role: str
    name: str
    argv: list[str]
    env: dict[str, str]
    runtime: str | None = None
    port: int | None = None
    url: str | None = None
    ready_path: str | None = None


@dataclass
class Child:
    spec: ProcSpec
    popen: subprocess.Popen
    log_path: Path
    restarts: int = 0
    started: float = field(default_factory=time.time)
    next_restart: float = 0.0
    stopped: str | None = None  # why it ended for good (an agent whose runtime can never take a task)

    def describe(self) -> dict:
        s = self.spec
        return {"role": s.role, "name": s.name, "runtime": s.runtime, "pid": self.popen.pid, "port": s.port,
                "url": s.url, "restarts": self.restarts, "log": str(self.log_path),
                "alive": self.popen.poll() is None, **({"stopped": self.stopped} if self.stopped else {})}


class Supervisor:
    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.children: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, spec: ProcSpec) -> Child:
        child = Child(spec=spec, popen=self._spawn(spec), log_path=self.log_dir / f"{spec.name}.log")
        self.children.append(child)
        return child

    def _spawn(self, spec: ProcSpec) -> subprocess.Popen:
        log = open(self.log_dir / f"{spec.name}.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            return subprocess.Popen(spec.argv, env=spec.env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()

    def wait_ready(self, child: Child, timeout: float) -> None:
        if not child.spec.url:
            return
        deadline = time.monotonic() + timeout
        url = child.spec.url + (child.spec.ready_path or "/")
        while time.monotonic() < deadline:
            if child.popen.poll() is not None:
                raise LocalStackError(f"{child.spec.name} exited with code {child.popen.returncode} while starting",
                                      hint=f"its log: {child.log_path}\n{tail(child.log_path)}")
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise LocalStackError(f"{child.spec.name} was not ready after {timeout:.0f}s",
                              hint=f"its log: {child.log_path}\n{tail(child.log_path)}")

    def poll(self) -> list[Event]:
        """Restart children that died (with backoff). Returns an event per exit and restart."""
        events = []
        now = time.monotonic()
        for child in self.children:
            if child.popen.poll() is None or child.stopped:
                continue
            if child.popen.returncode == UNUSABLE_EXIT and child.spec.role == "agent":
                # As Kubernetes keeps a termination message: the reason, and no restart loop.
                child.stopped = _reason(child.log_path)
                events.append(Event(f"local:{child.spec.name}", f"{child.spec.name} stopped: {child.stopped}",
                                    "error", "stopped", {"code": child.popen.returncode}))
                continue
            if child.next_restart == 0.0:
                child.next_restart = now + min(0.5 * 2 ** child.restarts, 10.0)
                events.append(Event(f"local:{child.spec.name}", f"{child.spec.name} exited with code "
                                    f"{child.popen.returncode}", "warning", "exited",
                                    {"code": child.popen.returncode}))
            elif now >= child.next_restart:
                child.popen = self._spawn(child.spec)
                child.restarts += 1
                child.started = time.time()
                child.next_restart = 0.0
                events.append(Event(f"local:{child.spec.name}", f"{child.spec.name} restarted (pid {child.popen.pid})",
                                    "ok", "restarted", {"pid": child.popen.pid}))
        return events

    def stop(self, grace: float = 10.0) -> None:
        for role in STOP_ORDER:
            group = [c for c in self.children if c.spec.role == role and c.popen.poll() is None]
            for c in group:
                _signal(c.popen.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for c in group:
                try:
                    c.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal(c.popen.pid, signal.SIGKILL)
                    c.popen.wait()

    def describe(self) -> list[dict]:
        return [c.describe() for c in self.children]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reason(log: Path) -> str:
    """The `why` the agent logged last (its JSON log line), else its log's last line."""
    import json

    for line in reversed(tail(log, 30).splitlines()):
        try:
            why = json.loads(line).get("why")
        except (ValueError, AttributeError):
            continue
        if why:
            return str(why)
    return tail(log, 1).strip() or "see its log"


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
