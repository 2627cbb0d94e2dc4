"""The agent's wiring: AWS clients, the runtime adapter and the task store from settings, and
JSON logs. `python -m sdctl.agent` (sdctl/agent/__main__.py) is the only caller."""

from __future__ import annotations

import json
import logging

from sdctl.agent.settings import AgentSettings


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message and any `extra` fields."""

    SKIP = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        data = {"ts": round(record.created, 3), "level": record.levelname.lower(), "msg": record.getMessage()}
        data.update({k: v for k, v in vars(record).items() if k not in self.SKIP and k != "message"})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("sdctl")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def build(settings: AgentSettings):
    """Create the AWS clients and the adapter from settings."""
    import boto3
    from botocore.config import Config as BotoConfig

    from sdctl.agent.adapters import adapter_for
    from sdctl.agent.worker import Agent

    session = boto3.session.Session(region_name=settings.region)
    cfg = BotoConfig(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=20,
                     read_timeout=settings.wait_seconds + 10)
    # No endpoint_url here: botocore itself reads AWS_ENDPOINT_URL and the per-service
    # AWS_ENDPOINT_URL_<SERVICE> (and the config file's), the SDKs' standard configuration.
    clients = {name: session.client(name, config=cfg) for name in ("sqs", "s3", "sns")}
    adapter = adapter_for(settings.runtime_type, settings.api_base_url,
                          timeout=settings.max_task_seconds, dynamic_model=settings.dynamic_model)
    store = None
    if settings.tasks_table:
        from sdctl.agent.store import TaskStore

        store = TaskStore(session.client("dynamodb", config=cfg),
                          settings.tasks_table, settings.task_ttl_days)
    from sdctl.agent.cost import price_per_second

    agent = Agent(settings, adapter=adapter, store=store, **clients)
    agent.price_per_second = price_per_second()
    return agent
