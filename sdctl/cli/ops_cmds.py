"""`sdctl scale status` and `sdctl logs`: why is it (not) scaling, and what did it say."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from sdctl.builders.names import release_name
from sdctl.cli.common import (
    ConfigOpt,
    LocalOpt,
    OutputOpt,
    config_arg,
    emit_json,
    err,
    is_local,
    out,
    output_mode,
    target_for,
)
from sdctl.cli.lazy import Commands, group_app

scale_app = group_app("scale")
KubeconfigOpt = Annotated[Path | None, typer.Option("--kubeconfig", exists=True, dir_okay=False,
                                                    help="Use this kubeconfig instead of asking EKS.")]


@contextlib.contextmanager
def _kube(ctx: typer.Context, cfg, kubeconfig: Path | None):
    """A kubernetes ApiClient: from --kubeconfig, else a short-lived one from EKS."""
    from sdctl.execute.k8s.cluster import api_client

    if kubeconfig is not None:
        yield api_client(kubeconfig)[0]
        return
    from sdctl.cli.common import aws_for
    from sdctl.execute import deploy, rollout

    dctx = deploy.context(cfg, aws_for(ctx, cfg))
    with rollout.cluster_kubeconfig(dctx) as path:
        yield api_client(path)[0]


def _chain_text(r: dict) -> None:
    q, so, dep, pods = r["queue"], r["scaledobject"], r["deployment"], r["pods"]
    parts = [f"queue {q['depth']} ({q.get('visible', 0)} waiting, {q.get('in_flight', 0)} in flight)"]
    if so is not None:
        state = ("[green]ready[/]" if so["ready"] else "[red]not ready[/]") + (", active" if so["active"] else "")
        parts.append(f"KEDA {state}, wants {so['wants']}")
    if dep is not None:
        parts.append(f"Deployment {dep['ready']}/{dep['desired']} ready")
    if pods["pending"]:
        parts.append(f"[yellow]{len(pods['pending'])} pending[/]")
    claims = r["nodeclaims"]
    if claims:
        parts.append(f"{len(claims)} NodeClaim(s)")
    parts.append(f"{sum(1 for n in r['nodes'] if n['ready'])}/{len(r['nodes'])} node(s) ready")
    out.print(f"[bold]{r['runtime']}[/]: " + " → ".join(parts))
    for p in pods["pending"]:
        out.print(f"  pod {p['name']} pending: {p['reason'] or ''} {p['message'] or ''}".rstrip(), markup=False)
    from sdctl.analysis.scale import human

    for c in claims:
        state = "ready" if c["ready"] == "True" else ("registered" if c["registered"] == "True" else
                                                      ("launched" if c["launched"] == "True" else "launching"))
        out.print(f"  nodeclaim {c['name']}: {c['instance_type']} {c['capacity'] or ''} {c['zone'] or ''} "
                  f"{human(c['age_s'])} {state}", markup=False)
    for n in r["nodes"]:
        out.print(f"  node {n['name']}: {n['instance_type']} {n['capacity']} {n['zone']} {human(n['age_s'])} "
                  f"{'ready' if n['ready'] else 'not ready'}", markup=False)
    for st in r.get("starts", []):
        phases = [f"{label} {human(st[key])}" for key, label in (
            ("node_launch_s", "node launch"), ("node_start_s", "node start"), ("image_pull_s", "image pull"),
            ("model_load_s", "model load")) if st.get(key) is not None]
        if phases:
            total = f" = {human(st['total_s'])} to ready" if st.get("total_s") is not None else " (starting)"
            out.print(f"  start of {st['pod']}: " + ", ".join(phases) + total, markup=False)
    out.print(f"  [bold]→ {r['verdict']}[/]")


def _local_scale(target, chosen, sqs, mode) -> None:
    """The local stack has no KEDA, HPA or Karpenter: a fixed set of agents beside each runtime.
    Say so, with what it does have: each runtime's queue and its processes."""
    from sdctl.execute.local import state as st
    from sdctl.operate import queues

    procs = (st.read() or {}).get("processes", [])
    report = []
    for rt in chosen:
        lanes = [queues.depth(sqs, lane["queue_url"]) for lane in queues.lanes_of(target.queues[rt.name]).values()]
        mine = [{"name": p["name"], "role": p["role"], "alive": st.pid_alive(p.get("pid"))}
                for p in procs if p.get("runtime") == rt.name]
        agents = sum(1 for p in mine if p["role"] == "agent" and p["alive"])
        report.append({"runtime": rt.name, "local": True,
                       "queue": {k: sum(d[k] for d in lanes) for k in ("visible", "in_flight", "delayed")},
                       "processes": mine,
                       "verdict": f"the local stack does not scale: {agents} agent(s) take tasks as they come "
                                  "(no KEDA, HPA or Karpenter here; `sdctl queue watch --local` follows the queue)"})
    if mode == "json":
        return emit_json(report)
    for r in report:
        q = r["queue"]
        out.print(f"[bold]{r['runtime']}[/]  queue: {q['visible']} waiting, {q['in_flight']} in flight")
        for p in r["processes"]:
            out.print(f"  {p['name']} ({p['role']}): {'running' if p['alive'] else 'down'}", markup=False)
        out.print(f"  [bold]→ {r['verdict']}[/]")


@scale_app.command("status")
def scale_status(
    ctx: typer.Context,
    runtime: Annotated[str | None, typer.Option(help="Only this runtime (default: all).")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(min=1, help="Seconds between refreshes.")] = 5,
    kubeconfig: KubeconfigOpt = None,
    config: ConfigOpt = None,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    """Per runtime, cause and effect: queue depth → KEDA ScaledObject → Deployment → pending pods
    → Karpenter NodeClaims → nodes, and a verdict in plain words."""
    from sdctl.config import load
    from sdctl.operate import scalechain

    mode = output_mode(ctx, output)
    cfg = load(config_arg(ctx, config))
    target = target_for(ctx, is_local(local))
    if runtime is not None:
        target.runtime(runtime)
    chosen = [rt for rt in cfg.runtimes if runtime in (None, rt.name)]
    sqs = target.client("sqs")
    if target.kind == "local" and kubeconfig is None:  # with --kubeconfig: that cluster's chain, this queue
        return _local_scale(target, chosen, sqs, mode)
    with _kube(ctx, cfg, kubeconfig) as api:
        while True:
            report = scalechain.chains(api, cfg, chosen,
                                       {rt.name: scalechain.lane_depths(sqs, target, rt.name) for rt in chosen})
            if mode == "json":
                emit_json(report)
            else:
                for r in report:
                    _chain_text(r)
            if not watch:
                return
            time.sleep(interval)  # Ctrl-C: exit 130, like every command
            if mode != "json":
                out.rule()


commands = Commands()


@commands.command()
def gallery(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Tasks created since: 30m, 12h, 7d or an ISO time.")] = "1d",
    runtime: Annotated[str | None, typer.Option(help="Only this runtime.")] = None,
    out_path: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path("gallery.html"),
    limit: Annotated[int, typer.Option(min=1, max=2000, help="Most images on the page.")] = 200,
    open_page: Annotated[bool, typer.Option("--open", help="Open it in the browser.")] = False,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    from sdctl.cli.tasks_cmds import stored
    from sdctl.operate import gallery as gal

    mode = output_mode(ctx, output)
    target, rows = stored(ctx, local, status="completed", runtime=runtime, since=since, limit=limit)
    with err.status(f"fetching {len(rows)} task(s)' images…"):
        items = gal.collect(rows, target.s3(), limit=limit)
    page = gal.render(items, title=f"sdctl gallery ({target.kind}, since {since})")
    tmp = out_path.with_name(out_path.name + ".part")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out_path)
    report = {"written": str(out_path), "images": len(items), "tasks": len(rows)}
    if open_page:
        import webbrowser

        report["opened"] = webbrowser.open(out_path.resolve().as_uri())
        if not report["opened"]:
            err.print(f"no web browser found to open it; open {out_path.resolve().as_uri()} yourself")
    if mode == "json":
        emit_json(report)
    else:
        out.print(f"wrote {out_path}: {len(items)} image(s) from {len(rows)} task(s)")

@commands.command()
def logs(
    ctx: typer.Context,
    runtime: Annotated[str, typer.Option(help="The runtime whose logs to show.")],
    agent: Annotated[bool, typer.Option("--agent", help="The queue agent's logs instead of the runtime's.")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    since: Annotated[str | None, typer.Option(help="Only lines since: 30s, 15m, 2h, 3d.")] = None,
    kubeconfig: KubeconfigOpt = None,
    config: ConfigOpt = None,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    """With -o json, one JSON object per line."""
    from sdctl.operate import logs as logmod
    from sdctl.operate.tasks import since_timestamp

    mode = output_mode(ctx, output)
    since_at = since_timestamp(since)
    if is_local(local):
        from sdctl.execute.local import state as st

        state = st.running()
        if runtime not in state["resources"]["runtimes"]:
            from sdctl.errors import UsageError

            raise UsageError(f"no runtime named {runtime!r}",
                             hint=f"runtimes: {', '.join(state['resources']['runtimes'])}")
        files = logmod.local_files(Path(state["logs"]), runtime, agent=agent)
        lines = logmod.follow_files(files, since=since_at) if follow else logmod.read_files(files, since=since_at)
    else:
        from sdctl.config import load

        cfg = load(config_arg(ctx, config))
        rt = cfg.runtime(runtime)
        lines = _pod_lines(ctx, cfg, rt, kubeconfig, agent=agent, follow=follow, since=since)
    for source, text in lines:  # Ctrl-C ends a --follow: exit 130, like every command
        if mode == "json":
            sys.stdout.write(json.dumps({"source": source, "line": text}) + "\n")
            sys.stdout.flush()
        else:
            out.print(f"[dim]{source}[/] {text}", highlight=False)

def _pod_lines(ctx, cfg, rt, kubeconfig, *, agent: bool, follow: bool, since: str | None):
    from sdctl.operate import logs as logmod
    from sdctl.operate.tasks import duration_seconds

    with _kube(ctx, cfg, kubeconfig) as api:
        yield from logmod.pod_lines(api, release=release_name(rt.name), namespace=rt.namespace,
                                    container="agent" if agent else "runtime", follow=follow,
                                    since_seconds=duration_seconds(since) if since else None)
    err.print("[dim]end of logs[/]")
