"""`sdctl scale status`: from queue depth to GPU nodes, one runtime at a time.

`collect` reads the objects with the kubernetes client (thin); sdctl/analysis/scale.py turns
them into the chain queue -> ScaledObject -> Deployment -> pods -> NodeClaims -> nodes and a
verdict in plain language.
"""

from __future__ import annotations


def collect(api, *, release: str, namespace: str) -> dict:
    """The runtime's ScaledObject, Deployment and pods, and its NodePool's NodeClaims and nodes,
    as the API's JSON (plain dicts)."""
    from kubernetes import client as k
    from kubernetes.client.exceptions import ApiException

    custom, apps, core = k.CustomObjectsApi(api), k.AppsV1Api(api), k.CoreV1Api(api)
    plain = api.sanitize_for_serialization

    def maybe(fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    pool = f"karpenter.sh/nodepool={release}"
    deployment = maybe(apps.read_namespaced_deployment, release, namespace)
    return {
        "scaledobject": maybe(custom.get_namespaced_custom_object, "keda.sh", "v1alpha1", namespace,
                              "scaledobjects", release),
        "deployment": plain(deployment) if deployment is not None else None,
        "pods": plain(core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/instance={release}"))[
            "items"],
        "nodeclaims": (maybe(custom.list_cluster_custom_object, "karpenter.sh", "v1", "nodeclaims",
                             label_selector=pool) or {}).get("items", []),
        "nodes": plain(core.list_node(label_selector=pool))["items"],
    }
