"""The local stack's state file: `.sdctl/state.json` in the working directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sdctl.errors import LocalStackError

ENV_VAR = "SDCTL_STATE_DIR"


def state_dir() -> Path:
    return Path(os.environ.get(ENV_VAR) or ".sdctl").absolute()


def state_file() -> Path:
    return state_dir() / "state.json"


def read() -> dict | None:
    try:
        return json.loads(state_file().read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        raise LocalStackError(f"{state_file()} is corrupt", hint="run `sdctl local down` to clean up") from None


def write(state: dict) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the API key
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=2)
    os.replace(tmp, path)


def remove() -> None:
    try:
        state_file().unlink()
    except FileNotFoundError:
        pass


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def running() -> dict:
    """The state of the running local stack, or a LocalStackError saying how to start one."""
    state = read()
    if not state or not pid_alive(state.get("supervisor_pid")):
        raise LocalStackError("the local stack is not running",
                              hint="start it with `sdctl local up --detach` (in the folder that holds .sdctl/)")
    if state.get("status") != "ready":
        raise LocalStackError(f"the local stack is {state.get('status', 'starting')}",
                              hint="wait for `sdctl local status` to say ready")
    return state
