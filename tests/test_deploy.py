"""The deployer against a moto server over HTTP, through the CLI as a user runs it.

moto stands in for CloudFormation with known gaps, each adapted in the test (never in the
product): it skips AWS::EKS::* and the API Gateway key/stage/usage-plan types (their outputs
are missing, so the cluster's and the API key's are asserted on the templates in
test_cfn.py); it cannot delete a VPC stack (no CloudFormation delete for NAT gateways,
endpoints or route tables), so the full cycle uses an existing VPC; and it runs change sets
synchronously without rollback events, so the failure report is tested on recorded events.
There is no EKS either: deploys pass --skip-releases, and the releases are tested in
test_chart.py with helm's client-side dry run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sdctl.execute.aws.cloudformation import Deployer, DeployFailed
from tests.helpers import CONFIG, sdctl, write_config

#: Every runtime's queue and dead-letter queue in each priority lane (normal keeps the old name).
LANE_QUEUES = [f"cyc-{rt}{lane}{dlq}" for rt in ("comfy", "sdruntime") for lane in ("", "-high", "-low")
                  for dlq in ("", "-dlq")]


def test_deploy_redeploy_update_destroy(env, tmp_path, aws, existing_vpc):
    write_config(tmp_path, *existing_vpc)
    run = sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases", "-o", "json")
    first = json.loads(run.stdout)
    assert first["stacks"] == {"cyc-edge": "deployed", "cyc-cluster": "deployed"}
    # Progress under -o json: one JSON object per stderr line, the result alone on stdout.
    events = [json.loads(line) for line in run.stderr.splitlines()]
    assert {e["source"] for e in events} == {"stack:cyc-edge", "stack:cyc-cluster"}
    # moto reports only the stack's own events (a real account adds one per resource).
    assert [(e["source"], e["data"]["logical_id"]) for e in events if e["status"] == "CREATE_COMPLETE"] == [
        ("stack:cyc-edge", "cyc-edge"), ("stack:cyc-cluster", "cyc-cluster")]
    assert [e["source"] for e in events if e["status"] == "changes"] == ["stack:cyc-edge", "stack:cyc-cluster"]
    assert [e["source"] for e in events if e["status"] == "deployed"] == ["stack:cyc-edge", "stack:cyc-cluster"]
    edge = first["outputs"]["edge"]
    assert edge["QueueSdruntimeUrl"].endswith("/cyc-sdruntime")
    assert edge["QueueComfyUrl"].endswith("/cyc-comfy")
    assert edge["OutputBucket"] == "cyc-output-123456789012-us-west-2"
    assert edge["ApiEndpoint"].startswith("https://") and edge["ApiEndpoint"].endswith("/prod")
    assert "RuntimeComfyRoleArn" in first["outputs"]["cluster"]
    queue = aws.sqs.get_queue_attributes(QueueUrl=aws.sqs.get_queue_url(QueueName="cyc-sdruntime")["QueueUrl"],
                                         AttributeNames=["RedrivePolicy", "VisibilityTimeout"])["Attributes"]
    assert json.loads(queue["RedrivePolicy"])["maxReceiveCount"] == 3 and queue["VisibilityTimeout"] == "660"
    code = aws.s3.list_objects_v2(Bucket="cyc-artifacts-123456789012-us-west-2")["Contents"]
    assert [o["Key"] for o in code] == [f"lambda/{k}" for k in [code[0]["Key"].split("/")[1]]]

    again = json.loads(sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases", "-o", "json").stdout)
    assert again["stacks"] == {"cyc-edge": "no changes", "cyc-cluster": "no changes"}
    assert sdctl(env, tmp_path, "plan").returncode == 0

    write_config(tmp_path, *existing_vpc, rate=45)
    plan = sdctl(env, tmp_path, "plan", "-o", "json", check=False)
    assert plan.returncode == 3
    changes = {(s["stack"], c["logical_id"]) for s in json.loads(plan.stdout)["stacks"] for c in s["changes"]}
    assert changes == {("cyc-edge", "ApiStage"), ("cyc-edge", "ApiUsagePlan")}
    updated = json.loads(sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases", "-o", "json").stdout)
    assert updated["stacks"] == {"cyc-edge": "deployed", "cyc-cluster": "no changes"}

    aws.s3.put_object(Bucket=edge["OutputBucket"], Key="output/t/t-1.png", Body=b"png")
    from sdctl.operate import keys

    keys.create(aws.apigateway, "cyc", "acme", api_id=None, stage=None, rate=5, burst=10)
    run = sdctl(env, tmp_path, "destroy", "--yes", "-o", "json")
    report = json.loads(run.stdout)
    assert report["client_keys"] == ["acme"] and keys.list_keys(aws.apigateway, "cyc") == []
    assert aws.apigateway.get_usage_plans()["items"] == []
    gone = {e["source"] for e in map(json.loads, run.stderr.splitlines()) if e["status"] == "deleted"}
    assert {"stack:cyc-edge", "stack:cyc-cluster", "s3:cyc-output-123456789012-us-west-2", "queue:cyc-comfy"} <= gone
    assert report["stacks"] == {"cyc-cluster": "deleted", "cyc-edge": "deleted"}
    assert report["buckets"]["cyc-output-123456789012-us-west-2"] == {"deleted": True, "objects": 1}
    assert sorted(report["queues"]) == sorted([*LANE_QUEUES, "cyc-webhooks", "cyc-webhooks-dlq"])
    assert aws.cloudformation.describe_stacks()["Stacks"] == []
    assert [b["Name"] for b in aws.s3.list_buckets()["Buckets"]] == ["cyc-models"]  # never touched
    assert aws.s3.get_object(Bucket="cyc-models", Key="v1-5.safetensors")["Body"].read() == b"weights"


def test_destroy_keep_data_leaves_bucket_and_queues(env, tmp_path, aws, existing_vpc):
    write_config(tmp_path, *existing_vpc)
    sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases")
    report = json.loads(sdctl(env, tmp_path, "destroy", "--yes", "--keep-data", "-o", "json").stdout)
    assert report["buckets"] == {} and report["queues"] == []
    assert "cyc-output-123456789012-us-west-2" in [b["Name"] for b in aws.s3.list_buckets()["Buckets"]]
    kept = sorted(u.rsplit("/", 1)[1] for u in aws.sqs.list_queues(QueueNamePrefix="cyc-")["QueueUrls"])
    assert kept == sorted([*LANE_QUEUES, "cyc-webhooks", "cyc-webhooks-dlq"])  # undelivered webhooks are data too


def test_deploy_after_destroy_keep_data_takes_the_kept_data_back(env, tmp_path, aws, existing_vpc):
    """The documented flow `destroy --keep-data`, then `deploy`: the bucket, table, queues and
    key keep their fixed names, so a plain create fails on "already exists" on AWS. deploy
    imports them (an IMPORT change set, which the emulator's rules give moto:
    sdctl/execute/local/emulator/rules.py), and the kept image, task record and key are the stack's again."""
    write_config(tmp_path, *existing_vpc)
    first = json.loads(sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases", "-o", "json").stdout)
    edge = first["outputs"]["edge"]
    aws.s3.put_object(Bucket=edge["OutputBucket"], Key="output/t/t-1.png", Body=b"png")
    aws.dynamodb.put_item(TableName="cyc-tasks", Item={"id": {"S": "t"}, "status": {"S": "completed"}})
    sdctl(env, tmp_path, "destroy", "--yes", "--keep-data")
    # moto skips AWS::ApiGateway::Account: on AWS it named the (retained) logs role, which the
    # next deploy finds there and leaves alone instead of creating it again.
    role = aws.iam.get_role(RoleName="cyc-apigw-cloudwatch-us-west-2")["Role"]["Arn"]
    aws.apigateway.update_account(patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": role}])
    run = sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases", "-o", "json")
    again = json.loads(run.stdout)
    assert again["stacks"]["cyc-edge"] == "deployed"
    statuses = [json.loads(line).get("status") for line in run.stderr.splitlines()]
    assert "importing" in statuses and "imported" in statuses
    now = again["outputs"]["edge"]
    assert now["OutputBucket"] == edge["OutputBucket"] and now["TopicKeyId"] == edge["TopicKeyId"]
    assert aws.s3.get_object(Bucket=edge["OutputBucket"], Key="output/t/t-1.png")["Body"].read() == b"png"
    assert aws.dynamodb.get_item(TableName="cyc-tasks", Key={"id": {"S": "t"}})["Item"]["status"]["S"] == "completed"
    importing = next(json.loads(line)["message"] for line in run.stderr.splitlines()
                     if json.loads(line).get("status") == "importing")
    assert all(lid in importing for lid in ("OutputBucket", "TasksTable", "TopicKey", "QueueSdruntime",
                                            "WebhooksQueue"))
    # and the whole stack goes again, data included
    report = json.loads(sdctl(env, tmp_path, "destroy", "--yes", "-o", "json").stdout)
    assert report["tables"] == ["cyc-tasks"] and report["buckets"][edge["OutputBucket"]]["deleted"]


def test_every_execution_rolls_back_what_it_created_retained_or_not():
    """A failed first create must leave nothing named behind, or the retry fails on "already
    exists": ExecuteChangeSet's RetainExceptOnCreate deletes what the operation created on
    rollback, Retain or not (CloudFormation API Reference, ExecuteChangeSet). moto has no
    rollback, so the call is checked with recorded answers (botocore's Stubber)."""
    import boto3
    from botocore.stub import Stubber

    from sdctl.execute.aws.cloudformation import ChangeSet

    cfn = boto3.client("cloudformation", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(cfn)
    stub.add_response("execute_change_set", {}, {"ChangeSetName": "arn:cs", "StackName": "s",
                                                 "RetainExceptOnCreate": True})
    stub.add_response("describe_stack_events", {"StackEvents": []}, {"StackName": "s"})
    stub.add_response("describe_stacks", {"Stacks": [{"StackName": "s", "StackStatus": "CREATE_COMPLETE",
                                                      "CreationTime": datetime.now(UTC)}]}, {"StackName": "s"})
    stub.add_response("describe_stacks", {"Stacks": [{"StackName": "s", "StackStatus": "CREATE_COMPLETE",
                                                      "CreationTime": datetime.now(UTC), "Outputs": []}]},
                      {"StackName": "s"})
    with stub:
        Deployer(cfn, sleep=lambda s: None).execute(ChangeSet(stack="s", kind="CREATE", arn="arn:cs"))
    stub.assert_no_pending_responses()


def test_network_stack_creates_and_redeploys(env, tmp_path, aws):
    """moto cannot delete a VPC stack, so only create and the no-op redeploy are checked here."""
    (tmp_path / "sdctl.yaml").write_text("stackName: net\nruntimes: [{name: a, type: sdwebui}]\n")
    out = json.loads(sdctl(env, tmp_path, "deploy", "--yes", "--only", "network", "-o", "json").stdout)
    subnets = out["outputs"]["network"]["PrivateSubnetIds"].split(",")
    assert len(subnets) == 3
    described = aws.ec2.describe_subnets(SubnetIds=subnets)["Subnets"]
    assert sorted(s["CidrBlock"] for s in described) == ["10.0.128.0/19", "10.0.160.0/19", "10.0.96.0/19"]
    assert all({"Key": "karpenter.sh/discovery", "Value": "net"} in s["Tags"] for s in described)
    again = json.loads(sdctl(env, tmp_path, "deploy", "--yes", "--only", "network", "-o", "json").stdout)
    assert again["stacks"] == {"net-network": "no changes"}


def test_deploy_needs_yes_without_a_terminal(env, tmp_path, existing_vpc):
    write_config(tmp_path, *existing_vpc)
    r = sdctl(env, tmp_path, "deploy", check=False)
    assert r.returncode == 2 and "--yes" in r.stderr


def test_cluster_before_edge_says_what_to_deploy_first(env, tmp_path, existing_vpc):
    write_config(tmp_path, *existing_vpc)
    r = sdctl(env, tmp_path, "deploy", "--yes", "--only", "cluster", check=False)
    assert r.returncode == 1 and "cyc-edge is not deployed" in r.stderr and "--only edge" in r.stderr


def test_missing_credentials_is_one_line_saying_what_to_set(tmp_path, existing_vpc, env):
    write_config(tmp_path, *existing_vpc)
    bare = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    bare.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
                AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-west-2")
    r = sdctl(bare, tmp_path, "status", check=False)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == "error: no AWS credentials found"
    assert "AWS_PROFILE" in r.stderr and "Traceback" not in r.stderr


def test_rollback_complete_stack_is_recreated_when_confirmed(aws, existing_vpc, monkeypatch):
    """moto never leaves a stack ROLLBACK_COMPLETE; the first status read is made to say so."""
    from sdctl.config import parse
    from sdctl.execute import deploy
    from sdctl.execute.aws.session import Aws

    cfg = parse(CONFIG.format(vpc=existing_vpc[0], subnets=", ".join(existing_vpc[1]), rate=30))
    session = __import__("boto3").session.Session(region_name="us-west-2")
    ctx = deploy.context(cfg, Aws(session=session, region="us-west-2", account="123456789012",
                                  principal_arn="arn:aws:iam::123456789012:role/me"), poll=0.05)
    ctx.deployer.cfn = aws.cloudformation
    aws.cloudformation.create_stack(StackName="cyc-edge", TemplateBody=json.dumps(
        {"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}))
    real_status, told = ctx.deployer.status, []
    monkeypatch.setattr(ctx.deployer, "status", lambda s: "ROLLBACK_COMPLETE" if s == "cyc-edge" and not told
                        else real_status(s))
    deleted = []
    real_delete = ctx.deployer.delete
    monkeypatch.setattr(ctx.deployer, "delete", lambda s, cb: (deleted.append(s), told.append(1), real_delete(s, cb)))
    ctx.aws.client = lambda name: getattr(aws, name)
    outs = deploy.deploy(ctx, only="edge", confirm=lambda cs: True, confirm_recreate=lambda s: told.append(s) or True,
                         )
    assert deleted == ["cyc-edge"] and "cyc-edge" in told
    assert "QueueSdruntimeUrl" in outs["edge"]


class RecordedCfn:
    """describe_stacks / describe_stack_events answers recorded from a real failed create."""

    class exceptions:
        ClientError = Exception

    def __init__(self, events, final_status):
        self.events, self.final_status = events, final_status

    def describe_stacks(self, StackName):
        return {"Stacks": [{"StackName": StackName, "StackStatus": self.final_status}]}

    def get_paginator(self, name):
        events = self.events

        class Pages:
            def paginate(self, StackName):
                return [{"StackEvents": list(reversed(events))}]

        return Pages()


def test_failed_stack_reports_the_first_failed_resource_and_its_reason():
    t0 = datetime.now(UTC) + timedelta(seconds=1)

    def ev(i, lid, rtype, status, reason=None):
        return {"EventId": str(i), "Timestamp": t0 + timedelta(seconds=i), "LogicalResourceId": lid,
                "ResourceType": rtype, "ResourceStatus": status, "ResourceStatusReason": reason}

    events = [
        ev(0, "cyc-edge", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", "User Initiated"),
        ev(1, "ApiHandler", "AWS::Lambda::Function", "CREATE_IN_PROGRESS"),
        ev(2, "OutputBucket", "AWS::S3::Bucket", "CREATE_IN_PROGRESS"),
        ev(3, "ApiHandler", "AWS::Lambda::Function", "CREATE_FAILED",
           "Resource handler returned message: \"Error occurred while GetObject. S3 Error Code: NoSuchKey\" "
           "(RequestToken: 5f0c, HandlerErrorCode: InvalidRequest)"),
        ev(4, "OutputBucket", "AWS::S3::Bucket", "CREATE_FAILED", "Resource creation cancelled"),
        ev(5, "cyc-edge", "AWS::CloudFormation::Stack", "ROLLBACK_IN_PROGRESS",
           "The following resource(s) failed to create: [OutputBucket, ApiHandler]. Rollback requested by user."),
        ev(6, "cyc-edge", "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE"),
    ]
    seen = []
    with pytest.raises(DeployFailed) as e:
        Deployer(RecordedCfn(events, "ROLLBACK_COMPLETE"), poll=0).wait("cyc-edge", t0, seen.append)
    assert e.value.status == "ROLLBACK_COMPLETE"
    assert e.value.resource == "ApiHandler (AWS::Lambda::Function)"
    assert "NoSuchKey" in e.value.reason
    assert "ApiHandler" in e.value.message and "ROLLBACK_COMPLETE" in e.value.message
    assert [x.status for x in seen] == [x["ResourceStatus"] for x in events]


def test_api_key_value_is_fetched_from_api_gateway_and_hidden_by_default(aws):
    from sdctl.execute import deploy
    from sdctl.execute.aws.session import Aws

    key = aws.apigateway.create_api_key(name="cyc-key", value="s3cr3t-value-0123456789", enabled=True)
    client = Aws(session=None, region="us-west-2", account="123456789012", principal_arn="x")
    client.client = lambda name: getattr(aws, name)
    assert deploy.api_key_value(client, key["id"]) == "s3cr3t-value-0123456789"


def test_generate_without_a_deployed_api_says_so(env, tmp_path, existing_vpc):
    """moto does not create AWS::ApiGateway::ApiKey, so the deployed stack has no key output."""
    write_config(tmp_path, *existing_vpc)
    sdctl(env, tmp_path, "deploy", "--yes", "--only", "edge")
    r = sdctl(env, tmp_path, "generate", "a fox", check=False)
    assert r.returncode == 1 and "has no API outputs" in r.stderr and "--local" in r.stderr


def test_a_template_over_51200_bytes_goes_through_the_artifacts_bucket(env, tmp_path, aws, existing_vpc):
    """CloudFormation takes a TemplateBody up to 51,200 bytes; a larger template must be passed
    as a TemplateURL in S3. Sixteen runtimes make the edge stack ~60 KB."""
    vpc, subnets = existing_vpc
    runtimes = "\n".join(f"  - {{name: r{i}, type: diffusers}}" for i in range(16))
    (tmp_path / "sdctl.yaml").write_text(f"stackName: big\nnetwork: {{vpcId: {vpc}, privateSubnetIds: "
                                         f"[{', '.join(subnets)}]}}\nruntimes:\n{runtimes}\n")
    from sdctl.builders.cfn.stacks import stacks
    from sdctl.config import load

    [edge] = [s for s in stacks(load(tmp_path / "sdctl.yaml")) if s.key == "edge"]
    assert len(json.dumps(edge.template, separators=(",", ":"))) > 51200
    out = json.loads(sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases", "--only", "edge", "-o", "json").stdout)
    assert out["stacks"] == {"big-edge": "deployed"}
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket="big-artifacts-123456789012-us-west-2")["Contents"]]
    assert "templates/big-edge.json" in keys
    queues = [u for u in aws.sqs.list_queues(QueueNamePrefix="big-r")["QueueUrls"] if not u.endswith("-dlq")]
    assert len(queues) == 16 * 3  # three priority lanes each


def test_deploy_onto_an_existing_cluster_checks_it_before_changing_anything(env, tmp_path, aws):
    """As a user runs it: a cluster that cannot be read stops the deploy at the preflight
    (sdctl/execute/aws/preflight.py), before any bucket or stack exists. The checks themselves
    are in tests/test_preflight.py (moto lacks the EKS calls they need)."""
    from tests.helpers import EXISTING_CLUSTER

    (tmp_path / "sdctl.yaml").write_text(EXISTING_CLUSTER)
    r = sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases", check=False)
    assert r.returncode == 1 and "cluster platform-prod (cluster.existing: true) cannot be read" in r.stderr
    assert "Traceback" not in r.stderr
    assert aws.cloudformation.describe_stacks()["Stacks"] == []
    assert [b["Name"] for b in aws.s3.list_buckets()["Buckets"]] == []


def test_an_operate_command_reads_the_edge_stack_by_name(env, tmp_path, existing_vpc):
    """`sdctl tasks list` against AWS reads the edge stack's outputs by its name (no template or
    Lambda zip is built for it); before a deploy it says what to do."""
    write_config(tmp_path, *existing_vpc)
    r = sdctl(env, tmp_path, "tasks", "list", check=False)
    assert r.returncode == 1 and "stack cyc-edge is not deployed" in r.stderr and "sdctl deploy" in r.stderr
