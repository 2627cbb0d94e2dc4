"""Checks that say what is wrong and how to fix it. Each returns (status, detail, fix)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

OK, WARN, FAIL = "ok", "warn", "fail"


def check_helm() -> tuple[str, str, str | None]:
    from sdctl.helmbin import find_helm

    helm = find_helm()
    if helm is None:
        return FAIL, "helm not found", "make helm (or python -m sdctl.helmbin install), or set SDCTL_HELM"
    version = subprocess.run([helm, "version", "--short"], capture_output=True, text=True).stdout.strip()
    major = version.lstrip("v").split(".")[0]
    if major not in ("3", "4"):
        return WARN, f"{helm} is {version}", "use helm 3 or 4"
    return OK, f"{helm} {version}", None


def check_config(path) -> tuple[str, str, str | None]:
    from sdctl.config import config_path, load
    from sdctl.errors import ConfigError

    p = config_path(path)
    try:
        cfg = load(p)
    except ConfigError as e:
        return FAIL, e.message, e.hint or f"sdctl validate -c {p}"
    return OK, f"{p}: stack {cfg.stack_name}, {len(cfg.runtimes)} runtime(s)", None


def check_credentials(region: str | None, profile: str | None) -> tuple[str, str, str | None]:
    from sdctl.aws.session import connect
    from sdctl.errors import SdctlError

    try:
        aws = connect(region=region, profile=profile, config_region=region)
    except SdctlError as e:
        return WARN, e.message, e.hint
    return OK, f"account {aws.account} as {aws.principal_arn} in {aws.region}", None


def run(checks: dict[str, Callable[[], tuple[str, str, str | None]]]) -> list[dict]:
    return rows([(name, fn()) for name, fn in checks.items()])


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


def check_quotas(quotas_client, cfg) -> list[tuple[str, tuple[str, str, str | None]]]:
    out = []
    for (family, capacity), (one, full, itype) in sorted(gpu_needs(cfg).items()):
        code, name = QUOTAS[(family, capacity)]
        try:
            value = quotas_client.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]
        except Exception:
            value = None
        out.append((f"quota {capacity} {family}", quota_verdict(name, code, value, one, full, itype)))
    return out


# -- the cluster --------------------------------------------------------------------------------
SYSTEM = {"karpenter": ("kube-system", "karpenter"), "keda": ("keda", "keda-operator")}


def cluster_objects(api, cfg) -> dict:
    """What the cluster checks read (thin): version, controller and runtime Deployments, ScaledObjects."""
    from kubernetes import client as k
    from kubernetes.client.exceptions import ApiException

    apps, custom = k.AppsV1Api(api), k.CustomObjectsApi(api)
    plain = api.sanitize_for_serialization

    def get(fn, *args):
        try:
            return plain(fn(*args))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    objs = {"version": plain(k.VersionApi(api).get_code()).get("gitVersion"), "deployments": {}, "scaledobjects": {}}
    for key, (ns, name) in SYSTEM.items():
        objs["deployments"][key] = get(apps.read_namespaced_deployment, name, ns)
    for rt in cfg.runtimes:
        objs["deployments"][rt.name] = get(apps.read_namespaced_deployment, f"sd-{rt.name}", rt.namespace)
        objs["scaledobjects"][rt.name] = get(custom.get_namespaced_custom_object, "keda.sh", "v1alpha1", rt.namespace,
                                             "scaledobjects", f"sd-{rt.name}")
    return objs


def cluster_checks(objs: dict, cfg, *, chart_version: str) -> list[tuple[str, tuple[str, str, str | None]]]:
    """Controllers healthy, ScaledObjects ready, charts at the pinned versions. Pure."""
    from sdctl import versions

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
