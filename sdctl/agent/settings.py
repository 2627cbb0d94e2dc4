"""Agent settings, read from the environment with the guidance's variable names."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sdctl.contracts.runtimes import GUIDANCE_DEFAULT, names
from sdctl.errors import UsageError

REQUIRED = ("SQS_QUEUE_URL", "SNS_TOPIC_ARN", "S3_BUCKET", "RUNTIME_NAME", "API_BASE_URL")


@dataclass(frozen=True)
class AgentSettings:
    queue_url: str
    topic_arn: str
    bucket: str
    runtime_name: str
    runtime_type: str
    api_base_url: str
    region: str
    max_task_seconds: int = 600
    max_receive_count: int = 3
    wait_seconds: int = 20
    batch_size: int = 0  # RECEIVE_BATCH; 0: about a second of work (sdctl/agent/sqs.py)
    prefetch: int = 1
    runtime_concurrency: int = 1
    batch_tasks: int = 1
    health_port: int = 0
    notify_running: bool = False
    visibility_seconds: int = 30
    input_buckets: tuple[str, ...] = ()
    shutdown_grace_seconds: int | None = None
    dynamic_model: bool = False
    tasks_table: str = ""
    task_ttl_days: int = 30
    webhook_queue_url: str = ""
    lane_urls: tuple[tuple[str, str], ...] = ()  # (priority, queue URL), highest first
    inputs: dict | None = None  # a mapping runtime's task field -> model input (RUNTIME_INPUTS)

    @property
    def lanes(self) -> tuple[tuple[str, str], ...]:
        """The queues to drain, highest priority first (only the one queue before lanes)."""
        return self.lane_urls or (("normal", self.queue_url),)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> AgentSettings:
        env = dict(os.environ if env is None else env)
        missing = [k for k in REQUIRED if not env.get(k)]
        if missing:
            raise UsageError(f"agent settings missing: {', '.join(missing)}",
                             hint="set them in the environment (see docs/agent.md)")
        runtime_type = env.get("RUNTIME_TYPE", GUIDANCE_DEFAULT)
        if runtime_type not in names():
            raise UsageError(f"RUNTIME_TYPE {runtime_type!r} is not one of {', '.join(names())}")
        return cls(
            queue_url=env["SQS_QUEUE_URL"],
            topic_arn=env["SNS_TOPIC_ARN"],
            bucket=env["S3_BUCKET"],
            runtime_name=env["RUNTIME_NAME"],
            runtime_type=runtime_type,
            api_base_url=env["API_BASE_URL"],
            region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-west-2",
            max_task_seconds=_int(env, "MAX_TASK_SECONDS", 600, 1),
            max_receive_count=_int(env, "MAX_RECEIVE_COUNT", 3, 1),
            wait_seconds=_int(env, "WAIT_SECONDS", 20, 0, 20),
            batch_size=_int(env, "RECEIVE_BATCH", 0, 1, 10),
            prefetch=_int(env, "PREFETCH", 1, 1, 10),
            runtime_concurrency=_int(env, "RUNTIME_CONCURRENCY", 1, 1, 8),
            batch_tasks=_int(env, "BATCH_TASKS", 1, 1, 16),
            health_port=_int(env, "HEALTH_PORT", 0, 0, 65535),
            visibility_seconds=_int(env, "VISIBILITY_SECONDS", 30, 2, 43200),
            shutdown_grace_seconds=_int(env, "SHUTDOWN_GRACE_SECONDS", 0, 0) or None,
            input_buckets=tuple(b for b in env.get("INPUT_BUCKETS", "").split(",") if b),
            dynamic_model=env.get("DYNAMIC_MODEL", "false").lower() in ("1", "true", "yes"),
            tasks_table=env.get("TASKS_TABLE", ""),
            task_ttl_days=_int(env, "TASK_TTL_DAYS", 30, 1, 3650),
            notify_running=env.get("NOTIFY_RUNNING", "false").lower() in ("1", "true", "yes"),
            webhook_queue_url=env.get("WEBHOOK_QUEUE_URL", ""),
            inputs=_inputs(env.get("RUNTIME_INPUTS")),
            lane_urls=tuple((p, url) for p, url in (("high", env.get("SQS_QUEUE_URL_HIGH")),
                                                     ("normal", env["SQS_QUEUE_URL"]),
                                                     ("low", env.get("SQS_QUEUE_URL_LOW"))) if url),
        )


def _int(env: dict, key: str, default: int, lo: int, hi: int | None = None) -> int:
    raw = env.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{key}={raw!r} is not an integer") from None
    if value < lo or (hi is not None and value > hi):
        raise UsageError(f"{key}={value} must be between {lo} and {hi if hi is not None else 'any'}")
    return value


def _inputs(raw: str | None) -> dict | None:
    """RUNTIME_INPUTS: the config's task field -> model input mapping, as JSON."""
    if not raw:
        return None
    import json

    try:
        value = json.loads(raw)
    except ValueError:
        raise UsageError(f"RUNTIME_INPUTS is not JSON: {raw[:80]!r}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str | None) for v in value.values()):
        raise UsageError("RUNTIME_INPUTS must map task fields to input names (or null)")
    return value
