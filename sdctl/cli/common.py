"""Options, output and error presentation shared by every command."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from sdctl.cli.output import RUN, Output  # noqa: F401  (re-exported: commands import them from here)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Config file [env SDCTL_CONFIG; default ./sdctl.yaml].", show_default=False)]
OutputOpt = Annotated[Output | None, typer.Option("--output", "-o", help="text or json (for scripts and CI).", show_default=False)]
LocalOpt = Annotated[bool, typer.Option("--local", help="Talk to the local stack [env SDCTL_TARGET=local].")]

class LazyConsole:
    """A rich Console made on first use. Importing rich costs more than a command that prints
    one plain line spends on everything else (`sdctl validate`, any `--output json`), so the
    import waits for the first styled line. `.real` is the Console, for rich's Live and
    Progress."""

    def __init__(self, **options):
        object.__setattr__(self, "_options", options)
        object.__setattr__(self, "_real", None)
        object.__setattr__(self, "_plain", False)

    @property
    def real(self):
        if self._real is None:
            from rich.console import Console

            console = Console(**self._options)
            if self._plain:
                _plain(console)
            object.__setattr__(self, "_real", console)
        return self._real

    def plain(self) -> None:
        object.__setattr__(self, "_plain", True)
        if self._real is not None:
            _plain(self._real)

    def styled(self) -> bool:
        """Whether rich would style this console's output: a terminal, or colour forced (rich
        reads FORCE_COLOR and TTY_COMPATIBLE). Without either it writes the text as it is."""
        if self._real is not None:
            return self._real.is_terminal
        if os.environ.get("FORCE_COLOR") or os.environ.get("TTY_COMPATIBLE") == "1":
            return True
        return self._stream().isatty()

    def line(self, text: str) -> None:
        """One line of plain text (no markup read into it), without importing rich."""
        stream = self._stream()
        stream.write(text + "\n")
        stream.flush()

    def _stream(self):
        return sys.stderr if self._options.get("stderr") else sys.stdout

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __setattr__(self, name, value):
        setattr(self.real, name, value)


def _plain(console) -> None:
    console.no_color = True
    console._color_system = None


err = LazyConsole(stderr=True, highlight=False, soft_wrap=True)
out = LazyConsole(highlight=False, soft_wrap=True)


def plain_text() -> None:
    """No colours and no styles: no escape codes at all (rich's own no_color keeps bold and
    italic). For --no-color and NO_COLOR (https://no-color.org: any non-empty value)."""
    for console in (out, err):
        console.plain()


if os.environ.get("NO_COLOR"):
    plain_text()


def output_mode(ctx: typer.Context, value: Output | None) -> Output:
    mode = value or (ctx.obj or {}).get("output") or Output.text
    RUN["output"] = mode
    return mode


def config_arg(ctx: typer.Context, value: Path | None) -> Path | None:
    return value or (ctx.obj or {}).get("config")


def is_local(flag: bool) -> bool:
    return flag or os.environ.get("SDCTL_TARGET", "").lower() == "local"


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def report_error(e) -> int:
    """Print an SdctlError the way the current output mode wants; return its exit code."""
    from sdctl.errors import ConfigError

    if RUN["output"] == Output.json:
        emit_json({"error": e.to_dict()})
    problems = e.lines() if isinstance(e, ConfigError) else []
    if not err.styled():
        # What rich would write to a pipe or a log, without the 30 ms of importing it.
        err.line(f"error: {e.message}")
        for line in problems:
            err.line(f"  {line}")
        if e.hint:
            err.line(f"hint: {e.hint}")
        return e.exit_code
    from rich.markup import escape

    # The message and hint are text, not markup: `pip install 'sdctl[local]'` must survive.
    err.print(f"[bold red]error:[/] {escape(e.message)}", markup=True)
    for line in problems:
        err.print(f"  {line}", markup=False)
    if e.hint:
        err.print(f"[dim]hint:[/] {escape(e.hint)}", markup=True)
    return e.exit_code


def target_for(ctx: typer.Context, local: bool):
    from sdctl.operate.client import resolve_target

    obj = ctx.obj or {}
    return resolve_target(local, config=obj.get("config"), region=obj.get("region"), profile=obj.get("profile"))


def aws_for(ctx: typer.Context, cfg):
    from sdctl.execute.aws.session import connect

    obj = ctx.obj or {}
    return connect(region=obj.get("region"), profile=obj.get("profile"), config_region=cfg.region)


def confirm(ctx: typer.Context, question: str, *, yes: bool = False) -> None:
    """Ask before something destructive: --yes (here or on sdctl) answers; without a terminal
    to ask on, refuse (exit 2) rather than guess."""
    from sdctl.errors import SdctlError, UsageError

    if yes or (ctx.obj or {}).get("yes"):
        return
    if not sys.stdin.isatty():
        raise UsageError("refusing to do this without a terminal to confirm on", hint="pass --yes")
    if not typer.confirm(question, default=False, err=True):
        raise SdctlError("cancelled; nothing was changed")
