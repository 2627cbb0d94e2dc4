"""doctor's readers: tools, config, credentials, quotas, the deployed stack and the cluster.
Each check reads, then asks a pure verdict (sdctl/analysis/doctor.py): (status, detail, fix)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

# The verdicts are pure (sdctl/analysis/doctor.py); the CLI reaches them through this module.
from sdctl.analysis.doctor import (  # noqa: F401
    FAIL,
    OK,
    QUOTAS,
    SYSTEM,
    WARN,
    ami_parameter,
    cluster_checks,
    endpoint_verdict,
    gpu_needs,
    images_verdict,
    quota_verdict,
    rows,
    subnets_verdict,
)


def check_helm() -> tuple[str, str, str | None]:
    from sdctl.execute.helmbin import INSTALL_HINT, find_helm

    helm = find_helm()
    if helm is None:
        return FAIL, "helm not found", INSTALL_HINT
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
    from sdctl.errors import SdctlError
    from sdctl.execute.aws.session import connect

    try:
        aws = connect(region=region, profile=profile, config_region=region)
    except SdctlError as e:
        return WARN, e.message, e.hint
    return OK, f"account {aws.account} as {aws.principal_arn} in {aws.region}", None


def run(checks: dict[str, Callable[[], tuple[str, str, str | None]]]) -> list[dict]:
    return rows([(name, fn()) for name, fn in checks.items()])


# -- GPU quotas -------------------------------------------------------------------------------
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


# -- what only a deployed stack shows ---------------------------------------------------------
def aws_checks(aws, cfg) -> list[tuple[str, tuple[str, str, str | None]]]:
    """Read the deployed stack's AWS side: images in ECR for every runtime, subnets the GPU nodes
    can select, the pinned node AMI in this region, and who may reach the cluster endpoint."""
    import botocore.exceptions as bex

    from sdctl import __version__
    from sdctl.builders import images
    from sdctl.builders.releases import node_subnets
    from sdctl.execute import publish

    out = []
    uris = [images.agent_image(cfg.stack_name, aws.account, aws.region, __version__)]
    uris += [images.runtime_image(cfg.stack_name, rt.type, rt.image, aws.account, aws.region, __version__)
             for rt in cfg.runtimes]
    try:
        missing = publish.missing_images(aws.client("ecr"), uris, aws.account, aws.region)
        out.append(("images", images_verdict(missing, len(set(uris)))))
    except (bex.ClientError, bex.BotoCoreError) as e:
        out.append(("images", (WARN, f"could not read ECR: {e}", None)))

    cluster_info = None
    try:
        cluster_info = aws.client("eks").describe_cluster(name=cfg.cluster_name)["cluster"]
    except (bex.ClientError, bex.BotoCoreError):
        pass
    if cluster_info is not None:
        vpc = cluster_info.get("resourcesVpcConfig") or {}
        out.append(("endpoint", endpoint_verdict(vpc.get("publicAccessCidrs") or [], "live")))
    elif cfg.cluster.public_access_cidrs:
        out.append(("endpoint", endpoint_verdict(cfg.cluster.public_access_cidrs, "config")))

    ec2 = aws.client("ec2")
    ids = node_subnets(cfg, (cluster_info or {}).get("resourcesVpcConfig", {}).get("subnetIds"))
    try:
        if ids:
            found = [s["SubnetId"] for s in ec2.describe_subnets(SubnetIds=ids)["Subnets"]]
            how = "by id"
        else:
            found = [s["SubnetId"] for s in ec2.describe_subnets(Filters=[
                {"Name": "tag:karpenter.sh/discovery", "Values": [cfg.cluster_name]}])["Subnets"]]
            how = f"tag karpenter.sh/discovery={cfg.cluster_name}"
        out.append(("subnets", subnets_verdict(found, how)))
    except (bex.ClientError, bex.BotoCoreError) as e:
        out.append(("subnets", (FAIL, f"subnets not found: {e}", "check network.privateSubnetIds")))

    # Karpenter resolves the image for the cluster's live version (an existing cluster's own)
    live = (cluster_info or {}).get("version") or cfg.cluster.version
    name = ami_parameter(live)
    try:
        aws.client("ssm").get_parameter(Name=name)
        out.append(("node image", (OK, f"{name} resolves", None)))
    except (bex.ClientError, bex.BotoCoreError) as e:
        out.append(("node image", (FAIL, f"{name} does not resolve here: {e}",
                                   "update sdctl (sdctl/versions.py pins the Bottlerocket release)")))
    return out


# -- the cluster --------------------------------------------------------------------------------
def cluster_objects(api, cfg) -> dict:
    """What the cluster checks read (thin): version, controller and runtime Deployments, ScaledObjects."""
    from kubernetes import client as k
    from kubernetes.client.exceptions import ApiException

    from sdctl.builders.names import release_name

    apps, custom, core = k.AppsV1Api(api), k.CustomObjectsApi(api), k.CoreV1Api(api)
    plain = api.sanitize_for_serialization

    def get(fn, *args, **kwargs):
        try:
            return plain(fn(*args, **kwargs))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    objs = {"version": plain(k.VersionApi(api).get_code()).get("gitVersion"), "deployments": {}, "scaledobjects": {},
            "pods": {}}
    for key, (ns, name) in SYSTEM.items():
        objs["deployments"][key] = get(apps.read_namespaced_deployment, name, ns)
    for rt in cfg.runtimes:
        objs["deployments"][rt.name] = get(apps.read_namespaced_deployment, release_name(rt.name), rt.namespace)
        objs["scaledobjects"][rt.name] = get(custom.get_namespaced_custom_object, "keda.sh", "v1alpha1", rt.namespace,
                                             "scaledobjects", release_name(rt.name))
        pods = get(core.list_namespaced_pod, rt.namespace,
                   label_selector=f"app.kubernetes.io/instance={release_name(rt.name)}")
        objs["pods"][rt.name] = (pods or {}).get("items", [])
    return objs


