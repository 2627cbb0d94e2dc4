"""The edge stack: topics, per-runtime queues, the output bucket, the API and its Lambda.

Data-holding resources (the bucket and the queues' messages) are retained when the stack
is replaced; `sdctl destroy` removes the bucket itself unless asked to keep data.
"""

from __future__ import annotations

from sdctl.builders.cfn import api, policies, registry, webhooks
from sdctl.builders.cfn.base import (
    LOG_RETENTION_DAYS,
    RETAIN,
    allow,
    getatt,
    output,
    policy,
    prune,
    ref,
    sub,
    template,
    trust,
)
from sdctl.builders.cfn.skips import skip
from sdctl.builders.names import Names, queue_ids
from sdctl.builders.queues import cfn_properties, edge_queues, edge_topics, lane_subscriptions
from sdctl.config.model import Config
from sdctl.contracts.edge_env import handler_environment
from sdctl.contracts.tasks import STATUS_INDEX

LAMBDA_RUNTIME = "python3.12"


def tasks_table_properties(name: str) -> dict:
    """The task store: one item per task id; an index by status and creation time for
    `sdctl tasks list --status`; items expire (TTL) with the results they describe."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"},
                                 {"AttributeName": "status", "AttributeType": "S"},
                                 {"AttributeName": "created_at", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [{
            "IndexName": STATUS_INDEX,
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"},
                          {"AttributeName": "created_at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}],
        "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
    }


def edge_template(cfg: Config, n: Names) -> dict:
    tpl = template(f"sdctl {cfg.stack_name} edge: API, Lambda, SNS topics, SQS queues, output bucket")
    tpl["Parameters"] = {
        "CodeBucket": {"Type": "String", "Description": "Artifacts bucket holding the handler's zip."},
        "CodeKey": {"Type": "String", "Description": "Key of the handler's zip (named by its hash)."},
        "ExistingApiGatewayLogsRoleArn": {
            "Type": "String", "Default": "",
            "Description": "The CloudWatch role API Gateway already has in this account and region; "
                           "empty when it has none (this stack then sets, and keeps, its own)."},
    }
    # API Gateway's account settings are one per account and region, shared by every REST API.
    # Set them only where they are unset, and never undo them (Retain): deleting this stack
    # must not break logging for the region's other APIs.
    tpl["Conditions"]["OwnApiGatewayAccount"] = {"Fn::Equals": [ref("ExistingApiGatewayLogsRoleArn"), ""]}
    r = tpl["Resources"]
    o = tpl["Outputs"]

    _topics(cfg, n, r, o)
    _lanes(cfg, n, r, o)
    _output_bucket(cfg, n, r, o)
    registry.image_resources(cfg, r, o)  # container images: ECR and the build project (`sdctl images publish`)
    _tasks_table(n, r, o)
    webhooks.resources(cfg, n, r, o, retain=RETAIN, deny_insecure=_deny_insecure)  # queue, DLQ, secret, deliverer
    _api_handler(cfg, r)
    api.rest_api(cfg, tpl)
    return prune(tpl)


def _topics(cfg: Config, n: Names, r: dict, o: dict) -> None:
    """The topics and the key that encrypts them (and the logs)."""
    # Retained like the data it encrypts (the task store): a table kept by `destroy --keep-data`
    # stays readable. `sdctl destroy` without --keep-data schedules the key's deletion itself.
    r["TopicKey"] = {"Type": "AWS::KMS::Key", **RETAIN, "Properties": {
        "Description": f"sdctl {cfg.stack_name}: SNS topic and log encryption",
        "EnableKeyRotation": True,
        "KeyPolicy": policy(
            allow("kms:*", "*", Sid="AccountAdmin", Principal={"AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")}),
            allow(["kms:GenerateDataKey*", "kms:Decrypt"], "*", Sid="SnsDelivery",
                  Principal={"Service": "sns.amazonaws.com"},
                  Condition={"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}}),
            allow(["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"], "*",
                  Sid="CloudWatchLogs", Principal={"Service": sub("logs.${AWS::Region}.amazonaws.com")},
                  Condition={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": sub(
                      "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*")}}),
        )}}
    o["TopicKeyId"] = output(ref("TopicKey"))
    for topic in edge_topics(n):
        r[topic.logical_id] = {"Type": "AWS::SNS::Topic", "Properties": {
            "TopicName": topic.name, "KmsMasterKeyId": ref("TopicKey")}}
        o[f"{topic.logical_id}Arn"] = output(ref(topic.logical_id))
    o["TopicKeyArn"] = output(getatt("TopicKey", "Arn"))


def _lanes(cfg: Config, n: Names, r: dict, o: dict) -> None:
    """Per runtime, one queue (and dead-letter queue) per priority lane, each subscribed to its lane's tasks."""
    specs = {q.logical_id: q for q in edge_queues(cfg, n)}
    subscriptions = {sub.queue: sub for sub in lane_subscriptions(cfg)}
    for rt, rn in zip(cfg.runtimes, n.runtimes, strict=True):
        for priority, _queue_name, _dlq_name in rn.lanes():
            q, dlq = queue_ids(rt.name, priority)
            for lid in (dlq, q):
                r[lid] = {"Type": "AWS::SQS::Queue", **RETAIN,
                          "Properties": cfn_properties(specs[lid], getatt(dlq, "Arn"))}
                skip(r[lid], "CKV_AWS_27")
            r[f"{q}Policy"] = {"Type": "AWS::SQS::QueuePolicy", "Properties": {
                "Queues": [ref(q)],
                "PolicyDocument": policy(
                    allow("sqs:SendMessage", getatt(q, "Arn"), Sid="FromRequestsTopic",
                          Principal={"Service": "sns.amazonaws.com"},
                          Condition={"ArnEquals": {"aws:SourceArn": ref(subscriptions[q].topic)}}),
                    _deny_insecure("sqs:*", getatt(q, "Arn")),
                )}}
            r[f"{q}Subscription"] = {"Type": "AWS::SNS::Subscription", "Properties": {
                "TopicArn": ref(subscriptions[q].topic), "Protocol": "sqs", "Endpoint": getatt(q, "Arn"),
                "FilterPolicyScope": "MessageAttributes", "FilterPolicy": subscriptions[q].filter_policy,
                "RawMessageDelivery": False}}
            lane = "" if priority == "normal" else f" ({priority} priority)"
            o[f"{q}Url"] = output(ref(q), f"queue of runtime {rt.name}{lane}")
            o[f"{q}Arn"] = output(getatt(q, "Arn"))
            o[f"{dlq}Url"] = output(ref(dlq), f"dead-letter queue of runtime {rt.name}{lane}")


def _output_bucket(cfg: Config, n: Names, r: dict, o: dict) -> None:
    """The output bucket: private, TLS only, results expire with the config's retention."""
    r["OutputBucket"] = {"Type": "AWS::S3::Bucket", **RETAIN, "Properties": {
        "BucketName": sub(n.output_bucket) if "${" in n.output_bucket else n.output_bucket,
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        "LifecycleConfiguration": {"Rules": [
            {"Id": "expire-results", "Status": "Enabled", "ExpirationInDays": cfg.output.retention_days},
            {"Id": "abort-uploads", "Status": "Enabled", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
        ]}}}
    skip(r["OutputBucket"], "CKV_AWS_18", "CKV_AWS_21")
    r["OutputBucketPolicy"] = {"Type": "AWS::S3::BucketPolicy", "Properties": {
        "Bucket": ref("OutputBucket"),
        "PolicyDocument": policy(_deny_insecure("s3:*", [getatt("OutputBucket", "Arn"),
                                                         sub("${OutputBucket.Arn}/*")]))}}
    o["OutputBucket"] = output(ref("OutputBucket"))


def _tasks_table(n: Names, r: dict, o: dict) -> None:
    """The task store, encrypted with the topics' key, recoverable to a point in time."""
    r["TasksTable"] = {"Type": "AWS::DynamoDB::Table", **RETAIN, "Properties": {
        **tasks_table_properties(n.tasks_table),
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": getatt("TopicKey", "Arn")}}}
    o["TasksTable"] = output(ref("TasksTable"))
    o["TasksTableArn"] = output(getatt("TasksTable", "Arn"))


def _api_handler(cfg: Config, r: dict) -> None:
    """The API's Lambda function, its role and its log group."""
    function_name = f"{cfg.stack_name}-api"
    r["ApiHandlerLogGroup"] = {"Type": "AWS::Logs::LogGroup", "Properties": {
        "LogGroupName": f"/aws/lambda/{function_name}", "RetentionInDays": LOG_RETENTION_DAYS,
        "KmsKeyId": getatt("TopicKey", "Arn")}}
    r["ApiHandlerRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": trust("lambda.amazonaws.com"),
        "Policies": [{"PolicyName": "publish-tasks", "PolicyDocument": policies.api_handler(
            requests_topic=ref("RequestsTopic"), tasks_table=getatt("TasksTable", "Arn"),
            status_index=sub(f"${{TasksTable.Arn}}/index/{STATUS_INDEX}"),
            key=getatt("TopicKey", "Arn"), log_group=getatt("ApiHandlerLogGroup", "Arn"),
            webhooks_queue=getatt("WebhooksQueue", "Arn"),
            # API Gateway's resources have no account in their ARNs.
            api_keys=sub("arn:${AWS::Partition}:apigateway:${AWS::Region}::/apikeys/*"))}]}}
    r["ApiHandler"] = {"Type": "AWS::Lambda::Function", "DependsOn": ["ApiHandlerLogGroup"], "Properties": {
        "FunctionName": function_name,
        "Description": "sdctl: validate v1alpha2 tasks, record and publish them; task status and cancel",
        "Runtime": LAMBDA_RUNTIME, "Handler": "lambda_src.handler.handler", "Architectures": ["arm64"],
        "MemorySize": 256, "Timeout": 10,
        "Role": getatt("ApiHandlerRole", "Arn"),
        "Code": {"S3Bucket": ref("CodeBucket"), "S3Key": ref("CodeKey")},
        "Environment": {"Variables": handler_environment(
            topic_arn=ref("RequestsTopic"), bucket=ref("OutputBucket"),
            runtimes={rt.name: rt.type for rt in cfg.runtimes}, default_prefix=cfg.output.prefix,
            tasks_table=ref("TasksTable"), task_ttl_days=cfg.output.retention_days,
            webhook_queue_url=ref("WebhooksQueue"))},
        "TracingConfig": {"Mode": "Active"}}}

    skip(r["ApiHandler"], "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_115", "CKV_AWS_173")


def _deny_insecure(action: str, resource) -> dict:
    return {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": action,
            "Resource": resource, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
