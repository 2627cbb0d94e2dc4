"""Each runtime's scale chain as `sdctl scale status` and the console show it: the queue depth
KEDA's formula sees → ScaledObject → Deployment → pods → NodeClaims → nodes, and a verdict."""

from __future__ import annotations

from sdctl.builders.names import release_name


def lane_depths(sqs, target, runtime: str) -> dict[str, dict]:
    from sdctl.operate import queues

    return {p: queues.depth(sqs, lane["queue_url"]) for p, lane in queues.lanes_of(target.queues[runtime]).items()}


def chains(api, cfg, runtimes, depths: dict[str, dict[str, dict]]) -> list[dict]:
    """`depths`: each runtime's lanes' {visible, in_flight} (lane_depths, or a console sample's)."""
    from datetime import UTC, datetime

    from sdctl.analysis import scale as verdicts
    from sdctl.config.cron import warm_now
    from sdctl.execute.k8s import scale

    report, now = [], datetime.now(UTC)
    for rt in runtimes:
        lanes = depths[rt.name]
        depth = {k: sum(d.get(k, 0) for d in lanes.values()) for k in ("visible", "in_flight", "delayed")}
        if not rt.scaling.low_scales_from_zero and "low" in lanes and \
                depth["visible"] + depth["in_flight"] == lanes["low"]["visible"] + lanes["low"]["in_flight"]:
            depth = {k: 0 for k in depth}  # what KEDA's formula sees: low tasks alone do not count
        objs = scale.collect(api, release=release_name(rt.name), namespace=rt.namespace)
        report.append(verdicts.explain(rt.name, depth, objs, queue_length=rt.scaling.queue_length,
                                       min_replicas=rt.scaling.min_replicas, max_replicas=rt.scaling.max_replicas,
                                       scale_on_in_flight=rt.scaling.scale_on_in_flight,
                                       warm=warm_now(rt.scaling.warm, now),
                                       scale_down_window=rt.scaling.scale_down_window_seconds))
    return report
