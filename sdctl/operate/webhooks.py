"""The stack's webhooks, for `sdctl webhooks`: the signing secret (show, rotate) in Secrets
Manager, and the undeliverable events in the webhooks dead-letter queue (list, send again).

A rotation keeps the old secret as `previous`; the deliverer signs with both for
ROTATION_OVERLAP_SECONDS (24 h), so receivers can switch keys without missing a delivery.
"""

from __future__ import annotations

import json
import time

from sdctl.contracts.webhooks import ROTATION_OVERLAP_SECONDS
from sdctl.errors import SdctlError


def _prefixed(value: str | None) -> str | None:
    return None if not value else (value if value.startswith("whsec_") else f"whsec_{value}")


def secret(sm, arn: str) -> dict:
    doc = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
    rotated = float(doc.get("rotated_at") or 0)
    overlapping = bool(doc.get("previous")) and time.time() - rotated < ROTATION_OVERLAP_SECONDS
    return {"current": _prefixed(doc["current"]), "previous": _prefixed(doc.get("previous")) if overlapping else None,
            "rotated_at": int(rotated) or None,
            "previous_signs_until": int(rotated + ROTATION_OVERLAP_SECONDS) if overlapping else None}


def rotate(sm, arn: str) -> dict:
    """A new current secret; the old one keeps signing beside it for the overlap."""
    import base64
    import secrets

    doc = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
    new = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    sm.put_secret_value(SecretId=arn, SecretString=json.dumps(
        {"current": new, "previous": _prefixed(doc["current"]), "rotated_at": int(time.time())}))
    return secret(sm, arn)


def _drain(sqs, url: str) -> list[dict]:
    """Every message now in the queue, held for a minute (released or deleted by the caller)."""
    found, seen = [], set()
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                    WaitTimeSeconds=1).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            return found
        seen.update(m["MessageId"] for m in fresh)
        found += fresh


def _release(sqs, url: str, messages: list[dict]) -> None:
    for m in messages:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)


def _row(m: dict) -> dict:
    try:
        body = json.loads(m["Body"])
    except ValueError:
        body = {}
    failure = body.get("failure") or {}
    data = (body.get("payload") or {}).get("data") or {}
    return {"id": body.get("id"), "task": data.get("id"), "type": (body.get("payload") or {}).get("type"),
            "url": body.get("url"), "reason": failure.get("reason"), "attempts": failure.get("attempts"),
            "failed_at": failure.get("at")}


def failed(sqs, dead_letter_queue_url: str) -> list[dict]:
    messages = _drain(sqs, dead_letter_queue_url)
    _release(sqs, dead_letter_queue_url, messages)
    return sorted((_row(m) for m in messages), key=lambda r: (r["failed_at"] or 0, r["id"] or ""))


def replay(sqs, dead_letter_queue_url: str, queue_url: str, ids: list[str] | None) -> list[str]:
    """Send the named undeliverable events (all of them with ids=None) to the deliverer again,
    with a fresh retry schedule; each leaves the dead-letter queue once it is queued again."""
    messages = _drain(sqs, dead_letter_queue_url)
    chosen = [m for m in messages if ids is None or _row(m)["id"] in ids]
    _release(sqs, dead_letter_queue_url, [m for m in messages if m not in chosen])
    missing = sorted(set(ids or []) - {_row(m)["id"] for m in chosen})
    done = []
    for m in chosen:
        body = json.loads(m["Body"])
        body.pop("failure", None)
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
        sqs.delete_message(QueueUrl=dead_letter_queue_url, ReceiptHandle=m["ReceiptHandle"])
        done.append(body.get("id"))
    if missing:
        raise SdctlError(f"no undeliverable webhook {', '.join(missing)}" + (f" (sent again: {', '.join(done)})"
                                                                           if done else ""),
                         hint="list them with `sdctl webhooks failed`")
    return done
