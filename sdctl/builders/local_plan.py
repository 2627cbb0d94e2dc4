"""What the local stack creates in the AWS emulator. Pure: config in, data out."""

from __future__ import annotations

import json

from sdctl.builders.names import (
    LOCAL_ACCOUNT,
    WEBHOOK_RECEIVES,
    lane_filter,
    names,
    visibility_timeout,
)
from sdctl.config.model import Config


def local_plan(cfg: Config, *, visibility_seconds: int | None = None) -> dict:
    n = names(cfg, account=LOCAL_ACCOUNT)
    queues = [{"name": n.results_queue, "attributes": {}}]
    subscriptions = [{"topic": n.results_topic, "queue": n.results_queue, "filter": None}]
    runtimes = {}
    for rt, rn in zip(cfg.runtimes, n.runtimes, strict=True):
        for priority, queue, dead_letter_queue in rn.lanes():
            queues.append({"name": dead_letter_queue, "attributes": {"MessageRetentionPeriod": "1209600"}})
            queues.append({
                "name": queue,
                "attributes": {
                    "VisibilityTimeout": str(visibility_seconds or visibility_timeout(rt.max_task_seconds)),
                    "MessageRetentionPeriod": "1209600",
                },
                "dead_letter": {"queue": dead_letter_queue, "maxReceiveCount": rt.max_receive_count},
            })
            subscriptions.append({"topic": n.requests_topic, "queue": queue,  # as the edge stack routes them
                                  "filter": json.dumps(lane_filter(rt.name, priority))})
        runtimes[rt.name] = {"type": rt.type, "queue": rn.queue, "dead_letter_queue": rn.dead_letter_queue,
                             "lanes": {p: {"queue": q, "dead_letter_queue": d} for p, q, d in rn.lanes()},
                             "max_task_seconds": rt.max_task_seconds, "max_receive_count": rt.max_receive_count,
                             "dynamic_model": rt.dynamic_model}
    queues.append({"name": n.webhooks_dead_letter_queue, "attributes": {"MessageRetentionPeriod": "1209600"}})
    queues.append({"name": n.webhooks_queue, "attributes": {"VisibilityTimeout": "60", "MessageRetentionPeriod": "345600"},
                   "dead_letter": {"queue": n.webhooks_dead_letter_queue, "maxReceiveCount": WEBHOOK_RECEIVES}})
    return {
        "region": cfg.region,
        "webhooks": {"queue": n.webhooks_queue, "dead_letter_queue": n.webhooks_dead_letter_queue,
                     "secret": n.webhook_secret},
        "topics": [n.requests_topic, n.results_topic],
        "queues": queues,
        "subscriptions": subscriptions,
        "bucket": n.output_bucket,
        "tasks_table": n.tasks_table,
        "task_ttl_days": cfg.output.retention_days,
        "requests_topic": n.requests_topic,
        "results_topic": n.results_topic,
        "results_queue": n.results_queue,
        "prefix": cfg.output.prefix,
        "runtimes": runtimes,
    }
