"""The image API's Lambda handler (API Gateway REST proxy integration).

Runs in the Lambda Python runtime: standard library and boto3 only, and no import of the
sdctl CLI. Configured by environment:

- SNS_TOPIC_ARN: the requests topic tasks are published to
- S3_BUCKET: the output bucket (for the returned output_location)
- RUNTIMES: JSON object mapping each deployed runtime name to its type
- DEFAULT_PREFIX: key prefix when a task gives none (default "output")

POST /v1alpha2 with {"task": {"metadata": {...}, "content": {...}}}: validate, publish the
task on the requests topic with message attribute `runtime`, answer 200
{"id", "runtime", "output_location"}. Every rejection is a 400 naming the field, and
nothing is published.
"""

from __future__ import annotations

import base64
import json
import os
import re

import boto3

SNS_MAX_BYTES = 262144
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9!_.*'()-]+$")
TASK_TYPES = {
    "sdwebui": ("text-to-image", "image-to-image", "extra-single-image"),
    "diffusers": ("text-to-image", "image-to-image", "extra-single-image"),
    "comfyui": ("pipeline",),
}
METADATA_KEYS = {"id", "runtime", "tasktype", "prefix", "context"}

_sns = None


class Invalid(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def handler(event, context):
    try:
        method = (event.get("httpMethod") or "").upper()
        resource = event.get("resource") or event.get("path") or "/v1alpha2"
        if resource.rstrip("/") != "/v1alpha2":
            return _response(404, {"message": f"no route for {resource}"})
        if method != "POST":
            return _response(405, {"message": f"method {method or '?'} not allowed; use POST"},
                             {"Allow": "POST"})
        return _submit(event)
    except Invalid as e:
        return _response(400, {"message": e.message, "field": e.field})


def _submit(event):
    task = validate(_body(event), _runtimes())
    meta = task["metadata"]
    message = json.dumps(task, separators=(",", ":"))
    attributes = {"runtime": {"DataType": "String", "StringValue": meta["runtime"]}}
    size = len(message.encode("utf-8")) + len("runtime") + len("String") + len(meta["runtime"].encode())
    if size > SNS_MAX_BYTES:
        raise Invalid("task", f"task is {size} bytes; the limit is {SNS_MAX_BYTES} (256 KiB). "
                              "Pass large inputs as s3:// URLs instead of inline data")
    _client().publish(TopicArn=os.environ["SNS_TOPIC_ARN"], Message=message,
                      MessageAttributes=attributes)
    bucket = os.environ.get("S3_BUCKET", "")
    return _response(200, {
        "id": meta["id"],
        "runtime": meta["runtime"],
        "output_location": f"s3://{bucket}/{meta['prefix']}/{meta['id']}",
    })


def validate(body, runtimes: dict) -> dict:
    """Check a request body against the wire contract; return the normalised task."""
    if not isinstance(body, dict):
        raise Invalid("body", "the body must be a JSON object")
    task = body.get("task")
    if not isinstance(task, dict):
        raise Invalid("task", "'task' must be an object with 'metadata' and 'content'")
    unknown = sorted(set(task) - {"metadata", "content"})
    if unknown:
        raise Invalid(f"task.{unknown[0]}", f"unknown field task.{unknown[0]}")
    meta = task.get("metadata")
    if not isinstance(meta, dict):
        raise Invalid("task.metadata", "'task.metadata' must be an object")
    unknown = sorted(set(meta) - METADATA_KEYS)
    if unknown:
        raise Invalid(f"task.metadata.{unknown[0]}", f"unknown field task.metadata.{unknown[0]}")
    for key in ("id", "runtime"):
        value = meta.get(key)
        if not isinstance(value, str) or not ID_PATTERN.match(value):
            raise Invalid(f"task.metadata.{key}",
                          f"task.metadata.{key} must be 1-64 letters, digits, '-' or '_'")
    runtime = meta["runtime"]
    if runtime not in runtimes:
        known = ", ".join(sorted(runtimes)) or "none"
        raise Invalid("task.metadata.runtime", f"unknown runtime {runtime!r}; deployed: {known}")
    allowed = TASK_TYPES.get(runtimes[runtime], ())
    tasktype = meta.get("tasktype")
    if tasktype not in allowed:
        raise Invalid("task.metadata.tasktype",
                      f"task.metadata.tasktype must be one of {', '.join(allowed)} "
                      f"for a {runtimes[runtime]} runtime")
    prefix = meta.get("prefix", os.environ.get("DEFAULT_PREFIX", "output"))
    if not isinstance(prefix, str) or not _safe_prefix(prefix):
        raise Invalid("task.metadata.prefix",
                      "task.metadata.prefix must be a relative S3 key prefix: segments of "
                      "letters, digits and !_.*'()- separated by '/', no '.' or '..', no leading '/'")
    content = task.get("content")
    if not isinstance(content, dict):
        raise Invalid("task.content", "'task.content' must be an object (the runtime's request)")
    normalised = {"id": meta["id"], "runtime": runtime, "tasktype": tasktype,
                  "prefix": prefix.rstrip("/"), "context": meta.get("context", "")}
    return {"metadata": normalised, "content": content}


def _safe_prefix(prefix: str) -> bool:
    if not prefix or len(prefix) > 512 or prefix.startswith("/"):
        return False
    return all(p not in (".", "..") and PREFIX_SEGMENT.match(p) for p in prefix.rstrip("/").split("/"))


def _body(event):
    raw = event.get("body")
    if raw is None or raw == "":
        raise Invalid("body", "the request body is empty; send a JSON task")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw)
        except ValueError:
            raise Invalid("body", "the body is not valid base64") from None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise Invalid("body", f"the body is not valid JSON: {e}") from None


def _runtimes() -> dict:
    return json.loads(os.environ.get("RUNTIMES", "{}"))


def _client():
    global _sns
    if _sns is None:
        _sns = boto3.client("sns")
    return _sns


def _response(status: int, body: dict, headers: dict | None = None) -> dict:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body),
    }
