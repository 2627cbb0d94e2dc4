"""What the local stack creates in the AWS emulator. Pure: config in, data out."""

from __future__ import annotations

import json

from sdctl.builders.names import LOCAL_ACCOUNT, names
from sdctl.builders.queues import edge_queues, edge_topics, lane_subscriptions, local_attributes
from sdctl.config.model import Config


def local_plan(cfg: Config, *, visibility_seconds: int | None = None) -> dict:
    n = names(cfg, account=LOCAL_ACCOUNT)
    queues = [{"name": n.results_queue, "attributes": {}}]
    subscriptions = [{"topic": n.results_topic, "queue": n.results_queue, "filter": None}]
    runtimes = {}
    specs = edge_queues(cfg, n)  # the edge's queues, as CloudFormation makes them (builders/queues.py)
    by_id = {q.logical_id: q for q in specs}
    lane_queues = {q.logical_id for q in specs if q.long_poll_seconds is not None}
    for q in specs:
        entry = {"name": q.name, "attributes": local_attributes(
            q, region=cfg.region, visibility_seconds=visibility_seconds if q.logical_id in lane_queues else None)}
        if q.dead_letter:
            entry["dead_letter"] = {"queue": by_id[q.dead_letter].name, "maxReceiveCount": q.max_receive_count}
        queues.append(entry)
    topics = {t.logical_id: t.name for t in edge_topics(n)}
    subscriptions += [{"topic": topics[sub.topic], "queue": by_id[sub.queue].name,  # as the edge stack routes
                       "filter": json.dumps(sub.filter_policy)} for sub in lane_subscriptions(cfg)]
    for rt, rn in zip(cfg.runtimes, n.runtimes, strict=True):
        runtimes[rt.name] = {"type": rt.type, "queue": rn.queue, "dead_letter_queue": rn.dead_letter_queue,
                             "lanes": {p: {"queue": q, "dead_letter_queue": d} for p, q, d in rn.lanes()},
                             "max_task_seconds": rt.max_task_seconds, "max_receive_count": rt.max_receive_count,
                             "dynamic_model": rt.dynamic_model}
    return {
        "region": cfg.region,
        "webhooks": {"queue": n.webhooks_queue, "dead_letter_queue": n.webhooks_dead_letter_queue,
                     "secret": n.webhook_secret},
        "topics": list(topics.values()),
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
