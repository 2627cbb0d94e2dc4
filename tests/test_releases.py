"""The Helm release executor (sdctl/execute/k8s/cluster.py) as `sdctl deploy` and `sdctl
destroy` run it: the real helm binary, through pyhelm3, installs sdctl's runtime chart, the
real kubernetes client waits for it, and helm uninstalls it.

The cluster is tests/kube_api.py, an API server in memory (no Kubernetes API server exists on
these machines); its docstring says what it does in place of the controllers. KEDA's and
Karpenter's own charts come from their registries, which these machines cannot reach, so the
releases here are the runtime releases the example config makes.
"""

from __future__ import annotations

import pytest

from sdctl.builders.releases import placeholder_outputs, releases
from sdctl.config import load
from sdctl.execute.helmbin import find_helm
from sdctl.execute.k8s import cluster
from tests.conftest import EXAMPLE, ServerThread
from tests.kube_api import Cluster, app
from tests.kube_replay import kubeconfig


@pytest.fixture
def api(tmp_path):
    if find_helm() is None:
        pytest.fail("helm is not installed: `make helm` installs it into .tools/bin (CI does this)")
    state = Cluster(ready_after=3)
    with ServerThread(app(state)) as server:
        state.kubeconfig = kubeconfig(tmp_path / "kubeconfig", server.url)
        yield state


def runtime_releases():
    cfg = load(EXAMPLE)
    edge, outs = placeholder_outputs(cfg)
    return [r for r in releases(cfg, edge=edge, cluster=outs, account="123456789012", region=cfg.region) if r.runtime]


def kinds(api: Cluster, namespace: str) -> set[str]:
    return {o["kind"] for (gv, plural, ns, name), o in api.objects.items() if ns in (namespace, "")
            and plural not in ("namespaces", "secrets")}


def helm_revisions(api: Cluster, release: str) -> list[str]:
    return sorted(o["metadata"]["labels"]["version"] for (gv, plural, ns, name), o in api.objects.items()
                  if plural == "secrets" and (o["metadata"].get("labels") or {}).get("name") == release)


def test_install_wait_upgrade_uninstall(api):
    [rel] = runtime_releases()
    events = []
    cluster.install_all([rel], api.kubeconfig, events.append)
    assert kinds(api, rel.namespace) == {"ConfigMap", "Deployment", "EC2NodeClass", "NetworkPolicy", "NodePool",
                                         "ScaledObject", "ServiceAccount", "TriggerAuthentication", "ClusterRole",
                                         "ClusterRoleBinding", "Role", "RoleBinding"}
    dep = api.objects[("apps/v1", "deployments", rel.namespace, rel.name)]
    assert dep["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert helm_revisions(api, rel.name) == ["1"]
    assert [(e.source, e.status) for e in events] == [(f"release:{rel.name}", None),
                                                      (f"release:{rel.name}", "installed")]

    events.clear()
    state = cluster.wait_ready([rel], api.kubeconfig, events.append, poll=0.01)
    assert state[rel.runtime]["scaledobject_ready"] is True
    # KEDA marks the ScaledObject Ready only after a few reads here: the wait said so meanwhile.
    assert [e.status for e in events] == ["waiting", "waiting", "ready"]

    cluster.install_all([rel], api.kubeconfig)  # a redeploy: a new revision, the same objects
    assert helm_revisions(api, rel.name) == ["1", "2"]
    assert api.objects[("apps/v1", "deployments", rel.namespace, rel.name)]["metadata"]["generation"] == 1

    cluster.uninstall_all([rel], api.kubeconfig)
    assert kinds(api, rel.namespace) == set() and helm_revisions(api, rel.name) == []
    cluster.uninstall_all([rel], api.kubeconfig)  # already gone: nothing to do, no error


def test_a_runtime_that_never_gets_ready_fails_the_wait_naming_it(api):
    [rel] = runtime_releases()
    cluster.install_all([rel], api.kubeconfig)
    api.ready_after = 10**9
    with pytest.raises(Exception, match=f"runtime {rel.runtime} was not ready after 0s") as e:
        cluster.wait_ready([rel], api.kubeconfig, timeout=0.05, poll=0.01)
    assert e.value.hint == f"kubectl -n {rel.namespace} describe scaledobject {rel.name}"
