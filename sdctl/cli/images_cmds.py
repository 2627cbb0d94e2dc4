"""`sdctl images publish`: the agent and runtime images into the stack's ECR repositories."""

from __future__ import annotations

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
from sdctl.cli.lazy import group_app

app = group_app("images")


@app.command()
def publish(
    ctx: typer.Context,
    builder: Annotated[str, typer.Option(help="auto (a local docker/podman/finch if its engine runs, else "
                                              "codebuild), local or codebuild.")] = "auto",
    only: Annotated[list[str], typer.Option("--only", help="agent, or a runtime type sdctl builds an image for "
                                                           "(repeatable; default: every image the config "
                                                           "runs).")] = [],  # noqa: B006
    tag: Annotated[str | None, typer.Option(help="Image tag (default: sdctl's version, which the chart uses).")] = None,
    config: ConfigOpt = None,
    output: OutputOpt = None,
) -> None:
    """Build the images the config runs (the queue agent, and the runtime image of each runtime
    type without its own `image`) and push them to the stack's ECR repositories. Without a local container engine, the stack's CodeBuild project builds
    them in your account from a source zip in the artifacts bucket; its phases and log
    stream back here."""
    from sdctl import __version__
    from sdctl.builders import images
    from sdctl.builders.names import artifacts_bucket
    from sdctl.cli.progress import reporting
    from sdctl.config import load
    from sdctl.contracts.events import Event
    from sdctl.errors import UsageError
    from sdctl.execute import publish
    from sdctl.execute.aws import artifacts

    mode = output_mode(ctx, output)
    if builder not in ("auto", "local", "codebuild"):
        raise UsageError(f"--builder {builder!r} is not auto, local or codebuild")
    cfg = load(config_arg(ctx, config))
    aws = aws_for(ctx, cfg)
    tag = tag or __version__
    builds = images.plan(cfg.stack_name, aws.account, aws.region, only=only or images.needed(cfg), tag=tag)
    root = publish.source_root()
    exe = publish.local_builder() if builder in ("auto", "local") else None
    if builder == "local" and exe is None:
        raise UsageError("no local container engine answers (docker, podman, finch)",
                         hint="start one, or use --builder codebuild (no local Docker needed)")
    report = {"builder": exe or "codebuild", "images": [b.uri for b in builds]}
    if exe:
        with reporting(mode, "building…") as progress:
            publish.publish_local(exe, builds, ecr=aws.client("ecr"), root=root, report=progress)
    else:
        data = publish.source_zip(root)
        bucket = artifacts_bucket(cfg.stack_name, aws.account, aws.region)
        s3 = aws.client("s3")
        artifacts.ensure_bucket(s3, bucket, aws.region)
        key = images.source_key(data)
        artifacts.upload_once(s3, bucket, key, data)
        with reporting(mode, "starting the build…") as progress:
            progress(Event("build", f"source: s3://{bucket}/{key} ({len(data) // 1024} KiB)", "step", "uploaded"))
            result = publish.publish_codebuild(
                builds, codebuild=aws.client("codebuild"), logs=aws.client("logs"), bucket=bucket, key=key,
                project=images.build_project_name(cfg.stack_name), tag=tag, report=progress)
        report.update(result, source=f"s3://{bucket}/{key}")
    if mode == "json":
        emit_json(report)
    else:
        for uri in report["images"]:
            out.print(f"pushed {uri}")
