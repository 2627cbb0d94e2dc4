"""The webhook contract (Standard Webhooks, standardwebhooks.com), written once: which events a
task may ask for, the event id receivers dedupe on, the signature, the retry schedule and the
rotation overlap, and the message the agent and the API handler put on the webhooks queue for
the deliverer (lambda_src/webhooks.py). Standard library only: it ships in the Lambda zip."""

from __future__ import annotations

import time

from sdctl.contracts.request_errors import Invalid
from sdctl.contracts.tasks import timestamp

WEBHOOK_EVENTS = ("running", "progress", "completed", "failed", "expired", "cancelled")
DEFAULT_WEBHOOK_EVENTS = ("completed", "failed", "expired", "cancelled")
WEBHOOK_URL_MAX = 2048
#: Seconds before each retry of a delivery that failed (timeout, connection error, 429, 5xx):
#: about 25 hours in all, then the event goes to the webhooks dead-letter queue.
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 28800)
#: After `sdctl webhooks secret --rotate`, the old secret signs beside the new one this long.
ROTATION_OVERLAP_SECONDS = 86400


def webhook_fields(meta: dict, *, allow_loopback: bool = False) -> dict:
    """metadata.webhook: {url, events?}, normalised with the default events. An https URL whose
    host is a name or a public address (the deliverer checks the name's addresses again before
    each delivery); http://127.0.0.1 only on a local stack started to allow it."""
    import ipaddress
    from urllib.parse import urlsplit

    if "webhook" not in meta:
        return {}
    hook = meta["webhook"]
    if not isinstance(hook, dict) or set(hook) - {"url", "events"}:
        raise Invalid("task.metadata.webhook", "task.metadata.webhook must be an object with url and optional events")
    url = hook.get("url")
    if not isinstance(url, str) or len(url) > WEBHOOK_URL_MAX:
        raise Invalid("task.metadata.webhook.url", f"task.metadata.webhook.url must be a URL of at most "
                                                   f"{WEBHOOK_URL_MAX} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise Invalid("task.metadata.webhook.url", "task.metadata.webhook.url is not a valid URL") from None
    loopback = allow_loopback and parts.scheme in ("http", "https") and host == "127.0.0.1"
    if not loopback:
        if parts.scheme != "https" or not host or parts.username or parts.password:
            raise Invalid("task.metadata.webhook.url", "task.metadata.webhook.url must be https://host/... "
                                                       "(no credentials in it)")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if host.lower() == "localhost" or (address is not None and not address.is_global):
            raise Invalid("task.metadata.webhook.url", "task.metadata.webhook.url must reach a public address")
    events = hook.get("events", list(DEFAULT_WEBHOOK_EVENTS))
    if not isinstance(events, list) or not events or any(e not in WEBHOOK_EVENTS for e in events):
        raise Invalid("task.metadata.webhook.events",
                      f"task.metadata.webhook.events must be a non-empty list of: {', '.join(WEBHOOK_EVENTS)}")
    return {"webhook": {"url": url, "events": sorted(set(events), key=WEBHOOK_EVENTS.index)}}


def webhook_event_id(task_id: str, status: str, step: int | None = None) -> str:
    """`webhook-id`: the same for every delivery of one event, so receivers dedupe on it."""
    return f"{task_id}.{status}" + (f".{step}" if step is not None else "")


def sign(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: one `v1,<base64 HMAC-SHA256>` per secret (`whsec_<base64>`), space
    separated (two during a rotation), over `{id}.{timestamp}.{body}`."""
    import base64
    import hashlib
    import hmac

    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(base64.b64decode(s.removeprefix("whsec_")), signed,
                                                      hashlib.sha256).digest()).decode() for s in secrets)


def verify(secret: str, headers: dict, body: bytes, *, tolerance: int = 300, now: float | None = None) -> None:
    """Raise ValueError unless `headers` carry a signature of `body` by `secret` within the
    timestamp tolerance (what a receiver does)."""
    import hmac

    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, stamp, given = lower["webhook-id"], int(lower["webhook-timestamp"]), lower["webhook-signature"]
    except (KeyError, ValueError):
        raise ValueError("missing or malformed webhook-id, webhook-timestamp or webhook-signature") from None
    if abs((now if now is not None else time.time()) - stamp) > tolerance:
        raise ValueError(f"webhook-timestamp {stamp} is outside the {tolerance} s tolerance")
    expected = sign([secret], msg_id, stamp, body)
    if not any(hmac.compare_digest(expected, s) for s in given.split(" ") if s.startswith("v1,")):
        raise ValueError("no signature matches the secret")


def webhook_message(hook: dict, note: dict, *, step: int | None = None) -> dict:
    """What goes on the webhooks queue for one event of a task: where to deliver it and the
    payload (`{"type": "task.<status>", "timestamp", "data": <the notification>}`). Written by the
    agent and the API handler, read by the deliverer (lambda_src/webhooks.py)."""
    return {"id": webhook_event_id(note["id"], note["status"], step), "url": hook["url"],
            "payload": {"type": f"task.{note['status']}",
                        "timestamp": timestamp(), "data": note}}
