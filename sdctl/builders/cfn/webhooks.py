"""The edge stack's webhook delivery: a queue of signed-delivery events (written by the queue
agents and the API handler), its dead-letter queue for undeliverable ones, the Standard
Webhooks signing secret, and the deliverer Lambda fed by the queue (lambda_src/webhooks.py).

The deliverer is off the GPU path: an agent only sends an SQS message; retries (about 25 h,
with backoff and jitter) happen in the deliverer by delaying the message's visibility.
"""

from __future__ import annotations

from sdctl.builders.cfn import policies
from sdctl.builders.cfn.base import LOG_RETENTION_DAYS, getatt, output, ref, trust
from sdctl.builders.cfn.skips import skip
from sdctl.builders.names import Names
from sdctl.builders.queues import DELIVERY_TIMEOUT, cfn_properties, edge_queues
from sdctl.config.model import Config
from sdctl.contracts.edge_env import deliverer_environment

LAMBDA_RUNTIME = "python3.12"


def resources(cfg: Config, n: Names, r: dict, o: dict, *, retain: dict, deny_insecure) -> None:
    specs = {q.logical_id: q for q in edge_queues(cfg, n)}
    for lid in ("WebhooksDeadLetterQueue", "WebhooksQueue"):
        r[lid] = {"Type": "AWS::SQS::Queue", **retain,
                  "Properties": cfn_properties(specs[lid], getatt("WebhooksDeadLetterQueue", "Arn"))}
    for q in ("WebhooksDeadLetterQueue", "WebhooksQueue"):
        skip(r[q], "CKV_AWS_27")
        r[f"{q}Policy"] = {"Type": "AWS::SQS::QueuePolicy", "Properties": {
            "Queues": [ref(q)], "PolicyDocument": {"Version": "2012-10-17",
                                                  "Statement": [deny_insecure("sqs:*", getatt(q, "Arn"))]}}}
        o[f"{q}Url"] = output(ref(q))
        o[f"{q}Arn"] = output(getatt(q, "Arn"))

    # The value is 32 letters and digits: valid base64 (24 bytes), presented as whsec_<value>.
    # Rotated by `sdctl webhooks secret --rotate`, which keeps the old secret signing for 24 h
    # (Standard Webhooks' rotation); a Secrets Manager rotation function would give no overlap.
    # No fixed Name: a deleted secret keeps its name reserved for its 7-30 day recovery window,
    # so a stack created again after `destroy` would fail on it.
    r["WebhookSecret"] = {"Type": "AWS::SecretsManager::Secret", "Properties": {
        "Description": "sdctl: signs webhook deliveries (Standard Webhooks); `sdctl webhooks secret`",
        "KmsKeyId": getatt("TopicKey", "Arn"),
        "GenerateSecretString": {"SecretStringTemplate": '{"previous": "", "rotated_at": 0}',
                                 "GenerateStringKey": "current", "PasswordLength": 32,
                                 "ExcludePunctuation": True}}}
    o["WebhookSecretArn"] = output(ref("WebhookSecret"), "rotate with `sdctl webhooks secret --rotate`")

    function_name = f"{cfg.stack_name}-webhooks"
    r["WebhookDelivererLogGroup"] = {"Type": "AWS::Logs::LogGroup", "Properties": {
        "LogGroupName": f"/aws/lambda/{function_name}", "RetentionInDays": LOG_RETENTION_DAYS,
        "KmsKeyId": getatt("TopicKey", "Arn")}}
    r["WebhookDelivererRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": trust("lambda.amazonaws.com"),
        "Policies": [{"PolicyName": "deliver-webhooks", "PolicyDocument": policies.webhook_deliverer(
            queue=getatt("WebhooksQueue", "Arn"), dead_letter_queue=getatt("WebhooksDeadLetterQueue", "Arn"),
            secret=ref("WebhookSecret"), key=getatt("TopicKey", "Arn"),
            log_group=getatt("WebhookDelivererLogGroup", "Arn"))}]}}
    r["WebhookDeliverer"] = {"Type": "AWS::Lambda::Function", "DependsOn": ["WebhookDelivererLogGroup"],
                             "Properties": {
        "FunctionName": function_name,
        "Description": "sdctl: sign and deliver task webhooks, with retries; park undeliverable ones",
        "Runtime": LAMBDA_RUNTIME, "Handler": "lambda_src.webhooks.handler", "Architectures": ["arm64"],
        "MemorySize": 256, "Timeout": DELIVERY_TIMEOUT,
        "Role": getatt("WebhookDelivererRole", "Arn"),
        "Code": {"S3Bucket": ref("CodeBucket"), "S3Key": ref("CodeKey")},
        "Environment": {"Variables": deliverer_environment(
            queue_url=ref("WebhooksQueue"), dead_letter_queue_url=ref("WebhooksDeadLetterQueue"),
            secret_arn=ref("WebhookSecret"))},
        "TracingConfig": {"Mode": "Active"}}}
    skip(r["WebhookDeliverer"], "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_115", "CKV_AWS_173")
    r["WebhookEvents"] = {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
        "FunctionName": ref("WebhookDeliverer"), "EventSourceArn": getatt("WebhooksQueue", "Arn"),
        "BatchSize": 10, "FunctionResponseTypes": ["ReportBatchItemFailures"]}}
