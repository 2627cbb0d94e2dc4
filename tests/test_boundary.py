"""One error boundary (sdctl/cli/main.py): what a user can cause or meet reaches them as one
line and a hint, never a traceback, with the same exit code everywhere, and as an `error`
object on stdout under --output json. Each case here was found by using sdctl as a new user."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLE


def run(*args, cwd, env=None, code=None):
    r = subprocess.run([sys.executable, "-m", "sdctl", *args], cwd=cwd, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, env=env or os.environ.copy(), timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    if code is not None:
        assert r.returncode == code, r.stdout + r.stderr
    return r


def test_a_missing_config_says_so_in_two_lines(tmp_path):
    r = run("validate", cwd=tmp_path, code=2)
    assert r.stderr.splitlines() == [
        "error: config file sdctl.yaml not found",
        "hint: run `sdctl init` to write one, or pass -c/--config (env SDCTL_CONFIG)"]


def test_a_config_that_is_not_utf8_is_a_config_error_naming_the_line(tmp_path):
    (tmp_path / "sdctl.yaml").write_bytes(b"runtimes: [{name: a, type: sdwebui}]\n# caf\xe9 au lait\n")
    r = run("-o", "json", "validate", cwd=tmp_path, code=2)
    err = json.loads(r.stdout)["error"]
    assert "not UTF-8" in err["message"] and err["problems"][0]["line"] == 2


def test_utf16_from_notepad_is_read(tmp_path):
    (tmp_path / "sdctl.yaml").write_bytes("runtimes: [{name: a, type: sdwebui}]\n".encode("utf-16"))
    assert "is valid" in run("validate", cwd=tmp_path, code=0).stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_usage_errors_honour_output_json(tmp_path, where):
    args = ["generate", "x", "--width", "0", "--local"]
    args = ["-o", "json", *args] if where == "before" else [*args, "-o", "json"]
    r = run(*args, cwd=tmp_path, code=2)
    err = json.loads(r.stdout)["error"]
    assert err["type"] == "UsageError" and "--width" in err["message"]


def test_no_color_env_means_no_escape_codes(tmp_path):
    env = dict(os.environ, NO_COLOR="1", FORCE_COLOR="1")
    r = run("-c", str(EXAMPLE), "cost", cwd=tmp_path, env=env, code=0)
    assert "\x1b[" not in r.stdout and "g6.xlarge" in r.stdout
    r = run("validate", cwd=tmp_path, env=env, code=2)
    assert "\x1b[" not in r.stderr


def test_hints_with_brackets_are_printed_as_written(tmp_path):
    """`pip install 'sdctl[local]'` must not lose `[local]` to rich markup."""
    code = ("import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'moto':\n            raise ImportError('not installed: ' + name)\n"
            "sys.meta_path.insert(0, Block())\nfrom sdctl.cli.main import main\n"
            "sys.argv = ['sdctl', 'local', 'up']\nmain()\n")
    (tmp_path / "sdctl.yaml").write_text(EXAMPLE.read_text())
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "needs moto" in r.stderr and "pip install 'sdctl[local]'" in r.stderr


def test_an_unknown_runtime_is_a_usage_error_everywhere():
    from sdctl.config import load
    from sdctl.errors import UsageError
    from sdctl.operate.client import Target

    target = Target(kind="local", api_url="x", api_key="k", bucket="b", prefix="p", runtimes={"a": "sdwebui"},
                    client_factory=lambda n: None)
    for lookup in (lambda: target.runtime("nope"), lambda: load(EXAMPLE).runtime("nope")):
        with pytest.raises(UsageError) as e:
            lookup()
        assert e.value.exit_code == 2 and "nope" in e.value.message


def test_a_local_wait_hint_keeps_local(aws):
    from sdctl.errors import WaitTimeout
    from sdctl.operate import client

    aws.s3.create_bucket(Bucket="wait-here", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    with pytest.raises(WaitTimeout) as e:
        client.wait_result(aws.s3, "wait-here", "output", "t1", timeout=0.05, flags=" --local")
    assert e.value.hint == "fetch it later with `sdctl fetch t1 --local`"


def test_library_failures_become_one_line():
    import httpx
    from kubernetes.client.exceptions import ApiException
    from pyhelm3.errors import FailedToRenderChartError

    from sdctl.cli.main import translate

    down = translate(httpx.ConnectError("Connection refused", request=httpx.Request("GET", "http://127.0.0.1:9/x")))
    assert down.message.startswith("cannot reach http://127.0.0.1:9/x") and "status" in down.hint
    denied = translate(ApiException(status=401, reason="Unauthorized"))
    assert denied.message == "Kubernetes API answered 401 Unauthorized" and "kubeconfig" in denied.hint
    helm = translate(FailedToRenderChartError(1, b"", b"Error: values don't meet the specifications\n- runtime: x"))
    assert helm.message == "helm failed (FailedToRenderChartError): - runtime: x"
    missing = translate(FileNotFoundError("the sd-runtime chart is missing from this installation"))
    assert "reinstall" in missing.hint
    assert translate(ValueError("a bug")) is None  # sdctl's own bugs keep their traceback


def test_logs_follow_prints_new_lines_as_written_and_ctrl_c_exits_130(tmp_path):
    """`sdctl logs --follow --local` against a state file like the supervisor writes (this
    test's process stands in for the supervisor: the state names its pid)."""
    import signal

    logs = tmp_path / "logs"
    logs.mkdir()
    agent_log = logs / "agent-sdruntime-1.log"
    agent_log.write_text('{"ts": 1796000000.0, "msg": "agent started"}\n')
    (tmp_path / "state.json").write_text(json.dumps({
        "status": "ready", "supervisor_pid": os.getpid(), "logs": str(logs),
        "resources": {"runtimes": {"sdruntime": {}}}}))
    env = {**os.environ, "SDCTL_STATE_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "sdctl", "logs", "--runtime", "sdruntime", "--agent",
                             "--follow", "--local", "-o", "json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert first == {"source": "agent-sdruntime-1", "line": '{"ts": 1796000000.0, "msg": "agent started"}'}
        with open(agent_log, "a") as f:
            f.write('{"ts": 1796000001.0, "msg": "task completed"}\n')
        assert json.loads(proc.stdout.readline())["line"].endswith('"task completed"}')
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
