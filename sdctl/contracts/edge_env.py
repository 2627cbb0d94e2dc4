"""The API handler's and the webhook deliverer's environments, written once. CloudFormation
(sdctl/builders/cfn/edge.py, webhooks.py) and the local stack (sdctl/execute/local/stack.py)
write them with `handler_environment()` and `deliverer_environment()`; the handler
(lambda_src/handler.py) and the deliverers (lambda_src/webhooks.py, the local loop) read them
with `HandlerEnv.read()` and `DelivererEnv.read()`. A writer's values may be CloudFormation
expressions (a Ref): they are passed through as given. Standard library only: the Lambda zip
carries it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field


def handler_environment(*, topic_arn, bucket, runtimes: Mapping[str, str], default_prefix: str, tasks_table,
                        task_ttl_days: int, webhook_queue_url, allow_loopback: bool = False) -> dict:
    """Every variable the API handler reads (`runtimes`: each runtime's name and type)."""
    env = {"SNS_TOPIC_ARN": topic_arn, "S3_BUCKET": bucket,
           "RUNTIMES": json.dumps(dict(runtimes), sort_keys=True),
           "DEFAULT_PREFIX": default_prefix, "TASKS_TABLE": tasks_table,
           "TASK_TTL_DAYS": str(task_ttl_days), "WEBHOOK_QUEUE_URL": webhook_queue_url}
    if allow_loopback:  # only the local stack: webhooks to 127.0.0.1 (the API refuses them on AWS)
        env["WEBHOOK_ALLOW_LOOPBACK"] = "1"
    return env


def deliverer_environment(*, queue_url, dead_letter_queue_url, secret_arn, allow_loopback: bool = False,
                          secret_cache_seconds: float | None = None) -> dict:
    """Every variable the webhook deliverer reads."""
    env = {"WEBHOOK_QUEUE_URL": queue_url, "WEBHOOK_DLQ_URL": dead_letter_queue_url,
           "WEBHOOK_SECRET_ARN": secret_arn}
    if allow_loopback:
        env["WEBHOOK_ALLOW_LOOPBACK"] = "1"
    if secret_cache_seconds is not None:  # how soon a rotated secret is picked up (default 30 s)
        env["WEBHOOK_SECRET_CACHE_SECONDS"] = str(secret_cache_seconds)
    return env


@dataclass(frozen=True)
class HandlerEnv:
    topic_arn: str
    bucket: str
    runtimes: dict = field(default_factory=dict)
    default_prefix: str = "output"
    tasks_table: str = ""  # empty: no status, cancel or duplicate check
    task_ttl_days: int = 30
    webhook_queue_url: str = ""
    allow_loopback: bool = False

    @classmethod
    def read(cls, env: Mapping[str, str] = os.environ) -> HandlerEnv:
        return cls(topic_arn=env.get("SNS_TOPIC_ARN", ""), bucket=env.get("S3_BUCKET", ""),
                   runtimes=json.loads(env.get("RUNTIMES") or "{}"),
                   default_prefix=env.get("DEFAULT_PREFIX") or "output", tasks_table=env.get("TASKS_TABLE", ""),
                   task_ttl_days=int(env.get("TASK_TTL_DAYS") or 30),
                   webhook_queue_url=env.get("WEBHOOK_QUEUE_URL", ""),
                   allow_loopback=env.get("WEBHOOK_ALLOW_LOOPBACK") == "1")


@dataclass(frozen=True)
class DelivererEnv:
    queue_url: str
    dead_letter_queue_url: str
    secret_arn: str
    allow_loopback: bool = False
    secret_cache_seconds: float = 30.0
    retry_delays: tuple[int, ...] | None = None  # None: the contract's (sdctl/contracts/webhooks.py)

    @classmethod
    def read(cls, env: Mapping[str, str] = os.environ) -> DelivererEnv:
        raw = env.get("WEBHOOK_RETRY_DELAYS")  # comma-separated seconds, to shorten or lengthen the schedule
        return cls(queue_url=env.get("WEBHOOK_QUEUE_URL", ""), dead_letter_queue_url=env.get("WEBHOOK_DLQ_URL", ""),
                   secret_arn=env.get("WEBHOOK_SECRET_ARN", ""),
                   allow_loopback=env.get("WEBHOOK_ALLOW_LOOPBACK") == "1",
                   secret_cache_seconds=float(env.get("WEBHOOK_SECRET_CACHE_SECONDS") or 30),
                   retry_delays=tuple(int(x) for x in raw.split(",") if x.strip()) if raw else None)
