"""`sdctl doctor | kubeconfig | status`: a deployed stack's health, cluster access and outputs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sdctl.cli.common import (
    ConfigOpt,
    OutputOpt,
    aws_for,
    config_arg,
    emit_json,
    out,
    output_mode,
)
from sdctl.cli.deploy_cmds import _load
from sdctl.cli.lazy import Commands

commands = Commands()


@commands.command()
def doctor(
    ctx: typer.Context,
    kubeconfig: Annotated[Path | None, typer.Option("--kubeconfig", exists=True, dir_okay=False,
                                                    help="Check this cluster instead of the deployed one.")] = None,
    config: ConfigOpt = None,
    output: OutputOpt = None,
) -> None:
    from sdctl.operate import doctor as dr

    mode = output_mode(ctx, output)
    obj = ctx.obj or {}
    path = config_arg(ctx, config)
    region, cfg = obj.get("region"), None
    try:
        cfg = _load(ctx, config)
        region = region or cfg.region
    except Exception:  # the config check reports it
        pass
    results = dr.run({
        "helm": dr.check_helm,
        "config": lambda: dr.check_config(path),
        "aws credentials": lambda: dr.check_credentials(region, obj.get("profile")),
    })
    aws = None
    if cfg is not None and results[2]["status"] == dr.OK:
        from sdctl.execute.aws.session import connect

        aws = connect(region=region, profile=obj.get("profile"), config_region=cfg.region)
        results += dr.rows(dr.check_quotas(aws.client("service-quotas"), cfg))
        results += dr.rows(dr.aws_checks(aws, cfg))
    if cfg is not None and (kubeconfig is not None or aws is not None):
        results += dr.rows(_cluster_checks(ctx, cfg, kubeconfig))
    if mode == "json":
        emit_json({"checks": results})
    else:
        colors = {"ok": "green", "warn": "yellow", "fail": "red"}
        for r in results:
            out.print(f"[{colors[r['status']]}]{r['status']:4}[/] {r['check']:16} {r['detail']}")
            if r["fix"]:
                out.print(f"     {'':16} fix: {r['fix']}", markup=False)
    if any(r["status"] == "fail" for r in results):
        raise typer.Exit(1)

def _cluster_checks(ctx, cfg, kubeconfig):
    from sdctl.builders.releases import chart_dir
    from sdctl.cli.ops_cmds import _kube
    from sdctl.operate import doctor as dr

    chart_version = yaml_version(chart_dir() / "Chart.yaml")
    try:
        with _kube(ctx, cfg, kubeconfig) as api:
            objs = dr.cluster_objects(api, cfg)
    except Exception as e:
        reason = getattr(e, "message", None) or str(e).splitlines()[0][:200]
        return [("cluster", (dr.WARN if kubeconfig is None else dr.FAIL, f"not reachable: {reason}",
                             "deploy the cluster (`sdctl deploy`) or pass --kubeconfig"))]
    return dr.cluster_checks(objs, cfg, chart_version=chart_version)

@commands.command()
def kubeconfig(
    ctx: typer.Context,
    write: Annotated[Path | None, typer.Option("--write", help="Write a kubeconfig here (mode 0600).")] = None,
    token_only: Annotated[bool, typer.Option("--token", help="Print an ExecCredential (for kubeconfig exec).")] = False,
    cluster: Annotated[str | None, typer.Option(help="Cluster name (default: from the config).")] = None,
    config: ConfigOpt = None,
    output: OutputOpt = None,
) -> None:
    mode = output_mode(ctx, output)
    from sdctl.execute.aws.session import session_only
    from sdctl.execute.k8s import eks

    obj = ctx.obj or {}
    if token_only and cluster:  # the exec plugin: presign only, no STS round trip
        session, region = session_only(region=obj.get("region"), profile=obj.get("profile"))
        emit_json(eks.exec_credential(eks.token(session, cluster, region)))
        return
    cfg = _load(ctx, config)
    aws = aws_for(ctx, cfg)
    name = cluster or cfg.cluster_name
    if token_only:
        emit_json(eks.exec_credential(eks.token(aws.session, name, aws.region)))
        return
    endpoint, ca = eks.describe(aws.session, name, aws.region)
    doc = eks.kubeconfig(name, endpoint, ca, user=eks.exec_user(name, aws.region, obj.get("profile")))
    if write:
        path = str(eks.write_private(doc, write))
        return emit_json({"written": path, "cluster": name}) if mode == "json" else out.print(path)
    if mode == "json":
        emit_json(doc)
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))

@commands.command()
def status(
    ctx: typer.Context,
    show_key: Annotated[bool, typer.Option("--show-key", help="Fetch and print the API key value.")] = False,
    config: ConfigOpt = None,
    output: OutputOpt = None,
) -> None:
    from rich.table import Table

    from sdctl.execute import deploy

    mode = output_mode(ctx, output)
    cfg = _load(ctx, config)
    aws = aws_for(ctx, cfg)
    rows = deploy.status(deploy.context(cfg, aws))
    key = None
    edge = next((r for r in rows if r["key"] == "edge"), None)
    if show_key and edge and "ApiKeyId" in edge["outputs"]:
        key = deploy.api_key_value(aws, edge["outputs"]["ApiKeyId"])
    if mode == "json":
        emit_json({"region": aws.region, "account": aws.account, "stacks": rows,
                   **({"api_key": key} if key else {})})
        return
    table = Table("stack", "status", "updated")
    for r in rows:
        color = "green" if r["status"].endswith("COMPLETE") and "ROLLBACK" not in r["status"] else "yellow"
        table.add_row(r["stack"], f"[{color}]{r['status']}[/]", r["updated"] or "")
    out.print(table)
    for r in rows:
        for k, v in sorted(r["outputs"].items()):
            out.print(f"  {r['key']}.{k:30} {v}")
    if key:
        out.print(f"  api key: {key}")


def yaml_version(path) -> str:
    import yaml

    return str(yaml.safe_load(path.read_text())["version"])
