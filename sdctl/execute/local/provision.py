"""Apply a local plan to the AWS emulator. Idempotent: every call is a create-or-get, so a
stack started again on the data of an earlier one (sdctl/execute/local/emulator/persist.py) gets its
queues, topics, bucket, table and webhook secret back as they were, with the plan's
attributes applied."""

from __future__ import annotations

import json


def provision(plan: dict, *, sns, sqs, s3, dynamodb=None, secretsmanager=None) -> dict:
    topic_arns = {t: sns.create_topic(Name=t)["TopicArn"] for t in plan["topics"]}
    queue_urls: dict[str, str] = {}
    queue_arns: dict[str, str] = {}
    for q in plan["queues"]:
        attrs = dict(q["attributes"])
        if q.get("dead_letter"):
            dl = q["dead_letter"]
            attrs["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": queue_arns[dl["queue"]],
                                                 "maxReceiveCount": str(dl["maxReceiveCount"])})
        try:
            url = sqs.create_queue(QueueName=q["name"], Attributes=attrs)["QueueUrl"]
        except sqs.exceptions.QueueNameExists:  # kept from before, with other attributes
            url = sqs.get_queue_url(QueueName=q["name"])["QueueUrl"]
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attrs)
        queue_urls[q["name"]] = url
        queue_arns[q["name"]] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
    for sub in plan["subscriptions"]:
        attrs = {"FilterPolicy": sub["filter"]} if sub["filter"] else {}
        arn = sns.subscribe(TopicArn=topic_arns[sub["topic"]], Protocol="sqs", Endpoint=queue_arns[sub["queue"]],
                            Attributes=attrs)["SubscriptionArn"]
        kept = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"].get("FilterPolicy")
        if sub["filter"] and kept != sub["filter"]:  # an existing subscription keeps its old filter
            sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicy",
                                            AttributeValue=sub["filter"])
    try:
        if plan["region"] == "us-east-1":
            s3.create_bucket(Bucket=plan["bucket"])
        else:
            s3.create_bucket(Bucket=plan["bucket"],
                             CreateBucketConfiguration={"LocationConstraint": plan["region"]})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    if dynamodb is not None:
        create_tasks_table(dynamodb, plan["tasks_table"])
    webhooks = None
    if secretsmanager is not None and plan.get("webhooks"):
        hooks = plan["webhooks"]
        try:
            secret = secretsmanager.create_secret(Name=hooks["secret"], SecretString=json.dumps(
                {"current": new_webhook_secret(), "previous": None, "rotated_at": 0}))["ARN"]
        except secretsmanager.exceptions.ResourceExistsException:  # receivers hold it: keep it
            secret = secretsmanager.describe_secret(SecretId=hooks["secret"])["ARN"]
        webhooks = {"queue_url": queue_urls[hooks["queue"]], "queue_arn": queue_arns[hooks["queue"]],
                    "dead_letter_queue_url": queue_urls[hooks["dead_letter_queue"]],
                    "dead_letter_queue_arn": queue_arns[hooks["dead_letter_queue"]], "secret_arn": secret}
    return {
        "webhooks": webhooks,
        "bucket": plan["bucket"],
        "tasks_table": plan["tasks_table"] if dynamodb is not None else None,
        "task_ttl_days": plan["task_ttl_days"],
        "prefix": plan["prefix"],
        "requests_topic_arn": topic_arns[plan["requests_topic"]],
        "results_topic_arn": topic_arns[plan["results_topic"]],
        "results_queue_url": queue_urls[plan["results_queue"]],
        "runtimes": {
            name: {**rt, "queue_url": queue_urls[rt["queue"]], "dead_letter_queue_url": queue_urls[rt["dead_letter_queue"]],
                   "queue_arn": queue_arns[rt["queue"]], "dead_letter_queue_arn": queue_arns[rt["dead_letter_queue"]],
                   "lanes": {p: {"queue_url": queue_urls[lane["queue"]], "queue_arn": queue_arns[lane["queue"]],
                                 "dead_letter_queue_url": queue_urls[lane["dead_letter_queue"]],
                                 "dead_letter_queue_arn": queue_arns[lane["dead_letter_queue"]]}
                             for p, lane in rt["lanes"].items()}}
            for name, rt in plan["runtimes"].items()
        },
    }


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 24 random bytes in base64."""
    import base64
    import secrets

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def create_tasks_table(dynamodb, name: str) -> None:
    """The task store, shaped as the edge stack shapes it (sdctl.builders.cfn.edge.tasks_table)."""
    from sdctl.builders.cfn.edge import tasks_table_properties

    props = tasks_table_properties(name)
    try:
        dynamodb.create_table(TableName=name, BillingMode=props["BillingMode"], KeySchema=props["KeySchema"],
                              AttributeDefinitions=props["AttributeDefinitions"],
                              GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"])
    except dynamodb.exceptions.ResourceInUseException:
        return
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"])
