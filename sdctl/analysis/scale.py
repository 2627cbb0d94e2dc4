"""`sdctl scale status`'s verdicts: from queue depth, the ScaledObject, the Deployment, pods,
NodeClaims and nodes (as sdctl/execute/k8s/scale.py reads them) to what blocks scaling. Pure."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from sdctl.contracts.agent_env import UNUSABLE_EXIT

INSTANCE = re.compile(r"\b([a-z][a-z0-9-]*\d[a-z]*\.(?:\d*x?large|metal|medium|small|micro|nano))\b")
ZONE = re.compile(r"\b([a-z]{2}(?:-gov)?-[a-z]+-\d[a-z])\b")
CAPACITY_WORDS = ("insufficient", "capacity", "InsufficientInstanceCapacity", "UnfulfillableCapacity")



def _conditions(obj: dict | None) -> dict[str, dict]:
    return {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def _age(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    return max(0.0, (now - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds())


def human(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _claim(c: dict, now: datetime) -> dict:
    labels = c["metadata"].get("labels") or {}
    conds = _conditions(c)
    failed = [x for x in conds.values() if x.get("status") == "False" and x.get("message")]
    message = failed[0]["message"] if failed else ""
    itype = labels.get("node.kubernetes.io/instance-type") or next(iter(INSTANCE.findall(message)), None)
    zone = labels.get("topology.kubernetes.io/zone") or next(iter(ZONE.findall(message)), None)
    return {"name": c["metadata"]["name"], "instance_type": itype, "capacity": labels.get("karpenter.sh/capacity-type"),
            "zone": zone, "age_s": _age(c["metadata"].get("creationTimestamp"), now),
            "node": (c.get("status") or {}).get("nodeName"),
            **{k.lower(): conds.get(k, {}).get("status", "Unknown") for k in ("Launched", "Registered", "Initialized",
                                                                             "Ready")},
            "error": message, "error_reason": failed[0].get("reason") if failed else None}


def _node(n: dict, now: datetime) -> dict:
    labels = n["metadata"].get("labels") or {}
    ready = _conditions(n).get("Ready", {}).get("status") == "True"
    return {"name": n["metadata"]["name"], "instance_type": labels.get("node.kubernetes.io/instance-type"),
            "capacity": labels.get("karpenter.sh/capacity-type"), "zone": labels.get("topology.kubernetes.io/zone"),
            "age_s": _age(n["metadata"].get("creationTimestamp"), now), "ready": ready}


def _pod(p: dict) -> dict:
    phase = (p.get("status") or {}).get("phase")
    sched = _conditions(p).get("PodScheduled", {})
    ready = _conditions(p).get("Ready", {}).get("status") == "True"
    return {"name": p["metadata"]["name"], "phase": phase, "ready": ready, "node": (p.get("spec") or {}).get("nodeName"),
            "reason": sched.get("reason") if sched.get("status") == "False" else None,
            "message": sched.get("message") if sched.get("status") == "False" else None}


def _at(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


def _between(a: datetime | None, b: datetime | None) -> float | None:
    return round((b - a).total_seconds(), 1) if a and b and b >= a else None


def start_phases(pod: dict, claims: list[dict]) -> dict:
    """Where a pod's cold start went, from the objects' own timestamps: the NodeClaim's launch
    (created → Launched) and its node's start (Launched → Initialized), the wait to be
    scheduled, the image pull (scheduled → the runtime container started; it includes the
    pull and unpack), and the model load (started → Ready, the runtime's readiness). A phase
    not reached yet (or not seen) is None."""
    conds = _conditions(pod)
    created = _at(pod["metadata"].get("creationTimestamp"))
    scheduled = _at(conds.get("PodScheduled", {}).get("lastTransitionTime")) \
        if conds.get("PodScheduled", {}).get("status") == "True" else None
    ready = _at(conds.get("Ready", {}).get("lastTransitionTime")) if conds.get("Ready", {}).get("status") == "True" \
        else None
    runtime = next((c for c in (pod.get("status") or {}).get("containerStatuses") or [] if c.get("name") == "runtime"),
                   {})
    started = _at(((runtime.get("state") or {}).get("running") or {}).get("startedAt"))
    node = (pod.get("spec") or {}).get("nodeName")
    claim = next((c for c in claims if (c.get("status") or {}).get("nodeName") == node), None) if node else None
    launched = initialized = claimed = None
    if claim:
        cc = _conditions(claim)
        claimed = _at(claim["metadata"].get("creationTimestamp"))
        launched = _at(cc.get("Launched", {}).get("lastTransitionTime")) if cc.get("Launched", {}).get(
            "status") == "True" else None
        initialized = _at(cc.get("Initialized", {}).get("lastTransitionTime")) if cc.get("Initialized", {}).get(
            "status") == "True" else None
    return {"pod": pod["metadata"]["name"], "node_launch_s": _between(claimed, launched),
            "node_start_s": _between(launched, initialized), "scheduled_after_s": _between(created, scheduled),
            "image_pull_s": _between(scheduled, started), "model_load_s": _between(started, ready),
            "total_s": _between(created, ready)}


def explain(runtime: str, queue: dict, objs: dict, *, queue_length: int, min_replicas: int, max_replicas: int,
            scale_on_in_flight: bool = True, now: datetime | None = None, warm: int = 0,
            scale_down_window: int = 300) -> dict:
    """The chain of cause and effect for one runtime, and a verdict. ``warm``: the pods an open
    warm window keeps now (scaling.warm); ``scale_down_window``: the HPA's, in seconds."""
    now = now or datetime.now(UTC)
    depth = queue.get("visible", 0) + (queue.get("in_flight", 0) if scale_on_in_flight else 0)
    so = objs.get("scaledobject")
    so_conds = _conditions(so)
    so_ready = so_conds.get("Ready", {}).get("status") == "True"
    active = so_conds.get("Active", {}).get("status") == "True"
    wanted = min(max(math.ceil(depth / queue_length), min_replicas, warm, 1 if depth else 0), max_replicas) \
        if so else None
    dep = objs.get("deployment") or {}
    desired = (dep.get("spec") or {}).get("replicas", 0) if dep else None
    ready = (dep.get("status") or {}).get("readyReplicas", 0) if dep else None
    pods = [_pod(p) for p in objs.get("pods", []) if not (p["metadata"].get("deletionTimestamp"))]
    pending = [p for p in pods if p["phase"] == "Pending"]
    claims = [_claim(c, now) for c in objs.get("nodeclaims", [])]
    nodes = [_node(n, now) for n in objs.get("nodes", [])]
    chain = {"queue": {"depth": depth, **queue},
             "scaledobject": None if so is None else {"ready": so_ready, "active": active, "wants": wanted,
                                                      "message": so_conds.get("Ready", {}).get("message")},
             "deployment": None if not dep else {"desired": desired, "ready": ready},
             "pods": {"running": sum(1 for p in pods if p["phase"] == "Running"), "pending": pending,
                      "unusable": unusable(objs.get("pods", []))},
             "nodeclaims": claims, "nodes": nodes,
             # Cold starts of pods that are starting or started in the last 15 minutes.
             "starts": [start_phases(p, objs.get("nodeclaims", [])) for p in objs.get("pods", [])
                        if not p["metadata"].get("deletionTimestamp")
                        and (_age(p["metadata"].get("creationTimestamp"), now) or 0) < 900]}
    chain["warm"], chain["scale_down_window_s"] = warm, scale_down_window
    return {"runtime": runtime, **chain, "verdict": _verdict(chain, pending, claims, nodes, wanted, desired, ready,
                                                            depth)}




def unusable(pods: list[dict]) -> str | None:
    """Why a pod's runtime can never take a task, as its agent said when it stopped (its
    termination message: a Cog model whose setup failed, an input the model lacks)."""
    for pod in pods:
        for c in (pod.get("status") or {}).get("containerStatuses") or []:
            if c.get("name") != "agent":
                continue
            for state in ((c.get("state") or {}).get("terminated"), (c.get("lastState") or {}).get("terminated")):
                if state and state.get("exitCode") == UNUSABLE_EXIT:
                    return (state.get("message") or "see `sdctl logs --agent`").strip()
    return None


def _verdict(chain, pending, claims, nodes, wanted, desired, ready, depth) -> str:
    so = chain["scaledobject"]
    if so is None:
        return "no ScaledObject: the runtime's release is not installed (run `sdctl deploy`)"
    if not so["ready"]:
        return f"KEDA cannot read the queue: {so.get('message') or 'ScaledObject not Ready'}"
    if chain["deployment"] is None:
        return "no Deployment for this runtime (run `sdctl deploy`)"
    if chain["pods"]["unusable"]:
        return (f"the runtime cannot take tasks: {chain['pods']['unusable']} (its agent stopped; fix the model or "
                "the runtime's `inputs`, then `sdctl deploy`)")
    failed = [c for c in claims if c["error"] and (c["launched"] == "False" or
                                                    any(w.lower() in c["error"].lower() for w in CAPACITY_WORDS))]
    capacity = [c for c in failed if any(w.lower() in c["error"].lower() for w in CAPACITY_WORDS)]
    if capacity:
        c = capacity[0]
        where = f" in {c['zone']}" if c["zone"] else ""
        return (f"capacity error for {c['instance_type'] or 'the requested type'}{where}: Karpenter will try the "
                f"other types and zones; add instance types or allow on-demand if it persists")
    if failed:
        c = failed[0]
        return f"NodeClaim {c['name']} failed to launch: {c['error_reason'] or ''} {c['error']}".strip()
    n = len(pending)
    if n:
        waiting = [c for c in claims if c["launched"] == "True" and c["registered"] != "True"]
        if waiting:
            return (f"{n} pod(s) pending: NodeClaim launched {human(waiting[0]['age_s'])} ago, waiting for the node "
                    "to register")
        booting = [c for c in claims if c["registered"] == "True" and c["initialized"] != "True"]
        if booting:
            return f"{n} pod(s) pending: node {booting[0]['node']} registered, waiting for it to initialize (GPU driver)"
        launching = [c for c in claims if c["launched"] != "True"]
        if launching:
            return f"{n} pod(s) pending: NodeClaim created {human(launching[0]['age_s'])} ago, instance launching"
        reason = pending[0]["message"] or pending[0]["reason"] or "unschedulable"
        return (f"{n} pod(s) pending and no node on the way: {reason}. Check the NodePool's gpuLimit and "
                "Karpenter's logs (`sdctl logs`)")
    if wanted is not None and desired is not None and wanted > desired:
        return f"scaling up: KEDA asks for {wanted} replica(s), the Deployment has {desired}"
    if depth == 0 and not desired:
        return "idle: scaled to zero; the next task starts a node (about 2 minutes)"
    if depth == 0 and chain["warm"]:
        return f"idle: {ready} replica(s) ready, kept warm by an open scaling.warm window ({chain['warm']} pod(s))"
    if depth == 0:
        return (f"idle: {ready} replica(s) ready; the HPA keeps them through its {chain['scale_down_window_s']} s "
                "scale-down window after the last task, then the cooldown scales to zero")
    if ready and ready >= (desired or 0):
        return f"working: {ready} replica(s) on {len(nodes)} node(s) through {depth} task(s)"
    return f"{ready or 0} of {desired} replica(s) ready; {depth} task(s) waiting"
