"""The edge's messaging, described once: its queues, its topics and the lane subscriptions that
route one to the other. CloudFormation (builders/cfn/edge.py, webhooks.py) and the local stack
(builders/local_plan.py) both build theirs from these specs, so a new queue, topic or attribute
is written here and nowhere else. Pure.

Each runtime lane has a queue and its dead-letter queue; the webhook deliverer has one of each
too. What differs locally is said where it differs (``local_visibility_seconds``). The task
table's shape is written once too (cfn/edge.py ``tasks_table_properties``, which the local stack
creates its table from); the output bucket shares its name (builders/names.py), while its
encryption, ownership and TLS-only policy are AWS's alone: the emulator keeps no such settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sdctl.builders.cfn.base import sub
from sdctl.builders.names import (
    LOCAL_ACCOUNT,
    WEBHOOK_RECEIVES,
    Names,
    lane_filter,
    queue_ids,
    visibility_timeout,
)
from sdctl.contracts.tasks import PRIORITIES

#: A task (and a dead letter) waits at most 14 days, SQS's longest retention.
TASK_RETENTION_SECONDS = 14 * 86400
#: A webhook event waits 4 days: longer than its ~25 hours of retries.
WEBHOOK_RETENTION_SECONDS = 4 * 86400
#: The deliverer's visibility while it works on a batch: ten deliveries of at most 10 s each run
#: one after another, so a batch takes at most 100 s; SQS requires at least the function's
#: timeout (110 s), six times over for an event source (Lambda Developer Guide, "Using Lambda
#: with Amazon SQS": "set the source queue's visibility timeout to at least six times the
#: timeout that you configure on your function").
DELIVERY_TIMEOUT = 110


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    name: str
    retention_seconds: int
    visibility_seconds: int | None = None
    #: The local stack's visibility where it differs from AWS's, and why it may.
    local_visibility_seconds: int | None = None
    long_poll_seconds: int | None = None
    dead_letter: str | None = None  # the logical id of its dead-letter queue
    max_receive_count: int | None = None
    #: A dead-letter queue names the queues that may send it their dead letters, and no other
    #: may (RedriveAllowPolicy, "byQueue"): a stray queue cannot fill it, nor read as ours.
    redrive_sources: tuple[str, ...] = ()


def edge_queues(cfg, n: Names) -> list[QueueSpec]:
    """Every queue of the edge, each dead-letter queue before the queue that feeds it."""
    out = []
    for rt, rn in zip(cfg.runtimes, n.runtimes, strict=True):
        for priority, queue_name, dlq_name in rn.lanes():
            q, dlq = queue_ids(rt.name, priority)
            out.append(QueueSpec(dlq, dlq_name, TASK_RETENTION_SECONDS, redrive_sources=(queue_name,)))
            out.append(QueueSpec(q, queue_name, TASK_RETENTION_SECONDS,
                                 visibility_seconds=visibility_timeout(rt.max_task_seconds), long_poll_seconds=20,
                                 dead_letter=dlq, max_receive_count=rt.max_receive_count))
    out.append(QueueSpec("WebhooksDeadLetterQueue", n.webhooks_dead_letter_queue, TASK_RETENTION_SECONDS,
                         redrive_sources=(n.webhooks_queue,)))
    # Locally the deliverer is a loop, not a Lambda event source, and no function timeout
    # binds it: a delivery taken by a deliverer that died comes back in a minute, not eleven.
    out.append(QueueSpec("WebhooksQueue", n.webhooks_queue, WEBHOOK_RETENTION_SECONDS,
                         visibility_seconds=DELIVERY_TIMEOUT * 6, local_visibility_seconds=60,
                         dead_letter="WebhooksDeadLetterQueue", max_receive_count=WEBHOOK_RECEIVES))
    return out


@dataclass(frozen=True)
class TopicSpec:
    logical_id: str
    name: str


@dataclass(frozen=True)
class SubscriptionSpec:
    """A lane queue subscribed to the requests topic, taking only its runtime's and priority's
    tasks (a filter on the message attributes)."""

    topic: str  # logical ids
    queue: str
    filter_policy: dict


def edge_topics(n: Names) -> list[TopicSpec]:
    """Tasks go out on the requests topic; results (and webhook events) come back on the results topic."""
    return [TopicSpec("RequestsTopic", n.requests_topic), TopicSpec("ResultsTopic", n.results_topic)]


def lane_subscriptions(cfg) -> list[SubscriptionSpec]:
    return [SubscriptionSpec("RequestsTopic", queue_ids(rt.name, priority)[0], lane_filter(rt.name, priority))
            for rt in cfg.runtimes for priority in PRIORITIES]


def cfn_properties(spec: QueueSpec, dead_letter_arn) -> dict:
    """An AWS::SQS::Queue's Properties (``dead_letter_arn``: the expression of its DLQ's ARN)."""
    props = {"QueueName": spec.name}
    if spec.visibility_seconds is not None:
        props["VisibilityTimeout"] = spec.visibility_seconds
    props["MessageRetentionPeriod"] = spec.retention_seconds
    if spec.long_poll_seconds is not None:
        props["ReceiveMessageWaitTimeSeconds"] = spec.long_poll_seconds
    props["SqsManagedSseEnabled"] = True
    if spec.dead_letter:
        props["RedrivePolicy"] = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": spec.max_receive_count}
    if spec.redrive_sources:  # ARNs by name: a GetAtt of the source would make a cycle
        props["RedriveAllowPolicy"] = _redrive_allow(
            [sub(f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{name}")
             for name in spec.redrive_sources])
    return props


def _redrive_allow(source_arns: list) -> dict:
    return {"redrivePermission": "byQueue", "sourceQueueArns": source_arns}


def local_attributes(spec: QueueSpec, *, region: str, visibility_seconds: int | None = None) -> dict[str, str]:
    """The CreateQueue attributes the local stack gives the queue (``visibility_seconds``: the
    local stack's own override for the task queues; the dead-letter link is provisioned apart,
    once both queues exist). The local stack's clients pass their own long poll, so the queue's
    default wait stays 0 there."""
    attrs = {}
    visibility = visibility_seconds or spec.local_visibility_seconds or spec.visibility_seconds
    if visibility is not None:
        attrs["VisibilityTimeout"] = str(visibility)
    attrs["MessageRetentionPeriod"] = str(spec.retention_seconds)
    if spec.redrive_sources:
        attrs["RedriveAllowPolicy"] = json.dumps(_redrive_allow(
            [f"arn:aws:sqs:{region}:{LOCAL_ACCOUNT}:{name}" for name in spec.redrive_sources]))
    return attrs
