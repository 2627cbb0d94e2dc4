"""`sdctl console`: the local web page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sdctl.cli.common import (
    ConfigOpt,
    LocalOpt,
    OutputOpt,
    config_arg,
    err,
    is_local,
    out,
    output_mode,
    target_for,
)
from sdctl.cli.lazy import Commands

commands = Commands()


@commands.command()
def console(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")] = 0,
    open_: Annotated[bool, typer.Option("--open", help="Open the page in the default browser.")] = False,
    interval: Annotated[float, typer.Option(min=2, max=300, help="Seconds between the shared poller's reads "
                                                                "of the queues (the only AWS calls a tab "
                                                                "costs).")] = 5.0,
    kubeconfig: Annotated[Path | None, typer.Option("--kubeconfig", exists=True, dir_okay=False,
                                                   help="On AWS: read the scale chain with this kubeconfig "
                                                        "instead of asking EKS.")] = None,
    local: LocalOpt = False,
    config: ConfigOpt = None,
    output: OutputOpt = None,
) -> None:
    """Binds 127.0.0.1 only; the URL it prints carries a random token (as Jupyter's does), and
    every request needs it (a cookie after the first visit). Ctrl-C stops it (exit 130)."""
    import contextlib
    import json
    import socket

    import uvicorn

    from sdctl.console.app import Console, create_app
    from sdctl.console.poller import Poller
    from sdctl.console.security import Keys

    mode = output_mode(ctx, output)
    target = target_for(ctx, is_local(local))
    held = contextlib.ExitStack()
    scale = None if target.kind == "local" else _scale(ctx, config_arg(ctx, config), kubeconfig, held)
    poller = Poller(target, interval=interval, processes=_processes if target.kind == "local" else None,
                    scale=scale)
    keys = Keys()
    app = create_app(Console(target, poller, keys, stack=target.stack or "sdctl", estimate=_estimate(config_arg(ctx, config), target)))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        from sdctl.errors import UsageError

        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {e.strerror}", hint="pick another --port") from None
    sock.listen(128)  # connections wait in the backlog from now on, before the server has started
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/?token={keys.token}"
    if mode == "json":  # one line a script can read while the console serves
        print(json.dumps({"url": url, "interval_seconds": poller.interval}), flush=True)
    else:
        out.print(url, markup=False, soft_wrap=True)
        err.print("[dim]the token is this page's key: share it with no one; Ctrl-C stops the console[/]")
    poller.start()
    if open_:
        import webbrowser

        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    try:
        server.run(sockets=[sock])
    finally:
        poller.stop()
        held.close()
    raise typer.Exit(130)  # it ends only on Ctrl-C (or SIGTERM)


def _scale(ctx: typer.Context, path, kubeconfig, held):
    """On AWS, the Live page's scale chain: a kubeconfig (given, or a short-lived one from EKS,
    kept for the console's life), read once a poll; None where the cluster cannot be reached
    (the page then shows the queues alone, and says why)."""
    from sdctl.config import config_path, load
    from sdctl.execute.k8s.cluster import api_client
    from sdctl.operate import scalechain

    cfg = load(config_path(path))
    try:
        if kubeconfig is None:
            from sdctl.cli.common import aws_for
            from sdctl.execute import deploy, rollout

            kubeconfig = held.enter_context(rollout.cluster_kubeconfig(deploy.context(cfg, aws_for(ctx, cfg))))
        api = api_client(kubeconfig)[0]
    except Exception as e:  # noqa: BLE001 - the console still serves the queues and the tasks
        err.print(f"[yellow]note:[/] the scale chain is not shown: {e}")
        return None
    return lambda depths: scalechain.chains(api, cfg, cfg.runtimes, depths)


def _processes() -> list[dict]:
    """The local stack's processes, each checked alive now (no AWS call)."""
    from sdctl.execute.local import state as st

    return [{**p, "alive": st.pid_alive(p.get("pid"))} for p in (st.read() or {}).get("processes") or []]


def _estimate(path, target):
    """The config's cost per image (sdctl cost's model), for the Cost page."""
    def estimate() -> dict:
        from sdctl.analysis import cost as model
        from sdctl.config import config_path, load

        chosen = path
        if target.kind == "local":
            from sdctl.execute.local import state as st

            chosen = chosen or (st.read() or {}).get("config")
        cfg = load(config_path(chosen))
        a = model.sdctl_assumptions(cfg, images=1_000_000)
        return {**model.estimate(a, model.prices_for(cfg.region)), "images": a.images}

    return estimate
