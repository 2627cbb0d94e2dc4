"""The queue agent's environment, written once. The chart's values (sdctl/builders/releases.py)
and the local stack (sdctl/execute/local/stack.py) write it with `environment()`; the agent
reads it with AgentSettings.from_env (sdctl/agent/settings.py), and a test round-trips the
two. Names follow the guidance's agent where it had one (SQS_QUEUE_URL, SNS_TOPIC_ARN, ...).
Standard library only: the agent image imports it.
"""

from __future__ import annotations

#: The agent's exit code when its runtime can never take a task as configured (its model's
#: setup failed; an `inputs` mapping the model cannot take): Kubernetes shows its reason (the
#: termination message), `scale status` and `doctor` name it, the local stack does not restart it.
UNUSABLE_EXIT = 3


def environment(*, queue_url: str, results_topic_arn: str, bucket: str, region: str, runtime_name: str,
                runtime_type: str, api_base_url: str, tasks_table: str = "", task_ttl_days: int = 30,
                max_task_seconds: int = 600, max_receive_count: int = 3, visibility_seconds: int = 30,
                dynamic_model: bool = False, health_port: int = 0, prefetch: int = 1, runtime_concurrency: int = 1,
                batch_tasks: int = 1, notify_running: bool = False,
                input_buckets: tuple[str, ...] = (), webhook_queue_url: str = "",
                gpu_prices: dict | None = None, lane_urls: dict[str, str] | None = None,
                inputs: dict | None = None) -> dict[str, str]:
    """Every variable the agent reads, as strings (a ConfigMap's and a process's type)."""
    env = {
        "SQS_QUEUE_URL": queue_url,
        "SNS_TOPIC_ARN": results_topic_arn,
        "S3_BUCKET": bucket,
        "TASKS_TABLE": tasks_table,
        "TASK_TTL_DAYS": str(task_ttl_days),
        "AWS_DEFAULT_REGION": region,
        "RUNTIME_NAME": runtime_name,
        "RUNTIME_TYPE": runtime_type,
        "API_BASE_URL": api_base_url,
        "MAX_TASK_SECONDS": str(max_task_seconds),
        # The agent's last attempt reports `failed`: it must know when SQS will dead-letter.
        "MAX_RECEIVE_COUNT": str(max_receive_count),
        "VISIBILITY_SECONDS": str(visibility_seconds),
        "DYNAMIC_MODEL": _bool(dynamic_model),
        "HEALTH_PORT": str(health_port),
        "PREFETCH": str(prefetch),
        "RUNTIME_CONCURRENCY": str(runtime_concurrency),
        "BATCH_TASKS": str(batch_tasks),
        # Unset ("") lets the agent take about a second of work per receive; a larger
        # prefetch or batch asks for at least that many.
        "RECEIVE_BATCH": str(min(10, max(prefetch, batch_tasks))) if max(prefetch, batch_tasks) > 1 else "",
        "NOTIFY_RUNNING": _bool(notify_running),
        # Where a task's webhook events go (sdctl's deliverer signs and sends them).
        "WEBHOOK_QUEUE_URL": webhook_queue_url,
    }
    for priority, url in sorted((lane_urls or {}).items()):  # the other lanes' queues, drained first/last
        if priority != "normal":
            env[f"SQS_QUEUE_URL_{priority.upper()}"] = url
    if input_buckets:
        env["INPUT_BUCKETS"] = ",".join(input_buckets)
    if inputs is not None:  # the config's task field -> model input mapping (over the type's defaults)
        import json

        env["RUNTIME_INPUTS"] = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    if gpu_prices:  # USD per hour by instance type and capacity type: prices each task
        import json

        env["GPU_PRICES"] = json.dumps(gpu_prices, sort_keys=True, separators=(",", ":"))
    return env


def for_runtime(rt, **where) -> dict[str, str]:
    """`environment()` for one configured runtime (a sdctl.yaml `runtimes[]` entry): its name,
    type, limits and agent tuning, plus `where` (queue, topic, bucket, table, region, URL)."""
    return environment(runtime_name=rt.name, runtime_type=rt.type, max_task_seconds=rt.max_task_seconds,
                       max_receive_count=rt.max_receive_count, dynamic_model=rt.dynamic_model,
                       prefetch=rt.agent.prefetch, runtime_concurrency=rt.agent.runtime_concurrency,
                       batch_tasks=rt.agent.batch_tasks, notify_running=rt.agent.notify_running,
                       inputs=getattr(rt, "inputs", None), **where)


def _bool(value: bool) -> str:
    return "true" if value else "false"
