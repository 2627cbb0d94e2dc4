"""The result contract: images and the result document in S3 (keys from the task id only, so
a retry overwrites), the notification on the results topic, the task store's record; then the
message is deleted. A failure is reported the same way, or sent back for a retry."""

from __future__ import annotations

import json
import logging
import time

from sdctl.agent.cost import cost_usd
from sdctl.agent.failures import Cancelled, Expired, Refused, TaskFailure, TransientFailure
from sdctl.agent.stages import Job
from sdctl.contracts.tasks import notification, output_keys, wants_webhook
from sdctl.contracts.webhooks import webhook_message

log = logging.getLogger("sdctl.agent")


class Results:
    """Store and announce: a task's images and result document in S3, the notice on the results
    topic, its webhook event, its record in the task store; then its message is deleted (or,
    for a retry, released)."""

    def __init__(self, settings, *, s3, sns, sqs, store, lanes, metrics, clock, price_per_second=None) -> None:
        self.settings, self.s3, self.sns, self.sqs, self.store = settings, s3, sns, sqs, store
        self.lanes, self.metrics, self.clock = lanes, metrics, clock
        self.price_per_second: float | None = price_per_second  # this node's, when known (agent/cost.py)

    def finish(self, job: Job, result) -> str:
        """Store images and the result document, announce it, then delete the message."""
        message, task, ctx = job.message, job.task, job.ctx
        if isinstance(result, Refused):
            log.info("task was cancelled or expired before it ran; dropping it", extra=ctx)
            self.lanes.delete(message)
            return "cancelled"
        if isinstance(result, Cancelled | Expired):
            return self._ended(job, "cancelled" if isinstance(result, Cancelled) else "expired")
        if isinstance(result, TaskFailure):
            return self.fail(message, task, result, job.attempt, job.out_key, ctx)
        meta = task["metadata"]
        image_keys, out_key = output_keys(meta["prefix"], meta["id"], len(result.images), result.media_types)
        note = notification(task, status="completed", bucket=self.settings.bucket, image_keys=image_keys,
                            output_key=out_key, model=result.model)
        note.update(gpu_seconds=round(job.gpu_seconds, 3), cost_usd=cost_usd(job.gpu_seconds, self.price_per_second))
        document = {**note, "parameters": result.parameters, "info": result.info,
                    "seconds": {"runtime": round(job.runtime_seconds, 3),
                                "total": round(self.clock() - job.received, 3)},
                    "attempt": job.attempt, "notification": note}
        if result.metrics:  # the runtime's own, beside sdctl's seconds and cost
            document["metrics"] = result.metrics
        if result.value is not None:
            document["output"] = result.value
        try:
            types = list(result.media_types) + ["image/png"] * len(result.images)
            for key, data, kind in zip(image_keys, result.images, types, strict=False):
                self.s3.put_object(Bucket=self.settings.bucket, Key=key, Body=data, ContentType=kind)
            job.marks["stored"] = time.time()  # the document itself is the last write
            document["timeline"] = {k: round(v, 3) for k, v in job.marks.items()}
            self._put_json(out_key, document)
            self.publish(note, task)
        except Exception as e:
            log.warning("storing or notifying failed; the task will be retried", extra={**ctx, "error": str(e)})
            self.lanes.release(message)
            return "retry"
        if self.store:
            self.store.quietly("completed", self.store.complete, meta["id"], note, seconds=job.runtime_seconds,
                               seed=(result.info or {}).get("seed"))
        self.lanes.delete(message)
        self.metrics.task_seconds.observe(self.clock() - job.received)
        log.info("task completed", extra={**ctx, "images": len(image_keys),
                                          "seconds": document["seconds"]["total"]})
        return "completed"

    def _ended(self, job: Job, status: str) -> str:
        """Cancelled while running, or expired in the queue: no images; the `.out` document, the
        notice and the record say which, and the message is deleted."""
        why = ("cancelled by its caller while it ran; no images were stored" if status == "cancelled"
               else f"its deadline {job.task['metadata'].get('deadline')} passed before it started; it never ran")
        note = notification(job.task, status=status, bucket=self.settings.bucket, image_keys=[],
                            output_key=job.out_key, error={"code": status, "message": why})
        try:
            self._put_json(job.out_key, {**note, "notification": note, "attempt": job.attempt,
                                         "seconds": {"runtime": round(job.runtime_seconds, 3)}})
            self.publish(note, job.task)
        except Exception as e:
            log.warning(f"could not report the task {status}; it will be retried", extra={**job.ctx, "error": str(e)})
            self.lanes.release(job.message)
            return "retry"
        if self.store:
            self.store.quietly(status, self.store.end, job.task["metadata"]["id"], status,
                               seconds=job.runtime_seconds)
        log.info(f"task {status}", extra=job.ctx)
        self.lanes.delete(job.message)
        return status

    def fail(self, message: dict, task: dict, failure: TaskFailure, attempt: int, out_key: str, ctx: dict) -> str:
        own = _max_attempts(task)  # the task's own limit, if it set one below its queue's
        own = own if own is not None and own < self.lanes.max_receive_count else None
        last = attempt >= (own or self.lanes.max_receive_count)
        if isinstance(failure, TransientFailure) and not last:
            log.warning("transient failure; the task will be retried",
                        extra={**ctx, "code": failure.code, "error": failure.message})
            # A runtime that just came back is ready now: no backoff for the task it dropped.
            self.lanes.release(message, delay=0 if failure.code == "runtime-restarted" else min(2 ** attempt, 60))
            return "retry"
        error = failure.to_dict()
        if own is not None and isinstance(failure, TransientFailure):
            error["message"] += f" (its last attempt: maxAttempts {own})"
        note = notification(task, status="failed", bucket=self.settings.bucket, image_keys=[],
                            output_key=out_key, error=error)
        try:
            self._put_json(out_key, {**note, "notification": note, "attempt": attempt})
            self.publish(note, task)
        except Exception as e:
            log.warning("could not report the failure; the task will be retried",
                        extra={**ctx, "error": str(e)})
            self.lanes.release(message)
            return "retry"
        if self.store:
            self.store.quietly("failed", self.store.fail, task["metadata"]["id"], error, attempt=attempt)
        if isinstance(failure, TransientFailure) and self.lanes.has_dead_letter_queue and own is None:
            # Last allowed attempt: reported as failed; SQS moves it to the DLQ on its next receive.
            log.error("task failed on its last attempt; moving to the dead-letter queue",
                      extra={**ctx, "code": failure.code, "error": failure.message})
            self.lanes.release(message)
            return "dead-letter"
        log.error("task failed", extra={**ctx, "code": failure.code, "error": failure.message})
        self.lanes.delete(message)
        return "failed"

    def existing_result(self, key: str) -> dict | None:
        try:
            obj = self.s3.get_object(Bucket=self.settings.bucket, Key=key)
        except self.s3.exceptions.NoSuchKey:
            return None
        except Exception as e:  # the task then runs (again): results overwrite, nothing is lost
            log.warning("could not read an earlier result; running the task", extra={"key": key, "error": str(e)})
            return None
        try:
            return json.loads(obj["Body"].read())
        except ValueError as e:
            log.warning("an earlier result is not JSON; running the task again", extra={"key": key, "error": str(e)})
            return None

    def _put_json(self, key: str, document: dict) -> None:
        self.s3.put_object(Bucket=self.settings.bucket, Key=key, ContentType="application/json",
                           Body=json.dumps(document, separators=(",", ":")).encode())

    def publish(self, note: dict, task: dict, *, topic: bool = True) -> None:
        """The notice on the results topic, and the task's webhook event if it asked for this one."""
        if not note:
            return
        if wants_webhook(task, note["status"]) and self.settings.webhook_queue_url:
            self.sqs.send_message(QueueUrl=self.settings.webhook_queue_url,
                                  MessageBody=json.dumps(webhook_message(task["metadata"]["webhook"], note)))
        if not topic:
            return
        self.sns.publish(
            TopicArn=self.settings.topic_arn,
            Message=json.dumps(note, separators=(",", ":")),
            MessageAttributes={
                "runtime": {"DataType": "String", "StringValue": task["metadata"]["runtime"]},
                "status": {"DataType": "String", "StringValue": note["status"]},
            },
        )


def _max_attempts(task: dict) -> int | None:
    """metadata.maxAttempts where it is valid (the API checks it; a task published straight to
    the topic may carry anything, and then its queue's limit holds)."""
    value = task["metadata"].get("maxAttempts")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None
