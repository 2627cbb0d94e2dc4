"""The emulator refuses what AWS refuses (sdctl/execute/local/emulator/rules.py), through boto3 as sdctl
calls it, against moto's in-process mock with the rules applied (the local stack's emulator and
the tests' moto server apply the same ones). Each test names the documented rule it holds."""

from __future__ import annotations

import json
import re

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from sdctl.execute.local.emulator import rules
from sdctl.operate import keys

REGION = "us-west-2"


@pytest.fixture
def aws():
    rules.apply()
    with mock_aws():
        yield lambda name: boto3.client(name, region_name=REGION)


def _code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


def _stage(apigw) -> tuple[str, str]:
    api = apigw.create_rest_api(name="api")["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    apigw.put_method(restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE")
    apigw.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="MOCK")
    apigw.create_deployment(restApiId=api, stageName="prod")
    return api, "prod"


def test_a_usage_plan_with_api_stages_cannot_be_deleted(aws):
    """API Gateway, DeleteUsagePlan: "Cannot delete Usage Plan ... because there are API Stages
    associated with it" (aws/aws-sdk-js#3841); removing the stage first is the documented way."""
    apigw = aws("apigateway")
    api, stage = _stage(apigw)
    plan = apigw.create_usage_plan(name="p", apiStages=[{"apiId": api, "stage": stage}])["id"]
    with pytest.raises(ClientError) as e:
        apigw.delete_usage_plan(usagePlanId=plan)
    assert _code(e) == "BadRequestException" and "API Stages associated" in str(e.value)
    apigw.update_usage_plan(usagePlanId=plan, patchOperations=[
        {"op": "remove", "path": "/apiStages", "value": f"{api}:{stage}"}])
    apigw.delete_usage_plan(usagePlanId=plan)
    assert apigw.get_usage_plans()["items"] == []


def test_keys_revoke_removes_a_plan_bound_to_the_stage(aws):
    """`sdctl keys revoke` on a deployed stack: the client's plan lists the API's stage, so the
    plan's stages go first, then the plan, then the key; nothing is left behind."""
    apigw = aws("apigateway")
    api, stage = _stage(apigw)
    made = keys.create(apigw, "demo", "acme", api_id=api, stage=stage, rate=5, burst=10)
    assert apigw.get_usage_plan(usagePlanId=made["usage_plan_id"])["apiStages"] == [{"apiId": api, "stage": stage}]
    assert keys.revoke(apigw, "demo", "acme")["revoked"]
    assert apigw.get_usage_plans()["items"] == [] and keys.list_keys(apigw, "demo") == []
    keys.create(apigw, "demo", "bravo", api_id=api, stage=stage, rate=5, burst=10)
    assert keys.remove_all(apigw, "demo") == ["bravo"] and apigw.get_usage_plans()["items"] == []


def test_an_instance_type_runs_only_images_of_its_architecture(aws):
    """EC2 RunInstances: "The architecture 'x86_64' of the specified instance type does not
    match the architecture 'arm64' of the specified AMI" (InvalidParameterValue)."""
    ec2 = aws("ec2")
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    arm = next(i["ImageId"] for i in images if i.get("Architecture") == "arm64")
    x86 = next(i["ImageId"] for i in images if i.get("Architecture") == "x86_64")
    with pytest.raises(ClientError) as e:
        ec2.run_instances(ImageId=arm, InstanceType="t3.nano", MinCount=1, MaxCount=1)
    assert _code(e) == "InvalidParameterValue" and "architecture 'arm64'" in str(e.value)
    with pytest.raises(ClientError):
        ec2.run_instances(ImageId=x86, InstanceType="t4g.nano", MinCount=1, MaxCount=1)
    ec2.run_instances(ImageId=arm, InstanceType="t4g.nano", MinCount=1, MaxCount=1)
    ec2.run_instances(ImageId=x86, InstanceType="t3.nano", MinCount=1, MaxCount=1)


def test_a_second_table_bucket_or_queue_of_a_name_is_refused(aws):
    """What a create after `destroy --keep-data` meets on AWS: DynamoDB CreateTable
    ResourceInUseException; S3 CreateBucket outside us-east-1 BucketAlreadyOwnedByYou (S3 API
    Reference, CreateBucket); SQS CreateQueue with other attributes QueueAlreadyExists."""
    ddb, s3, sqs = aws("dynamodb"), aws("s3"), aws("sqs")
    spec = dict(TableName="t", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    ddb.create_table(**spec)
    with pytest.raises(ClientError) as e:
        ddb.create_table(**spec)
    assert _code(e) == "ResourceInUseException"
    where = {"CreateBucketConfiguration": {"LocationConstraint": REGION}}
    s3.create_bucket(Bucket="kept-images", **where)
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="kept-images", **where)
    assert _code(e) == "BucketAlreadyOwnedByYou"
    sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "30"})
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "60"})
    assert _code(e) == "QueueAlreadyExists"


def test_a_message_visibility_past_twelve_hours_in_total_is_refused(aws):
    """SQS ChangeMessageVisibility: "If you try to extend the visibility timeout beyond 12
    hours, the request is rejected" (43,200 s in total since the message was received)."""
    sqs = aws("sqs")
    q = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=q, MessageBody="m")
    handle = sqs.receive_message(QueueUrl=q)["Messages"][0]["ReceiptHandle"]
    with pytest.raises(ClientError) as e:
        sqs.change_message_visibility(QueueUrl=q, ReceiptHandle=handle, VisibilityTimeout=43201)
    assert _code(e) == "InvalidParameterValue"
    sqs.change_message_visibility(QueueUrl=q, ReceiptHandle=handle, VisibilityTimeout=43000)


def _import(cfn, template: dict, items: list[dict]):
    return cfn.create_change_set(StackName="s", ChangeSetName="i", ChangeSetType="IMPORT",
                                 TemplateBody=json.dumps(template), ResourcesToImport=items)


def test_an_import_adopts_what_exists_and_refuses_what_aws_refuses(aws):
    """CloudFormation resource import (User Guide, "Import AWS resources into a CloudFormation
    stack"): each resource needs a DeletionPolicy and must exist; the stack then owns it as it
    is, data included."""
    cfn, sqs = aws("cloudformation"), aws("sqs")
    url = sqs.create_queue(QueueName="kept")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="still here")
    queue = {"Type": "AWS::SQS::Queue", "DeletionPolicy": "Retain", "Properties": {"QueueName": "kept"}}
    item = {"ResourceType": "AWS::SQS::Queue", "LogicalResourceId": "Q", "ResourceIdentifier": {"QueueUrl": url}}
    no_policy = {"Resources": {"Q": {k: v for k, v in queue.items() if k != "DeletionPolicy"}}}
    with pytest.raises(ClientError, match="DeletionPolicy"):
        _import(cfn, no_policy, [item])
    gone = dict(item, ResourceIdentifier={"QueueUrl": url.replace("kept", "never")})
    with pytest.raises(ClientError, match="does not exist"):
        _import(cfn, {"Resources": {"Q": queue}}, [gone])
    arn = _import(cfn, {"Resources": {"Q": queue}}, [item])["Id"]
    cfn.execute_change_set(ChangeSetName=arn, StackName="s")
    assert cfn.describe_stacks(StackName="s")["Stacks"][0]["StackStatus"] == "IMPORT_COMPLETE"
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "still here"
    assert [u for u in sqs.list_queues()["QueueUrls"] if "kept" in u] == [url]


@pytest.fixture
def enforcing_emulator(tmp_path):
    """The local stack's emulator as `sdctl local up` runs it, enforcing IAM after set-up:
    a bucket with an image, a reader allowed s3:GetObject and a principal allowed nothing."""
    import subprocess
    import sys

    import httpx

    from sdctl.execute.aws.session import client_config
    from tests.conftest import free_port
    from tests.helpers import wait_for

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "sdctl.execute.local.emulator", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "emulator.log").open("w"))

    def up() -> bool:
        try:
            return httpx.get(f"{url}/moto-api/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_for(up, 30), (tmp_path / "emulator.log").read_text()
        admin = dict(endpoint_url=url, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="x")
        s3, iam = boto3.client("s3", **admin), boto3.client("iam", **admin)
        s3.create_bucket(Bucket="images", CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket="images", Key="t/t-1.png", Body=b"png")
        made = {}
        for user, action in (("reader", "s3:GetObject"), ("nobody", "sqs:SendMessage")):
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            made[user] = boto3.client("s3", endpoint_url=url, region_name=REGION, config=client_config("s3"),
                                      aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        httpx.post(f"{url}/moto-api/reset-auth", content=b"0").raise_for_status()
        yield made
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_presigned_url_is_accepted_while_iam_is_enforced_and_checked_as_s3_checks_it(enforcing_emulator):
    """The gallery's full-size links are presigned GetObject URLs (SigV4 in the query string;
    S3 API Reference, "Authenticating Requests: Using Query Parameters"). The emulator answered
    500 to every one while it enforced IAM; S3 serves a valid one, and refuses a tampered
    signature (SignatureDoesNotMatch), an expired URL ("Request has expired") and a principal
    whose policy does not allow the action (AccessDenied), each with 403."""
    import httpx

    reader, nobody = enforcing_emulator["reader"], enforcing_emulator["nobody"]
    link = reader.generate_presigned_url("get_object", Params={"Bucket": "images", "Key": "t/t-1.png"}, ExpiresIn=600)
    assert "X-Amz-Signature=" in link  # SigV4: S3 refuses SigV2 for buckets made since June 2020
    ok = httpx.get(link)
    assert (ok.status_code, ok.content) == (200, b"png")
    tampered = httpx.get(link.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
    assert tampered.status_code == 403 and "SignatureDoesNotMatch" in tampered.text
    old = re.sub(r"X-Amz-Date=\d{8}T", "X-Amz-Date=20200101T", link)
    expired = httpx.get(old)
    assert expired.status_code == 403 and "Request has expired" in expired.text
    denied = httpx.get(nobody.generate_presigned_url("get_object", Params={"Bucket": "images", "Key": "t/t-1.png"}))
    assert denied.status_code == 403 and "AccessDenied" in denied.text


def test_a_dead_letter_queue_is_moved_back_server_side_as_sqs_does(aws):
    """SQS StartMessageMoveTask: the messages of a dead-letter queue go back to the queue, with
    their attributes; a source that is no queue's dead-letter queue is refused ("Source queue
    must be configured as a Dead Letter Queue")."""
    from sdctl.operate.queues import queue_arn, redrive

    sqs = aws("sqs")
    dlq = sqs.create_queue(QueueName="q-dlq")["QueueUrl"]
    q = sqs.create_queue(QueueName="q", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": queue_arn(sqs, dlq), "maxReceiveCount": "1"})})["QueueUrl"]
    for i in range(12):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"t-{i}", MessageAttributes={
            "runtime": {"DataType": "String", "StringValue": "sd"}})
    done = redrive(sqs, dlq, q)
    assert done["method"] == "StartMessageMoveTask"
    [task] = sqs.list_message_move_tasks(SourceArn=queue_arn(sqs, dlq))["Results"]
    assert task["Status"] == "COMPLETED" and task["ApproximateNumberOfMessagesMoved"] == 12
    got = []
    while batch := sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
            "Messages"):
        got += batch
    assert sorted(m["Body"] for m in got) == sorted(f"t-{i}" for i in range(12))
    assert all(m["MessageAttributes"]["runtime"]["StringValue"] == "sd" for m in got)
    with pytest.raises(ClientError, match="Dead Letter Queue"):
        sqs.start_message_move_task(SourceArn=queue_arn(sqs, q))


def test_a_dead_letter_queue_takes_dead_letters_only_from_the_queues_it_allows(aws):
    """SQS RedriveAllowPolicy (SetQueueAttributes): "byQueue – Only queues specified by the
    sourceQueueArns parameter can specify this queue as the dead-letter queue"; "denyAll – No
    source queues can". moto forgot the attribute and let any queue name the DLQ; the emulator
    keeps it and refuses the others, as the local stack's own dead-letter queues now need."""
    from sdctl.operate.queues import queue_arn

    sqs = aws("sqs")
    allowed = f"arn:aws:sqs:{REGION}:123456789012:ours"
    dlq = sqs.create_queue(QueueName="ours-dlq", Attributes={"RedriveAllowPolicy": json.dumps(
        {"redrivePermission": "byQueue", "sourceQueueArns": [allowed]})})["QueueUrl"]
    kept = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
    assert json.loads(kept["RedriveAllowPolicy"])["sourceQueueArns"] == [allowed]
    policy = {"RedrivePolicy": json.dumps({"deadLetterTargetArn": queue_arn(sqs, dlq), "maxReceiveCount": "3"})}
    sqs.create_queue(QueueName="ours", Attributes=policy)
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName="stray", Attributes=policy)
    assert _code(e) == "InvalidParameterValue" and "RedriveAllowPolicy" in str(e.value)
    closed = sqs.create_queue(QueueName="closed-dlq", Attributes={"RedriveAllowPolicy": json.dumps(
        {"redrivePermission": "denyAll"})})["QueueUrl"]
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName="another", Attributes={"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": queue_arn(sqs, closed), "maxReceiveCount": "3"})})
    assert _code(e) == "InvalidParameterValue" and "RedriveAllowPolicy" in str(e.value)
