"""The webhook deliverer: a Lambda function fed by the webhooks queue (an SQS event source with
ReportBatchItemFailures), and on the local stack by sdctl/execute/local/webhooks.py, which
feeds it the same events. Standard library and boto3 only, like the API handler.

For each queued event: check the URL (https, every address of its host public; on a local
stack started with --allow-local-webhooks, http://127.0.0.1 too), sign the payload the
Standard Webhooks way with the current secret (and the previous one during a rotation), POST
it with a 10 s limit and no redirects, and then:

    2xx                              delivered (the event source deletes the message)
    timeout, connection error,       retried: the message's visibility is set to the next
    429, 5xx                         delay of RETRY_DELAYS (with jitter), about 25 h in all
    any other answer, a refused URL  undeliverable
    retries used up                  undeliverable

An undeliverable event is sent to the webhooks dead-letter queue with the reason;
`sdctl webhooks failed` lists them and `sdctl webhooks replay` sends them again.

Configured by environment: sdctl/contracts/edge_env.py (DelivererEnv) says what it reads.
"""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import boto3

from sdctl.contracts.edge_env import DelivererEnv
from sdctl.contracts.webhooks import RETRY_DELAYS, ROTATION_OVERLAP_SECONDS, sign

TIMEOUT_SECONDS = 10
_clients: dict = {}
_secrets = {"at": 0.0, "value": []}


class Refused(Exception):
    """A URL the deliverer will not call."""


class Unresolved(Exception):
    """A host name that did not resolve this time: retried, never taken as a refusal (a
    resolver's hiccup would otherwise lose the delivery)."""


def handler(event, context):
    failures = []
    delays = retry_delays()
    for record in event.get("Records", []):
        attempt = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            message = json.loads(record["body"])
            outcome, reason = deliver(message)
        except (ValueError, KeyError) as e:
            message, outcome, reason = {"body": record.get("body")}, "undeliverable", f"unreadable event: {e}"
        if outcome == "retry" and attempt <= len(delays):
            delay = delays[attempt - 1]
            failures.append({"itemIdentifier": record["messageId"]})
            try:
                _client("sqs").change_message_visibility(
                    QueueUrl=DelivererEnv.read().queue_url, ReceiptHandle=record["receiptHandle"],
                    VisibilityTimeout=retry_visibility(delay, random.uniform(1.0, 1.2)))  # noqa: S311 - jitter
            except Exception as e:  # noqa: BLE001 - the message comes back at the queue's own visibility
                _log("could not delay the retry; it comes back sooner", message, reason=str(e), attempt=attempt)
            _log("webhook delivery failed; will retry", message, reason=reason, attempt=attempt, retry_in=delay)
        elif outcome != "delivered":
            if outcome == "retry":
                reason = f"gave up after {attempt} attempts; last: {reason}"
            _client("sqs").send_message(QueueUrl=DelivererEnv.read().dead_letter_queue_url, MessageBody=json.dumps(
                {**message, "failure": {"reason": reason, "attempts": attempt, "at": int(time.time())}}))
            _log("webhook undeliverable", message, reason=reason, attempt=attempt)
    return {"batchItemFailures": failures}


#: SQS refuses a visibility that takes a message past 12 hours since it was received
#: (ChangeMessageVisibility: "If you try to extend the visibility timeout beyond 12 hours, the
#: request is rejected"); the batch has already spent up to the function's timeout by then.
VISIBILITY_LIMIT = 43_200 - 300


def retry_visibility(delay: int, jitter: float) -> int:
    """The visibility that delays the next attempt by ``delay`` x ``jitter`` (1.0-1.2) seconds,
    within what SQS accepts."""
    return max(0, min(VISIBILITY_LIMIT, int(delay * jitter)))


def retry_delays() -> tuple[int, ...]:
    return DelivererEnv.read().retry_delays or RETRY_DELAYS


def deliver(message: dict) -> tuple[str, str]:
    """POST one event; ("delivered" | "retry" | "undeliverable", why)."""
    url = message["url"]
    try:
        check_url(url)
    except Unresolved as e:  # a resolver hiccup, or a host not there yet: retried like a timeout
        return "retry", str(e)
    except Refused as e:
        return "undeliverable", str(e)
    body = json.dumps(message["payload"], separators=(",", ":")).encode()
    stamp = int(time.time())
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "content-type": "application/json", "user-agent": "sdctl-webhooks/1",
        "webhook-id": message["id"], "webhook-timestamp": str(stamp),
        "webhook-signature": sign(signing_secrets(), message["id"], stamp, body)})
    try:
        with _opener().open(request, timeout=TIMEOUT_SECONDS) as answer:
            return "delivered", str(answer.status)
    except urllib.error.HTTPError as e:
        if e.code == 429 or e.code >= 500:
            return "retry", f"HTTP {e.code}"
        return "undeliverable", f"HTTP {e.code}" + (" (redirects are not followed)" if 300 <= e.code < 400 else "")
    except (urllib.error.URLError, OSError) as e:  # timeouts, refused connections, TLS
        return "retry", f"{type(e).__name__}: {getattr(e, 'reason', e)}"


def check_url(url: str) -> None:
    """https, and every address the host resolves to public; loopback http only when allowed."""
    parts = urlsplit(url)
    allow_loopback = DelivererEnv.read().allow_loopback
    if parts.scheme != "https" and not (allow_loopback and parts.scheme == "http"):
        raise Refused(f"not an https URL: {url}")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   proto=socket.IPPROTO_TCP)
    except OSError as e:
        raise Unresolved(f"cannot resolve {parts.hostname}: {e}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_global or (allow_loopback and address.is_loopback):
            continue
        raise Refused(f"{parts.hostname} resolves to {address}, which is not a public address")


def signing_secrets() -> list[str]:
    """The current secret, and the previous one while a rotation is recent."""
    env = DelivererEnv.read()
    ttl = env.secret_cache_seconds
    if time.monotonic() - _secrets["at"] > ttl or not _secrets["value"]:
        doc = json.loads(_client("secretsmanager").get_secret_value(
            SecretId=env.secret_arn)["SecretString"])
        value = [doc["current"]]
        if doc.get("previous") and time.time() - float(doc.get("rotated_at") or 0) < ROTATION_OVERLAP_SECONDS:
            value.append(doc["previous"])
        _secrets.update(at=time.monotonic(), value=value)
    return _secrets["value"]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a 3xx is an answer, not an instruction: it can point anywhere


def _opener():
    return urllib.request.build_opener(_NoRedirects)


def _client(name: str):
    if name not in _clients:
        _clients[name] = boto3.client(name)
    return _clients[name]


def _log(msg: str, message: dict, **fields) -> None:
    print(json.dumps({"msg": msg, "webhook_id": message.get("id"), "url": message.get("url"), **fields}))
