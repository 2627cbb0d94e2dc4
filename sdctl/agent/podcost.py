"""Scale-in removes idle pods first: the agent keeps its pod's
`controller.kubernetes.io/pod-deletion-cost` annotation current (Kubernetes docs, "ReplicaSet":
when a ReplicaSet scales down, among pods otherwise alike "the pods with lower deletion cost are
preferred to be deleted before pods with higher deletion cost"). A pod whose runtime works on a
task costs BUSY, an idle one IDLE, so a scale-in stops an idle pod instead of one mid-render
(which would render on through its grace period while the idle one stayed up: two pods billed
where one was asked for).

On EKS the chart gives the agent its pod's name and namespace (the downward API) and a role
that may only `patch` pods in the runtime's own namespace (RBAC cannot name the pod itself);
the agent patches only this annotation of its own pod, and only when it changes, from a thread
of its own: the runtime call never waits for the Kubernetes API. Without them (the local stack)
it does nothing. A patch that fails is logged and never costs a task.
"""

from __future__ import annotations

import logging
import os
import threading

from sdctl.agent.cost import in_cluster

log = logging.getLogger("sdctl.agent")
ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
BUSY, IDLE = 100, 0


class DeletionCost:
    def __init__(self, *, api: str, namespace: str, pod: str, token: str, ca: str | bool = True) -> None:
        import httpx

        self.url = f"{api}/api/v1/namespaces/{namespace}/pods/{pod}"
        self.http = httpx.Client(headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/merge-patch+json"}, verify=ca, timeout=5)
        self.running = 0
        self.wanted: int | None = None
        self.current: int | None = None
        self.failed: int | None = None  # the cost last refused, tried again once another is wanted
        self.changed = threading.Condition()
        self.warned = False
        threading.Thread(target=self._apply, name="deletion-cost", daemon=True).start()

    @classmethod
    def from_env(cls, env: dict | None = None) -> DeletionCost | None:
        """One for this pod, where the chart gave the agent its name and a token; else None."""
        env = os.environ if env is None else env
        pod, namespace, cluster = env.get("POD_NAME"), env.get("POD_NAMESPACE"), in_cluster(env)
        if not (pod and namespace and cluster):
            return None
        api, token, ca = cluster
        return cls(api=api, namespace=namespace, pod=pod, token=token, ca=ca)

    def started(self) -> None:
        with self.changed:
            self.running += 1
            self.wanted = BUSY
            self.changed.notify()

    def ended(self) -> None:
        with self.changed:
            self.running = max(0, self.running - 1)
            if self.running == 0:
                self.wanted = IDLE
                self.changed.notify()

    def settled(self, timeout: float = 5.0) -> bool:
        """Whether the pod carries the cost wanted now (tests wait on it)."""
        with self.changed:
            return self.changed.wait_for(lambda: self.wanted == self.current, timeout=timeout)

    def _apply(self) -> None:
        while True:
            with self.changed:
                self.changed.wait_for(lambda: self.wanted not in (self.current, self.failed))
                cost = self.wanted
            self._set(cost)

    def _set(self, cost: int) -> None:
        try:
            r = self.http.patch(self.url, json={"metadata": {"annotations": {ANNOTATION: str(cost)}}})
            r.raise_for_status()
            with self.changed:
                self.current, self.failed = cost, None
                self.changed.notify_all()
        except Exception as e:  # noqa: BLE001 - a scale-in preference, never a reason to fail a task
            with self.changed:
                self.failed = cost
            if not self.warned:
                log.warning("cannot set the pod's deletion cost; scale-in may pick a busy pod",
                            extra={"error": str(e)})
                self.warned = True


class NoCost:
    """Off the cluster (the local stack): nothing to annotate."""

    def started(self) -> None:
        pass

    def ended(self) -> None:
        pass
