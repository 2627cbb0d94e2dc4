"""The API handler, with what it publishes read back from a moto SQS queue over HTTP."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_src import handler as api

RUNTIMES = {"sdruntime": "sdwebui", "comfy": "comfyui", "diff": "diffusers"}


@pytest.fixture
def wired(aws, monkeypatch):
    """requests topic -> one queue per runtime with the runtime filter policy."""
    topic = aws.sns.create_topic(Name="requests")["TopicArn"]
    queues = {}
    for name in RUNTIMES:
        url = aws.sqs.create_queue(QueueName=f"q-{name}")["QueueUrl"]
        arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        aws.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                          Attributes={"FilterPolicy": json.dumps({"runtime": [name]})})
        queues[name] = url
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.url)
    monkeypatch.setenv("SNS_TOPIC_ARN", topic)
    monkeypatch.setenv("S3_BUCKET", "out-bucket")
    monkeypatch.setenv("RUNTIMES", json.dumps(RUNTIMES))
    monkeypatch.setattr(api, "_clients", {})
    monkeypatch.delenv("TASKS_TABLE", raising=False)

    def drain(name):
        msgs = aws.sqs.receive_message(QueueUrl=queues[name], MaxNumberOfMessages=10,
                                       MessageAttributeNames=["All"]).get("Messages", [])
        return [json.loads(m["Body"]) for m in msgs]

    def all_published():
        return {name: drain(name) for name in RUNTIMES}

    return drain, all_published


def post(body, *, raw=None, method="POST", b64=False):
    text = raw if raw is not None else json.dumps(body)
    if b64:
        text = base64.b64encode(text.encode()).decode()
    resp = api.handler({"httpMethod": method, "resource": "/v1alpha2", "path": "/v1alpha2",
                        "body": text, "isBase64Encoded": b64}, None)
    return resp["statusCode"], json.loads(resp["body"])


def task(**meta):
    m = {"id": "t-1", "runtime": "sdruntime", "tasktype": "text-to-image", "prefix": "output", "context": "c"}
    m.update(meta)
    m = {k: v for k, v in m.items() if v is not None}
    return {"task": {"metadata": m, "content": {"prompt": "a fox", "steps": 4}}}


def test_accepted_task_is_published_to_its_runtime_queue_only(wired):
    drain, all_published = wired
    status, body = post(task())
    assert status == 200
    assert body == {"id": "t-1", "runtime": "sdruntime", "output_location": "s3://out-bucket/output/t-1"}
    published = all_published()
    assert published["comfy"] == [] and published["diff"] == []
    [envelope] = published["sdruntime"]
    assert envelope["MessageAttributes"]["runtime"] == {"Type": "String", "Value": "sdruntime"}
    sent = json.loads(envelope["Message"])
    assert sent == {"metadata": {"id": "t-1", "runtime": "sdruntime", "tasktype": "text-to-image",
                                 "prefix": "output", "context": "c"},
                    "content": {"prompt": "a fox", "steps": 4}}


def test_base64_body_and_default_prefix(wired):
    drain, _ = wired
    status, body = post(task(prefix=None), b64=True)
    assert status == 200 and body["output_location"].endswith("/output/t-1")
    assert json.loads(drain("sdruntime")[0]["Message"])["metadata"]["prefix"] == "output"


def test_comfyui_takes_pipeline_tasks(wired):
    drain, _ = wired
    assert post(task(runtime="comfy", tasktype="pipeline"))[0] == 200
    assert len(drain("comfy")) == 1


@pytest.mark.parametrize("body,field", [
    ([1, 2], "body"),
    ({"nope": 1}, "task"),
    ({"task": {"metadata": "x", "content": {}}}, "task.metadata"),
    (task(id=None), "task.metadata.id"),
    (task(id=""), "task.metadata.id"),
    (task(id="a" * 65), "task.metadata.id"),
    (task(id="has space"), "task.metadata.id"),
    (task(id="../etc"), "task.metadata.id"),
    (task(runtime="ghost"), "task.metadata.runtime"),
    (task(runtime="bad!name"), "task.metadata.runtime"),
    (task(tasktype="pipeline"), "task.metadata.tasktype"),
    (task(runtime="comfy", tasktype="text-to-image"), "task.metadata.tasktype"),
    (task(tasktype=None), "task.metadata.tasktype"),
    (task(prefix="../secret"), "task.metadata.prefix"),
    (task(prefix="/abs"), "task.metadata.prefix"),
    (task(prefix="a/../b"), "task.metadata.prefix"),
    (task(prefix="a//b"), "task.metadata.prefix"),
    (task(prefix=7), "task.metadata.prefix"),
    (task(surprise=1), "task.metadata.surprise"),
    (task(priority="urgent"), "task.metadata.priority"),
    (task(deadline="tomorrow"), "task.metadata.deadline"),
    (task(deadline="2099-01-01T10:00:00"), "task.metadata.deadline"),  # no offset: whose 10:00?
    (task(deadline="2020-01-01T10:00:00Z"), "task.metadata.deadline"),  # passed
    (task(ttlSeconds=0), "task.metadata.ttlSeconds"),
    (task(ttlSeconds=True), "task.metadata.ttlSeconds"),
    (task(ttlSeconds=1209601), "task.metadata.ttlSeconds"),
    (task(ttlSeconds=60, deadline="2099-01-01T10:00:00Z"), "task.metadata.ttlSeconds"),
    (task(ttlSeconds=60, deadlinePolicy="later"), "task.metadata.deadlinePolicy"),
    (task(maxAttempts=0), "task.metadata.maxAttempts"),
    (task(maxAttempts=True), "task.metadata.maxAttempts"),
    (task(maxAttempts=101), "task.metadata.maxAttempts"),
    (task(maxAttempts="2"), "task.metadata.maxAttempts"),
    (task(deadlinePolicy="interrupt"), "task.metadata.deadlinePolicy"),
    ({"task": {"metadata": task()["task"]["metadata"], "content": "prompt"}}, "task.content"),
    ({"task": {"metadata": task()["task"]["metadata"]}}, "task.content"),
])
def test_every_rejection_is_a_400_naming_the_field_and_publishes_nothing(wired, body, field):
    _, all_published = wired
    status, resp = post(body)
    assert status == 400
    assert resp["field"] == field
    assert all(not v for v in all_published().values())


def test_invalid_json_and_empty_body(wired):
    _, all_published = wired
    assert post(None, raw="{not json")[1]["field"] == "body"
    assert post(None, raw="")[0] == 400
    assert all(not v for v in all_published().values())


def test_message_over_the_sns_limit_is_rejected(wired):
    _, all_published = wired
    body = task()
    body["task"]["content"]["init_images"] = ["A" * 262144]
    status, resp = post(body)
    assert status == 400 and resp["field"] == "task" and "256 KiB" in resp["message"]
    assert all(not v for v in all_published().values())


def test_a_message_just_under_the_limit_is_accepted(wired):
    drain, _ = wired
    body = task()
    # SNS counts the message and its attributes: runtime=sdruntime and priority=normal.
    attributes = len("runtime") + len("String") + len("sdruntime") + len("priority") + len("String") + len("normal")
    size = len(json.dumps(body["task"], separators=(",", ":"))) + attributes
    body["task"]["content"]["pad"] = "x" * (262144 - size - len(',"pad":""'))
    assert post(body)[0] == 200
    assert len(drain("sdruntime")) == 1


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(wired, method):
    status, body = post(task(), method=method)
    assert status == 405


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
metadata = st.fixed_dictionaries({}, optional={
    "id": st.text(max_size=70) | json_values, "runtime": st.sampled_from(list(RUNTIMES)) | st.text(max_size=10),
    "tasktype": st.sampled_from(["text-to-image", "pipeline", "image-to-image", "x"]) | json_values,
    "prefix": st.text(max_size=30) | json_values, "context": json_values,
})
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"task": st.fixed_dictionaries({}, optional={"metadata": metadata | json_values,
                                                                        "content": json_values})}),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_no_input_produces_a_5xx(wired, body):
    status, resp = post(body)
    assert status in (200, 400), resp
    if status == 400:
        assert resp["field"] and resp["message"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.text(max_size=200))
def test_no_raw_text_produces_a_5xx(wired, raw):
    assert post(None, raw=raw)[0] in (200, 400)


@pytest.fixture
def store(aws, wired, monkeypatch):
    """The task table, created by the same code the local stack uses, in moto over HTTP."""
    from sdctl.execute.local.provision import create_tasks_table

    create_tasks_table(aws.dynamodb, "tasks")
    monkeypatch.setenv("TASKS_TABLE", "tasks")
    monkeypatch.setenv("TASK_TTL_DAYS", "7")
    return aws.dynamodb


def call(method, task_id):
    resp = api.handler({"httpMethod": method, "resource": "/v1alpha2/tasks/{id}",
                        "path": f"/v1alpha2/tasks/{task_id}", "pathParameters": {"id": task_id}}, None)
    return resp["statusCode"], json.loads(resp["body"])


def test_a_submitted_task_is_recorded_queued_and_readable(store, wired):
    import time

    assert post(task(id="s-1"))[0] == 200
    status, record = call("GET", "s-1")
    assert status == 200
    assert record["status"] == "queued" and record["runtime"] == "sdruntime" and record["prompt"] == "a fox"
    assert record["output_url"] == "s3://out-bucket/output/s-1/s-1.out" and record["attempts"] == 0
    item = store.get_item(TableName="tasks", Key={"id": {"S": "s-1"}})["Item"]
    assert abs(int(item["expires_at"]["N"]) - (time.time() + 7 * 86400)) < 60  # TTL after the retention period


def test_a_repeated_id_is_409_with_the_existing_state_and_runs_once(store, wired):
    drain, _ = wired
    assert post(task(id="dup"))[0] == 200
    status, body = post(task(id="dup"))
    assert status == 409 and body["status"] == "queued" and "already exists" in body["message"]
    assert len(drain("sdruntime")) == 1  # published once


def test_cancel_a_queued_task_now_a_running_one_on_request_a_finished_one_never(store, wired):
    post(task(id="c-1"))
    assert call("DELETE", "c-1") == (200, {"id": "c-1", "status": "cancelled"})
    assert call("GET", "c-1")[1]["status"] == "cancelled"
    status, body = call("DELETE", "c-1")
    assert status == 409 and body["status"] == "cancelled"
    post(task(id="c-2"))
    store.update_item(TableName="tasks", Key={"id": {"S": "c-2"}}, UpdateExpression="SET #s = :r",
                      ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":r": {"S": "running"}})
    status, body = call("DELETE", "c-2")  # the agent holding it interrupts the runtime
    assert status == 202 and body["cancel_requested"] is True
    record = call("GET", "c-2")[1]
    assert record["status"] == "running" and record["cancel_requested"] is True
    assert call("GET", "nope")[0] == 404 and call("DELETE", "nope")[0] == 404
    assert call("GET", "bad id!")[0] == 400 and call("PUT", "c-1")[0] == 405


def test_the_priority_rides_as_an_attribute_that_routes_the_task_to_its_lane(wired):
    _, all_published = wired
    assert post(task(id="p-high", priority="high"))[0] == 200
    assert post(task(id="p-plain"))[0] == 200  # a guidance client's: normal
    [high, plain] = all_published()["sdruntime"]
    assert high["MessageAttributes"]["priority"] == {"Type": "String", "Value": "high"}
    assert json.loads(high["Message"])["metadata"]["priority"] == "high"
    assert plain["MessageAttributes"]["priority"] == {"Type": "String", "Value": "normal"}
    assert "priority" not in json.loads(plain["Message"])["metadata"]  # the guidance's task, unchanged


def test_a_queued_task_says_its_place_in_line_and_an_eta_from_what_is_ahead(store, wired):
    """The ETA is (the running tasks' expected remaining time + the tasks ahead x the mean of
    the runtime's recent render times) / the tasks running at once; with no render of the last
    hour there is no ETA, and the record says why. (The old estimate divided by completions per
    10 minutes: ~200 s for a task that started 18 s later.)"""
    from sdctl.contracts.tasks import timestamp

    for i in range(4):
        post(task(id=f"line-{i}"))
    place = call("GET", "line-3")[1]["queue"]
    assert (place["position"], place["eta_seconds"]) == (4, None) and "no render" in place["eta_basis"]

    def set_state(task_id, state, **extra):
        names, values, sets = {"#s": "status"}, {":v": {"S": state}}, ["#s = :v"]
        for k, v in extra.items():
            values[f":{k}"] = v
            sets.append(f"{k} = :{k}")
        store.update_item(TableName="tasks", Key={"id": {"S": task_id}}, UpdateExpression="SET " + ", ".join(sets),
                          ExpressionAttributeNames=names, ExpressionAttributeValues=values)

    set_state("line-0", "completed", runtime_seconds={"N": "4.0"})  # renders take 4 s here
    set_state("line-1", "running", started_at={"S": timestamp()})   # one running, just started
    place = call("GET", "line-3")[1]["queue"]
    # line-2 is ahead: (4 s left of the running one + 1 x 4 s) / 1 running = ~8 s
    assert place["position"] == 2 and 7.0 <= place["eta_seconds"] <= 8.0
    assert "1 recent render(s), 4.0 s each; 1 running" == place["eta_basis"]
    assert "queue" not in call("GET", "line-0")[1]


def test_a_deadline_is_passed_on_in_utc_and_recorded(store, wired):
    _, all_published = wired
    assert post(task(id="d-1", deadline="2099-01-01T12:00:00+02:00", deadlinePolicy="interrupt"))[0] == 200
    assert post(task(id="d-2", ttlSeconds=300))[0] == 200
    sent = {m["metadata"]["id"]: m["metadata"] for m in
            (json.loads(e["Message"]) for e in all_published()["sdruntime"])}
    assert sent["d-1"]["deadline"] == "2099-01-01T10:00:00.000000Z" and sent["d-1"]["deadlinePolicy"] == "interrupt"
    ttl = datetime.strptime(sent["d-2"]["deadline"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert 290 < (ttl - datetime.now(UTC)).total_seconds() <= 300 and "deadlinePolicy" not in sent["d-2"]
    assert call("GET", "d-1")[1]["deadline"] == "2099-01-01T10:00:00.000000Z"


def test_a_failed_publish_takes_the_record_back_so_the_id_can_be_retried(store, wired, monkeypatch):
    monkeypatch.setenv("SNS_TOPIC_ARN", "arn:aws:sns:us-west-2:123456789012:gone")
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="NotFound"):  # API Gateway answers 502 to the caller
        post(task(id="p-1"))
    assert call("GET", "p-1")[0] == 404


def test_without_a_task_store_status_is_501(wired):
    assert call("GET", "x")[0] == 501


def test_a_frozen_aws_is_a_fast_503_and_the_same_request_then_succeeds_once(monkeypatch):
    """A brownout: the AWS endpoint stops answering (a moto server of its own, SIGSTOPped).
    POST answers 503 with Retry-After well inside API Gateway's 29 s, nothing is queued twice,
    and once AWS answers again the same request is accepted and published exactly once."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import boto3

    from sdctl.execute.local.provision import create_tasks_table
    from tests.conftest import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        kw = dict(endpoint_url=url, region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
        sqs, sns, db = boto3.client("sqs", **kw), boto3.client("sns", **kw), boto3.client("dynamodb", **kw)
        deadline = time.monotonic() + 30
        while True:
            try:
                topic = sns.create_topic(Name="requests")["TopicArn"]
                break
            except Exception:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        queue = sqs.create_queue(QueueName="q")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        create_tasks_table(db, "tasks")
        for k, v in {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                     "AWS_DEFAULT_REGION": "us-west-2", "SNS_TOPIC_ARN": topic, "S3_BUCKET": "out",
                     "RUNTIMES": json.dumps(RUNTIMES), "TASKS_TABLE": "tasks"}.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(api, "_clients", {})

        os.kill(server.pid, signal.SIGSTOP)
        asked = time.monotonic()
        resp = api.handler({"httpMethod": "POST", "resource": "/v1alpha2", "path": "/v1alpha2",
                            "body": json.dumps(task(id="brown"))}, None)
        took = time.monotonic() - asked
        assert resp["statusCode"] == 503 and resp["headers"]["Retry-After"] and took < 25
        assert json.loads(resp["body"])["retryable"] is True

        os.kill(server.pid, signal.SIGCONT)
        status, body = post(task(id="brown"))
        assert status == 200, body
        assert post(task(id="brown"))[0] == 409  # published now: a repeat is refused again
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        assert len(got) == 1
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.terminate()


def test_the_local_gateway_throttles_like_a_usage_plan_before_the_handler_runs():
    """sdctl/execute/local/gateway.py with the example's throttle shape (burst, then rate per
    second) on a clock the test moves; the handler here only counts calls: what is measured
    is the gateway's answer, 429 with API Gateway's body, and that a throttled request never
    reaches the function."""
    from starlette.testclient import TestClient

    from sdctl.execute.local.gateway import TokenBucket, create_app

    now = [0.0]
    calls = []

    def counting_handler(event, context):
        calls.append(event["httpMethod"])
        return {"statusCode": 200, "body": "{}"}

    app = create_app("k", counting_handler, throttle=TokenBucket(rate=2, burst=5, clock=lambda: now[0]))
    with TestClient(app) as client:
        answers = [client.post("/v1alpha2", headers={"x-api-key": "k"}, content="{}") for _ in range(7)]
        assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
        assert answers[-1].json() == {"message": "Too Many Requests"} and len(calls) == 5
        now[0] += 0.5  # half a second at 2 per second: one more
        assert [client.post("/v1alpha2", headers={"x-api-key": "k"}, content="{}").status_code
                for _ in range(2)] == [200, 429]
        assert client.post("/v1alpha2", headers={"x-api-key": "wrong"}, content="{}").status_code == 403


def test_the_local_gateway_answers_every_request_in_time_while_aws_does_not():
    """Sent one after another while the handler is stuck on an emulator that does not answer
    (here a handler that blocks until released), each request gets 503 with Retry-After within
    the gateway's answer time; none hangs behind the one before. Released, the stuck calls
    finish and the next request is served as usual."""
    import threading
    import time

    from starlette.testclient import TestClient

    from sdctl.execute.local.gateway import create_app

    frozen = threading.Event()
    frozen.set()
    release = threading.Event()

    def handler(event, context):
        if frozen.is_set():
            release.wait(30)
        return {"statusCode": 200, "body": "{}"}

    app = create_app("k", handler, answer_seconds=0.5)
    with TestClient(app) as client:
        for _ in range(3):
            asked = time.monotonic()
            r = client.post("/v1alpha2", headers={"x-api-key": "k"}, content="{}")
            assert r.status_code == 503 and r.headers["Retry-After"] and time.monotonic() - asked < 3
            assert "same id" in r.json()["message"]
        frozen.clear()
        release.set()
        assert client.post("/v1alpha2", headers={"x-api-key": "k"}, content="{}").status_code == 200

