"""Entry point: `sdctl`. Heavy libraries are imported inside commands so --help is instant."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sdctl import __version__
from sdctl.cli import (
    agent_cmds,
    client_cmds,
    config_cmds,
    cost_cmds,
    deploy_cmds,
    images_cmds,
    local_cmds,
    ops_cmds,
    queue_cmds,
    tasks_cmds,
)
from sdctl.cli.common import RUN, Output, report_error

app = typer.Typer(
    name="sdctl",
    help="Deploy and operate an asynchronous Stable Diffusion image service on AWS, or run it locally.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sdctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", "-c", envvar="SDCTL_CONFIG",
                                                help="Config file (default ./sdctl.yaml).")] = None,
    region: Annotated[str | None, typer.Option(help="AWS region (overrides the config).")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS named profile.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Answer yes to confirmations.")] = False,
    output: Annotated[Output, typer.Option("--output", "-o", help="text or json.")] = Output.text,
    no_color: Annotated[bool, typer.Option("--no-color", help="Plain text, no colours (NO_COLOR=1 does the "
                                                              "same).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    ctx.obj = {"config": config, "region": region, "profile": profile, "yes": yes, "output": output}
    RUN["output"] = output
    if no_color:
        from sdctl.cli.common import err, out

        for console in (out, err):  # no colours and no styles: no escape codes at all
            console.no_color = True
            console._color_system = None


config_cmds.register(app)
deploy_cmds.register(app)
client_cmds.register(app)
cost_cmds.register(app)
ops_cmds.register(app)
app.add_typer(local_cmds.app, name="local")
app.add_typer(queue_cmds.app, name="queue")
app.add_typer(tasks_cmds.app, name="tasks")
app.add_typer(ops_cmds.scale_app, name="scale")
app.add_typer(images_cmds.app, name="images")
app.add_typer(agent_cmds.agent_app, name="agent")
app.add_typer(agent_cmds.runtime_app, name="runtime")


def main() -> None:
    from sdctl.errors import SdctlError

    try:
        app()
    except SdctlError as e:
        raise SystemExit(report_error(e)) from None
    except Exception as e:
        aws = _aws_error(e)
        if aws is None:
            raise
        raise SystemExit(report_error(aws)) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _aws_error(e: Exception):
    """An AWS SDK error as a one-line SdctlError (no traceback), or None if it is not one."""
    from sdctl.errors import SdctlError

    module = type(e).__module__ or ""
    if not module.startswith(("botocore", "boto3")):
        return None
    response = getattr(e, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    op = getattr(e, "operation_name", None)
    hint = None
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"):
        hint = "the credentials in use lack a permission for this call; check the role's policies"
    elif code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
        hint = "refresh the credentials (e.g. `aws sso login`) and try again"
    return SdctlError(f"AWS {op or 'call'} failed: {code or type(e).__name__}: {e}", hint=hint)
