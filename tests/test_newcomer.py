"""What a new user tripped on (../shared/reference/reviews/newcomer-run-2026-12.md, section 2),
each run as the user ran it: the `sdctl` program against a local stack of its own (the runtime
is the offline `tiny` model), its flags, its output and its exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import started_stack
from tests.helpers import cli, run_json, task_line

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    pytest.importorskip("torch")
    for cwd, _ in started_stack(tmp_path_factory, "newcomer"):
        yield cwd


def test_the_local_endpoint_stays_put_across_down_and_up_and_port_pins_it(stack):
    first = json.loads(cli("local", "status", "-o", "json", cwd=stack).stdout)
    cli("local", "down", cwd=stack)
    again = json.loads(cli("local", "up", "--detach", "-o", "json", cwd=stack).stdout)
    assert again["gateway_url"] == first["gateway_url"] and again["aws_url"] == first["aws_url"]
    cli("local", "down", cwd=stack)
    from tests.conftest import free_port

    port = free_port()
    pinned = json.loads(cli("local", "up", "--detach", "--port", str(port), "-o", "json", cwd=stack).stdout)
    assert pinned["gateway_url"] == f"http://127.0.0.1:{port}"
    cli("local", "down", cwd=stack)
    import socket

    with socket.socket() as holder:  # something else holds the pinned port: refused, exit 2
        holder.bind(("127.0.0.1", port))
        holder.listen()
        taken = cli("local", "up", "--detach", "--port", str(port), cwd=stack, check=False)
        assert taken.returncode == 2 and f"port {port} for the gateway is in use" in taken.stderr
    cli("local", "up", "--detach", cwd=stack)  # without --port: the gateway's last port again
    assert json.loads(cli("local", "status", "-o", "json", cwd=stack).stdout)["gateway_url"] == \
        f"http://127.0.0.1:{port}"


def test_ids_are_never_cut_and_a_path_is_not_an_id(stack):
    made = run_json(stack, "generate", "a red fox", "--steps", "1", "--width", "64", "--height", "64")
    assert len(made["id"]) == 32
    listed = subprocess.run([sys.executable, "-m", "sdctl", "tasks", "list", "--local"], cwd=stack,
                            capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"}, timeout=120)
    assert made["id"] in listed.stdout  # a pipe, 80 columns: the id whole, to copy into fetch
    for command in (["tasks", "get"], ["tasks", "cancel"], ["tasks", "wait"], ["fetch"]):
        r = cli(*command, "../x", "--local", cwd=stack, check=False)
        assert r.returncode == 2 and "'../x' is not a task id" in r.stderr, (command, r.stderr)
    text = cli("tasks", "get", made["id"], "--local", cwd=stack).stdout
    assert "seed:" in text and "runtime_seconds" in text


def test_forgetting_local_points_at_the_local_stack_and_scale_status_says_what_it_has(stack):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "SDCTL_TARGET"}
    env.update(AWS_CONFIG_FILE=str(stack / "none"), AWS_SHARED_CREDENTIALS_FILE=str(stack / "none"),
               AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-west-2")
    r = subprocess.run([sys.executable, "-m", "sdctl", "generate", "a red fox"], cwd=stack, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "add --local, or set SDCTL_TARGET=local" in r.stderr
    report = run_json(stack, "scale", "status")
    assert report[0]["local"] is True and "does not scale" in report[0]["verdict"]
    assert "queue watch --local" in cli("scale", "status", "--local", cwd=stack).stdout


def test_fetch_of_a_task_cancelled_while_queued_says_so(stack):
    blocker = run_json(stack, "generate", "slow", "--no-wait", "--steps", "30", "--width", "256", "--height", "256")
    queued = run_json(stack, "generate", "queued", "--no-wait", "--steps", "1", "--width", "64", "--height", "64")
    run_json(stack, "tasks", "cancel", queued["id"])
    r = cli("fetch", queued["id"], "--local", cwd=stack, check=False)
    assert r.returncode == 1 and f"task {queued['id']} was cancelled" in r.stderr
    run_json(stack, "tasks", "cancel", blocker["id"])


def test_submit_many_with_wait_writes_every_image_and_a_repeated_id_is_refused(stack):
    lines = [task_line("many-1"), task_line("many-2"), task_line("many-1", prompt="another")]
    (stack / "many.jsonl").write_text("\n".join(lines) + "\n")
    r = cli("submit", "many.jsonl", "--wait", "--out", "imgs", "--local", "-o", "json", cwd=stack, check=False)
    report = json.loads(r.stdout)
    s = report["summary"]
    assert (s["accepted"], s["rejected"], s["completed"]) == (2, 1, 2) and r.returncode == 1
    assert "already on line 1" in report["tasks"][2]["message"]
    assert sorted(p.name for p in (stack / "imgs").iterdir()) == ["many-1-1.png", "many-2-1.png"]


def test_a_task_file_that_is_not_utf8_is_a_clear_error(stack):
    (stack / "latin1.json").write_bytes(b'{"task": {"metadata": {"id": "l1", "runtime": "sdruntime", "tasktype": '
                                        b'"text-to-image"}, "content": {"prompt": "caf\xe9"}}}')
    r = cli("submit", "latin1.json", "--local", cwd=stack, check=False)
    assert r.returncode == 2 and "not UTF-8: byte 0xe9 on line 1" in r.stderr and "Traceback" not in r.stderr
    (stack / "latin1.jsonl").write_bytes((stack / "latin1.json").read_bytes() + b"\n" +
                                         task_line("utf8-ok").encode() + b"\n")
    report = json.loads(cli("submit", "latin1.jsonl", "--local", "-o", "json", cwd=stack, check=False).stdout)
    assert [t["result"] for t in report["tasks"]] == ["rejected", "accepted"]


def test_queue_watch_on_a_pipe_prints_as_it_goes_and_ctrl_c_exits_130(stack):
    proc = subprocess.Popen([sys.executable, "-m", "sdctl", "queue", "watch", "--local", "--interval", "0.5"],
                            cwd=stack, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = [proc.stdout.readline() for _ in range(6)]  # the first table, before the first refresh
        assert any("sdruntime" in line for line in first), first
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130


def test_cost_compare_prints_the_comparison_once_with_plain_unit_prices(stack):
    text = cli("cost", "--compare", cwd=stack).stdout
    assert "This config under each profile" in text and "Stack sdctl" not in text
    plain = cli("cost", cwd=stack).stdout
    assert "e-05" not in plain and "0.0000133334" in plain and "Stack sdctl (lean)" in plain
