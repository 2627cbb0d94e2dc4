"""API keys per client: `sdctl keys` against the API Gateway of a moto server over HTTP, and
the local gateway enforcing each key's usage plan with the real handler behind it.

On AWS, API Gateway enforces keys and plans itself; moto stores keys and plans but enforces
nothing, so the enforcement asserted here is the local gateway's (sdctl/execute/local/gateway.py),
the stand-in the local stack runs. What AWS checks and moto does not is in
tests/test_aws_rules.py (the handler's apigateway:GET resource, the default key's tag).
"""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from lambda_src import handler as api
from sdctl.contracts.tasks import CLIENT_TAG
from sdctl.errors import SdctlError, UsageError
from sdctl.execute.local.gateway import Keys, create_app, emulator_keys
from sdctl.operate import keys

STACK = "demo"


def test_create_list_rotate_revoke_and_secrets_only_when_made_or_asked(aws):
    made = keys.create(aws.apigateway, STACK, "acme", api_id=None, stage=None, rate=5, burst=10, quota_per_day=1000)
    assert made["client"] == "acme" and len(made["secret"]) >= 20
    assert (made["rate"], made["burst"], made["quota_per_day"]) == (5, 10, 1000)
    listed = keys.list_keys(aws.apigateway, STACK)
    assert [k["client"] for k in listed] == ["acme"] and "secret" not in listed[0]
    assert keys.list_keys(aws.apigateway, STACK, show=True)[0]["secret"] == made["secret"]
    rotated = keys.rotate(aws.apigateway, STACK, "acme")
    assert rotated["secret"] != made["secret"] and rotated["key_id"] != made["key_id"]
    assert (rotated["rate"], rotated["quota_per_day"]) == (5, 1000)  # same plan
    assert keys.secret_of(aws.apigateway, STACK, "acme") == rotated["secret"]
    assert keys.revoke(aws.apigateway, STACK, "acme")["revoked"]
    assert keys.list_keys(aws.apigateway, STACK) == []
    assert aws.apigateway.get_usage_plans()["items"] == []  # the plan goes with the key


def test_another_stacks_keys_are_not_listed(aws):
    keys.create(aws.apigateway, STACK, "acme", api_id=None, stage=None, rate=5, burst=10)
    keys.create(aws.apigateway, "other", "acme", api_id=None, stage=None, rate=5, burst=10)
    assert len(keys.list_keys(aws.apigateway, STACK)) == 1


@pytest.mark.parametrize(("name", "message"), [
    ("Acme", "is not allowed"), ("default", "is not allowed"), ("-x", "is not allowed"), ("a" * 41, "is not allowed"),
])
def test_bad_client_names_are_refused(aws, name, message):
    with pytest.raises(UsageError, match=message):
        keys.create(aws.apigateway, STACK, name, api_id=None, stage=None, rate=1, burst=1)


def test_twice_the_same_client_and_unknown_clients_are_named(aws):
    keys.create(aws.apigateway, STACK, "acme", api_id=None, stage=None, rate=1, burst=1)
    with pytest.raises(UsageError, match="already has a key"):
        keys.create(aws.apigateway, STACK, "acme", api_id=None, stage=None, rate=1, burst=1)
    with pytest.raises(SdctlError, match="has no key"):
        keys.rotate(aws.apigateway, STACK, "nobody")
    with pytest.raises(SdctlError, match="has no key"):
        keys.revoke(aws.apigateway, STACK, "nobody")


def test_on_aws_the_plan_is_bound_to_the_api_stage(aws):
    api_id = aws.apigateway.create_rest_api(name="x")["id"]
    made = keys.create(aws.apigateway, STACK, "acme", api_id=api_id, stage="prod", rate=1, burst=1)
    plan = aws.apigateway.get_usage_plan(usagePlanId=made["usage_plan_id"])
    assert plan["apiStages"] == [{"apiId": api_id, "stage": "prod"}]


@pytest.fixture
def gateway(aws, monkeypatch):
    """The local gateway reading keys from moto's API Gateway, with the real handler and a task
    table behind it; a clock the test moves drives the key reloads and the buckets."""
    from sdctl.execute.local.provision import create_tasks_table
    from sdctl.execute.local.stack import default_api_key

    topic = aws.sns.create_topic(Name="requests")["TopicArn"]
    create_tasks_table(aws.dynamodb, "tasks")
    for k, v in {"AWS_ENDPOINT_URL": aws.url, "SNS_TOPIC_ARN": topic, "S3_BUCKET": "out",
                 "RUNTIMES": json.dumps({"sdruntime": "sdwebui"}), "TASKS_TABLE": "tasks"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(api, "_clients", {})
    monkeypatch.setattr(api, "_callers", {})
    default_api_key(aws.apigateway, STACK, "d" * 32)
    now = [0.0]
    store = Keys(emulator_keys(aws.apigateway), refresh=1.0, clock=lambda: now[0])
    with TestClient(create_app("unused", api.handler, keys=store)) as client:
        yield client, now


def submit(client, key, task_id):
    return client.post("/v1alpha2", headers={"x-api-key": key}, json={"task": {
        "metadata": {"id": task_id, "runtime": "sdruntime", "tasktype": "text-to-image"},
        "content": {"prompt": "a fox"}}})


def test_each_task_records_the_client_whose_key_sent_it(gateway, aws):
    client, now = gateway
    acme = keys.create(aws.apigateway, STACK, "acme", api_id=None, stage=None, rate=100, burst=100)["secret"]
    assert submit(client, acme, "from-acme").status_code == 200  # a new key works on its first request
    assert submit(client, "d" * 32, "from-default").status_code == 200
    item = aws.dynamodb.get_item(TableName="tasks", Key={"id": {"S": "from-acme"}})["Item"]
    assert item["client"] == {"S": "acme"}
    item = aws.dynamodb.get_item(TableName="tasks", Key={"id": {"S": "from-default"}})["Item"]
    assert item["client"] == {"S": "default"}
    from sdctl.operate.tasks import list_tasks

    assert [t["id"] for t in list_tasks(aws.dynamodb, "tasks", client="acme")] == ["from-acme"]


def test_a_clients_own_throttle_and_quota_apply_to_it_alone(gateway, aws):
    client, now = gateway
    slow = keys.create(aws.apigateway, STACK, "slow", api_id=None, stage=None, rate=1, burst=2)["secret"]
    capped = keys.create(aws.apigateway, STACK, "capped", api_id=None, stage=None, rate=100, burst=100,
                         quota_per_day=3)["secret"]
    answers = [submit(client, slow, f"s-{i}").status_code for i in range(4)]
    assert answers == [200, 200, 429, 429]
    assert [submit(client, capped, f"c-{i}").status_code for i in range(4)] == [200, 200, 200, 429]
    over = submit(client, capped, "c-9")
    assert over.status_code == 429 and over.json() == {"message": "Limit Exceeded"}
    assert submit(client, "d" * 32, "d-1").status_code == 200  # the others are untouched


def test_a_revoked_or_rotated_key_is_refused_once_the_gateway_rereads_its_keys(gateway, aws):
    client, now = gateway
    old = keys.create(aws.apigateway, STACK, "acme", api_id=None, stage=None, rate=100, burst=100)["secret"]
    assert submit(client, old, "a-1").status_code == 200
    new = keys.rotate(aws.apigateway, STACK, "acme")["secret"]
    now[0] += 1.0
    assert submit(client, old, "a-2").status_code == 403
    assert submit(client, new, "a-3").status_code == 200
    keys.revoke(aws.apigateway, STACK, "acme")
    now[0] += 1.0
    r = submit(client, new, "a-4")
    assert r.status_code == 403 and r.json() == {"message": "Forbidden"}
    assert "Item" not in aws.dynamodb.get_item(TableName="tasks", Key={"id": {"S": "a-4"}})


def test_the_default_key_carries_the_default_client_tag(aws):
    from sdctl.execute.local.stack import default_api_key

    default_api_key(aws.apigateway, STACK, "v" * 32)
    key = aws.apigateway.get_api_keys(includeValues=True)["items"][0]
    assert key["tags"] == {CLIENT_TAG: "default"} and key["value"] == "v" * 32


@pytest.mark.e2e
def test_keys_on_the_local_stack_as_a_user_runs_them(held_stack):
    """The whole path on the real local stack (moto with IAM enforced, the gateway, the handler
    with its template policy): create a client, submit with its key, find the task by client,
    rotate (the old secret is refused when the command returns), revoke (likewise)."""
    import httpx

    from tests.helpers import cli, run_json

    cwd = held_stack
    state = json.loads((cwd / ".sdctl" / "state.json").read_text())
    made = run_json(cwd, "keys", "create", "acme", "--rate", "50", "--burst", "50", "--quota-per-day", "100")
    listed = run_json(cwd, "keys", "list")
    assert [k["client"] for k in listed] == ["acme"] and "secret" not in listed[0]
    text = cli("keys", "list", "--local", cwd=cwd).stdout
    assert made["secret"] not in text  # never printed unless asked
    assert made["secret"] in cli("keys", "list", "--show", "--local", cwd=cwd).stdout

    def post(key, task_id):
        return httpx.post(f"{state['gateway_url']}/v1alpha2", headers={"x-api-key": key}, json={"task": {
            "metadata": {"id": task_id, "runtime": "sdruntime", "tasktype": "text-to-image"},
            "content": {"prompt": "a fox"}}}, timeout=30)

    assert post(made["secret"], "key-e2e-1").status_code == 200
    assert [t["id"] for t in run_json(cwd, "tasks", "list", "--client", "acme")] == ["key-e2e-1"]
    new = run_json(cwd, "keys", "rotate", "acme")["secret"]
    assert post(made["secret"], "key-e2e-2").status_code == 403
    assert post(new, "key-e2e-3").status_code == 200
    run_json(cwd, "keys", "revoke", "acme", "--yes")
    assert post(new, "key-e2e-4").status_code == 403
    r = cli("keys", "revoke", "acme", "--yes", "--local", cwd=cwd, check=False)
    assert r.returncode == 1 and "has no key" in r.stderr
    r = cli("keys", "create", "Bad_Name", "--local", cwd=cwd, check=False)
    assert r.returncode == 2 and "is not allowed" in r.stderr


def test_the_stacks_own_key_works_while_the_emulator_cannot_be_read_and_the_last_copy_is_kept():
    now = [0.0]
    state = {"fail": True, "rows": [{"value": "d" * 32, "id": "k0", "client": "default"},
                                    {"value": "a" * 32, "id": "k1", "client": "acme"}]}

    def load():
        if state["fail"]:
            raise OSError("emulator busy")
        return state["rows"]

    store = Keys(load, clock=lambda: now[0], fallback=[{"value": "d" * 32, "id": "local-default",
                                                        "client": "default"}])
    assert store.lookup("d" * 32).client == "default" and store.lookup("a" * 32) is None
    state["fail"] = False
    now[0] += 1
    assert store.lookup("a" * 32).key_id == "k1"
    state["fail"] = True
    now[0] += 1
    assert store.lookup("a" * 32).key_id == "k1"  # a failed reread keeps what it had
