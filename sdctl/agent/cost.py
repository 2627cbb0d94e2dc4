"""What a task cost: its GPU seconds times the price per second of the node it ran on.

On EKS the chart gives the agent its node's name (the downward API's spec.nodeName), a
Kubernetes token that may only `get` nodes, and the price per hour of each instance type its
NodePool may launch, on demand and spot, from sdctl's price table (GPU_PRICES). The agent
reads its node's `node.kubernetes.io/instance-type` and `karpenter.sh/capacity-type` labels
once, at start. The price is the price table's (a spot price is its estimate, not the hour's
market price); without a node (the local stack) or a price, `cost_usd` is null.

A batched runtime call's seconds are shared evenly by the tasks in it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger("sdctl.agent")

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def in_cluster(env=None) -> tuple[str, str, str | bool] | None:
    """The Kubernetes API as the pod reaches it: its URL, the pod's token and CA (None off the
    cluster, or where the chart mounts no token)."""
    env = os.environ if env is None else env
    host, token = env.get("KUBERNETES_SERVICE_HOST"), SERVICE_ACCOUNT / "token"
    if not host or not token.exists():
        return None
    ca = str(SERVICE_ACCOUNT / "ca.crt") if (SERVICE_ACCOUNT / "ca.crt").exists() else True
    return f"https://{host}:{env.get('KUBERNETES_SERVICE_PORT', '443')}", token.read_text().strip(), ca


def node_metadata(name: str, *, api: str | None = None, token: str | None = None, ca: str | bool = True) -> dict:
    """The metadata (labels, creationTimestamp) of node `name`, read with the pod's token."""
    import httpx

    if api is None:
        api, token, ca = in_cluster() or (None, None, True)
    r = httpx.get(f"{api}/api/v1/nodes/{name}", headers={"Authorization": f"Bearer {token}"}, verify=ca, timeout=5)
    r.raise_for_status()
    return r.json()["metadata"]


def node_labels(name: str, **where) -> dict:
    """The labels of node `name`."""
    return node_metadata(name, **where).get("labels") or {}


def hourly_price(labels: dict, table: str) -> float:
    """USD per hour of a node with these labels, from the chart's GPU_PRICES (KeyError: none)."""
    return float(json.loads(table)[labels["node.kubernetes.io/instance-type"]][
        labels.get("karpenter.sh/capacity-type", "on-demand")])


def price_per_second(env: dict | None = None, *, labels=node_labels) -> float | None:
    """USD per second of this agent's node, or None where it cannot be known."""
    env = os.environ if env is None else env
    node, table = env.get("NODE_NAME"), env.get("GPU_PRICES")
    if not node or not table:
        return None
    try:
        per_hour = hourly_price(labels(node), table)
    except Exception as e:  # noqa: BLE001 - a cost is a courtesy; the task never waits for it
        log.warning("no price for this node; results carry cost_usd null", extra={"node": node, "error": str(e)})
        return None
    log.info("node price", extra={"node": node, "per_hour": per_hour})
    return per_hour / 3600


def cost_usd(gpu_seconds: float, per_second: float | None) -> float | None:
    return None if per_second is None else round(gpu_seconds * per_second, 6)
