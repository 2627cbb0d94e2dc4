"""The console's parts without a browser: on AWS its Live page shows the scale chain `sdctl
scale status` knows, from one shared poll; its guard refuses what has no token or no CSRF token.
The queues are moto's (in process, created as the edge stack names them); the cluster is the
recorded steady scenario served by tests/kube_replay.py (no Kubernetes API server exists here)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws
from starlette.testclient import TestClient

from sdctl.config import parse
from sdctl.console.app import Console, create_app
from sdctl.console.poller import Poller
from sdctl.console.security import Keys
from sdctl.operate import scalechain
from sdctl.operate.client import Target
from tests.conftest import EXAMPLE, ServerThread
from tests.kube_replay import app as kube_app
from tests.kube_replay import kubeconfig, scenario


@pytest.fixture
def aws_target():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-west-2")
        lanes = {}
        for p in ("high", "normal", "low"):
            lanes[p] = {"queue_url": sqs.create_queue(QueueName=f"q-{p}")["QueueUrl"],
                        "dead_letter_queue_url": sqs.create_queue(QueueName=f"q-{p}-dlq")["QueueUrl"]}
        sqs.send_message(QueueUrl=lanes["normal"]["queue_url"], MessageBody="{}")
        yield Target(kind="aws", api_url="https://api.example", api_key="k", bucket="b", prefix="output",
                     runtimes={"sdruntime": "sdwebui"}, client_factory=lambda n: boto3.client(n, region_name="us-west-2"),
                     queues={"sdruntime": {**lanes["normal"], "lanes": lanes}}, stack="sd")


def test_the_live_page_on_aws_shows_the_scale_chain_from_one_shared_poll(aws_target, tmp_path):
    from sdctl.execute.k8s.cluster import api_client

    cfg = parse(EXAMPLE.read_text())
    with ServerThread(kube_app(scenario("steady")["objects"])) as server:
        api = api_client(kubeconfig(tmp_path / "k", server.url))[0]
        poller = Poller(aws_target, scale=lambda depths: scalechain.chains(api, cfg, cfg.runtimes, depths))
        poller.poll_once()
    sample = poller.latest()
    assert sample["runtimes"]["sdruntime"]["visible"] == 1
    [chain] = sample["scale"]
    assert chain["verdict"] == "working: 1 replica(s) on 1 node(s) through 1 task(s)"  # as `scale status` says
    assert poller.calls == 6  # GetQueueAttributes on 3 queues and 3 dead-letter queues; no task store here
    keys = Keys()
    client = TestClient(create_app(Console(aws_target, poller, keys, stack="sd")))
    assert client.get("/live").status_code == 403  # no token
    page = client.get(f"/live?token={keys.token}")  # the token's visit: a cookie, then the page
    assert page.status_code == 200 and "working: 1 replica(s)" in page.text and "Redrive sdruntime" in page.text
    assert client.post("/queues/sdruntime/redrive", data={"csrf": "forged"}).status_code == 403
    assert client.post("/api/submit", json={"prompt": "x"}).status_code == 403  # no X-CSRF-Token
    bad = client.post("/api/submit", json={"prompt": "x", "width": "wide"}, headers={"X-CSRF-Token": keys.csrf})
    assert bad.status_code == 400 and bad.json() == {"error": "width must be a whole number, not 'wide'",
                                                     "field": "width"}
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_a_cluster_that_cannot_be_read_leaves_the_queues_and_says_why(aws_target):
    def unreachable(depths):
        raise ConnectionError("cannot reach the EKS endpoint")

    poller = Poller(aws_target, scale=unreachable)
    poller.poll_once()
    sample = poller.latest()
    assert sample["runtimes"]["sdruntime"]["visible"] == 1 and "cannot reach" in sample["scale_error"]
