"""`sdctl queue redrive`: dead-lettered tasks back to work."""

from __future__ import annotations

from typing import Annotated

import typer

from sdctl.cli.common import LocalOpt, OutputOpt, emit_json, is_local, out, output_mode

app = typer.Typer(help="Look at and manage the runtimes' queues.", no_args_is_help=True)


def _queues(ctx: typer.Context, local: bool):
    """(sqs client, {runtime: (queue_url, dlq_url)}) for the local stack or the deployed one."""
    if local:
        from sdctl.local import state as st
        from sdctl.local.stack import local_clients

        state = st.running()
        sqs = local_clients(state["aws_url"], state["region"])["sqs"]
        return sqs, {n: (r["queue_url"], r["dead_letter_queue_url"]) for n, r in state["resources"]["runtimes"].items()}
    from sdctl import deploy
    from sdctl.cfn.base import logical_id
    from sdctl.cli.common import aws_for
    from sdctl.config import load

    obj = ctx.obj or {}
    cfg = load(obj.get("config"))
    aws = aws_for(ctx, cfg)
    dctx = deploy.context(cfg, aws)
    edge = dctx.outputs("edge")
    return aws.client("sqs"), {rt.name: (edge[f"Queue{logical_id(rt.name)}Url"],
                                         edge[f"DeadLetterQueue{logical_id(rt.name)}Url"]) for rt in cfg.runtimes}


@app.command()
def redrive(
    ctx: typer.Context,
    runtime: Annotated[str | None, typer.Option(help="Only this runtime (default: all).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Move at most this many messages.")] = None,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    """Move dead-lettered tasks back to their runtime's queue, to be tried again."""
    from sdctl import queues
    from sdctl.errors import UsageError

    mode = output_mode(ctx, output)
    sqs, urls = _queues(ctx, is_local(local))
    if runtime is not None and runtime not in urls:
        raise UsageError(f"no runtime named {runtime!r}", hint=f"runtimes: {', '.join(urls)}")
    report = {name: queues.redrive(sqs, dlq, q, limit=limit)
              for name, (q, dlq) in urls.items() if runtime in (None, name)}
    if mode == "json":
        emit_json(report)
    else:
        for name, r in report.items():
            moved = "started" if r["moved"] is None else f"{r['moved']} task(s) moved"
            out.print(f"{name}: {moved} ({r['method']})")
