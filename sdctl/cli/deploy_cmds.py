"""`sdctl synth | plan | deploy | destroy | status`: the AWS side."""

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
    err,
    out,
    output_mode,
)
from sdctl.cli.lazy import Commands

#: `sdctl plan` exit code when changes are pending (0: none, 1: error, 2: usage/config).
PLAN_CHANGES_PENDING = 3
COLORS = {"Add": "green", "Modify": "yellow", "Remove": "red", "Dynamic": "magenta"}


def _load(ctx: typer.Context, config):
    from sdctl.config import config_path, load

    return load(config_path(config_arg(ctx, config)))


def _yes(ctx: typer.Context, flag: bool) -> bool:
    return flag or bool((ctx.obj or {}).get("yes"))


def _changes_table(cs):
    from rich.table import Table

    title = f"{cs.stack} ({'create' if cs.kind == 'CREATE' else 'update'}): {len(cs.changes)} change(s)"
    table = Table("action", "logical id", "type", "replacement", title=title, title_justify="left")
    for c in cs.changes:
        color = COLORS.get(c.action, "white")
        table.add_row(f"[{color}]{c.action}[/]", c.logical_id, c.resource_type,
                      "[red]yes[/]" if c.replacement == "True" else ("maybe" if c.replacement == "Conditional" else "no"))
    return table


commands = Commands()


@commands.command()
def synth(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the templates into.")] = Path("synth"),
    manifests: Annotated[bool, typer.Option("--manifests/--no-manifests",
                                            help="Also render each runtime's Kubernetes manifests (needs helm: "
                                                 "`make demo` and `make test` install it; else "
                                                 "python -m sdctl.execute.helmbin install ~/.cache/sdctl/bin)."
                                            )] = True,
    config: ConfigOpt = None,
    output: OutputOpt = None,
) -> None:
    from sdctl.execute import synth as synthesis
    from sdctl.execute.k8s.helm import HelmMissing

    mode = output_mode(ctx, output)
    cfg = _load(ctx, config)
    try:
        files = synthesis.files(cfg, manifests=manifests)
    except HelmMissing as e:
        e.hint = f"{e.hint}\nnothing was written; `sdctl synth --no-manifests` writes the templates alone"
        raise
    written = synthesis.write_all(out_dir, files)
    if mode == "json":
        emit_json({"written": written})
    else:
        for w in written:
            out.print(w)

@commands.command()
def plan(
    ctx: typer.Context,
    only: Annotated[str | None, typer.Option(help="Plan one stack: network, edge or cluster.")] = None,
    config: ConfigOpt = None,
    output: OutputOpt = None,
) -> None:
    """Exit 0: nothing; 3: changes pending."""
    from sdctl.execute import deploy, rollout

    mode = output_mode(ctx, output)
    cfg = _load(ctx, config)
    dctx = deploy.context(cfg, aws_for(ctx, cfg))
    with err.status("creating change sets…"):
        results = deploy.plan(dctx, only)
    with err.status("rendering Helm releases…"):
        release_plan = rollout.plan_releases(dctx) if only is None else None
    pending = any(not cs.empty for cs in results) or any(r["changes"] for r in release_plan or [])
    if mode == "json":
        emit_json({"changes_pending": pending, "stacks": [
            {"stack": cs.stack, "kind": cs.kind, "changes": [c.to_dict() for c in cs.changes]} for cs in results],
            "releases": release_plan})
    else:
        for cs in results:
            if cs.empty:
                out.print(f"{cs.stack}: no changes")
            else:
                out.print(_changes_table(cs))
        if release_plan is None and only is None:
            err.print("[dim]releases: the cluster is not reachable; run `sdctl synth` to see the manifests[/]")
        for r in release_plan or []:
            out.print(f"release {r['release']} ({r['namespace']}): "
                      + (f"{len(r['changes'])} object(s) change" if r["changes"] else "no changes"))
            for c in r["changes"]:
                out.print(f"  {c['action']:6} {c['kind']}/{c['name']}")
                if c["action"] == "change":
                    out.print(c["diff"], markup=False)
    if pending:
        raise typer.Exit(PLAN_CHANGES_PENDING)

@commands.command("deploy")
def deploy_cmd(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    only: Annotated[str | None, typer.Option(help="Deploy one stack: network, edge or cluster.")] = None,
    skip_releases: Annotated[bool, typer.Option("--skip-releases",
                                                help="Only the stacks; leave the Helm releases as they are.")] = False,
    config: ConfigOpt = None,
    output: OutputOpt = None,
) -> None:
    from sdctl.cli.progress import Text, json_lines, reporting
    from sdctl.contracts.events import Event
    from sdctl.errors import UsageError
    from sdctl.execute import deploy
    from sdctl.operate import lifecycle

    mode = output_mode(ctx, output)
    cfg = _load(ctx, config)
    assume_yes = _yes(ctx, yes)
    shown = json_lines() if mode == "json" else Text(err)  # no spinner: it would hide the prompt

    def ask(question: str) -> bool:
        if assume_yes:
            return True
        if not sys.stdin.isatty():
            raise UsageError("refusing to change stacks without a terminal to confirm on",
                             hint="review with `sdctl plan`, then pass --yes")
        return typer.confirm(question, default=False, err=True)

    def confirm(cs) -> bool:
        if mode == "json":
            shown(Event(f"stack:{cs.stack}", f"{cs.kind.lower()}: {len(cs.changes)} change(s)", "step",
                        "changes", {"changes": [c.to_dict() for c in cs.changes]}))
        else:
            err.print(_changes_table(cs))
        return ask(f"Apply these changes to {cs.stack}?")

    summary = lifecycle.deploy_all(
        deploy.context(cfg, aws_for(ctx, cfg)), only=only, skip_releases=skip_releases, confirm=confirm,
        confirm_recreate=lambda s: ask(f"{s} is ROLLBACK_COMPLETE. Delete and create it again?"),
        report=shown, shows=lambda message: reporting(mode, message))
    outputs = summary["outputs"]
    if mode == "json":
        emit_json(summary)
    else:
        for key, outs in outputs.items():
            out.print(f"[bold]{key}[/]")
            for k, v in sorted(outs.items()):
                out.print(f"  {k:32} {v}")

@commands.command()
def destroy(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    keep_data: Annotated[bool, typer.Option("--keep-data", help="Keep the output bucket and queues.")] = False,
    config: ConfigOpt = None,
    output: OutputOpt = None,
) -> None:
    """The model bucket is never touched."""
    from sdctl.errors import SdctlError, UsageError
    from sdctl.execute import deploy

    mode = output_mode(ctx, output)
    cfg = _load(ctx, config)
    if not _yes(ctx, yes):
        if not sys.stdin.isatty():
            raise UsageError("refusing to delete without a terminal to confirm on", hint="pass --yes")
        what = "stacks" + ("" if keep_data else ", the output bucket with every image, and the queues")
        if not typer.confirm(f"Delete {cfg.stack_name}'s {what}?", default=False, err=True):
            raise SdctlError("destroy cancelled; nothing was deleted")
    from sdctl.cli.progress import reporting
    from sdctl.operate import lifecycle

    dctx = deploy.context(cfg, aws_for(ctx, cfg))
    with reporting(mode, f"destroying {cfg.stack_name}…") as progress:
        report = lifecycle.destroy_all(dctx, keep_data=keep_data, report=progress)
    if mode == "json":
        emit_json(report)
    else:
        out.print(f"{cfg.stack_name} destroyed" + (" (data kept)" if keep_data else ""))
