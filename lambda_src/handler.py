"""The image API's Lambda handler (API Gateway REST proxy integration).

Runs in the Lambda Python runtime: standard library, boto3 and sdctl's contracts (shipped in
its zip; sdctl/execute/aws/artifacts.py), nothing else of sdctl. Configured by environment:
sdctl/contracts/edge_env.py (HandlerEnv) says what it reads.

POST /v1alpha2 with {"task": {"metadata": {...}, "content": {...}}}: validate, record the
task as `queued` (a conditional put: an id already used answers 409 with that task's
status, and nothing is published), publish it on the requests topic with message
attribute `runtime`, answer 200 {"id", "runtime", "output_location"}. Every rejection is
a 400 naming the field, and nothing is published.

Optional, additive to v1alpha2: `metadata.deadline` (RFC 3339) or `metadata.ttlSeconds`: a
task still queued then never runs and ends `expired`; `metadata.deadlinePolicy: interrupt`
also stops it if it is running then.

GET /v1alpha2/tasks/{id}: the task's record. DELETE /v1alpha2/tasks/{id}: a queued task is
`cancelled` at once (200); a running one is marked `cancel_requested` and its agent interrupts
the runtime within seconds (202); a finished one answers 409 with its status.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lambda_src.place import position
from sdctl.contracts import record
from sdctl.contracts.edge_env import HandlerEnv
from sdctl.contracts.request import Invalid
from sdctl.contracts.request import validate as contract_validate
from sdctl.contracts.tasks import (
    CLIENT_TAG,
    DEFAULT_CLIENT,
    DEFAULT_PRIORITY,
    ID_PATTERN,
    notification,
    result_key,
    timestamp,
)
from sdctl.contracts.webhooks import webhook_message

SNS_MAX_BYTES = 262144
#: Each AWS call gives up in seconds, so a brownout answers 503 well inside API Gateway's 29 s
#: integration timeout (which would answer 504 with no word on whether the task was taken).
AWS_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})
RETRY_AFTER_SECONDS = 2
#: What AWS answers when it is overloaded or briefly unable: the caller should come back.
UNAVAILABLE_CODES = {"ThrottlingException", "Throttling", "ThrottledException", "ProvisionedThroughputExceededException",
                     "RequestLimitExceeded", "ServiceUnavailable", "InternalError", "InternalFailure",
                     "InternalServerError", "KMSThrottlingException", "TransactionInProgressException"}

_clients: dict = {}
PROMPT_CHARS = 500  # kept in the task record for listings and the gallery
#: API key id -> its client's name (the key's `sdctl:client` tag). Keys never change tags, a
#: rotated key has a new id, and a revoked one never reaches the handler: entries stay valid.
_callers: dict[str, str] = {}
CALLERS_MAX = 1000


def caller(event) -> str | None:
    """The client whose API key made this request, or None (no key id, or the lookup failed:
    the task is still taken, without a client)."""
    key_id = ((event.get("requestContext") or {}).get("identity") or {}).get("apiKeyId")
    if not key_id:
        return None
    if key_id not in _callers:
        try:
            tags = _client("apigateway").get_api_key(apiKey=key_id).get("tags") or {}
        except (BotoCoreError, ClientError) as e:
            print(json.dumps({"level": "warning", "msg": "cannot read the caller's API key", "error": str(e)}))
            return None
        if len(_callers) >= CALLERS_MAX:
            _callers.clear()
        _callers[key_id] = tags.get(CLIENT_TAG) or DEFAULT_CLIENT
    return _callers[key_id]


def handler(event, context):
    try:
        method = (event.get("httpMethod") or "").upper()
        resource = (event.get("resource") or event.get("path") or "/v1alpha2").rstrip("/")
        if resource == "/v1alpha2":
            if method != "POST":
                return _response(405, {"message": f"method {method or '?'} not allowed; use POST"},
                                 {"Allow": "POST"})
            return _submit(event)
        if resource == "/v1alpha2/tasks/{id}":
            task_id = (event.get("pathParameters") or {}).get("id") or ""
            if not ID_PATTERN.match(task_id):
                raise Invalid("id", "the task id must be 1-64 letters, digits, '-' or '_'")
            if not HandlerEnv.read().tasks_table:
                return _response(501, {"message": "this deployment has no task store"})
            if method == "GET":
                return _get(task_id)
            if method == "DELETE":
                return _cancel(task_id)
            return _response(405, {"message": f"method {method or '?'} not allowed; use GET or DELETE"},
                             {"Allow": "GET, DELETE"})
        return _response(404, {"message": f"no route for {resource}"})
    except Invalid as e:
        return _response(400, {"message": e.message, "field": e.field})
    except (BotoCoreError, ClientError) as e:
        code = e.response.get("Error", {}).get("Code", "") if isinstance(e, ClientError) else type(e).__name__
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) if isinstance(e, ClientError) else 0
        if isinstance(e, BotoCoreError) or code in UNAVAILABLE_CODES or status >= 500:
            print(json.dumps({"level": "warning", "msg": "AWS unavailable; answering 503", "error": str(e)}))
            return _response(503, {"message": "the service is briefly unavailable; nothing was queued that a "
                                              "retry with the same id would repeat: retry it", "retryable": True},
                             {"Retry-After": str(RETRY_AFTER_SECONDS)})
        raise


def _submit(event):
    task = validate(_body(event), _runtimes())
    meta = task["metadata"]
    message = json.dumps(task, separators=(",", ":"))
    attributes = {"runtime": {"DataType": "String", "StringValue": meta["runtime"]},
                  # Which of the runtime's queues (lanes) it goes to; SNS filters on it.
                  "priority": {"DataType": "String", "StringValue": meta.get("priority", DEFAULT_PRIORITY)}}
    size = len(message.encode("utf-8")) + sum(len(k) + len("String") + len(v["StringValue"].encode())
                                               for k, v in attributes.items())
    if size > SNS_MAX_BYTES:
        raise Invalid("task", f"task is {size} bytes; the limit is {SNS_MAX_BYTES} (256 KiB). "
                              "Pass large inputs as s3:// URLs instead of inline data")
    env = HandlerEnv.read()
    bucket, table = env.bucket, env.tasks_table
    digest = hashlib.sha256(message.encode()).hexdigest()
    if table:
        existing = _record(table, task, bucket, digest, client=caller(event))
        retry = existing is not None and existing.get("publishing") and existing.get("request_hash") == digest
        if existing is not None and not retry:
            return _response(409, {"message": f"task {meta['id']} already exists ({existing.get('status')}); "
                                              "use a new id to run it again",
                                   "id": meta["id"], "status": existing.get("status")})
    try:
        _client("sns").publish(TopicArn=env.topic_arn, Message=message,
                               MessageAttributes=attributes)
    except Exception:
        if table:  # not queued after all: take the record back so the id can be retried
            _client("dynamodb").delete_item(TableName=table, Key=record.key(meta["id"]),
                                            ConditionExpression="#s = :queued",
                                            ExpressionAttributeNames={"#s": "status"},
                                            ExpressionAttributeValues={":queued": {"S": "queued"}})
        raise
    if table:  # published: a later POST of this id is a 409 again
        _client("dynamodb").update_item(TableName=table, Key=record.key(meta["id"]),
                                        **record.update(remove=("publishing",)))
    return _response(200, {
        "id": meta["id"],
        "runtime": meta["runtime"],
        "output_location": f"s3://{bucket}/{meta['prefix']}/{meta['id']}",
    })


def _record(table: str, task: dict, bucket: str, digest: str, *, client: str | None = None) -> dict | None:
    """Write the `queued` record unless the id exists; return the existing record if it does.

    The record is `publishing` (with the request's hash) until the publish is known to have
    happened. If AWS failed in between so that neither the publish nor taking the record back
    is known to have worked, the same request sent again is published again rather than
    refused, so a retry after a 503 always succeeds; if the first publish had gone through
    after all, the agent drops the second copy as a repeat (sdctl/agent/stages.py). Any
    other reuse of an id is a 409."""
    meta, content = task["metadata"], task["content"]
    now = timestamp()
    item = {"id": meta["id"], "status": "queued", "runtime": meta["runtime"], "tasktype": meta["tasktype"],
            "prefix": meta["prefix"], "created_at": now, "updated_at": now, "attempts": 0,
            "output_url": f"s3://{bucket}/{result_key(meta['prefix'], meta['id'])}",
            "expires_at": int(time.time()) + 86400 * HandlerEnv.read().task_ttl_days,
            "request_hash": digest, "publishing": True}
    if isinstance(content.get("prompt"), str):
        item["prompt"] = content["prompt"][:PROMPT_CHARS]
    if isinstance(content.get("seed"), int):
        item["seed"] = content["seed"]
    if meta.get("deadline"):
        item["deadline"] = meta["deadline"]
    if meta.get("webhook"):
        item["webhook"] = meta["webhook"]
    item["priority"] = meta.get("priority", DEFAULT_PRIORITY)
    if client:
        item["client"] = client
    db = _client("dynamodb")
    try:
        db.put_item(TableName=table, Item=record.item(**item), ConditionExpression="attribute_not_exists(id)")
        return None
    except db.exceptions.ConditionalCheckFailedException:
        return _load(table, meta["id"]) or {"status": "unknown"}


def _load(table: str, task_id: str, *, private: bool = True) -> dict | None:
    found = _client("dynamodb").get_item(TableName=table, Key=record.key(task_id), ConsistentRead=True).get("Item")
    return record.plain(found, private=private) if found else None


def _get(task_id: str):
    table = HandlerEnv.read().tasks_table
    found = _load(table, task_id, private=False)  # not the handler's own bookkeeping
    if found is None:
        return _response(404, {"message": f"no task {task_id} (never submitted, or expired)", "id": task_id})
    if found.get("status") == "queued" and found.get("created_at"):
        found["queue"] = position(_client("dynamodb"), table, found)
    return _response(200, found)


def _cancel(task_id: str):
    """Queued: cancelled now. Running: ask its agent to interrupt the runtime (it records
    `cancelled` when the call has stopped, within seconds). Finished: 409."""
    table = HandlerEnv.read().tasks_table
    db = _client("dynamodb")
    try:
        now = timestamp()
        db.update_item(TableName=table, Key=record.key(task_id), **record.update(
            set={"status": "cancelled", "updated_at": now, "finished_at": now},
            condition="#status = :queued", values={"queued": "queued"}))
        _announce_cancelled(table, task_id)
        return _response(200, {"id": task_id, "status": "cancelled"})
    except db.exceptions.ConditionalCheckFailedException:
        pass
    try:
        db.update_item(TableName=table, Key=record.key(task_id), **record.update(
            set={"cancel_requested": True, "updated_at": timestamp()},
            condition="#status = :running", values={"running": "running"}))
        return _response(202, {"id": task_id, "status": "running", "cancel_requested": True,
                               "message": "the runtime is being interrupted; the task ends cancelled"})
    except db.exceptions.ConditionalCheckFailedException:
        found = _load(table, task_id)
    if found is None:
        return _response(404, {"message": f"no task {task_id} (never submitted, or expired)", "id": task_id})
    return _response(409, {"message": f"task {task_id} is {found['status']}; only queued or running tasks "
                                      "can be cancelled", "id": task_id, "status": found["status"]})


def _announce_cancelled(table: str, task_id: str) -> None:
    """The `cancelled` webhook of a task cancelled while queued (no agent will announce it)."""
    found = _load(table, task_id) or {}
    hook = found.get("webhook")
    env = HandlerEnv.read()
    if not hook or "cancelled" not in hook.get("events", []) or not env.webhook_queue_url:
        return
    bucket = env.bucket
    task = {"metadata": {"id": task_id, "runtime": found.get("runtime"),
                         "prefix": found.get("prefix") or HandlerEnv.read().default_prefix}}
    note = notification(task, status="cancelled", bucket=bucket, image_keys=[],
                        output_key=result_key(task["metadata"]["prefix"], task_id),
                        error={"code": "cancelled", "message": "cancelled by its caller before it ran"})
    _client("sqs").send_message(QueueUrl=env.webhook_queue_url,
                                MessageBody=json.dumps(webhook_message(hook, note)))


def validate(body, runtimes: dict) -> dict:
    """Check a request body against the wire contract (contract.validate) with this
    deployment's default prefix and webhook rule; return the normalised task."""
    env = HandlerEnv.read()
    return contract_validate(body, runtimes, default_prefix=env.default_prefix, allow_loopback=env.allow_loopback)


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
    return HandlerEnv.read().runtimes


def _client(name: str):
    if name not in _clients:
        _clients[name] = boto3.client(name, config=AWS_CONFIG)
    return _clients[name]


def _response(status: int, body: dict, headers: dict | None = None) -> dict:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body),
    }
