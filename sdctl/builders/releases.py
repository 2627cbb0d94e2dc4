"""Helm releases from config and stack outputs. Pure: returns data, does no I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from sdctl import __version__, versions
from sdctl.builders import images
from sdctl.builders.names import (
    karpenter_node_role,
    partition,
    pool_name,
    queue_url_key,
    release_name,
    runtime_service_account,
)
from sdctl.config.model import Config, Runtime
from sdctl.contracts.agent_env import for_runtime
from sdctl.contracts.runtimes import kind
from sdctl.contracts.tasks import PRIORITIES

#: The agent's /healthz, /readyz and /metrics/ port, and its visibility window per heartbeat.
AGENT_HEALTH_PORT = 8081
AGENT_VISIBILITY_SECONDS = 30


@dataclass
class Release:
    name: str
    chart: str
    namespace: str
    values: dict = field(default_factory=dict)
    version: str | None = None
    repo: str | None = None
    runtime: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def chart_dir() -> Path:
    import sdctl

    here = Path(sdctl.__file__).parent
    for candidate in (here / "resources" / "helm" / "sd-runtime", here.parent / "helm" / "sd-runtime"):
        if (candidate / "Chart.yaml").is_file():
            return candidate
    raise FileNotFoundError("the sd-runtime chart is missing from this installation")


def _image(ref: str) -> dict:
    repo, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    return {"repository": repo, "tag": tag, "pullPolicy": "IfNotPresent"}


def gpu_prices(rt: Runtime, region: str) -> dict[str, dict[str, float]]:
    """USD per hour of each instance type the runtime's nodes may be, by capacity type, from
    sdctl's price table (the cost model's): the agent prices each task with it."""
    from sdctl.analysis.cost import Assumptions, gpu_price, prices_for
    from sdctl.errors import UsageError

    try:
        prices = prices_for(region)
    except UsageError:  # no table for this region: results carry cost_usd null
        return {}
    out: dict[str, dict[str, float]] = {}
    for instance in rt.nodes.instance_types:
        for capacity in rt.nodes.capacity_types:
            try:
                out.setdefault(instance, {})[capacity] = gpu_price(Assumptions(instance=instance, capacity=capacity),
                                                                   prices)[0]
            except UsageError:
                continue
    return out


def runtime_values(cfg: Config, rt: Runtime, *, edge: dict[str, str], cluster: dict[str, str], account: str,
                   region: str, subnet_ids: list[str] | None = None) -> dict:
    d = kind(rt.type)  # its API port, and the path that answers only once the model is loaded
    return {
        "runtime": {
            "name": rt.name, "type": rt.type, "port": d.port, "startupPath": d.probe_path,
            "image": _image(images.runtime_image(cfg.stack_name, rt.type, rt.image, account, region, __version__)),
            "model": rt.model, "dynamicModel": rt.dynamic_model, "compile": rt.compile,
        },
        "agent": {"image": _image(images.agent_image(cfg.stack_name, account, region, __version__)),
                  "healthPort": AGENT_HEALTH_PORT, "visibilitySeconds": AGENT_VISIBILITY_SECONDS,
                  "env": for_runtime(rt, queue_url=edge[queue_url_key(rt.name)], results_topic_arn=edge["ResultsTopicArn"],
                                     bucket=edge["OutputBucket"], tasks_table=edge.get("TasksTable", ""),
                                     task_ttl_days=cfg.output.retention_days, region=region,
                                     api_base_url=f"http://127.0.0.1:{d.port}",
                                     visibility_seconds=AGENT_VISIBILITY_SECONDS, health_port=AGENT_HEALTH_PORT,
                                     webhook_queue_url=edge.get("WebhooksQueueUrl", ""),
                                     gpu_prices=gpu_prices(rt, region),
                                     lane_urls={p: edge[queue_url_key(rt.name, p)] for p in PRIORITIES}),
                  "nodeReader": True},
        "aws": {"region": region, "queueUrl": edge[queue_url_key(rt.name)], "resultsTopicArn": edge["ResultsTopicArn"],
                "lanes": {p: edge[queue_url_key(rt.name, p)] for p in PRIORITIES},
                "outputBucket": edge["OutputBucket"], "tasksTable": edge.get("TasksTable", ""),
                "taskTtlDays": cfg.output.retention_days},
        "maxTaskSeconds": rt.max_task_seconds,
        "serviceAccount": {"name": runtime_service_account(rt.name)},
        "scaling": {"queueLength": rt.scaling.queue_length, "minReplicas": rt.scaling.min_replicas,
                    "maxReplicas": rt.scaling.max_replicas, "cooldownSeconds": rt.scaling.cooldown_seconds,
                    "pollingSeconds": rt.scaling.polling_seconds, "scaleOnInFlight": rt.scaling.scale_on_in_flight,
                    "lowScalesFromZero": rt.scaling.low_scales_from_zero,
                    "scaleUpWindowSeconds": rt.scaling.scale_up_window_seconds,
                    "scaleDownWindowSeconds": rt.scaling.scale_down_window_seconds,
                    "scaleUpPods": rt.scaling.scale_up_pods,
                    "warm": [w.model_dump(by_alias=True) for w in rt.scaling.warm]},
        "nodes": {"enabled": True, "clusterName": cfg.cluster_name, "nodeRole": cluster["KarpenterNodeRoleName"],
                  "instanceTypes": list(rt.nodes.instance_types), "capacityTypes": list(rt.nodes.capacity_types),
                  "gpuLimit": rt.nodes.gpu_limit, "consolidateAfter": rt.nodes.consolidate_after,
                  "dataVolumeGi": rt.nodes.volume_size_gi, "amiAlias": versions.BOTTLEROCKET_ALIAS,
                  "fastPull": rt.nodes.fast_pull, "imageCacheSnapshotId": rt.nodes.image_cache_snapshot_id or "",
                  "subnetIds": list(subnet_ids or []),
                  # cluster-scoped names: another stack on a cluster sdctl did not make may have
                  # a runtime of the same name
                  **({"poolName": pool_name(cfg.stack_name, rt.name)} if cfg.cluster.existing else {}),
                  "tags": {"sdctl:stack": cfg.stack_name}},
        "models": {"enabled": bool(cfg.model_bucket.name), "bucket": cfg.model_bucket.name or "none",
                   "prefix": cfg.model_bucket.prefix, "readOnly": True, "mountPath": "/models",
                   **({"region": cfg.model_bucket.region} if cfg.model_bucket.region else {})},
    }


def node_subnets(cfg: Config, cluster_subnets: list[str] | None = None) -> list[str]:
    """The subnets GPU nodes launch in, by id, where nothing sdctl made tags them for discovery:
    an existing VPC's configured subnets, else (an existing cluster) the cluster's own. Empty for
    sdctl's own network, whose private subnets carry karpenter.sh/discovery=<cluster>."""
    if cfg.network.private_subnet_ids:
        return list(cfg.network.private_subnet_ids)
    if cfg.cluster.existing:
        return list(cluster_subnets or [])
    return []


def images_of(rels: list[Release]) -> list[str]:
    """Every container image the runtime releases run (the agent's and the runtimes')."""
    out = []
    for rel in rels:
        if rel.runtime:
            for part in ("runtime", "agent"):
                img = rel.values[part]["image"]
                out.append(f"{img['repository']}:{img['tag']}")
    return out


def releases(cfg: Config, *, edge: dict[str, str], cluster: dict[str, str], account: str,
             region: str, cluster_subnets: list[str] | None = None) -> list[Release]:
    """In install order: Karpenter's CRDs, Karpenter, KEDA, then one release per runtime."""
    one_system_node = cfg.cluster.system_nodes.count < 2
    out = [
        Release("karpenter-crd", versions.KARPENTER_CRD_CHART, "kube-system", version=versions.KARPENTER),
        Release("karpenter", versions.KARPENTER_CHART, "kube-system", version=versions.KARPENTER, values={
            "settings": {"clusterName": cfg.cluster_name, "interruptionQueue": cluster["InterruptionQueueName"]},
            # The controller's hard anti-affinity needs two non-Karpenter nodes for two replicas.
            "replicas": 1 if one_system_node else 2,
        }),
        Release("keda", versions.KEDA_CHART, "keda", version=versions.KEDA, repo=versions.KEDA_REPO),
    ]
    for rt in cfg.runtimes:
        out.append(Release(release_name(rt.name), str(chart_dir()), rt.namespace, runtime=rt.name,
                           values=runtime_values(cfg, rt, edge=edge, cluster=cluster, account=account, region=region,
                                                 subnet_ids=node_subnets(cfg, cluster_subnets))))
    return out


def placeholder_outputs(cfg: Config) -> tuple[dict[str, str], dict[str, str]]:
    """Stand-in outputs for rendering manifests before anything is deployed (synth)."""
    account, region = "123456789012", cfg.region
    edge = {"ResultsTopicArn": f"arn:{partition(region)}:sns:{region}:{account}:{cfg.stack_name}-results",
            "OutputBucket": cfg.output.bucket_name or f"{cfg.stack_name}-output-{account}-{region}",
            "TasksTable": f"{cfg.stack_name}-tasks",
            "WebhooksQueueUrl": f"https://sqs.{region}.amazonaws.com/{account}/{cfg.stack_name}-webhooks"}
    for rt in cfg.runtimes:
        for priority in PRIORITIES:
            lane = "" if priority == "normal" else f"-{priority}"
            edge[queue_url_key(rt.name, priority)] = \
                f"https://sqs.{region}.amazonaws.com/{account}/{cfg.stack_name}-{rt.name}{lane}"
    cluster = {"KarpenterNodeRoleName": karpenter_node_role(cfg.cluster_name),
               "InterruptionQueueName": f"{cfg.cluster_name}-karpenter"}
    return edge, cluster
