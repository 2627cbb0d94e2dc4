"""The local stack's life outside its supervisor: start it in the background and wait until it
is ready (`local up --detach`), stop it and only what it started (`local down`), and clean up
after a supervisor that died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sdctl.contracts.events import Event, Report, ignore
from sdctl.errors import LocalStackError
from sdctl.execute.local import state as st
from sdctl.execute.local.supervisor import tail


def data_path() -> Path:
    """Where the local stack keeps its AWS data: `.sdctl/aws/` beside the state file."""
    return st.state_dir() / "aws"


def clean_leftovers(state: dict, report: Report = ignore) -> int:
    """Stop the processes a state file names whose supervisor is gone (killed, or the machine
    slept through its death): they would hold ports and memory that nothing manages."""
    killed = 0
    procs = [p for p in state.get("processes", []) if st.pid_alive(p.get("pid")) and _ours(p["pid"])]
    for p in sorted(procs, key=lambda p: p.get("role") == "aws"):  # the emulator last
        if p.get("role") == "aws" and state.get("data"):  # SIGTERM: it saves its data, then exits
            os.kill(p["pid"], signal.SIGTERM)
            deadline = time.monotonic() + 10
            while st.pid_alive(p["pid"]) and time.monotonic() < deadline:
                time.sleep(0.05)
        if st.pid_alive(p["pid"]):
            os.kill(p["pid"], signal.SIGKILL)
        killed += 1
    if killed:
        report(Event("local", f"stopped {killed} process(es) left by a supervisor that is gone", "warning"))
    return killed


def spawn_detached(argv: list[str], timeout: float = 600, report: Report = ignore, *,
                   agents: int | None = None) -> dict:
    """Start `sdctl local up` (without --detach) in the background; return its state once ready.
    A stack already running is returned as it is (`already_running`), unless it was asked for
    with a different number of agents, which it cannot change while it runs."""
    existing = st.read()
    if existing and st.pid_alive(existing.get("supervisor_pid")):
        if existing.get("status") == "ready":
            running = existing.get("agents")
            if agents is not None and running is not None and running != agents:
                raise LocalStackError(
                    f"a local stack is already running with --agents {running}; --agents {agents} was not applied",
                    hint=f"`sdctl local down`, then `sdctl local up --detach --agents {agents}`")
            existing["already_running"] = True
            return existing
        raise LocalStackError(f"a local stack is already {existing.get('status')} "
                              f"(pid {existing['supervisor_pid']})", hint="stop it with `sdctl local down`")
    if existing:
        clean_leftovers(existing, report)
    st.remove()
    log_dir = st.state_dir() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "supervisor.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sdctl", *argv], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            failed = st.read() or {}
            raise LocalStackError(f"the local stack failed to start: {failed.get('error', 'see its log')}",
                                  hint=failed.get("hint") or f"{log_path}\n{tail(log_path)}")
        state = st.read()
        if state and state.get("supervisor_pid") == proc.pid:
            status = state.get("status")
            if status != seen:
                report(Event("local", f"local stack: {status}", "progress", status))
                seen = status
            if status == "ready":
                return state
        time.sleep(0.2)
    proc.terminate()
    raise LocalStackError(f"the local stack was not ready after {timeout:.0f}s", hint=f"{log_path}\n{tail(log_path)}")


def down(timeout: float = 30, *, wipe: bool = False) -> dict:
    """Stop what `local up` started, and only that. Its AWS data stays in `.sdctl/aws/` for
    the next `local up` unless `wipe` deletes it."""
    import shutil

    state = st.read()
    data = data_path()
    result: dict = {"stopped": False, "message": "no local stack is running"}
    if state:
        pid = state.get("supervisor_pid")
        if st.pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while st.pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if st.pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        leftovers = clean_leftovers(state)
        st.remove()
        result = {"stopped": True, "supervisor_pid": pid, "killed_leftovers": leftovers}
    if wipe and data.exists():
        shutil.rmtree(data)
        result["wiped"] = str(data)
    elif (data / "state.pickle").exists():
        result["data_kept"] = str(data)
    return result


def _ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"sdctl" in cmdline or b"moto.server" in cmdline


def missing_modules(names: tuple[str, ...]) -> list[str]:
    import importlib.util

    missing = []
    for name in names:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing


def require_extras(cfg, runtime_urls: dict[str, str]) -> None:
    """The emulator needs the `local` extra (moto); the built-in runtime the `tiny` extra
    (torch, diffusers). Say which to install, not that a process exited."""
    from sdctl.contracts.runtimes import kind

    needed = {"moto": "local"}
    if any(rt.name not in runtime_urls and kind(rt.type).local == "builtin" for rt in cfg.runtimes):
        needed.update({"torch": "tiny", "diffusers": "tiny", "transformers": "tiny"})
    missing = missing_modules(tuple(needed))
    if missing:
        extras = sorted({needed[m] for m in missing})
        raise LocalStackError(
            f"the local stack needs {', '.join(missing)}, which this installation lacks",
            hint=f"pip install 'sdctl[{','.join(extras)}]'" + (
                "  (or pass --runtime-url NAME=URL for a runtime you already run)" if "tiny" in extras else ""))
