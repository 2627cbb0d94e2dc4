"""Each component's IAM policy is written once (sdctl/builders/cfn/policies.py): the templates grant
it with intrinsic references, the local stack with the ARNs it provisioned."""

from __future__ import annotations

from sdctl.builders.cfn.stacks import stacks
from sdctl.builders.local_plan import local_plan
from sdctl.config import parse
from sdctl.execute.local import iam
from tests.conftest import EXAMPLE


def shape(doc: dict) -> list[tuple]:
    return [(st["Effect"], tuple(st["Action"]), len(st["Resource"])) for st in doc["Statement"]]


def local_documents(cfg):
    plan = local_plan(cfg)
    resources = {"tasks_table": plan["tasks_table"], "bucket": plan["bucket"],
                 "requests_topic_arn": "arn:aws:sns:us-west-2:123456789012:" + plan["requests_topic"],
                 "results_topic_arn": "arn:aws:sns:us-west-2:123456789012:" + plan["results_topic"],
                 "runtimes": {n: {"queue_arn": f"arn:aws:sqs:us-west-2:123456789012:{rt['queue']}",
                                  "lanes": {p: {"queue_arn": f"arn:aws:sqs:us-west-2:123456789012:{lane['queue']}"}
                                            for p, lane in rt["lanes"].items()}}
                              for n, rt in plan["runtimes"].items()},
                 "webhooks": {"queue_arn": "arn:aws:sqs:us-west-2:123456789012:" + plan["webhooks"]["queue"],
                              "dead_letter_queue_arn": "arn:aws:sqs:us-west-2:123456789012:"
                                                       + plan["webhooks"]["dead_letter_queue"],
                              "secret_arn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:sdctl/webhooks-AbCdEf"}}
    return iam.documents(resources, region="us-west-2", account="123456789012", model_bucket=cfg.model_bucket.name)


def test_the_local_principals_hold_the_templates_documents():
    cfg = parse(EXAMPLE.read_text().replace("name: null\n  # Folder", "name: team-models\n  # Folder", 1))
    assert cfg.model_bucket.name == "team-models"
    templates = {s.key: s.template for s in stacks(cfg)}
    handler = templates["edge"]["Resources"]["ApiHandlerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    agent = templates["cluster"]["Resources"]["RuntimeSdruntimeRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    keda = templates["cluster"]["Resources"]["KedaOperatorRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    hooks = templates["edge"]["Resources"]["WebhookDelivererRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    local = local_documents(cfg)
    assert shape(local[iam.WEBHOOKS]) == shape(hooks)
    assert shape(local[iam.HANDLER]) == shape(handler)
    assert shape(local[iam.agent("sdruntime")]) == shape(agent)
    assert shape(local[iam.KEDA]) == shape(keda)
    assert local[iam.agent("sdruntime")]["Statement"][-1]["Resource"] == ["arn:aws:s3:::team-models/*"]
    assert local[iam.HANDLER]["Statement"][0]["Resource"] == ["arn:aws:sns:us-west-2:123456789012:sdctl-requests"]
