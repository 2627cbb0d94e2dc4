"""The local stack's webhook delivery: what AWS Lambda's SQS event source does for the deployed
deliverer. It long-polls the webhooks queue, hands each batch to the real function
(lambda_src/webhooks.py) as the SQS event Lambda would build, and deletes the messages the
function did not report as failed (ReportBatchItemFailures). Run by the supervisor:

    python -m sdctl.execute.local.webhooks
"""

from __future__ import annotations

import signal
import time

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from sdctl.contracts.edge_env import DelivererEnv


def event(messages: list[dict]) -> dict:
    """The Lambda SQS event for received messages (the fields the deliverer reads)."""
    return {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                         "attributes": {"ApproximateReceiveCount": m["Attributes"]["ApproximateReceiveCount"]},
                         "eventSource": "aws:sqs"} for m in messages]}


def main() -> None:
    from lambda_src import webhooks

    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(flag=True))
    signal.signal(signal.SIGINT, lambda *a: stop.update(flag=True))
    sqs = boto3.client("sqs")
    queue = DelivererEnv.read().queue_url
    pause = 0.0
    while not stop["flag"]:
        try:
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                           AttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
        except (BotoCoreError, ClientError) as e:  # the emulator restarting: Lambda's poller waits too
            pause = min(5.0, max(0.2, pause * 2))
            print(f"receive failed ({type(e).__name__}); retrying in {pause:.1f}s", flush=True)
            time.sleep(pause)
            continue
        pause = 0.0
        if not messages:
            continue
        failed = {f["itemIdentifier"] for f in webhooks.handler(event(messages), None)["batchItemFailures"]}
        done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(QueueUrl=queue, Entries=done)


if __name__ == "__main__":
    main()
