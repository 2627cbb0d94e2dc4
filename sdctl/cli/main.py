"""Entry point: `sdctl`. Heavy libraries are imported inside commands so --help is instant."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

# pydantic looks for plugins in every installed distribution's entry points the first time a
# model is built (20-60 ms here); the CLI uses none. A user's own setting wins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
from sdctl.cli import plugins_off  # noqa: E402

plugins_off.install()  # and with them off, pydantic need not import importlib.metadata either

import typer  # noqa: E402

from sdctl import __version__  # noqa: E402
from sdctl.cli.catalog import COMMANDS  # noqa: E402
from sdctl.cli.lazy import lazy_group  # noqa: E402
from sdctl.cli.output import RUN, Output  # noqa: E402

app = typer.Typer(
    name="sdctl",
    help="Deploy and operate an asynchronous Stable Diffusion image service on AWS, or run it locally.",
    no_args_is_help=True,
    cls=lazy_group(COMMANDS),
    rich_markup_mode=None,
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
        from sdctl.cli.common import plain_text

        plain_text()



def main() -> None:
    """The one error boundary: whatever a user can cause or meet ends as one line and a hint
    (and an `error` object on stdout under --output json), with a stable exit code; Ctrl-C
    exits 130. Tracebacks are left only for sdctl's own bugs.

        SdctlError (exit 1) ── UsageError (2) ── ConfigError (2)
        click usage errors (bad option values, unknown options)          -> UsageError
        botocore/boto3, httpx, Kubernetes ApiException, pyhelm3, a file
        missing from the installation                                    -> SdctlError
    """
    from typer import Abort
    from typer._click.exceptions import ClickException  # Typer vendors click

    from sdctl.errors import SdctlError

    try:
        code = app(standalone_mode=False)
    except ClickException as e:
        raise SystemExit(_usage_error(e)) from None
    except Abort:
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except SdctlError as e:
        from sdctl.cli.common import report_error

        raise SystemExit(report_error(e)) from None
    except Exception as e:
        translated = translate(e)
        if translated is None:
            raise
        from sdctl.cli.common import report_error

        raise SystemExit(report_error(translated)) from None
    raise SystemExit(code or 0)


def _json_requested() -> bool:
    """--output json, wherever on the line it was given (a usage error may stop parsing early)."""
    import sys

    argv = sys.argv[1:]
    if RUN["output"] == Output.json:
        return True
    return any(a in ("-ojson", "--output=json") or (a in ("-o", "--output") and argv[i + 1:i + 2] == ["json"])
               for i, a in enumerate(argv))


def _usage_error(e) -> int:
    """Click's own usage errors (`--width 0`) in the output the user asked for; a group typed
    alone (`sdctl tasks`) prints its help."""
    from typer._click.exceptions import NoArgsIsHelpError

    from sdctl.errors import UsageError

    if _json_requested() and not isinstance(e, NoArgsIsHelpError):
        from sdctl.cli.common import report_error

        RUN["output"] = Output.json
        return report_error(UsageError(e.format_message(), hint=_usage_hint(e)))
    e.show()
    return e.exit_code


def _usage_hint(e) -> str | None:
    ctx = getattr(e, "ctx", None)
    return f"see `{ctx.command_path} --help`" if ctx is not None else None


def translate(e: Exception):
    """A failure from a library sdctl calls, as a one-line SdctlError; None for anything else."""
    from sdctl.errors import SdctlError

    module = type(e).__module__ or ""
    if module.startswith(("botocore", "boto3")):
        return _aws_error(e)
    if module.startswith("httpx"):
        import httpx

        url = getattr(getattr(e, "request", None), "url", None) if isinstance(e, httpx.RequestError) else None
        where = f" {url}" if url else ""
        if isinstance(e, httpx.TimeoutException):
            return SdctlError(f"no answer from{where} in time: {type(e).__name__}",
                              hint="the service may be overloaded or down; try again")
        if isinstance(e, httpx.TransportError):
            return SdctlError(f"cannot reach{where}: {e}",
                              hint="is it running? `sdctl local status` (with --local) or `sdctl status`")
        return SdctlError(f"HTTP request failed: {e}")
    if module.startswith("kubernetes"):
        status, reason = getattr(e, "status", None), getattr(e, "reason", None)
        if status is None:
            return SdctlError(f"Kubernetes: {e}")
        hint = None
        if status in (401, 403):
            hint = "the cluster refused these credentials: `sdctl kubeconfig --write` for fresh ones, or check " \
                   "the access entry (docs/eks.md)"
        elif status == 404:
            hint = "not installed yet? `sdctl deploy` installs the releases"
        body = getattr(e, "body", None) or ""
        message = body if isinstance(body, str) and len(body) < 300 else ""
        return SdctlError(f"Kubernetes API answered {status} {reason or ''}".rstrip() +
                          (f": {message}" if message else ""), hint=hint)
    if module.startswith("pyhelm3"):
        return SdctlError(f"helm failed ({type(e).__name__}): {str(e).strip().splitlines()[-1] if str(e).strip() else ''}",
                          hint="the full message is above; `sdctl doctor` checks helm and the cluster")
    if isinstance(e, FileNotFoundError) and "installation" in str(e):
        return SdctlError(str(e), hint="reinstall sdctl (`pip install --force-reinstall sdctl`)")
    return None


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
