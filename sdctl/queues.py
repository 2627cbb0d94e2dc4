"""Queue operations: move dead-lettered tasks back to their runtime's queue."""

from __future__ import annotations


def queue_arn(sqs, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def redrive(sqs, dlq_url: str, queue_url: str, *, limit: int | None = None) -> dict:
    """Move messages from the dead-letter queue back. SQS's StartMessageMoveTask does it
    server-side; where that API is missing, receive/send/delete does (a crash between send and
    delete can repeat a task, which the agent's idempotent results absorb)."""
    fallback = "a limit was given"
    if limit is None:
        try:
            task = sqs.start_message_move_task(SourceArn=queue_arn(sqs, dlq_url),
                                               DestinationArn=queue_arn(sqs, queue_url))
            return {"method": "StartMessageMoveTask", "task_handle": task.get("TaskHandle"), "moved": None}
        except Exception as e:  # API missing or refused: the slower path below is always correct
            fallback = f"StartMessageMoveTask failed: {str(e).splitlines()[0][:120]}"
    moved = 0
    while limit is None or moved < limit:
        batch = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                    MessageAttributeNames=["All"], VisibilityTimeout=60).get("Messages", [])
        if not batch:
            break
        for m in batch[: None if limit is None else limit - moved]:
            kwargs = {"QueueUrl": queue_url, "MessageBody": m["Body"]}
            if m.get("MessageAttributes"):
                kwargs["MessageAttributes"] = m["MessageAttributes"]
            sqs.send_message(**kwargs)
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
            moved += 1
    return {"method": "receive-send-delete", "moved": moved, "why": fallback}


def depth(sqs, url: str) -> dict:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return {"visible": int(attrs["ApproximateNumberOfMessages"]),
            "in_flight": int(attrs["ApproximateNumberOfMessagesNotVisible"]),
            "delayed": int(attrs["ApproximateNumberOfMessagesDelayed"])}


