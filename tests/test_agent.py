"""The queue agent against a moto server over HTTP and a runtime over HTTP.

Success paths use the real built-in runtime; failure paths use a small scripted
AUTOMATIC1111-compatible server, since a real runtime cannot be made to fail on demand.
"""

from __future__ import annotations

import base64
import io
import json
import signal
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from sdctl.agent.adapters import A1111Adapter
from sdctl.agent.settings import AgentSettings
from sdctl.agent.worker import Agent
from sdctl.builders.local_plan import local_plan
from sdctl.config import parse
from sdctl.execute.local.provision import provision
from tests.conftest import ServerThread
from tests.helpers import assert_same_render, wait_for

CONFIG = "runtimes:\n  - name: sdruntime\n    type: sdwebui\n    maxReceiveCount: 2\n"


@pytest.fixture
def stack(aws):
    """The local plan's topics, queues and bucket, provisioned in moto by the product's own code."""
    cfg = parse(CONFIG)
    res = provision(local_plan(cfg, visibility_seconds=30), sns=aws.sns, sqs=aws.sqs, s3=aws.s3)
    res["aws"] = aws
    res["agents"] = []
    yield res
    for agent in res["agents"]:
        agent.heartbeat.stop()


def make_agent(stack, runtime_url: str, visibility: int = 30, batches: bool = False, store=None,
               price_per_second: float | None = None, deletion_cost=None, **settings) -> Agent:
    rt = stack["runtimes"]["sdruntime"]
    settings = AgentSettings(queue_url=rt["queue_url"], topic_arn=stack["results_topic_arn"],
                             bucket=stack["bucket"], runtime_name="sdruntime", runtime_type="sdwebui",
                             api_base_url=runtime_url + "/sdapi/v1/", region="us-west-2",
                             wait_seconds=1, max_receive_count=99, visibility_seconds=visibility,
                             lane_urls=tuple((p, rt["lanes"][p]["queue_url"]) for p in ("high", "normal", "low")),
                             **settings)
    aws = stack["aws"]
    agent = Agent(settings, sqs=aws.sqs, s3=aws.s3, sns=aws.sns, store=store, price_per_second=price_per_second,
                  adapter=A1111Adapter(runtime_url, timeout=30, batches=batches), deletion_cost=deletion_cost)
    agent.lanes.discover_redrive_policy()
    stack["agents"].append(agent)
    return agent


def send(stack, task_id="t-1", meta: dict | None = None, priority: str | None = None, **content):
    body = {"prompt": "a fox", "steps": 2, "width": 64, "height": 64, "seed": 3}
    body.update(content)
    task = {"metadata": {"id": task_id, "runtime": "sdruntime", "tasktype": "text-to-image",
                         "prefix": "output", "context": {"user": "u1"}, **(meta or {})}, "content": body}
    attributes = {"runtime": {"DataType": "String", "StringValue": "sdruntime"}}
    if priority:  # what the API handler adds; a task published without one lands in the normal lane
        attributes["priority"] = {"DataType": "String", "StringValue": priority}
    stack["aws"].sns.publish(TopicArn=stack["requests_topic_arn"], Message=json.dumps(task),
                             MessageAttributes=attributes)


def once(agent) -> list[str]:
    return [agent.handle(m) for m in agent.lanes.receive()]


def until_received(agent, seconds=10) -> list[str]:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        outcomes = once(agent)
        if outcomes:
            return outcomes
    return []


def notifications(stack) -> list[dict]:
    sqs = stack["aws"].sqs
    msgs = sqs.receive_message(QueueUrl=stack["results_queue_url"], MaxNumberOfMessages=10).get("Messages", [])
    for m in msgs:
        sqs.delete_message(QueueUrl=stack["results_queue_url"], ReceiptHandle=m["ReceiptHandle"])
    return [json.loads(json.loads(m["Body"])["Message"]) for m in msgs]


def keys(stack) -> list[str]:
    return sorted(o["Key"] for o in stack["aws"].s3.list_objects_v2(Bucket=stack["bucket"]).get("Contents", []))


def queue_counts(stack, which="queue_url") -> tuple[int, int]:
    attrs = stack["aws"].sqs.get_queue_attributes(
        QueueUrl=stack["runtimes"]["sdruntime"][which],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_success_writes_exact_keys_and_the_contract_notification(stack, tiny_runtime):
    agent = make_agent(stack, tiny_runtime)
    send(stack, batch_size=2)
    assert once(agent) == ["completed"]
    assert keys(stack) == ["output/t-1/t-1-1.png", "output/t-1/t-1-2.png", "output/t-1/t-1.out"]
    bucket = stack["bucket"]
    [note] = notifications(stack)
    gpu_seconds = note.pop("gpu_seconds")
    assert note == {
        "id": "t-1", "runtime": "sdruntime", "result": True, "status": "completed",
        "image_url": [f"s3://{bucket}/output/t-1/t-1-1.png", f"s3://{bucket}/output/t-1/t-1-2.png"],
        "output_url": f"s3://{bucket}/output/t-1/t-1.out", "context": {"user": "u1"}, "model": "tiny",
        "cost_usd": None,  # no node here to price
    }
    assert 0 < gpu_seconds < 60
    png = stack["aws"].s3.get_object(Bucket=bucket, Key="output/t-1/t-1-1.png")["Body"].read()
    assert Image.open(io.BytesIO(png)).size == (64, 64)
    out = json.loads(stack["aws"].s3.get_object(Bucket=bucket, Key="output/t-1/t-1.out")["Body"].read())
    assert out["status"] == "completed" and out["info"]["all_seeds"] == [3, 4]
    assert queue_counts(stack) == (0, 0)  # deleted


def test_runtime_rejection_publishes_failed_with_the_reason_and_deletes(stack, tiny_runtime):
    agent = make_agent(stack, tiny_runtime)
    send(stack, width=65)
    assert once(agent) == ["failed"]
    [note] = notifications(stack)
    assert note["status"] == "failed" and note["result"] is False and note["image_url"] == []
    assert note["error"]["code"] == "runtime-rejected" and "multiples of 8" in note["error"]["message"]
    assert keys(stack) == ["output/t-1/t-1.out"]
    assert queue_counts(stack) == (0, 0)


@pytest.fixture
def flaky_runtime():
    """Answers 500 while `failures` > 0, then succeeds; counts calls. POST /sdapi/v1/interrupt
    ends the calls in flight at once with no images, as AUTOMATIC1111 does."""
    import asyncio

    state = {"failures": 0, "calls": 0, "delay": 0.0, "in_flight": 0, "most_in_flight": 0, "interrupts": 0,
             "prompts": []}
    stop = {"event": None}
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode()

    async def txt2img(request):
        state["calls"] += 1
        state["prompts"].append((await request.json()).get("prompt"))
        state["in_flight"] += 1
        state["started"] = time.monotonic()
        state["most_in_flight"] = max(state["most_in_flight"], state["in_flight"])
        stop["event"] = stop["event"] or asyncio.Event()
        try:
            await asyncio.wait_for(stop["event"].wait(), state["delay"])
            state["in_flight"] -= 1
            stop["event"] = None
            return JSONResponse({"images": [], "parameters": {}, "info": json.dumps({"interrupted": True})})
        except TimeoutError:
            pass
        state["in_flight"] -= 1
        if state["failures"] > 0:
            state["failures"] -= 1
            return JSONResponse({"error": "OutOfMemoryError", "detail": "CUDA out of memory"}, status_code=500)
        return JSONResponse({"images": [png], "parameters": {}, "info": json.dumps({"seed": 1})})

    async def options(request):
        return JSONResponse({"sd_model_checkpoint": "stub"})

    async def progress(request):
        """A1111's answer: ten steps spread over the call's delay."""
        if not state["in_flight"] or not state["delay"]:
            return JSONResponse({"progress": 0, "eta_relative": 0, "state": {"sampling_step": 0, "sampling_steps": 0}})
        done = min(1.0, (time.monotonic() - state["started"]) / state["delay"])
        return JSONResponse({"progress": done, "eta_relative": state["delay"] * (1 - done),
                             "state": {"sampling_step": int(done * 10), "sampling_steps": 10}})

    async def interrupt(request):
        state["interrupts"] += 1
        if stop["event"] is not None:
            stop["event"].set()
        return JSONResponse({})

    app = Starlette(routes=[Route("/sdapi/v1/txt2img", txt2img, methods=["POST"]),
                            Route("/sdapi/v1/options", options),
                            Route("/sdapi/v1/interrupt", interrupt, methods=["POST"]),
                            Route("/sdapi/v1/progress", progress)])
    with ServerThread(app) as server:
        server.state = state
        yield server


def test_transient_failure_leaves_the_task_for_redelivery(stack, flaky_runtime):
    flaky_runtime.state["failures"] = 1
    agent = make_agent(stack, flaky_runtime.url)
    send(stack)
    assert once(agent) == ["retry"]
    assert notifications(stack) == [] and keys(stack) == []
    assert sum(queue_counts(stack)) == 1  # still queued (delayed by backoff), not lost


def test_last_attempt_reports_failed_and_moves_to_the_dead_letter_queue(stack, flaky_runtime):
    flaky_runtime.state["failures"] = 10
    agent = make_agent(stack, flaky_runtime.url)
    assert agent.lanes.max_receive_count == 2  # from the queue's redrive policy, not the setting
    send(stack)
    assert once(agent) == ["retry"]
    assert until_received(agent) == ["dead-letter"]  # redelivered after the backoff
    [note] = notifications(stack)
    assert note["status"] == "failed" and note["error"]["code"] == "runtime-error"
    assert once(agent) == []  # the next receive moves it to the DLQ instead of delivering it
    assert queue_counts(stack, "dead_letter_queue_url")[0] == 1


def test_redelivered_finished_task_is_not_run_again(stack, flaky_runtime):
    agent = make_agent(stack, flaky_runtime.url)
    send(stack)
    assert once(agent) == ["completed"]
    first = notifications(stack)
    send(stack)  # the same task again, as after a crash between upload and delete
    assert once(agent) == ["duplicate"]
    assert flaky_runtime.state["calls"] == 1
    assert notifications(stack) == first
    assert queue_counts(stack) == (0, 0)


def test_unreadable_message_is_kept_for_the_dead_letter_queue(stack, flaky_runtime):
    agent = make_agent(stack, flaky_runtime.url)
    stack["aws"].sqs.send_message(QueueUrl=stack["runtimes"]["sdruntime"]["queue_url"], MessageBody="garbage")
    assert once(agent) == ["unreadable"]
    assert notifications(stack) == []
    assert sum(queue_counts(stack)) == 1


def test_settings_from_environment_name_what_is_missing():
    from sdctl.errors import UsageError

    with pytest.raises(UsageError) as e:
        AgentSettings.from_env({"SQS_QUEUE_URL": "x"})
    assert "SNS_TOPIC_ARN" in e.value.message and "API_BASE_URL" in e.value.message
    s = AgentSettings.from_env({"SQS_QUEUE_URL": "q", "SNS_TOPIC_ARN": "t", "S3_BUCKET": "b",
                                "RUNTIME_NAME": "r", "RUNTIME_TYPE": "sdwebui", "API_BASE_URL": "http://x",
                                "AWS_DEFAULT_REGION": "eu-west-1"})
    assert s.region == "eu-west-1"


def test_the_agents_clients_honour_per_service_endpoints(monkeypatch):
    """The SDKs' standard endpoint configuration: AWS_ENDPOINT_URL for every service, and
    AWS_ENDPOINT_URL_<SERVICE> above it for one (botocore resolves both; sdctl passes none)."""
    from sdctl.agent.app import build

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:2")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    s = AgentSettings.from_env({"SQS_QUEUE_URL": "q", "SNS_TOPIC_ARN": "t", "S3_BUCKET": "b", "RUNTIME_NAME": "r",
                                "RUNTIME_TYPE": "sdwebui", "API_BASE_URL": "http://x", "TASKS_TABLE": "tasks"})
    agent = build(s)
    assert agent.sqs.meta.endpoint_url == "http://127.0.0.1:2"
    assert agent.sns.meta.endpoint_url == agent.s3.meta.endpoint_url == "http://127.0.0.1:1"
    assert agent.store.db.meta.endpoint_url == "http://127.0.0.1:1"


def test_heartbeat_keeps_a_long_task_from_a_second_agent(stack, flaky_runtime):
    """The task runs 3.5 s with a 2 s window: without the heartbeat a second agent would get it."""
    import threading

    flaky_runtime.state["delay"] = 3.5
    first, second = make_agent(stack, flaky_runtime.url, 2), make_agent(stack, flaky_runtime.url, 2)
    send(stack)
    outcomes = {}
    worker = threading.Thread(target=lambda: outcomes.update(first=once(first)))
    worker.start()
    time.sleep(0.5)
    stolen = []
    while worker.is_alive():
        stolen += second.lanes.receive()
    worker.join()
    first.heartbeat.stop()
    assert outcomes["first"] == ["completed"] and stolen == []
    assert flaky_runtime.state["calls"] == 1


def test_a_dead_agents_task_returns_within_the_window(stack, flaky_runtime):
    dead, alive = make_agent(stack, flaky_runtime.url, 2), make_agent(stack, flaky_runtime.url, 2)
    send(stack)
    [message] = dead.sqs.receive_message(QueueUrl=dead.settings.queue_url, VisibilityTimeout=2,
                                         WaitTimeSeconds=1)["Messages"]  # received, then the agent "dies"
    started = time.monotonic()
    assert until_received(alive, seconds=10) == ["completed"]
    assert time.monotonic() - started < 5


def test_an_input_url_to_the_metadata_service_fails_the_task_without_calling_the_runtime(stack, flaky_runtime):
    agent = make_agent(stack, flaky_runtime.url)
    send(stack, init_images=["http://169.254.169.254/latest/meta-data/iam/security-credentials/"])
    assert once(agent) == ["failed"]
    [note] = notifications(stack)
    assert note["error"]["code"] == "unsafe-input" and note["error"]["field"] == "task.content.init_images[0]"
    assert flaky_runtime.state["calls"] == 0
    assert queue_counts(stack) == (0, 0)


def test_redrive_moves_dead_lettered_tasks_back_and_they_complete(stack, flaky_runtime):
    """With a limit, redrive takes the receive/send/delete path (the server-side move,
    StartMessageMoveTask, is in tests/test_emulator_rules.py)."""
    from sdctl.operate.queues import depth, redrive

    flaky_runtime.state["failures"] = 2
    agent = make_agent(stack, flaky_runtime.url)
    send(stack)
    assert once(agent) == ["retry"]
    assert until_received(agent) == ["dead-letter"]
    assert once(agent) == []  # moved to the DLQ by SQS
    rt = stack["runtimes"]["sdruntime"]
    sqs = stack["aws"].sqs
    assert depth(sqs, rt["dead_letter_queue_url"])["visible"] == 1
    report = redrive(sqs, rt["dead_letter_queue_url"], rt["queue_url"], limit=10)
    assert (report["method"], report["moved"]) == ("receive-send-delete", 1)
    assert depth(sqs, rt["dead_letter_queue_url"]) == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert until_received(agent) == ["completed"]  # the runtime recovered: it completes this time
    assert [n["status"] for n in notifications(stack)] == ["failed", "completed"]


def agent_process(stack, runtime_url: str, **env) -> subprocess.Popen:
    import os
    import sys

    rt = stack["runtimes"]["sdruntime"]
    e = dict(os.environ, AWS_ENDPOINT_URL=stack["aws"].url, SQS_QUEUE_URL=rt["queue_url"],
             SNS_TOPIC_ARN=stack["results_topic_arn"], S3_BUCKET=stack["bucket"], RUNTIME_NAME="sdruntime",
             RUNTIME_TYPE="sdwebui", API_BASE_URL=runtime_url, WAIT_SECONDS="20", VISIBILITY_SECONDS="10", **env)
    return subprocess.Popen([sys.executable, "-m", "sdctl", "agent", "run"], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_sigterm_while_idle_exits_at_once_despite_the_long_poll(stack, flaky_runtime):
    proc = agent_process(stack, flaky_runtime.url)
    assert wait_for(lambda: "runtime is ready" in (proc.stdout.readline() or ""), 15)
    time.sleep(0.5)  # inside a 20 s long poll now
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 3


def test_sigterm_mid_task_finishes_it_then_exits(stack, flaky_runtime):
    flaky_runtime.state["delay"] = 2.0
    proc = agent_process(stack, flaky_runtime.url)
    send(stack)
    assert wait_for(lambda: flaky_runtime.state["calls"] == 1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert [n["status"] for n in notifications(stack)] == ["completed"]
    assert queue_counts(stack) == (0, 0)


def test_sigterm_past_the_grace_period_returns_the_task_unfinished(stack, flaky_runtime):
    flaky_runtime.state["delay"] = 6.0
    proc = agent_process(stack, flaky_runtime.url, MAX_TASK_SECONDS="30", SHUTDOWN_GRACE_SECONDS="1")
    send(stack)
    assert wait_for(lambda: flaky_runtime.state["calls"] == 1)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 4
    assert notifications(stack) == []
    assert queue_counts(stack) == (1, 0)  # visible again at once, for another agent
    import httpx

    httpx.post(f"{flaky_runtime.url}/sdapi/v1/interrupt")  # end the abandoned call: the stub can stop


def test_pipelined_run_completes_every_task_once(stack, flaky_runtime):
    agent = make_agent(stack, flaky_runtime.url)
    for i in range(6):
        send(stack, task_id=f"p-{i}")
    agent.run(max_tasks=6)
    notes = []
    while True:
        batch = notifications(stack)
        if not batch:
            break
        notes += batch
    assert sorted(n["id"] for n in notes) == [f"p-{i}" for i in range(6)]
    assert all(n["status"] == "completed" for n in notes)
    assert flaky_runtime.state["calls"] == 6
    assert queue_counts(stack) == (0, 0)


def all_notifications(stack) -> list[dict]:
    notes = []
    while batch := notifications(stack):
        notes += batch
    return notes


def test_two_calls_in_flight_keep_one_queued_at_the_runtime_and_lose_nothing(stack, flaky_runtime):
    """RUNTIME_CONCURRENCY=2: the next request waits inside the runtime, not in the agent."""
    flaky_runtime.state["delay"] = 0.1
    agent = make_agent(stack, flaky_runtime.url, runtime_concurrency=2, prefetch=2, batch_size=10)
    for i in range(8):
        send(stack, task_id=f"c-{i}")
    agent.run(max_tasks=8)
    notes = all_notifications(stack)
    assert sorted(n["id"] for n in notes) == [f"c-{i}" for i in range(8)]
    assert all(n["status"] == "completed" for n in notes)
    assert flaky_runtime.state["calls"] == 8 and flaky_runtime.state["most_in_flight"] == 2
    assert queue_counts(stack) == (0, 0)


def test_tasks_differing_only_in_prompt_share_one_runtime_call(stack, tiny_runtime):
    """BATCH_TASKS with the built-in diffusers runtime: four prompts, one pipeline call, four
    tasks' results, each the image that prompt and seed give alone; a task with other
    settings runs on its own."""
    agent = make_agent(stack, tiny_runtime, batches=True, batch_tasks=4, prefetch=4, batch_size=10)
    prompts = ["a red fox", "a blue whale", "a green frog", "a grey owl"]
    for i, prompt in enumerate(prompts):
        send(stack, task_id=f"b-{i}", prompt=prompt, seed=10 + i)
    send(stack, task_id="b-alone", prompt="a red fox", steps=3)
    time.sleep(1)  # all five queued before the agent starts, so the prefetcher can group them
    agent.run(max_tasks=5)
    notes = {n["id"]: n for n in all_notifications(stack)}
    assert sorted(notes) == ["b-0", "b-1", "b-2", "b-3", "b-alone"]
    assert all(n["status"] == "completed" for n in notes.values())
    calls = agent.metrics.registry.get_sample_value("sdctl_agent_runtime_seconds_count", {"runtime": "sdruntime"})
    assert calls < 5  # at least two tasks shared a call
    s3, bucket = stack["aws"].s3, stack["bucket"]
    for i, prompt in enumerate(prompts):
        out = json.loads(s3.get_object(Bucket=bucket, Key=f"output/b-{i}/b-{i}.out")["Body"].read())
        assert out["info"]["prompt"] == prompt and out["info"]["seed"] == 10 + i
        got = Image.open(io.BytesIO(s3.get_object(Bucket=bucket, Key=f"output/b-{i}/b-{i}-1.png")["Body"].read()))
        alone = A1111Adapter(tiny_runtime).run("text-to-image", {"prompt": prompt, "steps": 2, "width": 64,
                                                                 "height": 64, "seed": 10 + i}).images[0]
        assert_same_render(got, alone)


def test_dynamic_model_switches_only_to_listed_models(stack, tiny_runtime):
    from sdctl.agent.adapters import A1111Adapter
    from sdctl.agent.failures import PermanentFailure

    body = {"prompt": "x", "steps": 1, "width": 64, "height": 64}
    fixed = A1111Adapter(tiny_runtime, timeout=30, dynamic_model=False)
    dynamic = A1111Adapter(tiny_runtime, timeout=30, dynamic_model=True)
    same = fixed.run("text-to-image", {**body, "override_settings": {"sd_model_checkpoint": "tiny"}})
    assert same.model == "tiny" and same.images
    with pytest.raises(PermanentFailure) as e:
        fixed.run("text-to-image", {**body, "override_settings": {"sd_model_checkpoint": "sdxl.safetensors"}})
    assert e.value.code == "model-switch-disabled"
    with pytest.raises(PermanentFailure) as e:
        dynamic.run("text-to-image", {**body, "alwayson_scripts": {"sd_model_checkpoint": "sdxl"}})
    assert e.value.code == "unknown-model" and "tiny" in e.value.message
    assert dynamic.run("text-to-image", {**body, "alwayson_scripts": {"sd_model_checkpoint": "tiny [abc]"}}).images


def test_health_readiness_and_metrics(stack, flaky_runtime):
    from starlette.testclient import TestClient

    from sdctl.agent.observe import app

    agent = make_agent(stack, flaky_runtime.url)
    send(stack, task_id="m-1")
    send(stack, task_id="m-2")
    assert sorted(once(agent) + once(agent)) == ["completed", "completed"]
    runtime_up = {"ok": True}
    with TestClient(app(agent.metrics, lambda: runtime_up["ok"])) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").json() == {"ready": True}
        text = http.get("/metrics/").text
    assert 'sdctl_agent_tasks_total{outcome="completed",runtime="sdruntime"} 2.0' in text
    assert 'sdctl_agent_runtime_seconds_count{runtime="sdruntime"} 2.0' in text
    assert "sdctl_agent_queue_wait_seconds_bucket" in text and "sdctl_agent_runtime_busy_ratio" in text
    runtime_up["ok"] = False
    with TestClient(app(agent.metrics, lambda: runtime_up["ok"])) as http:
        assert http.get("/readyz").status_code == 503


def test_a_running_notice_is_published_beside_the_result_when_asked_for(stack, flaky_runtime):
    flaky_runtime.state["delay"] = 0.5
    agent = make_agent(stack, flaky_runtime.url, notify_running=True)
    send(stack, task_id="r-1")
    agent.run(max_tasks=1)
    notes = notifications(stack) + notifications(stack)
    statuses = [n["status"] for n in sorted(notes, key=lambda n: n["status"] != "running")]
    assert statuses == ["running", "completed"]
    running = next(n for n in notes if n["status"] == "running")
    assert running["result"] is False and running["image_url"] == [] and running["attempt"] == 1


def test_sigterm_returns_the_prefetched_task_at_once(stack, flaky_runtime):
    flaky_runtime.state["delay"] = 2.0
    proc = agent_process(stack, flaky_runtime.url)
    send(stack, task_id="first")
    assert wait_for(lambda: flaky_runtime.state["calls"] == 1)
    send(stack, task_id="second")
    assert wait_for(lambda: queue_counts(stack) == (0, 2))  # the second is prefetched: invisible, held
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert [n["id"] for n in notifications(stack)] == ["first"]
    assert queue_counts(stack) == (1, 0)  # the unstarted one is visible again at once


@pytest.fixture
def store(stack):
    from sdctl.agent.store import TaskStore
    from sdctl.execute.local.provision import create_tasks_table

    create_tasks_table(stack["aws"].dynamodb, "tasks")
    return TaskStore(stack["aws"].dynamodb, "tasks")


def record(store, task_id) -> dict:
    from boto3.dynamodb.types import TypeDeserializer

    item = store.db.get_item(TableName="tasks", Key={"id": {"S": task_id}})["Item"]
    return {k: TypeDeserializer().deserialize(v) for k, v in item.items()}


def test_the_agent_records_running_then_completed_and_skips_a_cancelled_task(stack, flaky_runtime, store):
    agent = make_agent(stack, flaky_runtime.url, store=store)
    store.db.put_item(TableName="tasks", Item={"id": {"S": "gone"}, "status": {"S": "cancelled"}})
    send(stack, task_id="gone")
    assert until_received(agent) == ["cancelled"]
    assert flaky_runtime.state["calls"] == 0 and queue_counts(stack) == (0, 0)  # dropped, never run
    send(stack, task_id="ok")
    assert until_received(agent) == ["completed"]
    rec = record(store, "ok")
    assert rec["status"] == "completed" and rec["attempts"] == 1 and rec["runtime"] == "sdruntime"
    assert rec["image_url"] == [f"s3://{stack['bucket']}/output/ok/ok-1.png"] and rec["runtime_seconds"] >= 0
    assert rec["expires_at"] > 0 and rec["created_at"] <= rec["finished_at"]
    notifications(stack)
    send(stack, task_id="ok")  # a repeat of a task whose result is stored and announced
    assert until_received(agent) == ["duplicate"]
    assert notifications(stack) == [] and flaky_runtime.state["calls"] == 1  # not announced twice, not rerun


def test_one_receive_reads_its_tasks_records_in_one_call(stack, flaky_runtime, store):
    """Five tasks arrive in one receive (RECEIVE_BATCH=5), one cancelled before it runs: the
    agent reads the five records in one BatchGetItem, not five GetItems, and still drops the
    cancelled one without a runtime call while the four others complete."""
    agent = make_agent(stack, flaky_runtime.url, batch_size=5, prefetch=5, store=store)
    queued(store, *[f"b-{i}" for i in range(5)])
    store.db.update_item(TableName="tasks", Key={"id": {"S": "b-2"}}, UpdateExpression="SET #s = :c",
                         ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":c": {"S": "cancelled"}})
    for i in range(5):
        send(stack, task_id=f"b-{i}")
    assert wait_for(lambda: queue_counts(stack) == (5, 0))
    reads = []
    store.db.meta.events.register("before-call.dynamodb.*", lambda model, **kw: reads.append(model.name)
                                  if model.name in ("GetItem", "BatchGetItem") else None)
    agent.run(max_tasks=4)
    assert reads == ["BatchGetItem"]
    assert sorted(n["id"] for n in all_notifications(stack)) == ["b-0", "b-1", "b-3", "b-4"]
    assert flaky_runtime.state["calls"] == 4 and record(store, "b-2")["status"] == "cancelled"
    assert queue_counts(stack) == (0, 0)


def test_records_dynamodb_left_unprocessed_are_read_on_their_own():
    """BatchGetItem may answer part of a request and return the rest as UnprocessedKeys (AWS
    documents it under load); those ids are left out so the agent peeks each alone. The
    answer is botocore's Stubber on a real client, in the shape the DynamoDB API reference gives."""
    import boto3
    from botocore.stub import Stubber

    from sdctl.agent.store import TaskStore

    db = boto3.client("dynamodb", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(db) as stub:
        stub.add_response("batch_get_item", {
            "Responses": {"tasks": [{"id": {"S": "a"}, "status": {"S": "cancelled"}},
                                    {"id": {"S": "b"}, "status": {"S": "queued"}, "cancel_requested": {"BOOL": True}}]},
            "UnprocessedKeys": {"tasks": {"Keys": [{"id": {"S": "c"}}]}}})
        states = TaskStore(db, "tasks").peek_many(["a", "b", "c", "d", "a"])
    assert states == {"a": {"status": "cancelled", "cancel_requested": False},
                      "b": {"status": "queued", "cancel_requested": True},
                      "d": {"status": None, "cancel_requested": False}}  # no record: published straight to SNS


def test_a_throttled_task_store_delays_only_the_record_which_catches_up(stack, flaky_runtime, store):
    """Every DynamoDB call answers ProvisionedThroughputExceededException (what botocore raises
    when DynamoDB throttles) while the task runs: the task still completes (its images, result
    and notification do not need the store), and once DynamoDB answers again the agent writes
    the record it could not, without being asked."""
    from botocore.exceptions import ClientError

    throttled = {"on": True, "refused": 0}

    def throttle(**kwargs):
        if throttled["on"]:
            throttled["refused"] += 1
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                         "Message": "Rate of requests exceeds the allowed throughput."},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, kwargs.get("model").name)

    store.db.meta.events.register("before-call.dynamodb", throttle)
    agent = make_agent(stack, flaky_runtime.url, store=store)
    send(stack, task_id="slow-store")
    assert until_received(agent) == ["completed"]
    assert [n["id"] for n in notifications(stack)] == ["slow-store"] and throttled["refused"] > 0
    assert store.behind  # the final state is waiting to be written
    throttled["on"] = False
    assert wait_for(lambda: not store.behind, 10)
    rec = record(store, "slow-store")
    assert rec["status"] == "completed" and rec["image_url"] == [f"s3://{stack['bucket']}/output/slow-store/slow-store-1.png"]


def test_a_failed_task_is_recorded_with_its_reason(stack, flaky_runtime, store):
    flaky_runtime.state["failures"] = 10
    agent = make_agent(stack, flaky_runtime.url, store=store)
    agent.lanes.has_dead_letter_queue, agent.lanes.max_receive_count = False, 1
    send(stack, task_id="bad")
    assert until_received(agent) == ["failed"]
    rec = record(store, "bad")
    assert rec["status"] == "failed" and rec["error"]["code"] == "runtime-error"


def test_the_agent_environment_is_written_once_and_read_back():
    """sdctl/contracts/agent_env.py writes the agent's environment for the chart's values and the
    local stack; AgentSettings.from_env reads it. Every configured value survives the trip,
    maxReceiveCount included (the chart once left it out, and the agent then assumed 3)."""
    from sdctl.agent.settings import AgentSettings
    from sdctl.builders.releases import placeholder_outputs, releases
    from sdctl.config import parse
    from sdctl.contracts.agent_env import for_runtime

    cfg = parse("runtimes: [{name: fast, type: diffusers, maxTaskSeconds: 120, maxReceiveCount: 5, dynamicModel: true,"
                " agent: {prefetch: 3, runtimeConcurrency: 2, batchTasks: 4, notifyRunning: true}}]")
    [rt] = cfg.runtimes
    env = for_runtime(rt, queue_url="https://sqs/q", results_topic_arn="arn:t", bucket="b", tasks_table="tt",
                      task_ttl_days=9, region="eu-west-1", api_base_url="http://127.0.0.1:7860",
                      visibility_seconds=40, health_port=8081)
    s = AgentSettings.from_env(env)
    assert (s.queue_url, s.topic_arn, s.bucket, s.tasks_table, s.task_ttl_days, s.region) == (
        "https://sqs/q", "arn:t", "b", "tt", 9, "eu-west-1")
    assert (s.runtime_name, s.runtime_type, s.api_base_url) == ("fast", "diffusers", "http://127.0.0.1:7860")
    assert (s.max_task_seconds, s.max_receive_count, s.visibility_seconds, s.health_port) == (120, 5, 40, 8081)
    assert (s.prefetch, s.runtime_concurrency, s.batch_tasks, s.batch_size) == (3, 2, 4, 4)
    assert s.dynamic_model is True and s.notify_running is True
    edge, cluster = placeholder_outputs(cfg)
    [rel] = [r for r in releases(cfg, edge=edge, cluster=cluster, account="123456789012", region="eu-west-1")
             if r.runtime]
    chart = AgentSettings.from_env(rel.values["agent"]["env"])  # what the ConfigMap carries
    assert chart.max_receive_count == 5 and chart.queue_url == edge["QueueFastUrl"] and chart.batch_tasks == 4


# -- the task lifecycle: deadlines, truthful states, cancel while running ---------------------------
def in_seconds(seconds: float) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def queued(store, *ids):
    """The records the API handler writes on POST."""
    for task_id in ids:
        store.db.put_item(TableName="tasks", Item={"id": {"S": task_id}, "status": {"S": "queued"}})


def in_thread(fn):
    import threading

    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", fn()), daemon=True)
    thread.start()
    return thread, box


def test_a_task_whose_deadline_passes_in_the_queue_expires_without_a_runtime_call(stack, flaky_runtime, store):
    agent = make_agent(stack, flaky_runtime.url, store=store)
    queued(store, "late")
    # The handler refuses a deadline that has passed; one passes while the task waits in the queue.
    send(stack, task_id="late", meta={"deadline": in_seconds(-1)})
    assert until_received(agent) == ["expired"]
    assert flaky_runtime.state["calls"] == 0 and queue_counts(stack) == (0, 0)
    assert keys(stack) == ["output/late/late.out"]  # no image
    [note] = notifications(stack)
    assert note["status"] == "expired" and note["result"] is False and note["error"]["code"] == "expired"
    rec = record(store, "late")
    assert rec["status"] == "expired" and rec["runtime_seconds"] == 0 and "started_at" not in rec


def test_prefetched_tasks_stay_queued_until_the_runtime_starts_them(stack, flaky_runtime, store):
    """One agent, three tasks: only the one the runtime works on is `running`; the one held
    behind it is `queued`, and cancelling it (the handler's conditional update) drops it: the
    agent records `running` beside the runtime call, not before it, so the call for the
    cancelled task is interrupted at once and leaves no image, notice or record change."""
    flaky_runtime.state["delay"] = 1.5
    agent = make_agent(stack, flaky_runtime.url, prefetch=2, store=store)
    queued(store, "q-0", "q-1", "q-2")
    for i in range(3):
        send(stack, task_id=f"q-{i}", prompt=f"fox {i}")
    thread, _ = in_thread(lambda: agent.run(max_tasks=3))
    assert wait_for(lambda: flaky_runtime.state["calls"] == 1 and queue_counts(stack)[1] == 3)
    states = {i: record(store, i)["status"] for i in ("q-0", "q-1", "q-2")}
    assert sorted(states.values()) == ["queued", "queued", "running"]
    waiting = sorted(i for i, s in states.items() if s == "queued")[-1]
    store.db.update_item(TableName="tasks", Key={"id": {"S": waiting}}, ConditionExpression="#s = :q",
                         UpdateExpression="SET #s = :c", ExpressionAttributeNames={"#s": "status"},
                         ExpressionAttributeValues={":q": {"S": "queued"}, ":c": {"S": "cancelled"}})
    thread.join(30)
    assert flaky_runtime.state["interrupts"] == 1
    assert not [k for k in keys(stack) if f"/{waiting}/" in k]
    assert record(store, waiting)["status"] == "cancelled" and queue_counts(stack) == (0, 0)
    assert sorted(n["id"] for n in all_notifications(stack)) == sorted({"q-0", "q-1", "q-2"} - {waiting})


def test_cancel_while_running_interrupts_the_runtime_and_stores_no_image(stack, flaky_runtime, store):
    flaky_runtime.state["delay"] = 60
    agent = make_agent(stack, flaky_runtime.url, store=store)
    queued(store, "busy")
    send(stack, task_id="busy")
    thread, box = in_thread(lambda: until_received(agent))
    assert wait_for(lambda: flaky_runtime.state["calls"] == 1 and record(store, "busy")["status"] == "running")
    asked = time.monotonic()
    store.db.update_item(TableName="tasks", Key={"id": {"S": "busy"}}, UpdateExpression="SET cancel_requested = :y",
                         ExpressionAttributeValues={":y": {"BOOL": True}})  # what DELETE does to a running task
    thread.join(10)
    assert box["result"] == ["cancelled"] and time.monotonic() - asked < 5
    assert flaky_runtime.state["interrupts"] == 1 and keys(stack) == ["output/busy/busy.out"]
    rec = record(store, "busy")
    assert rec["status"] == "cancelled" and "cancel_requested" not in rec
    [note] = notifications(stack)
    assert note["status"] == "cancelled" and note["image_url"] == [] and queue_counts(stack) == (0, 0)


def test_deadline_policy_interrupt_stops_a_running_task_at_its_deadline(stack, flaky_runtime, store):
    flaky_runtime.state["delay"] = 60
    agent = make_agent(stack, flaky_runtime.url, store=store)
    agent.lanes.has_dead_letter_queue = False
    send(stack, task_id="slow", meta={"deadline": in_seconds(2), "deadlinePolicy": "interrupt"})
    assert until_received(agent, seconds=15) == ["failed"]
    assert flaky_runtime.state["interrupts"] == 1 and record(store, "slow")["error"]["code"] == "deadline"
    assert keys(stack) == ["output/slow/slow.out"] and queue_counts(stack) == (0, 0)


def test_a_running_tasks_progress_is_in_its_record_at_most_once_a_second(stack, flaky_runtime, store):
    flaky_runtime.state["delay"] = 3.0
    agent = make_agent(stack, flaky_runtime.url, store=store)
    queued(store, "steps")
    send(stack, task_id="steps")
    thread, box = in_thread(lambda: until_received(agent))
    seen = []
    while thread.is_alive():
        rec = record(store, "steps")
        if rec.get("progress") and (not seen or seen[-1] != rec["progress"]):
            seen.append(rec["progress"])
        time.sleep(0.05)
    assert box["result"] == ["completed"]
    assert 2 <= len(seen) <= 4  # a 3 s call, one write a second at most
    steps = [p["step"] for p in seen]
    assert steps == sorted(steps) and all(p["steps"] == 10 and 0 <= p["percent"] <= 100 for p in seen)
    assert "progress" not in record(store, "steps")  # a finished task has none


def test_a_task_on_a_priced_node_carries_its_cost(stack, flaky_runtime, store, tmp_path):
    """The agent's node, read as on EKS: its labels from the Kubernetes API (the replay server
    of tests/kube_replay.py, serving the recorded Karpenter node: a spot g5.xlarge)."""
    from sdctl.agent import cost
    from tests.kube_replay import app, scenario

    objs = scenario("steady")["objects"]
    node = objs["nodes"][0]["metadata"]["name"]
    with ServerThread(app(objs)) as api:
        per_second = cost.price_per_second(
            {"NODE_NAME": node, "GPU_PRICES": json.dumps({"g5.xlarge": {"spot": 0.4125, "on-demand": 1.006}})},
            labels=lambda name: cost.node_labels(name, api=api.url, token="replay", ca=False))
    assert per_second == pytest.approx(0.4125 / 3600)
    flaky_runtime.state["delay"] = 0.5
    agent = make_agent(stack, flaky_runtime.url, store=store, price_per_second=per_second)
    queued(store, "priced")
    send(stack, task_id="priced")
    assert until_received(agent) == ["completed"]
    [note] = notifications(stack)
    assert note["gpu_seconds"] >= 0.5 and note["cost_usd"] == pytest.approx(note["gpu_seconds"] * per_second, abs=1e-6)
    rec = record(store, "priced")
    assert float(rec["cost_usd"]) == pytest.approx(note["cost_usd"]) and float(rec["gpu_seconds"]) == note["gpu_seconds"]


def test_without_a_node_or_a_price_the_cost_is_unknown():
    from sdctl.agent import cost

    assert cost.price_per_second({}) is None
    unlisted = cost.price_per_second({"NODE_NAME": "n", "GPU_PRICES": "{}"},
                                     labels=lambda name: {"node.kubernetes.io/instance-type": "p5.48xlarge"})
    assert unlisted is None and cost.cost_usd(2.0, None) is None


def test_high_priority_tasks_sent_after_a_backlog_of_low_ones_start_first(stack, flaky_runtime):
    agent = make_agent(stack, flaky_runtime.url)
    for i in range(5):
        send(stack, task_id=f"low-{i}", priority="low", prompt=f"low {i}")
    send(stack, task_id="plain", prompt="plain")  # no priority at all: the normal lane
    for i in range(5):
        send(stack, task_id=f"high-{i}", priority="high", prompt=f"high {i}")
    agent.run(max_tasks=11)
    order = [p.split()[0] for p in flaky_runtime.state["prompts"]]
    assert order == ["high"] * 5 + ["plain"] + ["low"] * 5
    assert queue_counts(stack) == (0, 0)


def test_a_steady_stream_of_high_tasks_does_not_starve_the_low_lane(stack, flaky_runtime):
    from sdctl.agent.sqs import STARVATION_LIMIT

    agent = make_agent(stack, flaky_runtime.url)
    send(stack, task_id="low", priority="low", prompt="low")
    for i in range(STARVATION_LIMIT + 5):
        send(stack, task_id=f"high-{i}", priority="high", prompt=f"high {i}")
    agent.run(max_tasks=STARVATION_LIMIT + 6)
    order = [p.split()[0] for p in flaky_runtime.state["prompts"]]
    assert order.index("low") <= STARVATION_LIMIT  # one receive in STARVATION_LIMIT asks the lower lanes first


def test_a_prefetched_low_task_gives_way_to_a_high_one_that_arrives_later(stack, flaky_runtime):
    flaky_runtime.state["delay"] = 1.0
    agent = make_agent(stack, flaky_runtime.url)
    send(stack, task_id="low-0", priority="low", prompt="low 0")
    send(stack, task_id="low-1", priority="low", prompt="low 1")
    thread, _ = in_thread(lambda: agent.run(max_tasks=3))
    # low-0 on the runtime, low-1 held behind it (prefetched)
    assert wait_for(lambda: flaky_runtime.state["calls"] == 1 and len(agent.heartbeat.held()) == 2)
    send(stack, task_id="high", priority="high", prompt="high")
    thread.join(30)
    assert flaky_runtime.state["prompts"] == ["low 0", "high", "low 1"]


def test_finished_messages_are_deleted_ten_to_a_call_and_none_is_left_behind(stack):
    """sdctl/agent/deletes.py: 23 finished messages go in three DeleteMessageBatch calls (ten,
    ten, then the rest once they have lingered), and the queue ends empty."""
    from sdctl.agent.deletes import Deletes

    sqs, url = stack["aws"].sqs, stack["runtimes"]["sdruntime"]["queue_url"]
    for i in range(23):
        send(stack, task_id=f"d-{i}")
    got = []
    while len(got) < 23:
        got += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
    deletes = Deletes(sqs, linger=0.2)
    for m in got:
        deletes.add(url, m["ReceiptHandle"])
    assert wait_for(lambda: queue_counts(stack) == (0, 0))
    assert deletes.calls == 3


def test_a_fast_runtime_gets_about_a_second_of_work_per_receive(stack):
    agent = make_agent(stack, "http://127.0.0.1:9")
    assert agent.lanes.receive_count() == 1  # nothing known yet: one at a time
    for _ in range(20):
        agent.lanes.paced(0.05)
    assert agent.lanes.receive_count() == 10
    for _ in range(40):
        agent.lanes.paced(2.0)
    assert agent.lanes.receive_count() == 1


_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=200)  # what SQS accepts in a body
_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                                 _text),
                       lambda inner: st.one_of(st.lists(inner, max_size=3),
                                               st.dictionaries(_text, inner, max_size=3)), max_leaves=8)
_meta = st.fixed_dictionaries({}, optional={k: st.one_of(_values, st.just("sdruntime"), st.just("t-1"))
                                            for k in ("id", "runtime", "prefix", "tasktype", "deadline",
                                                      "deadlinePolicy", "priority", "webhook", "context")})
GARBAGE = st.one_of(
    _text,                                                                     # not JSON
    _values.map(json.dumps),                                                   # JSON of any shape
    st.one_of(_text, _values.map(json.dumps)).map(                             # an SNS envelope around anything
        lambda m: json.dumps({"Type": "Notification", "Message": m})),
    st.tuples(_meta, _values).map(lambda mc: json.dumps({"metadata": mc[0], "content": mc[1]})),  # wrong types
    st.just("x" * 262_000),                                                    # 256 KiB of garbage
)


@settings(derandomize=True, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=GARBAGE)
def test_a_malformed_message_never_stops_the_agent_and_ends_failed_or_dead_lettered(stack, flaky_runtime, body):
    """Whatever a queue message holds, handling it returns an outcome (never an exception):
    `unreadable` (left for the dead-letter queue), `failed` (with its notice), or the task
    ran; and the next well-formed task still completes."""
    agent = make_agent(stack, flaky_runtime.url)
    agent.lanes.max_receive_count = 2  # the queue's own redrive policy says 2 (CONFIG)
    sqs, url = stack["aws"].sqs, stack["runtimes"]["sdruntime"]["queue_url"]
    while notifications(stack):  # earlier examples' notices
        pass
    sent = sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"]
    outcome = None
    deadline = time.monotonic() + 20
    while outcome is None and time.monotonic() < deadline:
        for m in agent.lanes.receive():
            result = agent.handle(m)  # earlier examples' returned garbage comes back too: all is handled
            assert isinstance(result, str)
            if m["MessageId"] == sent:
                outcome = result
    assert outcome in ("unreadable", "failed", "completed", "expired", "duplicate"), outcome
    if outcome == "failed":
        seen, batch = [], notifications(stack)
        while batch:
            seen, batch = seen + batch, notifications(stack)
        assert any(n["status"] == "failed" for n in seen)
    after = f"after-{sent[:8]}"
    send(stack, task_id=after)
    deadline = time.monotonic() + 20
    while not record_completed(stack, after):
        assert time.monotonic() < deadline, "the agent stopped serving after a malformed message"
        for m in agent.lanes.receive():
            agent.handle(m)
    agent.heartbeat.stop()


def record_completed(stack, task_id: str) -> bool:
    return any(k.endswith(f"{task_id}.out") for k in keys(stack))


def test_the_agent_marks_its_pod_busy_while_it_renders_and_idle_after(stack, flaky_runtime):
    """controller.kubernetes.io/pod-deletion-cost (sdctl/agent/podcost.py): the agent patches its
    own pod to BUSY as the runtime call starts and to IDLE when it ends, once each, so a
    scale-in takes an idle pod first. The Kubernetes API is a recording stand-in that answers
    PATCH as the API server does (merge patch, 200 with the pod), and refuses, as it does, an
    annotation value that is not a 32-bit integer (Kubernetes docs, "Well-Known Labels,
    Annotations and Taints", controller.kubernetes.io/pod-deletion-cost: "the value ... must be
    parsable as int32"; the API server's pod validation rejects others with 422)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from sdctl.agent.podcost import ANNOTATION, BUSY, IDLE, DeletionCost
    from tests.conftest import ServerThread

    patches = []

    async def pod(request):
        body = await request.json()
        value = body["metadata"]["annotations"][ANNOTATION]
        if not (value.lstrip("-").isdigit() and -2**31 <= int(value) < 2**31):
            return JSONResponse({"kind": "Status", "code": 422, "reason": "Invalid"}, status_code=422)
        patches.append((request.path_params["name"], request.headers["content-type"], request.headers["authorization"],
                        body["metadata"]["annotations"][ANNOTATION]))
        return JSONResponse({"kind": "Pod", "metadata": {"name": request.path_params["name"], **body["metadata"]}})

    app = Starlette(routes=[Route("/api/v1/namespaces/sdctl/pods/{name}", pod, methods=["PATCH"])])
    flaky_runtime.state["delay"] = 0.3
    with ServerThread(app) as api:
        cost = DeletionCost(api=api.url, namespace="sdctl", pod="sd-runtime-7d9-abcde", token="t0k", ca=False)
        agent = make_agent(stack, flaky_runtime.url, deletion_cost=cost)
        send(stack, task_id="cost-1")
        send(stack, task_id="cost-2")
        assert until_received(agent) == ["completed"]
        assert cost.settled()  # patched from a thread of its own: the runtime call never waits for it
        assert until_received(agent) == ["completed"]
        assert cost.settled()
    assert patches == [("sd-runtime-7d9-abcde", "application/merge-patch+json", "Bearer t0k", str(BUSY)),
                       ("sd-runtime-7d9-abcde", "application/merge-patch+json", "Bearer t0k", str(IDLE))] * 2
