"""Signed webhook deliveries: the Standard Webhooks signature against the spec's test vector
and against its reference library (`standardwebhooks`, an independent implementation), the
deliverer Lambda against moto and a receiver on loopback, and the whole path on a local stack.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sdctl.contracts import webhooks as contract
from tests.conftest import EXAMPLE, ServerThread
from tests.helpers import wait_for

VECTOR = {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
          "timestamp": 1614265330, "body": b'{"test": 2432232314}',
          "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}


def test_the_signature_is_the_spec_test_vectors():
    v = VECTOR
    assert contract.sign([v["secret"]], v["id"], v["timestamp"], v["body"]) == v["signature"]
    headers = {"webhook-id": v["id"], "webhook-timestamp": str(v["timestamp"]), "webhook-signature": v["signature"]}
    contract.verify(v["secret"], headers, v["body"], now=v["timestamp"] + 10)
    with pytest.raises(ValueError, match="outside the 300 s tolerance"):
        contract.verify(v["secret"], headers, v["body"], now=v["timestamp"] + 301)
    with pytest.raises(ValueError, match="no signature matches"):
        contract.verify(v["secret"], headers, v["body"] + b" ", now=v["timestamp"])


def test_the_reference_library_accepts_our_signatures_and_we_accept_its_own():
    new, old = "whsec_" + "A" * 32, VECTOR["secret"]
    stamp, body = int(time.time()), b'{"type":"task.completed","data":{"id":"t-1"}}'
    header = contract.sign([new, old], "t-1.completed", stamp, body)  # during a rotation: both sign
    assert len(header.split(" ")) == 2
    headers = {"webhook-id": "t-1.completed", "webhook-timestamp": str(stamp), "webhook-signature": header}
    for secret in (new, old):  # a receiver on either key verifies
        assert Webhook(secret).verify(body, headers)["data"]["id"] == "t-1"
    theirs = Webhook(new).sign("t-1.failed", datetime.fromtimestamp(stamp, UTC), body.decode())
    contract.verify(new, {"webhook-id": "t-1.failed", "webhook-timestamp": str(stamp), "webhook-signature": theirs},
                    body)


@pytest.mark.parametrize("hook,field", [
    ("https://example.com/x", "task.metadata.webhook"),
    ({"url": "http://example.com/hook"}, "task.metadata.webhook.url"),
    ({"url": "https://10.0.0.7/hook"}, "task.metadata.webhook.url"),
    ({"url": "https://169.254.169.254/latest"}, "task.metadata.webhook.url"),
    ({"url": "https://localhost/hook"}, "task.metadata.webhook.url"),
    ({"url": "https://user:pw@example.com/"}, "task.metadata.webhook.url"),
    ({"url": "http://127.0.0.1:9/hook"}, "task.metadata.webhook.url"),  # only on a stack that allows it
    ({"url": "https://example.com/" + "a" * 2048}, "task.metadata.webhook.url"),
    ({"url": "https://example.com/", "events": ["done"]}, "task.metadata.webhook.events"),
    ({"url": "https://example.com/", "events": []}, "task.metadata.webhook.events"),
    ({"url": "https://example.com/", "secret": "x"}, "task.metadata.webhook"),
])
def test_a_webhook_the_api_refuses_names_the_field(hook, field):
    with pytest.raises(contract.Invalid) as e:
        contract.webhook_fields({"webhook": hook})
    assert e.value.field == field


def test_a_webhook_gets_the_default_events_in_order():
    assert contract.webhook_fields({"webhook": {"url": "https://hooks.example.com/sd"}}) == {
        "webhook": {"url": "https://hooks.example.com/sd", "events": ["completed", "failed", "expired", "cancelled"]}}
    assert contract.webhook_fields({"webhook": {"url": "http://127.0.0.1:8000/h", "events": ["failed", "running"]}},
                                   allow_loopback=True)["webhook"]["events"] == ["running", "failed"]
    assert contract.webhook_fields({}) == {}  # a guidance client's task is unchanged


# -- the deliverer against moto and a receiver on loopback ------------------------------------------------
class Receiver:
    """Answers each delivery with the next scripted status (then 200), and keeps what came."""

    def __init__(self, script=()):
        self.script, self.deliveries = list(script), []

        async def hook(request: Request):
            self.deliveries.append({"headers": dict(request.headers), "body": await request.body()})
            return JSONResponse({}, status_code=self.script.pop(0) if self.script else 200)

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@pytest.fixture
def deliverer(aws, monkeypatch):
    """The webhooks queue, its dead-letter queue and the secret in moto; the deliverer's env."""
    from lambda_src import webhooks

    q = aws.sqs.create_queue(QueueName="hooks", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    dlq = aws.sqs.create_queue(QueueName="hooks-dlq")["QueueUrl"]
    arn = aws.secretsmanager.create_secret(Name="hooks", SecretString=json.dumps(
        {"current": VECTOR["secret"], "previous": None, "rotated_at": 0}))["ARN"]
    for k, v in {"WEBHOOK_QUEUE_URL": q, "WEBHOOK_DLQ_URL": dlq, "WEBHOOK_SECRET_ARN": arn,
                 "WEBHOOK_ALLOW_LOOPBACK": "1", "WEBHOOK_SECRET_CACHE_SECONDS": "0"}.items():
        monkeypatch.setenv(k, v)
    webhooks._clients.clear()
    monkeypatch.setattr(webhooks, "_client", lambda name: getattr(aws, name))
    return {"queue": q, "dlq": dlq, "aws": aws, "run": webhooks.handler}


def queued_event(d, url: str, status="completed") -> dict:
    note = {"id": "t-1", "runtime": "sdruntime", "result": status == "completed", "status": status,
            "image_url": [], "output_url": "s3://b/output/t-1/t-1.out", "context": ""}
    d["aws"].sqs.send_message(QueueUrl=d["queue"], MessageBody=json.dumps(
        contract.webhook_message({"url": url, "events": [status]}, note)))


def receive(d, which="queue") -> list[dict]:
    return d["aws"].sqs.receive_message(QueueUrl=d[which], MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                        AttributeNames=["All"], VisibilityTimeout=0).get("Messages", [])


def as_event(messages) -> dict:
    from sdctl.execute.local.webhooks import event

    return event(messages)


def test_a_5xx_is_retried_later_with_the_same_id_and_a_2xx_ends_it(deliverer):
    receiver = Receiver(script=[500])
    with ServerThread(receiver.app) as server:
        queued_event(deliverer, f"{server.url}/hook")
        [m] = receive(deliverer)
        result = deliverer["run"](as_event([m]), None)
        assert result == {"batchItemFailures": [{"itemIdentifier": m["MessageId"]}]}  # back later
        assert receive(deliverer) == []  # hidden for the first retry delay (5 s, plus jitter)
        assert deliverer["run"](as_event([m]), None) == {"batchItemFailures": []}
    first, second = receiver.deliveries
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == "t-1.completed"
    for d in receiver.deliveries:
        assert Webhook(VECTOR["secret"]).verify(d["body"], d["headers"])["type"] == "task.completed"


def test_a_4xx_a_redirect_or_a_private_address_is_undeliverable_at_once(deliverer, monkeypatch):
    receiver = Receiver(script=[410, 302])
    with ServerThread(receiver.app) as server:
        for status in ("completed", "failed", "expired"):
            queued_event(deliverer, f"{server.url}/hook", status=status)
        by_status = {json.loads(m["Body"])["payload"]["type"]: m for m in receive(deliverer)}
        for kind in ("task.completed", "task.failed"):  # answered 410, then 302 (never followed)
            assert deliverer["run"](as_event([by_status[kind]]), None) == {"batchItemFailures": []}
        monkeypatch.setenv("WEBHOOK_ALLOW_LOOPBACK", "0")  # as on AWS: a loopback URL is refused
        assert deliverer["run"](as_event([by_status["task.expired"]]), None) == {"batchItemFailures": []}
    assert len(receiver.deliveries) == 2  # the refused URL was never called
    parked = {json.loads(m["Body"])["id"]: json.loads(m["Body"])["failure"] for m in receive(deliverer, "dlq")}
    assert parked["t-1.completed"]["reason"] == "HTTP 410"
    assert parked["t-1.failed"]["reason"] == "HTTP 302 (redirects are not followed)"
    assert "not an https URL" in parked["t-1.expired"]["reason"]


def test_the_longest_retry_delay_stays_within_what_sqs_accepts_and_a_refused_delay_fails_only_its_item(
        deliverer, monkeypatch):
    """The sixth delay is 36,000 s with up to 20 % jitter: SQS refuses a visibility past 12 hours
    since the receive (ChangeMessageVisibility), so the delay is capped below it with room for
    the batch's own time. If SQS refuses anyway, the one item still comes back (at the queue's
    visibility) and the rest of the batch is not sent again."""
    from lambda_src import webhooks

    assert max(webhooks.retry_visibility(d, 1.2) for d in webhooks.retry_delays()) <= 43_200 - 300
    assert webhooks.retry_visibility(5, 1.0) == 5
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "50000")
    receiver = Receiver(script=[500, 200])
    with ServerThread(receiver.app) as server:
        queued_event(deliverer, f"{server.url}/hook")
        queued_event(deliverer, f"{server.url}/hook", status="failed")
        messages = sorted(receive(deliverer), key=lambda m: json.loads(m["Body"])["payload"]["type"])
        bad = dict(messages[0], ReceiptHandle="no-longer-valid")  # SQS refuses the visibility change
        result = deliverer["run"](as_event([bad, messages[1]]), None)
    assert result == {"batchItemFailures": [{"itemIdentifier": bad["MessageId"]}]}
    assert len(receiver.deliveries) == 2


def test_a_host_that_does_not_resolve_now_is_retried_and_a_private_one_is_refused(deliverer, monkeypatch):
    """A resolver's hiccup must not lose a delivery: it is retried like a timeout. Only a host
    that resolves to a non-public address is refused outright."""
    import socket

    from lambda_src import webhooks

    def resolve(host, *a, **kw):
        if host == "flaky.example.com":
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 443))]

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", resolve)
    message = {"url": "https://flaky.example.com/hook", "id": "t-1.completed", "payload": {}}
    assert webhooks.deliver(message)[0] == "retry"
    assert webhooks.deliver(dict(message, url="https://internal.example.com/hook")) == \
        ("undeliverable", "internal.example.com resolves to 10.0.0.7, which is not a public address")


def test_retries_used_up_go_to_the_dead_letter_queue(deliverer, monkeypatch):
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "0,0")
    receiver = Receiver(script=[503, 503, 503])
    with ServerThread(receiver.app) as server:
        queued_event(deliverer, f"{server.url}/hook")
        outcomes = []
        for _ in range(3):
            [m] = receive(deliverer)
            outcomes.append(deliverer["run"](as_event([m]), None)["batchItemFailures"] != [])
            if not outcomes[-1]:
                deliverer["aws"].sqs.delete_message(QueueUrl=deliverer["queue"], ReceiptHandle=m["ReceiptHandle"])
    assert outcomes == [True, True, False] and len(receiver.deliveries) == 3
    [parked] = receive(deliverer, "dlq")
    assert json.loads(parked["Body"])["failure"]["reason"] == "gave up after 3 attempts; last: HTTP 503"


# -- the whole path on a local stack ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hook_stack(tmp_path_factory):
    """A local stack that lets webhooks call loopback, with retries a second apart (the
    deliverer's WEBHOOK_RETRY_DELAYS; the real schedule runs for about 25 hours)."""
    from tests.helpers import cli

    pytest.importorskip("torch")
    cwd = tmp_path_factory.mktemp("hooks")
    shutil.copy(EXAMPLE, cwd / "sdctl.yaml")
    saved = {k: os.environ.pop(k, None) for k in ("SDCTL_STATE_DIR", "WEBHOOK_RETRY_DELAYS")}
    os.environ["WEBHOOK_RETRY_DELAYS"] = "1,1,1,1,1,1,1"
    try:
        state = json.loads(cli("local", "up", "--detach", "--allow-local-webhooks", "--show-key", "-o", "json",
                               cwd=cwd).stdout)
    finally:
        os.environ.pop("WEBHOOK_RETRY_DELAYS")
    yield cwd, state
    cli("local", "down", cwd=cwd, check=False)
    os.environ.update({k: v for k, v in saved.items() if v is not None})


def submit(state, task_id: str, url: str, events=None) -> None:
    import httpx

    from tests.helpers import task_line

    body = json.loads(task_line(task_id))
    body["task"]["metadata"]["webhook"] = {"url": url, **({"events": events} if events else {})}
    r = httpx.post(f"{state['gateway_url']}/v1alpha2", json=body, headers={"x-api-key": state["api_key"]})
    assert r.status_code == 200, r.text


@pytest.mark.e2e
def test_deliveries_are_signed_retried_after_5xx_and_deduplicable(hook_stack):
    from tests.helpers import run_json

    cwd, state = hook_stack
    secret = run_json(cwd, "webhooks", "secret")["current"]
    receiver = Receiver(script=[500, 500])
    with ServerThread(receiver.app) as server:
        submit(state, "wh-1", f"{server.url}/hook", events=["running", "completed"])
        assert wait_for(lambda: any(json.loads(d["body"])["type"] == "task.completed" for d in receiver.deliveries
                                    if receiver.deliveries.index(d) >= 2), 60)
        time.sleep(1.5)  # nothing more comes once every event is answered 2xx
    seen = {}
    for d in receiver.deliveries:
        payload = Webhook(secret).verify(d["body"], d["headers"])  # every delivery is signed
        seen.setdefault(d["headers"]["webhook-id"], []).append(payload["type"])
    assert set(seen) == {"wh-1.running", "wh-1.completed"}  # what a receiver dedupes on
    assert sum(len(v) for v in seen.values()) == 4  # two answered 500, each retried until 200
    [done] = [json.loads(d["body"]) for d in receiver.deliveries if json.loads(d["body"])["type"] == "task.completed"][:1]
    assert done["data"]["status"] == "completed" and done["data"]["image_url"]


@pytest.mark.e2e
def test_a_rotation_signs_with_both_secrets_so_either_verifies(hook_stack):
    from tests.helpers import run_json

    cwd, state = hook_stack
    old = run_json(cwd, "webhooks", "secret")["current"]
    rotated = run_json(cwd, "webhooks", "secret", "--rotate")
    assert rotated["previous"] == old and rotated["current"] != old and rotated["previous_signs_until"]
    time.sleep(1.2)  # the local deliverer caches the secret for a second (30 s on AWS)
    receiver = Receiver()
    with ServerThread(receiver.app) as server:
        submit(state, "wh-2", f"{server.url}/hook")
        assert wait_for(lambda: receiver.deliveries)
    [d] = receiver.deliveries
    assert len(d["headers"]["webhook-signature"].split(" ")) == 2
    for secret in (old, rotated["current"]):
        assert Webhook(secret).verify(d["body"], d["headers"])["data"]["id"] == "wh-2"


@pytest.mark.e2e
def test_an_undeliverable_event_is_listed_and_replayed(hook_stack):
    from tests.helpers import run_json

    cwd, state = hook_stack
    receiver = Receiver(script=[410])
    with ServerThread(receiver.app) as server:
        submit(state, "wh-3", f"{server.url}/hook")
        assert wait_for(lambda: any(r["id"] == "wh-3.completed" for r in run_json(cwd, "webhooks", "failed")), 90)
        [row] = [r for r in run_json(cwd, "webhooks", "failed") if r["id"] == "wh-3.completed"]
        assert row["reason"] == "HTTP 410" and row["attempts"] == 1 and row["task"] == "wh-3"
        assert run_json(cwd, "webhooks", "replay", "--all") == {"replayed": ["wh-3.completed"]}
        assert wait_for(lambda: len(receiver.deliveries) == 2)
    assert run_json(cwd, "webhooks", "failed") == []
