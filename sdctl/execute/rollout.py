"""After the stacks: the Helm releases on the cluster (Karpenter, KEDA, one per runtime), their
plan against what is installed, their removal, and a private kubeconfig for the deployed
cluster. Sequenced by sdctl/execute/deploy.py's Context; every kubeconfig here refreshes its
own token (an exec credential plugin)."""

from __future__ import annotations

from contextlib import contextmanager

from sdctl.contracts.events import Event, Report, ignore
from sdctl.errors import SdctlError
from sdctl.execute.deploy import Context


def release_specs(ctx: Context, outputs: dict[str, dict[str, str]]):
    from sdctl.builders.releases import releases

    subnets = None
    if ctx.cfg.cluster.existing and not ctx.cfg.network.private_subnet_ids:
        from sdctl.execute.aws.preflight import public_subnets

        eks = ctx.aws.client("eks")
        subnets = eks.describe_cluster(name=ctx.cfg.cluster_name)["cluster"]["resourcesVpcConfig"]["subnetIds"]
        public = public_subnets(ctx.aws.client("ec2"), subnets)
        subnets = [s for s in subnets if s not in public]  # a GPU node there reaches nothing
    return releases(ctx.cfg, edge=outputs["edge"], cluster=outputs["cluster"], account=ctx.aws.account,
                    region=ctx.aws.region, cluster_subnets=subnets)


def check_images(ctx: Context, specs) -> None:
    """Every image the runtime releases run must be in ECR before a GPU node is paid for it."""
    from sdctl.builders.releases import images_of
    from sdctl.execute.publish import missing_images

    missing = missing_images(ctx.aws.client("ecr"), images_of(specs), ctx.aws.account, ctx.aws.region)
    if missing:
        raise SdctlError(f"image(s) not in ECR: {', '.join(missing)}; a GPU node would start and never pull them",
                         hint="build and push them with `sdctl images publish`, then `sdctl deploy` again")


def _connect(ctx: Context):
    """A private kubeconfig for the deployed cluster (SdctlError if it cannot be reached)."""
    from sdctl.execute.k8s import cluster

    return cluster.connect(ctx.aws.session, ctx.cfg.cluster_name, ctx.aws.region, ctx.aws.profile)


@contextmanager
def _removed_after(path):
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _deployed_release_outputs(ctx: Context) -> dict[str, dict[str, str]] | None:
    """The outputs releases are built from, or None while the cluster stack is not deployed."""
    name = ctx.stack_name("cluster")
    if name is None or ctx.deployer.status(name) is None:
        return None
    return {"edge": ctx.outputs("edge"), "cluster": ctx.outputs("cluster")}


def deploy_releases(ctx: Context, outputs: dict[str, dict[str, str]], report: Report = ignore) -> dict:
    """After the stacks: Karpenter, KEDA and the runtimes, then wait until they are ready."""
    from sdctl.execute.k8s import cluster

    for key in ("edge", "cluster"):
        if key not in outputs:
            outputs[key] = ctx.outputs(key)
    specs = release_specs(ctx, outputs)
    check_images(ctx, specs)
    with _removed_after(_connect(ctx)) as kubeconfig:
        cluster.install_all(specs, kubeconfig, report)
        return cluster.wait_ready(specs, kubeconfig, report)


def plan_releases(ctx: Context) -> list[dict] | None:
    """Per runtime release: rendered manifests against what is installed. None without a cluster."""
    from sdctl.builders.diff import diff_manifests
    from sdctl.execute.k8s import cluster, helm

    outputs = _deployed_release_outputs(ctx)
    if outputs is None:
        return None
    try:
        path = _connect(ctx)
    except SdctlError:  # the cluster is not reachable
        return None
    with _removed_after(path) as kubeconfig:
        return [{"release": rel.name, "namespace": rel.namespace,
                 "changes": diff_manifests(helm.render(rel), cluster.installed_objects(rel, kubeconfig))}
                for rel in release_specs(ctx, outputs) if rel.runtime]


def destroy_releases(ctx: Context, report: Report = ignore) -> bool:
    """Uninstall every release; False when there is no cluster to uninstall from."""
    from sdctl.execute.k8s import cluster

    outputs = _deployed_release_outputs(ctx)
    if outputs is None:
        return False
    try:
        path = _connect(ctx)
    except SdctlError as e:
        report(Event("releases", f"skipping Helm releases: {e.message}", "warning", "skipped"))
        return False
    with _removed_after(path) as kubeconfig:
        cluster.uninstall_all(release_specs(ctx, outputs), kubeconfig, report)
    return True


def cluster_kubeconfig(ctx: Context):
    """A private, short-lived kubeconfig for the deployed cluster (removed when done)."""
    return _removed_after(_connect(ctx))
