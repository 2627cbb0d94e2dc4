"""The node ledger (sdctl/contracts/ledger.py): the agent writes its GPU node's row, the task
lists leave it out, and `sdctl cost --measured` sets the billed hours it gives against the hours
rendered.

No EKS node runs here: the agent reads its node from tests/kube_replay.py's server, which
serves a Karpenter node recorded in the Kubernetes API's JSON shape (a spot g5.xlarge,
tests/data/k8s/steady.json), and writes to the task store in a moto server, as it writes to
DynamoDB on EKS (the same UpdateItem the agent's role holds)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sdctl.agent import cost
from sdctl.agent.nodeledger import NodeLedger
from sdctl.contracts import ledger
from sdctl.operate import gpuhours
from sdctl.operate.tasks import list_tasks
from tests.conftest import ServerThread
from tests.helpers import wait_for
from tests.kube_replay import app, scenario

PRICES = json.dumps({"g5.xlarge": {"spot": 0.4125, "on-demand": 1.006}})


@pytest.fixture
def table(aws):
    from sdctl.execute.local.provision import create_tasks_table

    create_tasks_table(aws.dynamodb, "tasks")
    return aws.dynamodb


def _row(db, node: str) -> dict:
    from boto3.dynamodb.types import TypeDeserializer

    item = db.get_item(TableName="tasks", Key=ledger.key(node), ConsistentRead=True).get("Item") or {}
    return {k: TypeDeserializer().deserialize(v) for k, v in item.items()}


def test_the_agent_keeps_its_nodes_row_current_and_task_lists_leave_it_out(table):
    objs = scenario("steady")["objects"]
    node = objs["nodes"][0]["metadata"]
    with ServerThread(app(objs)) as api:
        keeper = NodeLedger.from_env(
            table, "tasks", 30, {"NODE_NAME": node["name"], "GPU_PRICES": PRICES}, interval=0.2,
            metadata=lambda name: cost.node_metadata(name, api=api.url, token="replay", ca=False))
    assert keeper is not None
    assert wait_for(lambda: _row(table, node["name"]).get("last_seen"))
    first = _row(table, node["name"])["last_seen"]
    assert wait_for(lambda: _row(table, node["name"])["last_seen"] > first)  # the heartbeat moves it
    keeper.stop()
    row = _row(table, node["name"])
    assert row["launched_at"] == node["creationTimestamp"] == row["created_at"]
    assert (row["instance_type"], row["capacity"], float(row["price_per_hour"])) == ("g5.xlarge", "spot", 0.4125)
    assert row["status"] == ledger.STATUS and int(row["expires_at"]) > datetime.now(UTC).timestamp() + 29 * 86400
    # a late heartbeat never moves last_seen back
    stale = ledger.update(node["name"], launched_at=node["creationTimestamp"], seen_at="2026-01-01T00:00:00.000000Z",
                          instance_type="g5.xlarge", capacity="spot", price_per_hour=0.4125, expires_at=1)
    with pytest.raises(table.exceptions.ConditionalCheckFailedException):
        table.update_item(TableName="tasks", **stale)
    assert _row(table, node["name"])["last_seen"] == row["last_seen"]
    table.put_item(TableName="tasks", Item={"id": {"S": "t-1"}, "status": {"S": "completed"},
                                            "created_at": {"S": row["last_seen"]}})
    assert [t["id"] for t in list_tasks(table, "tasks")] == ["t-1"]


def test_off_the_cluster_or_without_a_store_there_is_no_ledger(table):
    assert NodeLedger.from_env(table, "tasks", 30, {}) is None
    assert NodeLedger.from_env(table, "", 30, {"NODE_NAME": "n"}, metadata=lambda n: {}) is None

    def unreadable(name):
        raise OSError("connection refused")

    assert NodeLedger.from_env(table, "tasks", 30, {"NODE_NAME": "n"}, metadata=unreadable) is None


T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_billed_hours_run_from_launch_to_the_last_heartbeat_and_the_empty_nodes_tail():
    rows = [
        {"launched_at": _at(0), "last_seen": _at(60)},  # gone: 60 min + a 1 min consolidateAfter
        {"launched_at": _at(100), "last_seen": _at(179)},  # up now (seen 1 min ago): until now
        {"launched_at": _at(-120), "last_seen": _at(30)},  # launched before the window: clipped
        {"launched_at": _at(-300), "last_seen": _at(-200)},  # gone before the window
    ]
    seconds, nodes, up = gpuhours.billed_seconds(rows, since=T0, now=T0 + timedelta(minutes=180), tail_seconds=60)
    assert seconds == (61 + 80 + 31) * 60
    assert (nodes, up) == (3, 1)


def test_the_agent_on_a_node_reads_it_once_for_its_price_and_its_ledger(table, monkeypatch):
    """The agent as its entrypoint builds it on an EKS node: the price and the ledger both need
    the node, and the Kubernetes API is asked for it once."""
    from sdctl.agent.app import build
    from sdctl.agent.settings import AgentSettings

    node = scenario("steady")["objects"]["nodes"][0]["metadata"]
    reads = []
    monkeypatch.setattr(cost, "node_metadata", lambda name: reads.append(name) or node)
    monkeypatch.setenv("NODE_NAME", node["name"])
    monkeypatch.setenv("GPU_PRICES", PRICES)
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, {"AWS_ENDPOINT_URL": table.meta.endpoint_url}.get(name, "testing"))
    agent = build(AgentSettings.from_env({
        "SQS_QUEUE_URL": "q", "SNS_TOPIC_ARN": "t", "S3_BUCKET": "b", "RUNTIME_NAME": "r", "RUNTIME_TYPE": "sdwebui",
        "API_BASE_URL": "http://x", "TASKS_TABLE": "tasks", "AWS_DEFAULT_REGION": "us-west-2"}))
    assert agent.results.price_per_second == pytest.approx(0.4125 / 3600)
    agent.ledger.stop()
    assert _row(table, node["name"])["instance_type"] == "g5.xlarge"
    assert reads == [node["name"]]
