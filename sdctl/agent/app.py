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


def aws_clients(settings: AgentSettings, *, endpoints: dict[str, str] | None = None) -> dict:
    """The agent's SQS, S3, SNS and DynamoDB clients, made once and shared by its threads.

    No endpoint_url unless a caller passes one (benchmarks): botocore itself reads
    AWS_ENDPOINT_URL and the per-service AWS_ENDPOINT_URL_<SERVICE> (and the config file's),
    the SDKs' standard configuration. Parameter validation is off: every request is built
    here from fixed shapes, and validating each one again is a third of botocore's
    client-side CPU per call (AWS validates what it receives either way)."""
    import boto3
    from botocore.config import Config as BotoConfig

    session = boto3.session.Session(region_name=settings.region)
    cfg = BotoConfig(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=20,
                     read_timeout=settings.wait_seconds + 10, parameter_validation=False)
    endpoints = endpoints or {}
    return {name: session.client(name, config=cfg, **({"endpoint_url": endpoints[name]} if name in endpoints else {}))
            for name in ("sqs", "s3", "sns", "dynamodb")}


def build(settings: AgentSettings):
    """Create the AWS clients and the adapter from settings."""
    from sdctl.agent.adapters import adapter_for
    from sdctl.agent.worker import Agent

    clients = aws_clients(settings)
    dynamodb = clients.pop("dynamodb")
    adapter = adapter_for(settings.runtime_type, settings.api_base_url,
                          timeout=settings.max_task_seconds, settings=settings)
    store = None
    if settings.tasks_table:
        from sdctl.agent.store import TaskStore

        store = TaskStore(dynamodb, settings.tasks_table, settings.task_ttl_days)
    from functools import cache

    from sdctl.agent import cost
    from sdctl.agent.nodeledger import NodeLedger
    from sdctl.agent.podcost import DeletionCost

    node = cache(cost.node_metadata)  # the price and the node ledger read the node once between them
    agent = Agent(settings, adapter=adapter, store=store,
                  price_per_second=cost.price_per_second(labels=lambda name: node(name).get("labels") or {}),
                  deletion_cost=DeletionCost.from_env(), **clients)
    agent.ledger = NodeLedger.from_env(dynamodb, settings.tasks_table, settings.task_ttl_days, metadata=node)
    return agent
