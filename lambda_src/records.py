"""Task records as the API handler writes and reads them in the task table (DynamoDB's typed
items to plain JSON values and back)."""

from __future__ import annotations

import json

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer


def key(task_id: str) -> dict:
    return {"id": {"S": task_id}}


def serialise(item: dict) -> dict:
    ser = TypeSerializer()
    return {k: ser.serialize(v) for k, v in item.items()}


def deserialise(item: dict) -> dict:
    de = TypeDeserializer()
    out = {k: de.deserialize(v) for k, v in item.items()}
    out.pop("expires_at", None)
    return json.loads(json.dumps(out, default=_number))


def _number(value):
    """DynamoDB numbers come back as Decimal."""
    return int(value) if value == int(value) else float(value)
