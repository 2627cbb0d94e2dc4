"""End to end on the local stack, driven through the CLI exactly as a user would.

The stack is real: a moto server process as AWS, the gateway process calling the Lambda
handler, the built-in runtime process with the tiny model and a queue agent process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import started_stack
from tests.helpers import cli as sdctl
from tests.helpers import local_aws, run_json, task_line

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    pytest.importorskip("torch")
    for cwd, printed in started_stack(tmp_path_factory, "stack", "--show-key", "-o", "json"):
        yield cwd, json.loads(printed)


def generate(cwd, *args) -> dict:
    return json.loads(sdctl("generate", "a red fox", "--local", "-o", "json", *args, cwd=cwd).stdout)


def test_status_reports_urls_key_resources_and_processes(local_stack):
    cwd, _ = local_stack
    masked = json.loads(sdctl("local", "status", "-o", "json", cwd=cwd).stdout)
    assert masked["api_key"].endswith("…") and len(masked["api_key"]) == 5  # a secret: only when asked
    status = json.loads(sdctl("local", "status", "-o", "json", "--show-key", cwd=cwd).stdout)
    assert status["status"] == "ready"
    assert status["gateway_url"].startswith("http://127.0.0.1:")
    assert status["aws_url"].startswith("http://127.0.0.1:")
    assert len(status["api_key"]) >= 20
    res = status["resources"]
    assert res["requests_topic_arn"].endswith(":sdctl-requests")
    assert res["results_topic_arn"].endswith(":sdctl-results")
    assert res["runtimes"]["sdruntime"]["queue_url"].endswith("/sdctl-sdruntime")
    assert res["runtimes"]["sdruntime"]["dead_letter_queue_url"].endswith("/sdctl-sdruntime-dlq")
    assert res["bucket"] == "sdctl-output-123456789012-us-west-2"
    roles = {(p["role"], p["runtime"]) for p in status["processes"]}
    assert roles == {("aws", None), ("gateway", None), ("webhooks", None), ("runtime", "sdruntime"),
                     ("agent", "sdruntime")}
    assert res["webhooks"]["queue_url"].endswith("/sdctl-webhooks") and res["webhooks"]["secret_arn"]
    assert all(p["alive"] and p["pid"] > 0 for p in status["processes"])
    text = sdctl("local", "status", cwd=cwd).stdout
    assert status["api_key"] not in text  # masked unless --show-key


def test_generate_returns_a_png_of_the_requested_size(local_stack):
    cwd, _ = local_stack
    result = generate(cwd, "--width", "96", "--height", "64", "--steps", "2", "--seed", "5", "--out", "a")
    assert result["status"] == "completed" and result["seed"] == 5
    [path] = result["files"]
    image = Image.open(cwd / path)
    assert image.format == "PNG" and image.size == (96, 64)


def test_same_seed_gives_identical_bytes(local_stack):
    cwd, _ = local_stack
    args = ("--width", "64", "--height", "64", "--steps", "2", "--seed", "1234")
    one = generate(cwd, *args, "--out", "s1")
    two = generate(cwd, *args, "--out", "s2")
    other = generate(cwd, "--width", "64", "--height", "64", "--steps", "2", "--seed", "99", "--out", "s3")
    assert one["id"] != two["id"]
    read = lambda r: (cwd / r["files"][0]).read_bytes()  # noqa: E731
    assert read(one) == read(two)
    assert read(one) != read(other)


def test_count_makes_that_many_images(local_stack):
    cwd, _ = local_stack
    result = generate(cwd, "--width", "64", "--height", "64", "--steps", "1", "--count", "3", "--out", "c")
    assert [Path(f).name for f in result["files"]] == [f"{result['id']}-{n}.png" for n in (1, 2, 3)]


def test_wrong_api_key_is_403_and_publishes_nothing(local_stack):
    cwd, state = local_stack
    body = {"task": {"metadata": {"id": "k1", "runtime": "sdruntime", "tasktype": "text-to-image"},
                     "content": {"prompt": "x"}}}
    for headers in ({"x-api-key": "wrong"}, {}):
        r = httpx.post(f"{state['gateway_url']}/v1alpha2", json=body, headers=headers)
        assert r.status_code == 403
    r = sdctl("fetch", "k1", "--local", cwd=cwd, check=False)
    assert r.returncode == 1 and "no result" in r.stderr


def test_invalid_task_is_rejected_with_the_field(local_stack, tmp_path):
    cwd, _ = local_stack
    task = tmp_path / "bad.json"
    task.write_text(json.dumps({"task": {"metadata": {"id": "b1", "runtime": "nope", "tasktype": "text-to-image"},
                                         "content": {}}}))
    r = sdctl("submit", str(task), "--local", "-o", "json", cwd=cwd, check=False)
    assert r.returncode == 1
    error = json.loads(r.stdout)["error"]
    assert error["status"] == 400 and "unknown runtime 'nope'" in error["message"]


def test_submit_then_fetch_and_the_result_notification(local_stack, tmp_path):
    cwd, state = local_stack
    task = tmp_path / "t.json"
    task.write_text(json.dumps({"task": {
        "metadata": {"id": "sub-1", "runtime": "sdruntime", "tasktype": "text-to-image", "prefix": "mine/x",
                     "context": "ctx"},
        "content": {"prompt": "a cat", "steps": 1, "width": 64, "height": 64, "seed": 1}}}))
    accepted = json.loads(sdctl("submit", str(task), "--local", "-o", "json", cwd=cwd).stdout)
    assert accepted["output_location"] == f"s3://{state['resources']['bucket']}/mine/x/sub-1"
    deadline = time.monotonic() + 60
    while True:
        r = sdctl("fetch", "sub-1", "--local", "--prefix", "mine/x", "--out", "f", "-o", "json", cwd=cwd,
                  check=False)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert json.loads(r.stdout)["files"] == ["f/sub-1-1.png"]
    sqs = local_aws(cwd, "sqs")
    notes = []
    while True:
        msgs = sqs.receive_message(QueueUrl=state["resources"]["results_queue_url"], MaxNumberOfMessages=10,
                                   WaitTimeSeconds=1).get("Messages", [])
        if not msgs:
            break
        notes += [json.loads(json.loads(m["Body"])["Message"]) for m in msgs]
    [note] = [n for n in notes if n["id"] == "sub-1"]
    assert note["status"] == "completed" and note["context"] == "ctx"
    assert note["image_url"] == [f"s3://{state['resources']['bucket']}/mine/x/sub-1/sub-1-1.png"]


def test_submit_wait_follows_every_task_to_its_end(local_stack):
    cwd, _ = local_stack
    (cwd / "run.jsonl").write_text("\n".join(task_line(f"w-{i}") for i in range(5)) + "\n")
    report = run_json(cwd, "submit", "run.jsonl", "--wait", "--timeout", "120")
    assert report["summary"]["accepted"] == 5 and report["summary"]["completed"] == 5
    record = run_json(cwd, "tasks", "wait", "w-4", "--timeout", "30")
    assert record["status"] == "completed" and record["attempts"] == 1 and record["model"] == "tiny"
    assert record["image_url"] == ["s3://sdctl-output-123456789012-us-west-2/output/w-4/w-4-1.png"]
    assert record["runtime_seconds"] > 0
    done = run_json(cwd, "tasks", "list", "--status", "completed")
    assert {f"w-{i}" for i in range(5)} <= {t["id"] for t in done}
    [row] = run_json(cwd, "queue", "watch", "--once")
    assert row["completions_per_min"] >= 5
    page = run_json(cwd, "gallery", "--since", "1h", "--out", "g.html")
    assert page["images"] >= 5 and page["written"] == "g.html"
    html = (cwd / "g.html").read_text()
    assert "a fox w-4" in html and html.count("data:image/png;base64,") >= 5
    # each full-size link opens the image, while the stack enforces IAM (it answered 500 before)
    import html as markup

    import httpx

    link = markup.unescape(re.search(r'<a href="([^"]+)"', html).group(1))
    full = httpx.get(link, timeout=30)
    assert full.status_code == 200 and full.content[:8] == b"\x89PNG\r\n\x1a\n", (link, full.text[:400])
    measured = run_json(cwd, "cost", "--measured", "--since", "1h")
    assert measured["measured"]["images"] >= 5 and 0 < measured["measured"]["seconds_per_image"] < 60
    assert measured["estimate"]["assumptions"]["seconds_per_image"] == measured["measured"]["seconds_per_image"]
    # a CPU render priced as GPU time is said to be one, in JSON and in the text a person reads
    assert "CPU" in measured["measured"]["caveat"]
    text = sdctl("cost", "--measured", "--since", "1h", "--local", cwd=cwd)
    assert "measured on the local stack" in text.stderr and "CPU" in text.stderr
    _billed_against_rendered(cwd, measured["measured"]["gpu_hours"])


def _billed_against_rendered(cwd, before: dict):
    """Rendering against billed GPU hours: no GPU node here wrote the node ledger, so billed
    is unknown and said to be; once an agent on a GPU node writes its row (with the agent's own
    credentials: the stack enforces IAM), `cost --measured` sets the two side by side."""
    from datetime import UTC, datetime, timedelta

    from sdctl.agent.nodeledger import NodeLedger

    assert before["rendering_gpu_hours"] > 0 and before["billed_gpu_hours"] is None and before["nodes"] == 0
    state = json.loads((cwd / ".sdctl" / "state.json").read_text())
    principal = next(p for p in state["credentials"] if p.startswith("agent-"))
    launched = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    NodeLedger(local_aws(cwd, "dynamodb", principal), state["resources"]["tasks_table"], launched_at=launched,
               node="ip-10-0-12-34.us-west-2.compute.internal", instance_type="g5.xlarge", capacity="spot",
               price_per_hour=0.4125, ttl_days=30, interval=3600).stop()
    g = run_json(cwd, "cost", "--measured", "--since", "1h")["measured"]["gpu_hours"]
    assert (g["nodes"], g["nodes_up"]) == (1, 1) and 0.49 < g["billed_gpu_hours"] < 0.6
    assert g["rendering_gpu_hours"] >= before["rendering_gpu_hours"]
    assert g["rendering_share"] == pytest.approx(g["rendering_gpu_hours"] / g["billed_gpu_hours"], abs=0.01)
    assert [t["id"] for t in run_json(cwd, "tasks", "list") if t["id"].startswith("node#")] == []
    text = sdctl("cost", "--measured", "--since", "1h", "--local", cwd=cwd).stderr
    assert "rendering / billed" in text and "1 node(s), 1 up now" in text


def test_a_file_resubmitted_in_part_waits_for_old_and_new_alike(local_stack):
    """Resubmitting a .jsonl after some of it went through: the known ids are duplicates (the
    API answers 409, nothing runs twice), followed to their end with the new ones; exit 0."""
    cwd, _ = local_stack
    (cwd / "part.jsonl").write_text("\n".join(task_line(f"p-{i}") for i in range(2)) + "\n")
    run_json(cwd, "submit", "part.jsonl", "--wait", "--timeout", "120")
    (cwd / "part.jsonl").write_text("\n".join(task_line(f"p-{i}") for i in range(3)) + "\n")
    report = run_json(cwd, "submit", "part.jsonl", "--wait", "--timeout", "120")
    s = report["summary"]
    assert (s["accepted"], s["duplicate"], s["rejected"], s["completed"]) == (1, 2, 0, 3)
    assert {r["id"]: r["result"] for r in report["tasks"]} == {"p-0": "duplicate", "p-1": "duplicate",
                                                              "p-2": "accepted"}
    page = subprocess.run([sys.executable, "-m", "sdctl", "gallery", "--since", "1h", "--out", "g2.html", "--open",
                           "--local"], cwd=cwd, capture_output=True, text=True, env=dict(os.environ, BROWSER="false"))
    assert page.returncode == 0 and "no web browser found" in page.stderr  # says so instead of nothing


def test_cancel_while_running_interrupts_the_runtime_within_seconds(local_stack):
    """DELETE on a task the runtime is drawing (the tiny model at 256² for 150 steps takes
    tens of seconds on these CPUs; it checks for an interrupt between steps)."""
    cwd, state = local_stack
    http = httpx.Client(base_url=state["gateway_url"], headers={"x-api-key": state["api_key"]}, timeout=30)
    body = json.loads(task_line("long-1", steps=150, width=256, height=256))
    assert http.post("/v1alpha2", json=body).status_code == 200
    deadline = time.monotonic() + 120
    while http.get("/v1alpha2/tasks/long-1").json()["status"] != "running":
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.1)
    asked = time.monotonic()
    answer = http.delete("/v1alpha2/tasks/long-1")
    assert answer.status_code == 202 and answer.json()["cancel_requested"] is True
    while (record := http.get("/v1alpha2/tasks/long-1").json())["status"] == "running":
        assert time.monotonic() - asked < 5, "still running 5 s after DELETE"
        time.sleep(0.05)
    took = time.monotonic() - asked
    assert record["status"] == "cancelled", record
    print(f"DELETE to cancelled: {took:.2f} s")
    s3 = local_aws(cwd, "s3")
    listed = s3.list_objects_v2(Bucket=state["resources"]["bucket"], Prefix="output/long-1/").get("Contents", [])
    assert [o["Key"] for o in listed] == ["output/long-1/long-1.out"]  # no image
    assert run_json(cwd, "tasks", "cancel", "long-1", code=1)["error"]["status"] == 409
    # The CLI does the same: 202, then it waits for the end (a second task, cancelled through it).
    assert http.post("/v1alpha2", json=json.loads(task_line("long-2", steps=150, width=256, height=256))).is_success
    deadline = time.monotonic() + 120
    while http.get("/v1alpha2/tasks/long-2").json()["status"] != "running":
        assert time.monotonic() < deadline, "the second task never started"
        time.sleep(0.1)
    assert run_json(cwd, "tasks", "cancel", "long-2")["status"] == "cancelled"


def test_a_task_whose_deadline_passes_in_the_queue_expires_unrun(local_stack):
    """Behind a slow task, a task with ttlSeconds 1 waits past its deadline: it ends `expired`,
    never started (no started_at, no image), and the runtime moves on."""
    cwd, state = local_stack
    http = httpx.Client(base_url=state["gateway_url"], headers={"x-api-key": state["api_key"]}, timeout=30)
    assert http.post("/v1alpha2", json=json.loads(task_line("blocker", steps=150, width=256, height=256))).is_success
    deadline = time.monotonic() + 120
    while http.get("/v1alpha2/tasks/blocker").json()["status"] != "running":
        assert time.monotonic() < deadline, "the blocker never started"
        time.sleep(0.1)
    late = json.loads(task_line("late"))
    late["task"]["metadata"]["ttlSeconds"] = 1
    assert http.post("/v1alpha2", json=late).is_success
    time.sleep(1.5)  # its deadline passes while the blocker runs
    assert http.delete("/v1alpha2/tasks/blocker").status_code == 202
    deadline = time.monotonic() + 60
    while (record := http.get("/v1alpha2/tasks/late").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert record["status"] == "expired" and "started_at" not in record
    s3 = local_aws(cwd, "s3")
    listed = s3.list_objects_v2(Bucket=state["resources"]["bucket"], Prefix="output/late/").get("Contents", [])
    assert [o["Key"] for o in listed] == ["output/late/late.out"]


def test_generate_on_a_terminal_shows_one_live_line_with_the_steps(local_stack):
    """Through a pseudo-terminal, as a user sees it: the task's line goes from queued to a bar of
    its steps to done, then the PNG's path."""
    import pty

    cwd, _ = local_stack
    pid, fd = pty.fork()
    if pid == 0:  # the child: sdctl on the terminal's end
        os.chdir(cwd)
        os.execv(sys.executable, [sys.executable, "-m", "sdctl", "generate", "a fox on a terminal", "--local",
                                  "--steps", "40", "--width", "256", "--height", "256", "--seed", "5"])
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))  # the terminal's escapes
    assert os.waitstatus_to_exitcode(status) == 0, text[-2000:]
    steps = re.findall(r"(\d+)/40 steps", text)
    assert len(set(steps)) >= 2, text[-2000:]  # the bar moved while the runtime drew
    assert "done" in text and re.search(r"outputs/\S+\.png", text)


def test_a_killed_agent_is_restarted_and_work_continues(local_stack):
    cwd, _ = local_stack
    status = json.loads(sdctl("local", "status", "-o", "json", cwd=cwd).stdout)
    [agent] = [p for p in status["processes"] if p["role"] == "agent"]
    os.kill(agent["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = json.loads(sdctl("local", "status", "-o", "json", cwd=cwd).stdout)
        [now] = [p for p in status["processes"] if p["role"] == "agent"]
        if now["pid"] != agent["pid"] and now["alive"]:
            break
        time.sleep(0.3)
    assert now["restarts"] == 1
    result = generate(cwd, "--width", "64", "--height", "64", "--steps", "1", "--out", "r", "--timeout", "60")
    assert result["status"] == "completed"


def test_every_process_runs_with_only_its_template_policy(local_stack):
    """The local stack enforces IAM (moto with reset-auth 0): the gateway's handler, each
    agent and KEDA sign with credentials whose policy is the CloudFormation template's
    document for that component (sdctl/builders/cfn/policies.py). What the template does not grant is
    denied here as on AWS; a missing grant fails this suite before it fails a task."""
    from botocore.exceptions import ClientError

    cwd, state = local_stack
    assert state["iam_enforced"] is True
    res = state["resources"]
    queue = res["runtimes"]["sdruntime"]["queue_url"]

    def denied(call) -> bool:
        try:
            call()
        except ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"] == 403 or "AccessDenied" in str(e)
        return False

    agent_sns = local_aws(cwd, "sns", "agent-sdruntime")
    assert denied(lambda: agent_sns.publish(TopicArn=res["requests_topic_arn"], Message="{}"))
    keda = local_aws(cwd, "sqs", "keda")
    assert "ApproximateNumberOfMessages" in keda.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert denied(lambda: keda.receive_message(QueueUrl=queue, WaitTimeSeconds=0))
    from sdctl.agent.store import TaskStore

    agent_store = TaskStore(local_aws(cwd, "dynamodb", "agent-sdruntime"), res["tasks_table"])
    assert agent_store.peek_many(["never-1", "never-2"]) == {  # one read for a receive's tasks
        i: {"status": None, "cancel_requested": False} for i in ("never-1", "never-2")}
    handler_db = local_aws(cwd, "dynamodb", "api-handler")
    assert denied(lambda: handler_db.scan(TableName=res["tasks_table"]))
    assert denied(lambda: local_aws(cwd, "s3", "api-handler").list_objects_v2(Bucket=res["bucket"]))
    assert denied(lambda: local_aws(cwd, "s3", "agent-sdruntime").delete_object(Bucket=res["bucket"], Key="x"))
    import boto3

    stranger = boto3.client("sqs", endpoint_url=state["aws_url"], region_name="us-west-2",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    assert denied(lambda: stranger.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"]))


def test_queue_redrive_moves_dead_letters_back_server_side(local_stack):
    """`sdctl queue redrive --local`: the emulator now answers StartMessageMoveTask as SQS does
    (sdctl/execute/local/emulator/rules.py), so the command moves the dead letters in one call instead of
    retrying a 500 page three times and printing it in its JSON."""
    cwd, _ = local_stack
    sqs = local_aws(cwd, "sqs")
    state = json.loads((cwd / ".sdctl" / "state.json").read_text())
    dlq = state["resources"]["runtimes"]["sdruntime"]["dead_letter_queue_url"]
    sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"not": "a task"}))
    report = run_json(cwd, "queue", "redrive", "--runtime", "sdruntime")
    text = json.dumps(report)
    assert "StartMessageMoveTask" in text and "<html" not in text.lower()
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    [move] = sqs.list_message_move_tasks(SourceArn=arn)["Results"]
    assert (move["Status"], move["ApproximateNumberOfMessagesMoved"]) == ("COMPLETED", 1)


def test_up_again_is_harmless_and_down_stops_every_process(local_stack):
    cwd, _ = local_stack
    again = json.loads(sdctl("local", "up", "--detach", "-o", "json", cwd=cwd).stdout)
    assert again["already_running"] is True
    pids = [p["pid"] for p in again["processes"]] + [again["supervisor_pid"]]
    sdctl("local", "down", cwd=cwd)
    time.sleep(0.5)
    from sdctl.execute.local.state import (
        pid_alive,  # a zombie (exited, not yet reaped) is not alive
    )

    assert [pid for pid in pids if pid_alive(pid)] == []
    assert not (cwd / ".sdctl" / "state.json").exists()
    r = sdctl("local", "status", cwd=cwd, check=False)
    assert r.returncode == 1 and "not running" in r.stderr

