"""Queue operations: move dead-lettered tasks back to their runtime's queue."""

from __future__ import annotations

from sdctl.contracts.tasks import STATES, STATUS_INDEX, timestamp


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



def lanes_of(queues: dict) -> dict[str, dict]:
    """A runtime's queues by priority lane (a deployment from before lanes has only one)."""
    return queues.get("lanes") or {"normal": {"queue_url": queues["queue_url"],
                                              "dead_letter_queue_url": queues["dead_letter_queue_url"]}}


def snapshot(sqs, dynamodb, table: str | None, runtime: str, queues: dict, *,
             now: float | None = None, window: float = 60.0) -> dict:
    """One runtime's queues at a glance: depths from SQS, summed over its priority lanes and
    per lane; the oldest queued task's age and the arrival and completion rates (per minute,
    over the last `window` seconds) from the task store."""
    import time

    now = time.time() if now is None else now
    per_lane = {p: {**depth(sqs, lane["queue_url"]), "dead_letter": depth(sqs, lane["dead_letter_queue_url"])["visible"]}
                for p, lane in lanes_of(queues).items()}
    row = {"runtime": runtime, **{k: sum(v[k] for v in per_lane.values())
                                  for k in ("visible", "in_flight", "delayed", "dead_letter")},
           "lanes": per_lane, "oldest_age_s": None, "arrivals_per_min": None, "completions_per_min": None}
    if table:
        row.update(_store_view(dynamodb, table, runtime, now, window))
    return row


def _iso(t: float) -> str:
    from datetime import UTC, datetime

    return timestamp(datetime.fromtimestamp(t, UTC))


def _count(dynamodb, table: str, status: str, runtime: str, since: str, extra: str = "", values=None) -> int:
    values = {":s": {"S": status}, ":since": {"S": since}, ":r": {"S": runtime}, **(values or {})}
    names = {"#s": "status", "#c": "created_at", "#r": "runtime"}
    if extra:
        names["#f"] = "finished_at"
    total = 0
    for page in dynamodb.get_paginator("query").paginate(
            TableName=table, IndexName=STATUS_INDEX, Select="COUNT", KeyConditionExpression="#s = :s AND #c >= :since",
            FilterExpression="#r = :r" + extra, ExpressionAttributeNames=names, ExpressionAttributeValues=values):
        total += page["Count"]
    return total


def _store_view(dynamodb, table: str, runtime: str, now: float, window: float) -> dict:
    from datetime import datetime

    oldest = None
    for page in dynamodb.get_paginator("query").paginate(
            TableName=table, IndexName=STATUS_INDEX, KeyConditionExpression="#s = :q", FilterExpression="#r = :r",
            ExpressionAttributeNames={"#s": "status", "#r": "runtime"},
            ExpressionAttributeValues={":q": {"S": "queued"}, ":r": {"S": runtime}}, ScanIndexForward=True):
        if page.get("Items"):
            oldest = page["Items"][0]["created_at"]["S"]
            break
    since = _iso(now - window)
    arrivals = sum(_count(dynamodb, table, s, runtime, since)
                   for s in STATES)
    # A task completing in the window was created at most its queue wait + run time earlier; a day bounds it.
    completions = _count(dynamodb, table, "completed", runtime, _iso(now - 86400), " AND #f >= :w",
                         {":w": {"S": since}})
    age = None
    if oldest:
        age = round(now - datetime.fromisoformat(oldest.replace("Z", "+00:00")).timestamp(), 1)
    per_min = 60.0 / window
    return {"oldest_age_s": age, "arrivals_per_min": round(arrivals * per_min, 1),
            "completions_per_min": round(completions * per_min, 1)}


def purge(sqs, dynamodb, table: str | None, runtime: str, queues: dict) -> dict:
    """Delete every message in the runtime's queues (every lane); mark its queued tasks
    cancelled in the store, so no record claims a task that will never run."""
    for lane in lanes_of(queues).values():
        sqs.purge_queue(QueueUrl=lane["queue_url"])
    marked = 0
    if table:
        for page in dynamodb.get_paginator("query").paginate(
                TableName=table, IndexName=STATUS_INDEX, KeyConditionExpression="#s = :q", FilterExpression="#r = :r",
                ExpressionAttributeNames={"#s": "status", "#r": "runtime"},
                ExpressionAttributeValues={":q": {"S": "queued"}, ":r": {"S": runtime}}):
            for item in page.get("Items", []):
                try:
                    dynamodb.update_item(
                        TableName=table, Key={"id": item["id"]}, ConditionExpression="#s = :q",
                        UpdateExpression="SET #s = :c, #e = :why",
                        ExpressionAttributeNames={"#s": "status", "#e": "error"},
                        ExpressionAttributeValues={":q": {"S": "queued"}, ":c": {"S": "cancelled"},
                                                   ":why": {"M": {"code": {"S": "purged"},
                                                                  "message": {"S": "the queue was purged"}}}})
                    marked += 1
                except dynamodb.exceptions.ConditionalCheckFailedException:
                    pass
    return {"runtime": runtime, "purged": True, "tasks_cancelled": marked}
