"""`sdctl local up|down|status`: the whole data path on this machine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from sdctl.cli.common import ConfigOpt, OutputOpt, config_arg, emit_json, err, out, output_mode
from sdctl.cli.lazy import group_app

app = group_app("local")


def _runtime_urls(values: list[str]) -> dict[str, str]:
    from sdctl.errors import UsageError

    urls = {}
    for v in values:
        name, sep, url = v.partition("=")
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise UsageError(f"--runtime-url {v!r} is not NAME=http://host:port")
        urls[name] = url.rstrip("/")
    return urls


@app.command()
def up(
    ctx: typer.Context,
    config: ConfigOpt = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Return once ready; keep running in the background.")] = False,
    agents: Annotated[int, typer.Option(min=1, max=16, help="Queue agents per runtime.")] = 1,
    model: Annotated[str, typer.Option(help="Model for the built-in runtime: 'tiny' or a local path.")] = "tiny",
    runtime_url: Annotated[list[str], typer.Option("--runtime-url", help="NAME=URL of a runtime you already run (repeatable).")] = [],  # noqa: B006
    visibility_seconds: Annotated[int | None, typer.Option(hidden=True, min=1)] = None,
    allow_local_webhooks: Annotated[bool, typer.Option(
        "--allow-local-webhooks", help="Let tasks' webhooks call http://127.0.0.1 (a receiver you run "
                                       "here); otherwise only https URLs of public hosts.")] = False,
    iam: Annotated[bool, typer.Option("--iam/--no-iam", help="Each process signs with credentials holding only "
                                                             "its template's IAM policy, enforced (default).")] = True,
    show_key: Annotated[bool, typer.Option("--show-key", help="Print the API key once ready.")] = False,
    ephemeral: Annotated[bool, typer.Option(
        "--ephemeral", help="Keep the emulator's data in memory only: nothing from an earlier stack, "
                            "nothing kept after this one (default: kept in .sdctl/aws/).")] = False,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="The gateway's port (default: the one it had "
                                                                    "last time, if free).")] = None,
    output: OutputOpt = None,
) -> None:
    """Start the local stack: AWS emulator, API gateway, runtimes and queue agents. Images,
    task records, queued tasks and keys are kept in .sdctl/aws/ across `local down` / `up`
    and a crash of the emulator (`local down --wipe` deletes them)."""
    from sdctl.cli.progress import Text, json_lines, reporting
    from sdctl.config import config_path, load
    from sdctl.execute.local import stack

    mode = output_mode(ctx, output)
    path = config_path(config_arg(ctx, config))
    cfg = load(path)
    urls = _runtime_urls(runtime_url)
    for name in urls:
        cfg.runtime(name)  # an unknown name is a usage error
    if port is not None:
        from sdctl.errors import UsageError
        from sdctl.execute.local.ports import bindable

        if not bindable(port):  # before anything starts: exit 2
            raise UsageError(f"port {port} for the gateway is in use", hint="stop what holds it, or choose another "
                                                                            "with --port")
    if detach:
        argv = ["local", "up", "-c", str(path.absolute()), "--agents", str(agents), "--model", model]
        for v in runtime_url:
            argv += ["--runtime-url", v]
        if visibility_seconds:
            argv += ["--visibility-seconds", str(visibility_seconds)]
        if not iam:
            argv.append("--no-iam")
        if allow_local_webhooks:
            argv.append("--allow-local-webhooks")
        if ephemeral:
            argv.append("--ephemeral")
        if port is not None:
            argv += ["--port", str(port)]
        started = time.monotonic()
        with reporting(mode, "starting the local stack…") as report:
            state = stack.spawn_detached(argv, report=report, agents=agents)
        _show(state, mode, seconds=time.monotonic() - started, show_key=show_key)
        return
    stack.run(cfg, str(path), agents=agents, model=model, runtime_urls=urls,
              visibility_seconds=visibility_seconds, enforce_iam=iam, allow_local_webhooks=allow_local_webhooks,
              keep_data=not ephemeral, port=port, report=json_lines() if mode == "json" else Text(err))


@app.command()
def down(
    ctx: typer.Context,
    wipe: Annotated[bool, typer.Option("--wipe", help="Also delete the kept data (.sdctl/aws/): images, "
                                                      "task records, queued tasks, keys.")] = False,
    output: OutputOpt = None,
) -> None:
    """Stop the local stack (only what `local up` started). Its data is kept for the next
    `local up` unless --wipe."""
    from sdctl.execute.local import stack

    mode = output_mode(ctx, output)
    result = stack.down(wipe=wipe)
    if mode == "json":
        emit_json(result)
        return
    out.print("local stack stopped" if result["stopped"] else result["message"])
    if result.get("wiped"):
        out.print(f"deleted its data ({result['wiped']})")
    elif result.get("data_kept"):
        out.print(f"its data is kept in {result['data_kept']} for the next `sdctl local up` "
                  "(`sdctl local down --wipe` deletes it)")


@app.command()
def status(
    ctx: typer.Context,
    output: OutputOpt = None,
    show_key: Annotated[bool, typer.Option("--show-key", help="Print the API key (text and JSON).")] = False,
) -> None:
    """Show the local stack: URLs, API key, resources and processes (exit 1 unless it is ready
    with its emulator and gateway alive; a dead agent or runtime shows in the table while the
    supervisor restarts it)."""
    from sdctl.errors import LocalStackError
    from sdctl.execute.local import state as st

    mode = output_mode(ctx, output)
    state = st.read()
    if not state:
        raise LocalStackError("the local stack is not running", hint="start it with `sdctl local up --detach`")
    if state.get("status") == "failed":
        raise LocalStackError(f"the local stack failed: {state.get('error', 'see its logs')}",
                              hint=(state.get("hint") or "") + "\nstart it again with `sdctl local up --detach`")
    if not st.pid_alive(state.get("supervisor_pid")):
        left = sum(st.pid_alive(p.get("pid")) for p in state.get("processes", []))
        raise LocalStackError(
            f"the local stack's supervisor (pid {state.get('supervisor_pid')}) is not running"
            + (f"; {left} of its processes still are, unmanaged" if left else ""),
            hint="`sdctl local up --detach` stops them and starts a new stack; `sdctl local down` just stops them")
    _show(state, mode, show_key=show_key)
    dead = [p["name"] for p in state.get("processes", [])
            if p.get("role") in ("aws", "gateway") and not st.pid_alive(p.get("pid"))]
    if state.get("status") != "ready" or dead:
        raise typer.Exit(1)


def _key(key: str, show: bool) -> str:
    return key if show else (key[:4] + "…" if key else "")


def _show(state: dict, mode: str, *, seconds: float | None = None, show_key: bool = False) -> None:
    from rich.markup import escape
    from rich.table import Table

    from sdctl.execute.local import state as st

    processes = [dict(p, alive=st.pid_alive(p.get("pid"))) for p in state.get("processes", [])]
    res = state.get("resources", {})
    if mode == "json":
        data = {k: state.get(k) for k in ("status", "stack", "region", "gateway_url", "aws_url",
                                          "supervisor_pid", "logs", "config", "iam_enforced", "data",
                                          "restored", "aws_restarts")}
        data["api_key"] = _key(state.get("api_key", ""), show_key)  # a secret: only when asked
        data["resources"] = res
        data["processes"] = processes
        if seconds is not None:
            data["seconds"] = round(seconds, 2)
        if state.get("already_running"):
            data["already_running"] = True
        emit_json(data)
        return
    key = state.get("api_key", "")
    shown_key = _key(key, show_key)
    note = " (already running)" if state.get("already_running") else ""
    took = f" in {seconds:.1f}s" if seconds is not None else ""
    out.print(f"[bold green]local stack {state.get('status')}[/]{note}{took}")
    out.print(f"  gateway  {state.get('gateway_url')}/v1alpha2   (x-api-key {shown_key})")
    out.print(f"  aws      {state.get('aws_url')}")
    out.print(f"  bucket   s3://{res.get('bucket')}/{res.get('prefix')}/")
    out.print(f"  data     {_data_line(state)}")
    table = Table("role", "name", "runtime", "pid", "alive", "restarts", box=None, pad_edge=False)
    for p in processes:
        table.add_row(p["role"], p["name"], p.get("runtime") or "", str(p["pid"]),
                      "yes" if p["alive"] else "[red]no[/]", str(p.get("restarts", 0)))
    out.print(table)
    for p in processes:
        if p.get("stopped"):
            out.print(f"  [red]{p['name']} stopped:[/] {escape(p['stopped'])}")
    out.print(f"  logs     {Path(state.get('logs', '.sdctl/logs'))}")


def _data_line(state: dict) -> str:
    if not state.get("data"):
        return "in memory only (--ephemeral): lost at `local down`"
    restored = state.get("restored") or {}
    if restored.get("error"):
        how = f"[yellow]earlier data unreadable, kept as {restored.get('moved_to')}[/]"
    elif restored.get("restored"):
        how = f"restored {restored.get('objects', 0)} objects"
    else:
        how = "new"
    restarts = state.get("aws_restarts") or 0
    return f"{state['data']}  ({how}" + (f"; emulator restarted {restarts}x with its data" if restarts else "") + ")"
