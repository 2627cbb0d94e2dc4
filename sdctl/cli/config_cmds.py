"""`sdctl init` and `sdctl validate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sdctl.cli.common import ConfigOpt, OutputOpt, config_arg, emit_json, out, output_mode
from sdctl.cli.lazy import Commands


def _guided() -> str:
    """Ask for region, runtime type, GPU types and spot; the rest keeps the example's defaults."""
    import sys

    import yaml

    from sdctl.errors import UsageError

    if not sys.stdin.isatty():
        raise UsageError("--guided asks questions and needs a terminal", hint="use plain `sdctl init` and edit the file")
    import re

    from sdctl.config.model import Config, Nodes

    # Each answer is checked as it is given, by the config model's own rule, and asked again.
    region_rule = re.compile(Config.model_fields["region"].metadata[0].pattern)
    region = typer.prompt("AWS region", default="us-west-2")
    while not region_rule.fullmatch(region):
        region = typer.prompt(f"{region!r} is not an AWS region code; AWS region (e.g. us-west-2)", default="us-west-2")
    from sdctl.contracts.runtimes import GUIDANCE_DEFAULT, kinds

    types = ", ".join(kinds())
    kind = typer.prompt(f"Runtime type ({types})", default=GUIDANCE_DEFAULT)
    while kind not in kinds():
        kind = typer.prompt(f"Runtime type: one of {types}", default=GUIDANCE_DEFAULT)
    image = typer.prompt("The runtime's image (yours: e.g. what `cog push` pushed)") if kinds()[kind].needs_image \
        else None
    while True:
        gpus = typer.prompt("GPU instance types, comma-separated",
                            default="g5.xlarge,g5.2xlarge,g6.xlarge,g6.2xlarge")
        try:
            Nodes.model_validate({"instanceTypes": [g.strip() for g in gpus.split(",") if g.strip()]})
            break
        except ValueError as e:
            typer.echo(f"not a list of instance types: {str(e).splitlines()[-1].strip()[:120]}", err=True)
    spot = typer.confirm("Use spot capacity (on-demand as the fallback)?", default=True)
    doc = {"region": region, "runtimes": [{
        "name": "sdruntime", "type": kind, **({"image": image} if image else {}),
        "nodes": {"instanceTypes": [g.strip() for g in gpus.split(",") if g.strip()],
                  "capacityTypes": ["spot", "on-demand"] if spot else ["on-demand"]}}]}
    return ("# Written by `sdctl init --guided`; every other key keeps its default\n"
            "# (see sdctl.example.yaml or docs/config-reference.md).\n" + yaml.safe_dump(doc, sort_keys=False))


commands = Commands()


@commands.command()
def init(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("sdctl.yaml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    from_guidance: Annotated[Path | None, typer.Option(
        "--from-guidance", exists=True, dir_okay=False,
        help="Convert the AWS guidance's config.yaml (notes name what is not carried over).")] = None,
    guided: Annotated[bool, typer.Option("--guided", help="Ask the few questions that matter.")] = False,
    output: OutputOpt = None,
) -> None:
    import yaml

    from sdctl.config import migrate as mg
    from sdctl.config import parse
    from sdctl.errors import UsageError

    mode = output_mode(ctx, output)
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; nothing was written", hint="pass --force to overwrite it")
    notes: list[str] = []
    if from_guidance is not None:
        try:
            doc = yaml.safe_load(from_guidance.read_text())
        except yaml.YAMLError as e:
            raise UsageError(f"{from_guidance} is not valid YAML: {e}") from None
        converted, notes = mg.from_guidance(doc)
        text = mg.render(converted, notes, from_guidance.name)
    elif guided:
        text = _guided()
    else:
        from sdctl.config.loader import example_text

        text = example_text()
    parse(text)  # never write a config sdctl would refuse
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    tmp.replace(path)
    if mode == "json":
        emit_json({"written": str(path), "notes": notes})
    else:
        for n in notes:
            out.print(f"[yellow]not carried over:[/] {n}")
        out.print(f"wrote {path}; review it, then run `sdctl validate`")

@commands.command()
def validate(ctx: typer.Context, config: ConfigOpt = None, output: OutputOpt = None) -> None:
    from sdctl.config import config_path, load

    mode = output_mode(ctx, output)
    path = config_path(config_arg(ctx, config))
    cfg = load(path)
    summary = {"valid": True, "file": str(path), "stack": cfg.stack_name, "region": cfg.region,
               "runtimes": [{"name": r.name, "type": r.type} for r in cfg.runtimes]}
    if mode == "json":
        emit_json(summary)
    else:
        names = ", ".join(f"{r.name} ({r.type})" for r in cfg.runtimes)
        out.line(f"{path} is valid: stack {cfg.stack_name} in {cfg.region}; runtimes: {names}")
