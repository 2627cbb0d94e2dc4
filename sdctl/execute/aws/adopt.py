"""Which of a stack's retained resources still exist on the account (see builders/cfn/adopt.py).

A bucket, table or queue is found by its name; the key by the table it encrypts (a KMS key has
no name, and the table names its key in its SSE description), and only while it is enabled: a
key scheduled for deletion by an earlier `destroy` is left to go.
"""

from __future__ import annotations

import botocore.exceptions as bex

from sdctl.builders.cfn.adopt import physical_name, refs, retained
from sdctl.contracts.events import Event, Report, ignore
from sdctl.errors import SdctlError


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
            if tid in found and res["Type"] == "AWS::DynamoDB::Table" and lid in refs(target):
                key = _table_key(aws, found[tid])
                if key:
                    found[lid] = key
    return found


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


def adopt_kept(ctx, spec, params: dict[str, str], report: Report = ignore) -> list[str]:
    """Before a stack is created: import what an earlier stack of the same name kept (after
    `destroy --keep-data`, or a failed create by an sdctl without RetainExceptOnCreate), so the
    kept images, task records and their key are in use again and the create does not fail on
    "already exists". Returns the logical ids imported."""
    from sdctl.builders.cfn import adopt

    found = find(ctx.aws, spec.template)
    if not found:
        return []
    try:
        template, to_import = adopt.plan(spec.template, found)
    except ValueError as e:
        raise SdctlError(f"{spec.name}: some kept resources exist and some do not ({e})",
                         hint="delete the kept ones that remain (or recreate the missing one) and deploy "
                              "again") from None
    report(Event(f"stack:{spec.name}", f"importing {len(found)} kept resource(s): {', '.join(sorted(found))}",
                 "step", "importing"))
    ctx.deployer.import_resources(spec.name, template, params, to_import, spec.capabilities, spec.tags, report)
    report(Event(f"stack:{spec.name}", "kept resources imported", "ok", "imported"))
    return sorted(found)
