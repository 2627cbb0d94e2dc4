"""`sdctl init` and `sdctl validate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sdctl.cli.common import ConfigOpt, OutputOpt, config_arg, emit_json, out, output_mode


def example_text() -> str:
    """The documented example config (shipped beside the package or inside the wheel)."""
    import sdctl

    here = Path(sdctl.__file__).parent
    for candidate in (here / "resources" / "sdctl.example.yaml", here.parent / "sdctl.example.yaml"):
        if candidate.is_file():
            return candidate.read_text()
    raise FileNotFoundError("sdctl.example.yaml is missing from this installation")


def register(app: typer.Typer) -> None:
    @app.command()
    def init(
        ctx: typer.Context,
        path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("sdctl.yaml"),
        force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
        output: OutputOpt = None,
    ) -> None:
        """Write a documented sdctl.yaml to start from."""
        from sdctl.errors import UsageError

        mode = output_mode(ctx, output)
        if path.exists() and not force:
            raise UsageError(f"{path} already exists; nothing was written", hint="pass --force to overwrite it")
        path.write_text(example_text())
        if mode == "json":
            emit_json({"written": str(path)})
        else:
            out.print(f"wrote {path}; edit it, then run `sdctl validate`")

    @app.command()
    def validate(ctx: typer.Context, config: ConfigOpt = None, output: OutputOpt = None) -> None:
        """Check the config file; report every problem with its field path and line (exit 2)."""
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
            out.print(f"{path} is valid: stack {cfg.stack_name} in {cfg.region}; runtimes: {names}")
