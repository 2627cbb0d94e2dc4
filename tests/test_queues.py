"""The edge's queues are described once (sdctl/builders/queues.py): CloudFormation and the local
stack make the same queues with the same retention, visibility and dead-letter links, and where
the local stack differs (the webhook queue's visibility), the spec says so."""

from __future__ import annotations

import json

from sdctl.builders.cfn.stacks import stacks
from sdctl.builders.local_plan import local_plan
from sdctl.builders.names import LOCAL_ACCOUNT, names
from sdctl.builders.queues import edge_queues
from sdctl.config import parse
from tests.helpers import ALL_OPTIONS


def test_aws_and_the_local_stack_make_the_queues_the_specs_describe():
    cfg = parse(ALL_OPTIONS)
    edge = next(s.template for s in stacks(cfg) if s.key == "edge")["Resources"]
    local = {q["name"]: q for q in local_plan(cfg)["queues"]}
    specs = edge_queues(cfg, names(cfg, account=LOCAL_ACCOUNT))
    assert len(specs) == 3 * 2 * len(cfg.runtimes) + 2
    for spec in specs:
        aws, mine = edge[spec.logical_id]["Properties"], local[spec.name]
        assert aws["QueueName"] == spec.name
        assert int(mine["attributes"]["MessageRetentionPeriod"]) == aws["MessageRetentionPeriod"]
        if spec.local_visibility_seconds is None:
            assert int(mine["attributes"].get("VisibilityTimeout", 0)) == aws.get("VisibilityTimeout", 0)
        if spec.dead_letter:
            dlq = next(q for q in specs if q.logical_id == spec.dead_letter)
            assert aws["RedrivePolicy"]["maxReceiveCount"] == mine["dead_letter"]["maxReceiveCount"]
            assert mine["dead_letter"]["queue"] == dlq.name
            # the dead-letter queue takes dead letters from this queue alone, on both sides
            allowed_aws = edge[dlq.logical_id]["Properties"]["RedriveAllowPolicy"]["sourceQueueArns"]
            allowed_here = json.loads(local[dlq.name]["attributes"]["RedriveAllowPolicy"])["sourceQueueArns"]
            assert [a["Fn::Sub"].rsplit(":", 1)[1] for a in allowed_aws] == [spec.name]
            assert allowed_here == [f"arn:aws:sqs:{cfg.region}:{LOCAL_ACCOUNT}:{spec.name}"]
    hooks = next(q for q in specs if q.logical_id == "WebhooksQueue")
    assert edge["WebhooksQueue"]["Properties"]["VisibilityTimeout"] == 660  # six function timeouts on AWS
    assert local[hooks.name]["attributes"]["VisibilityTimeout"] == str(hooks.local_visibility_seconds) == "60"


def test_aws_and_the_local_stack_route_each_lane_from_the_same_topic_with_the_same_filter():
    """A task reaches the lane its runtime and priority name, on AWS as locally: the same topics,
    and one subscription per lane with the same filter policy (a filter that differed would
    send a high-priority task to the normal lane locally and nowhere on AWS)."""
    import json

    cfg = parse(ALL_OPTIONS)
    edge = next(s.template for s in stacks(cfg) if s.key == "edge")["Resources"]
    plan = local_plan(cfg)
    n = names(cfg, account=LOCAL_ACCOUNT)
    topics = {r["Properties"]["TopicName"] for r in edge.values() if r["Type"] == "AWS::SNS::Topic"}
    assert set(plan["topics"]) == topics == {n.requests_topic, n.results_topic}
    queue_names = {lid: r["Properties"]["QueueName"] for lid, r in edge.items() if r["Type"] == "AWS::SQS::Queue"}
    on_aws = {queue_names[r["Properties"]["Endpoint"]["Fn::GetAtt"][0]]: r["Properties"]["FilterPolicy"]
              for r in edge.values() if r["Type"] == "AWS::SNS::Subscription"}
    locally = {s["queue"]: json.loads(s["filter"]) for s in plan["subscriptions"] if s["filter"]}
    assert on_aws == locally and len(on_aws) == 3 * len(cfg.runtimes)
    assert {s["topic"] for s in plan["subscriptions"] if s["filter"]} == {n.requests_topic}
