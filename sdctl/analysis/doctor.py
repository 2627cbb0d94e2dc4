"""doctor's verdicts: what a reading means and how to fix it, as (status, detail, fix). Pure;
the readers are in sdctl/operate/doctor.py."""

from __future__ import annotations

OK, WARN, FAIL = "ok", "warn", "fail"


def rows(results: list[tuple[str, tuple[str, str, str | None]]]) -> list[dict]:
    return [dict(zip(("check", "status", "detail", "fix"), (name, *r), strict=True)) for name, r in results]



# -- GPU quotas -------------------------------------------------------------------------------
#: vCPUs per instance type sdctl's configs name (EC2 quotas for G/P instances count vCPUs).
VCPUS = {"g4dn.xlarge": 4, "g4dn.2xlarge": 8, "g5.xlarge": 4, "g5.2xlarge": 8, "g5.4xlarge": 16,
         "g6.xlarge": 4, "g6.2xlarge": 8, "g6.4xlarge": 16, "g6e.xlarge": 4, "g6e.2xlarge": 8,
         "p4d.24xlarge": 96, "p5.48xlarge": 192}
#: (family letter, capacity) -> (quota code, name) in Service Quotas, service code ec2.
QUOTAS = {("g", "spot"): ("L-3819A6DF", "All G and VT Spot Instance Requests"),
          ("g", "on-demand"): ("L-DB2E81BA", "Running On-Demand G and VT instances"),
          ("p", "spot"): ("L-7212CCBC", "All P4, P3 and P2 Spot Instance Requests"),
          ("p", "on-demand"): ("L-417A185B", "Running On-Demand P instances")}


def gpu_needs(cfg) -> dict[tuple[str, str], tuple[int, int, str]]:
    """(family, capacity) -> (vCPUs for one node, vCPUs for every runtime at maxReplicas, type). Pure."""
    needs: dict[tuple[str, str], tuple[int, int, str]] = {}
    for rt in cfg.runtimes:
        biggest = max(rt.nodes.instance_types, key=lambda t: VCPUS.get(t, 8))
        one = VCPUS.get(biggest, 8)
        for capacity in rt.nodes.capacity_types:
            key = (biggest[0], capacity)
            if key not in QUOTAS:
                continue
            prev = needs.get(key, (0, 0, biggest))
            needs[key] = (max(prev[0], one), prev[1] + one * rt.scaling.max_replicas, biggest)
    return needs


def quota_verdict(name: str, code: str, value: float | None, one: int, full: int, itype: str):
    fix = f"request an increase in Service Quotas: EC2 > {name} ({code})"
    if value is None:
        return WARN, f"{name}: could not read the quota", "check it in the Service Quotas console: " + code
    if value < one:
        return FAIL, f"{name} is {value:.0f} vCPUs: not enough for one {itype} ({one} vCPUs)", fix
    if value < full:
        return WARN, f"{name} is {value:.0f} vCPUs: {int(value // one)} node(s); maxReplicas needs {full}", fix
    return OK, f"{name} is {value:.0f} vCPUs (maxReplicas needs {full})", None



# -- what only a deployed stack shows ---------------------------------------------------------
def endpoint_verdict(cidrs: list[str], where: str) -> tuple[str, str, str | None]:
    """The cluster's public API endpoint: open to the internet is a warning. Pure."""
    if "0.0.0.0/0" in cidrs:
        return WARN, f"the cluster's public endpoint is open to 0.0.0.0/0 ({where})", \
            "set cluster.publicAccessCidrs to your addresses (or leave it unset: the deployer's /32) and deploy"
    return OK, f"public endpoint open to {', '.join(cidrs)} ({where})", None


def images_verdict(missing: list[str], checked: int) -> tuple[str, str, str | None]:
    if missing:
        return FAIL, f"not in ECR: {', '.join(missing)}", "sdctl images publish"
    return OK, f"{checked} image(s) present in ECR", None


def subnets_verdict(found: list[str], how: str) -> tuple[str, str, str | None]:
    if not found:
        return FAIL, f"no subnet matches the GPU nodes' selector ({how}): Karpenter can launch no node", \
            "check network.privateSubnetIds (an existing VPC) or the subnets' karpenter.sh/discovery tag"
    return OK, f"{len(found)} subnet(s) for GPU nodes ({how})", None


def ami_parameter(kubernetes: str, arch: str = "x86_64") -> str:
    """The SSM parameter Karpenter resolves the pinned Bottlerocket alias through (GPU variant)."""
    from sdctl import versions

    return f"/aws/service/bottlerocket/aws-k8s-{kubernetes}-nvidia/{arch}/{versions.BOTTLEROCKET}/image_id"



# -- the cluster --------------------------------------------------------------------------------
SYSTEM = {"karpenter": ("kube-system", "karpenter"), "keda": ("keda", "keda-operator")}


def cluster_checks(objs: dict, cfg, *, chart_version: str) -> list[tuple[str, tuple[str, str, str | None]]]:
    """Controllers healthy, ScaledObjects ready, charts at the pinned versions. Pure."""
    from sdctl import versions
    from sdctl.analysis.scale import unusable

    out = [("cluster", (OK, f"reachable, Kubernetes {objs.get('version')}", None))]
    pinned = {"karpenter": f"karpenter-{versions.KARPENTER}", "keda": f"keda-{versions.KEDA}"}
    for key in ("karpenter", "keda", *[rt.name for rt in cfg.runtimes]):
        dep = objs["deployments"].get(key)
        name = key if key in SYSTEM else f"runtime {key}"
        if dep is None:
            out.append((name, (FAIL, "not installed", "sdctl deploy (installs the releases)")))
            continue
        status = dep.get("status") or {}
        want = (dep.get("spec") or {}).get("replicas", 0)
        ready = status.get("readyReplicas", 0)
        chart = (dep["metadata"].get("labels") or {}).get("helm.sh/chart", "?")
        expected = pinned.get(key, f"sd-runtime-{chart_version}")
        drift = "" if chart == expected else f"; chart {chart}, sdctl pins {expected}"
        fix = "sdctl deploy (upgrades the releases to the pinned charts)" if drift else None
        if key in SYSTEM and ready < max(want, 1):
            out.append((name, (FAIL, f"{ready}/{want} replicas ready{drift}",
                               f"kubectl -n {SYSTEM[key][0]} describe deployment {SYSTEM[key][1]}")))
        else:
            out.append((name, (WARN if drift else OK, f"{ready}/{want} replicas ready, {chart}{drift}", fix)))
    for rt in cfg.runtimes:
        why = unusable(objs.get("pods", {}).get(rt.name) or [])
        if why:  # its agent stopped: the model cannot take a task as configured
            out.append((f"runtime {rt.name} tasks", (FAIL, f"cannot take tasks: {why}",
                                                     "fix the model (its setup) or the runtime's `inputs`, push, "
                                                     "then sdctl deploy")))
        so = objs["scaledobjects"].get(rt.name)
        if so is None:
            out.append((f"scaledobject {rt.name}", (FAIL, "missing", "sdctl deploy")))
            continue
        conds = {c["type"]: c for c in (so.get("status") or {}).get("conditions", [])}
        ready = conds.get("Ready", {})
        if ready.get("status") != "True":
            out.append((f"scaledobject {rt.name}", (FAIL, f"not Ready: {ready.get('message') or ready.get('reason')}",
                                                     "check the KEDA role can read the queue (docs/eks.md)")))
        else:
            active = conds.get("Active", {}).get("status") == "True"
            out.append((f"scaledobject {rt.name}", (OK, "Ready, " + ("active" if active else "idle"), None)))
    return out
