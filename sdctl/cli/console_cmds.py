"""`sdctl console`: the local web page."""

from __future__ import annotations

from typing import Annotated

import typer

from sdctl.cli.common import ConfigOpt, LocalOpt, config_arg, err, is_local, out, target_for
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
    local: LocalOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Binds 127.0.0.1 only; the URL it prints carries a random token (as Jupyter's does), and
    every request needs it (a cookie after the first visit). Ctrl-C stops it (exit 130)."""
    import socket

    import uvicorn

    from sdctl.console.app import Console, create_app
    from sdctl.console.poller import Poller
    from sdctl.console.security import Keys

    target = target_for(ctx, is_local(local))
    poller = Poller(target, interval=interval, processes=_processes if target.kind == "local" else None)
    keys = Keys()
    app = create_app(Console(target, poller, keys, stack=target.stack or "sdctl", estimate=_estimate(config_arg(ctx, config), target)))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        from sdctl.errors import UsageError

        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {e.strerror}", hint="pick another --port") from None
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/?token={keys.token}"
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
    raise typer.Exit(130)  # it ends only on Ctrl-C (or SIGTERM)


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
