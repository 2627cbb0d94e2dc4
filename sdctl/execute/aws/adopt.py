"""Which of a stack's retained resources still exist on the account (see builders/cfn/adopt.py).

A bucket, table or queue is found by its name; the key by the table it encrypts (a KMS key has
no name, and the table names its key in its SSE description), and only while it is enabled: a
key scheduled for deletion by an earlier `destroy` is left to go.
"""

from __future__ import annotations

import botocore.exceptions as bex

from sdctl.builders.cfn.adopt import physical_name, retained


def _code(e: bex.ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def find(aws, template: dict) -> dict[str, str]:
    """Logical id -> import identifier, for each retained resource of ``template`` that exists."""
    found: dict[str, str] = {}
    keys = []
    for lid, res in retained(template).items():
        kind, props = res["Type"], res.get("Properties", {})
        if kind == "AWS::KMS::Key":
            keys.append(lid)
            continue
        name = physical_name(props.get({"AWS::S3::Bucket": "BucketName", "AWS::DynamoDB::Table": "TableName",
                                         "AWS::SQS::Queue": "QueueName"}[kind]), account=aws.account,
                             region=aws.region)
        value = _exists(aws, kind, name)
        if value:
            found[lid] = value
    for lid in keys:  # the key a found table is encrypted with, if the template gives it that key
        for tid, res in retained(template).items():
            sse = res.get("Properties", {}).get("SSESpecification") or {}
            target = sse.get("KMSMasterKeyId")
            if tid in found and res["Type"] == "AWS::DynamoDB::Table" and lid in _named(target):
                key = _table_key(aws, found[tid])
                if key:
                    found[lid] = key
    return found


def _named(value) -> set[str]:
    if isinstance(value, dict):
        if "Ref" in value:
            return {value["Ref"]}
        if "Fn::GetAtt" in value:
            return {value["Fn::GetAtt"][0]}
    return set()


def _exists(aws, kind: str, name: str) -> str | None:
    try:
        if kind == "AWS::S3::Bucket":
            aws.client("s3").head_bucket(Bucket=name, ExpectedBucketOwner=aws.account)
            return name
        if kind == "AWS::DynamoDB::Table":
            aws.client("dynamodb").describe_table(TableName=name)
            return name
        if kind == "AWS::SQS::Queue":
            return aws.client("sqs").get_queue_url(QueueName=name, QueueOwnerAWSAccountId=aws.account)["QueueUrl"]
    except bex.ClientError as e:
        if _code(e) in ("404", "NoSuchBucket", "ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue",
                        "QueueDoesNotExist", "403", "AccessDenied"):
            return None  # absent, or not this account's: the create says so in its own words
        raise
    return None


def _table_key(aws, table: str) -> str | None:
    sse = aws.client("dynamodb").describe_table(TableName=table)["Table"].get("SSEDescription") or {}
    arn = sse.get("KMSMasterKeyArn")
    if not arn:
        return None
    try:
        meta = aws.client("kms").describe_key(KeyId=arn)["KeyMetadata"]
    except bex.ClientError:
        return None
    return meta["KeyId"] if meta.get("KeyState") == "Enabled" else None
