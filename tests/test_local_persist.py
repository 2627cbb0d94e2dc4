"""The local stack's AWS keeps its data (sdctl/execute/local/emulator/persist.py).

Each test runs the emulator as the local stack does, a real moto server in its own process
(`python -m sdctl.execute.local.emulator --data DIR`), talks to it with boto3 over HTTP, kills
it (SIGKILL, as a crash or the OOM killer would, or SIGTERM, as `local down` does) and starts a
new one on the same folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import boto3
import httpx
import pytest

from sdctl.execute.local.emulator import durable as serving
from sdctl.execute.local.emulator import persist
from tests.conftest import free_port

REGION = "us-east-1"


class Emulator:
    def __init__(self, data, tmp_path):
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "emulator.log"
        self.proc = None

    def start(self) -> Emulator:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "sdctl.execute.local.emulator", "-p", str(self.port),
                                          "--data", str(self.data)], stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.url + "/moto-api/", timeout=2).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError("emulator not ready")

    def kill(self, sig=signal.SIGKILL) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)

    def client(self, service: str, durable: bool = False):
        c = boto3.session.Session(region_name=REGION, aws_access_key_id="testing",
                                  aws_secret_access_key="testing").client(service, endpoint_url=self.url)
        if durable:
            c.meta.events.register("before-sign", serving.durable_header)
        return c


@pytest.fixture
def emulator(tmp_path):
    made = []

    def start():
        e = Emulator(tmp_path / "aws", tmp_path).start()
        made.append(e)
        return e

    yield start
    for e in made:
        if e.proc.poll() is None:
            e.kill()


def fill(e: Emulator, durable: bool) -> dict:
    """What a local stack holds after some tasks: a queue with messages (one received, so in
    flight), an image, a task record, a secret, an API key."""
    sqs, s3, ddb = e.client("sqs", durable), e.client("s3", durable), e.client("dynamodb", durable)
    q = sqs.create_queue(QueueName="tasks")["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=q, MessageBody=json.dumps({"id": f"t{i}"}))
    taken = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=1, VisibilityTimeout=2)["Messages"]
    s3.create_bucket(Bucket="images")
    image = os.urandom(300_000)  # bigger than moto's in-memory spool for some settings: bytes, not text
    s3.put_object(Bucket="images", Key="t0.png", Body=image)
    ddb.create_table(TableName="tasks", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    ddb.put_item(TableName="tasks", Item={"id": {"S": "t0"}, "status": {"S": "completed"}})
    e.client("secretsmanager", durable).create_secret(Name="hooks", SecretString="whsec_x")
    apigateway = e.client("apigateway", durable)
    key = apigateway.create_api_key(name="default", value="k" * 30, enabled=True)["id"]
    plan = apigateway.create_usage_plan(name="alice", throttle={"rateLimit": 5, "burstLimit": 10})["id"]
    apigateway.create_usage_plan_key(usagePlanId=plan, keyId=key, keyType="API_KEY")
    return {"queue": q, "image": image, "in_flight": taken[0]["Body"]}


def check(e: Emulator, held: dict) -> None:
    sqs = e.client("sqs")
    # What `local up` does on kept data: create what exists again; S3 must know the bucket is ours.
    e.client("s3").create_bucket(Bucket="images")
    assert [o["Key"] for o in e.client("s3").list_objects_v2(Bucket="images")["Contents"]] == ["t0.png"]
    assert e.client("s3").get_object(Bucket="images", Key="t0.png")["Body"].read() == held["image"]
    assert e.client("dynamodb").get_item(TableName="tasks", Key={"id": {"S": "t0"}})["Item"]["status"] == {
        "S": "completed"}
    assert e.client("secretsmanager").get_secret_value(SecretId="hooks")["SecretString"] == "whsec_x"
    keys = e.client("apigateway").get_api_keys(includeValues=True)["items"]
    assert [(k["name"], k["value"]) for k in keys] == [("default", "k" * 30)]
    plans = e.client("apigateway").get_usage_plans()["items"]
    assert [(p["name"], p["throttle"]["rateLimit"]) for p in plans] == [("alice", 5)]
    bodies = []
    deadline = time.monotonic() + 10  # the received one comes back when its 2 s visibility ends
    while len(bodies) < 3 and time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=held["queue"], MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []):
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=held["queue"], ReceiptHandle=m["ReceiptHandle"])
    assert sorted(json.loads(b)["id"] for b in bodies) == ["t0", "t1", "t2"]


def test_durable_changes_survive_a_crash_of_the_emulator(emulator):
    first = emulator()
    held = fill(first, durable=True)  # each call answered once its change was on disk
    first.kill(signal.SIGKILL)
    second = emulator()
    info = json.loads((second.data / persist.RESTORE).read_text())
    assert info["restored"] and info["objects"] == 1
    check(second, held)


def test_local_down_saves_what_changed_since_the_last_snapshot(emulator):
    first = emulator()
    held = fill(first, durable=False)
    first.kill(signal.SIGTERM)  # what `local down` sends: the emulator saves, then exits
    assert first.proc.returncode == 0
    check(emulator(), held)


def test_the_gateway_sync_waits_for_a_snapshot_that_holds_earlier_changes(emulator):
    first = emulator()
    sns = first.client("sns")
    topic = sns.create_topic(Name="requests")["TopicArn"]
    assert httpx.post(first.url + serving.SYNC_PATH, timeout=30).status_code == 200
    first.kill(signal.SIGKILL)
    assert [t["TopicArn"] for t in emulator().client("sns").list_topics()["Topics"]] == [topic]


def test_reads_and_empty_receives_are_not_changes(emulator):
    e = emulator()
    sqs = e.client("sqs", durable=True)
    q = sqs.create_queue(QueueName="idle")["QueueUrl"]

    def changes() -> int:
        return httpx.post(e.url + serving.SYNC_PATH, timeout=30).json()["changes"]

    before = changes()
    for _ in range(3):
        sqs.receive_message(QueueUrl=q, WaitTimeSeconds=0)
        sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["All"])
        sqs.list_queues()
    assert changes() == before  # an idle stack's polling agents take no snapshots
    sqs.send_message(QueueUrl=q, MessageBody="x")
    assert changes() == before + 1
    sqs.receive_message(QueueUrl=q, WaitTimeSeconds=0, VisibilityTimeout=0)  # returns the message
    assert changes() == before + 2


def test_a_snapshot_this_moto_cannot_read_is_kept_aside_and_reported(emulator, tmp_path):
    data = tmp_path / "aws"
    data.mkdir()
    (data / persist.STATE).write_bytes(b"not a pickle")
    e = emulator()
    info = json.loads((data / persist.RESTORE).read_text())
    assert not info["restored"] and "UnpicklingError" in info["error"]
    assert open(info["moved_to"], "rb").read() == b"not a pickle"
    assert e.client("sqs").list_queues().get("QueueUrls") is None  # started empty, and serving


def test_deleted_objects_bodies_are_removed_at_the_next_start(emulator):
    first = emulator()
    s3 = first.client("s3", durable=True)
    s3.create_bucket(Bucket="images")
    s3.put_object(Bucket="images", Key="a.png", Body=b"a" * 1000)
    s3.put_object(Bucket="images", Key="b.png", Body=b"b" * 1000)
    s3.delete_object(Bucket="images", Key="a.png")
    assert len(list((first.data / persist.OBJECTS).iterdir())) == 2
    first.kill(signal.SIGTERM)
    second = emulator()
    assert len(list((second.data / persist.OBJECTS).iterdir())) == 1
    assert second.client("s3").get_object(Bucket="images", Key="b.png")["Body"].read() == b"b" * 1000


def test_changes_made_while_a_waited_for_snapshot_is_written_wait_for_the_interval(tmp_path):
    """A durable request (an accepted POST) is answered by one snapshot. What the agent changes
    while that snapshot is written (it takes the task at once) is saved on the timer, or by
    the next request that waits, not by a second snapshot right away: that one doubled the
    emulator's snapshot work per task (bench/persist.py: 1.95 snapshots a task before).

    The Snapshotter is the emulator's own; only its fork-and-write is replaced by one that
    records each snapshot and makes a change while it is being taken, as the agent does."""
    taken: list[int] = []

    class Recording(serving.Snapshotter):
        def _fork_and_write(self, generation: int) -> None:
            if not taken:
                self.changed()  # the agent received the task meanwhile
            with self.cond:
                taken.append(generation)
                self.saved = max(self.saved, generation)
                self.cond.notify_all()

    snaps = Recording(tmp_path, interval=60).start()
    snaps.wait(snaps.changed())  # the POST: answered once its change is on disk
    assert taken == [1]
    with snaps.cond:  # the writer thread runs on; a second snapshot would come within microseconds
        assert not snaps.cond.wait_for(lambda: len(taken) > 1, timeout=0.5)
    assert snaps.generation == 2 and snaps.saved == 1  # the agent's change waits for the timer
    snaps.wait(snaps.changed())  # the next POST: one snapshot holds both changes
    assert taken == [1, 3]
    snaps.flush()  # nothing left to save: the writer thread ends
    snaps.thread.join(timeout=5)
    assert taken == [1, 3] and not snaps.thread.is_alive()


def test_after_a_crash_a_taken_message_comes_back_and_a_handle_from_before_cannot_delete_it(emulator):
    """The crash the chaos test met (tests/test_chaos.py, the emulator killed mid-burst): a
    worker took a task before the last snapshot, stored its result after it, and its delete
    reached the emulator only once it was back. The rollback had undone the result; had the
    delete been honoured, the task would have been lost. After a restore, a message taken at
    the snapshot is delivered again at once (not after its visibility timeout) and the handle
    from before does not delete it, as a stale receipt handle would not on SQS."""
    first = emulator()
    sqs = first.client("sqs")
    q = sqs.create_queue(QueueName="tasks")["QueueUrl"]
    sqs.send_message(QueueUrl=q, MessageBody="taken")
    sqs.send_message(QueueUrl=q, MessageBody="waiting")
    taken = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=1, VisibilityTimeout=600)["Messages"][0]
    assert httpx.post(first.url + serving.SYNC_PATH, timeout=30).status_code == 200  # on disk, taken
    first.kill(signal.SIGKILL)
    second = emulator()
    sqs = second.client("sqs")
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=q, ReceiptHandle=taken["ReceiptHandle"])
    got = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"])
    counts = {m["Body"]: m["Attributes"]["ApproximateReceiveCount"] for m in got["Messages"]}
    assert counts == {"taken": "2", "waiting": "1"}
    assert json.loads((second.data / persist.RESTORE).read_text())["redelivered"] == 1
