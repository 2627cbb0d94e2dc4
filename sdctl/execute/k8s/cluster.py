"""Talk to the deployed cluster: a kubeconfig from EKS, releases in order, readiness."""

from __future__ import annotations

import time
from pathlib import Path

from sdctl.builders.releases import Release
from sdctl.contracts.events import Event, Report, ignore
from sdctl.errors import SdctlError
from sdctl.execute.k8s import eks, helm


def connect(session, cluster: str, region: str, profile: str | None = None) -> Path:
    """A private kubeconfig for helm and the kubernetes client. Its user runs this Python's
    `sdctl kubeconfig --token` (an exec credential plugin), so every helm process and every
    client made from it gets a fresh token, however long the deploy takes."""
    import sys

    try:
        endpoint, ca = eks.describe(session, cluster, region)
    except Exception as e:
        raise SdctlError(f"cannot reach EKS cluster {cluster}: {e}",
                         hint="check `sdctl status`: the cluster stack must be deployed") from None
    user = eks.exec_user(cluster, region, profile, command=[sys.executable, "-m", "sdctl"])
    return eks.write_private(eks.kubeconfig(cluster, endpoint, ca, user=user))


def api_client(kubeconfig: Path):
    from kubernetes import client, config

    return config.new_client_from_config(config_file=str(kubeconfig)), client


def install_all(releases: list[Release], kubeconfig: Path, report: Report = ignore) -> None:
    for rel in releases:
        report(Event(f"release:{rel.name}", f"helm upgrade --install {rel.name} ({rel.namespace})"))
        helm.install(rel, kubeconfig=kubeconfig)
        report(Event(f"release:{rel.name}", "installed", "ok", "installed"))


def wait_ready(releases: list[Release], kubeconfig: Path, report: Report = ignore,
               timeout: float = 900, poll: float = 5.0) -> dict[str, dict]:
    """Wait until each runtime's Deployment is available and its ScaledObject is Ready. Each
    poll reads the kubeconfig anew, so its exec plugin hands out a fresh token: the wait may
    outlast any one token."""
    state: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    for rel in (r for r in releases if r.runtime):
        while True:
            api, k8s = api_client(kubeconfig)
            apps, custom = k8s.AppsV1Api(api), k8s.CustomObjectsApi(api)
            dep = apps.read_namespaced_deployment(rel.name, rel.namespace)
            so = custom.get_namespaced_custom_object("keda.sh", "v1alpha1", rel.namespace, "scaledobjects", rel.name)
            conds = {c["type"]: c["status"] for c in (so.get("status") or {}).get("conditions", [])}
            dep_ok = (dep.status.observed_generation or 0) >= dep.metadata.generation
            state[rel.runtime] = {"replicas": dep.status.replicas or 0, "ready": dep.status.ready_replicas or 0,
                                  "scaledobject_ready": conds.get("Ready") == "True",
                                  "active": conds.get("Active") == "True"}
            if dep_ok and state[rel.runtime]["scaledobject_ready"]:
                report(Event(f"release:{rel.name}", "ready", "ok", "ready", dict(state[rel.runtime])))
                break
            if time.monotonic() > deadline:
                raise SdctlError(f"runtime {rel.runtime} was not ready after {timeout:.0f}s: {state[rel.runtime]}",
                                 hint=f"kubectl -n {rel.namespace} describe scaledobject {rel.name}")
            report(Event(f"release:{rel.name}", f"waiting: {state[rel.runtime]}", "progress", "waiting",
                         dict(state[rel.runtime])))
            time.sleep(poll)
    return state


def uninstall_all(releases: list[Release], kubeconfig: Path, report: Report = ignore) -> None:
    """Runtimes first (their NodePools go with them, so Karpenter drains its nodes), then
    KEDA, then Karpenter."""
    for rel in reversed(releases):
        report(Event(f"release:{rel.name}", f"helm uninstall {rel.name} ({rel.namespace})"))
        try:
            helm.uninstall(rel, kubeconfig=kubeconfig)
        except Exception as e:  # an already-absent release is fine
            if "not found" not in str(e):
                raise


def installed_objects(release: Release, kubeconfig: Path) -> list[dict]:
    """The objects of the release's current revision, or [] if it is not installed."""
    import asyncio

    async def go():
        c = helm.client(kubeconfig)
        try:
            revision = await c.get_current_revision(release.name, namespace=release.namespace)
        except Exception as e:
            if "not found" in str(e).lower():
                return []
            raise
        return list(await revision.resources())

    return asyncio.run(go())
