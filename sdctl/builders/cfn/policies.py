"""The IAM policies each component runs with, written once.

The CloudFormation builders grant them with intrinsic references (Ref, GetAtt, Sub); the
local stack grants the very same documents with the ARNs it provisioned, to the credentials
each local process signs with (sdctl/execute/local/iam.py), and moto enforces them there. So a
permission a component lacks on AWS is a failed local test first. Pure: ARNs in, documents out.
"""

from __future__ import annotations

from sdctl.builders.cfn.base import allow, policy

#: What the API handler does to a task record (conditional put, read, cancel, undo on failure).
HANDLER_TABLE_ACTIONS = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
#: What a queue agent does with its runtime's queue.
AGENT_QUEUE_ACTIONS = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                       "sqs:GetQueueAttributes"]


def api_handler(*, requests_topic, tasks_table, status_index, key, log_group, webhooks_queue, api_keys) -> dict:
    """The API Lambda: publish tasks, keep their records, count a queued task's place in line
    (Query on the status index: AWS authorizes it against the index's own ARN), queue the
    `cancelled` webhook of a task cancelled while queued, read the caller's API key (its
    client tag, recorded on the task), write its logs and traces."""
    return policy(
        allow("sns:Publish", requests_topic),
        allow("apigateway:GET", api_keys),
        allow("sqs:SendMessage", webhooks_queue),
        allow(HANDLER_TABLE_ACTIONS, tasks_table),
        allow("dynamodb:Query", status_index),
        allow(["kms:GenerateDataKey*", "kms:Decrypt"], key),
        allow(["logs:CreateLogStream", "logs:PutLogEvents"], log_group),
        # TracingConfig Active: Lambda checks at CreateFunction that the role may send traces.
        allow(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*"),
    )


def runtime_workload(*, queue, output_bucket, output_objects, results_topic, tasks_table, key, webhooks_queue,
                     model_objects=None) -> dict:
    """One runtime's pods (the queue agent beside the runtime): its own queue, the output
    bucket, the results topic, the task store, the webhooks queue (send only), and the model
    bucket read-only."""
    statements = [
        allow(AGENT_QUEUE_ACTIONS, queue),
        allow("sqs:SendMessage", webhooks_queue),
        allow(["s3:PutObject", "s3:GetObject"], output_objects),
        allow("s3:ListBucket", output_bucket),
        allow("sns:Publish", results_topic),
        allow(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"], tasks_table),
        allow(["kms:GenerateDataKey*", "kms:Decrypt"], key),
    ]
    if model_objects is not None:
        statements.append(allow("s3:GetObject", model_objects))
    return policy(*statements)


def webhook_deliverer(*, queue, dead_letter_queue, secret, key, log_group) -> dict:
    """The webhook Lambda: take events from its queue (and delay their retries), park the
    undeliverable ones in the dead-letter queue, read the signing secret, write its logs."""
    return policy(
        allow(AGENT_QUEUE_ACTIONS, queue),
        allow("sqs:SendMessage", dead_letter_queue),
        allow("secretsmanager:GetSecretValue", secret),
        allow(["kms:GenerateDataKey*", "kms:Decrypt"], key),
        allow(["logs:CreateLogStream", "logs:PutLogEvents"], log_group),
        allow(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*"),
    )


def keda_operator(queues: list) -> dict:
    """KEDA's operator: queue depth (visible and in flight) and nothing else."""
    return policy(allow("sqs:GetQueueAttributes", queues))
