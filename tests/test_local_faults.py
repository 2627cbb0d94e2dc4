"""The local supervisor's own faults, tried as a new user would: a killed supervisor, a dead
emulator, Ctrl-C while the stack starts, `--agents` on a running stack, and `make demo` beside
a stack the user started.

Each test starts a real local stack (moto, gateway, agents as processes); the runtime URL
points at a closed port, so no model loads and the stack is ready in seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import EXAMPLE
from tests.helpers import cli

pytestmark = pytest.mark.e2e
NO_RUNTIME = ["--runtime-url", "sdruntime=http://127.0.0.1:9"]


@pytest.fixture
def cwd(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "sdctl.yaml")
    backup = os.environ.pop("SDCTL_STATE_DIR", None)
    yield tmp_path
    cli("local", "down", cwd=tmp_path, check=False)
    if backup:
        os.environ["SDCTL_STATE_DIR"] = backup


def up(cwd, *args) -> dict:
    return json.loads(cli("local", "up", "--detach", *NO_RUNTIME, *args, "-o", "json", cwd=cwd).stdout)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_after_the_supervisor_is_killed_status_says_so_and_up_cleans_up(cwd):
    state = up(cwd)
    old = [p["pid"] for p in state["processes"]]
    os.kill(state["supervisor_pid"], signal.SIGKILL)
    assert wait_until(lambda: not alive(state["supervisor_pid"]))
    r = cli("local", "status", cwd=cwd, check=False)
    assert r.returncode == 1 and "supervisor" in r.stderr and "still are, unmanaged" in r.stderr
    again = up(cwd)
    assert again["supervisor_pid"] != state["supervisor_pid"]
    assert wait_until(lambda: not any(alive(pid) for pid in old), 10), "the old stack's processes leaked"
    assert cli("local", "status", cwd=cwd).returncode == 0


def test_a_dead_ephemeral_emulator_is_reported_by_status_with_a_non_zero_exit(cwd):
    state = up(cwd, "--ephemeral")  # nothing kept: nothing to restart it with
    [aws] = [p["pid"] for p in state["processes"] if p["role"] == "aws"]
    os.kill(aws, signal.SIGKILL)
    assert wait_until(lambda: not alive(state["supervisor_pid"]))
    r = cli("local", "status", cwd=cwd, check=False)
    assert r.returncode == 1 and "AWS emulator died" in r.stderr and "--ephemeral" in r.stderr


def test_a_dead_emulator_is_restarted_with_its_data_and_status_says_so(cwd):
    state = up(cwd)
    [aws] = [p["pid"] for p in state["processes"] if p["role"] == "aws"]
    os.kill(aws, signal.SIGKILL)

    def status():
        r = cli("local", "status", "-o", "json", cwd=cwd, check=False)
        return r.returncode, json.loads(r.stdout) if r.stdout.strip() else {}

    assert wait_until(lambda: status()[1].get("aws_restarts") == 1, 30)
    code, now = status()
    assert code == 0 and now["status"] == "ready" and now["restored"]["restored"]
    assert now["supervisor_pid"] == state["supervisor_pid"]
    assert [p["pid"] for p in now["processes"] if p["role"] == "gateway"] == \
        [p["pid"] for p in state["processes"] if p["role"] == "gateway"]  # it reconnected on its own
    assert "restarted 1x with its data" in cli("local", "status", cwd=cwd).stdout


def test_ctrl_c_while_the_stack_starts_stops_it_at_once(cwd):
    proc = subprocess.Popen([sys.executable, "-m", "sdctl", "local", "up", *NO_RUNTIME], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    state_file = cwd / ".sdctl" / "state.json"

    def emulator_started():
        try:
            port = json.loads(state_file.read_text())["aws_url"].rsplit(":", 1)[1]
        except (OSError, ValueError, KeyError):
            return None
        found = subprocess.run(["pgrep", "-f", f"emulator -H 127.0.0.1 -p {port}"], capture_output=True, text=True)
        return port if found.stdout.strip() else None

    assert wait_until(emulator_started, 60)
    port = emulator_started()
    assert json.loads(state_file.read_text())["status"] == "starting"
    asked = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 130, proc.stderr.read()
    assert time.monotonic() - asked < 10
    assert wait_until(lambda: not subprocess.run(["pgrep", "-f", f"emulator -H 127.0.0.1 -p {port}"],
                                                 capture_output=True).stdout, 10), "the emulator was left running"
    assert not state_file.exists()


def test_agents_asked_of_a_running_stack_are_not_silently_ignored(cwd):
    up(cwd)
    r = cli("local", "up", "--detach", *NO_RUNTIME, "--agents", "2", cwd=cwd, check=False)
    assert r.returncode == 1 and "--agents 2 was not applied" in r.stderr
    assert json.loads(cli("local", "up", "--detach", *NO_RUNTIME, "-o", "json", cwd=cwd).stdout)["already_running"]
