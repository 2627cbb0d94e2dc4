"""The whole of `deploy` and `destroy` in order: the stacks, then the Helm releases (deploy);
the releases, the client keys bound to the API's stage, then the stacks and data (destroy).
Front ends bring the confirmations and how events are shown."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from sdctl.contracts.events import Event, Report
from sdctl.execute import deploy, rollout

Shows = Callable[[str], AbstractContextManager[Report]]


def deploy_all(dctx: deploy.Context, *, only: str | None, skip_releases: bool, confirm, confirm_recreate,
               report: Report, shows: Shows) -> dict:
    """Stacks in order (each change set confirmed), then, unless `only` or `skip_releases`,
    Karpenter, KEDA and one release per runtime. A summary: stacks, outputs, runtimes, seconds."""
    started = time.monotonic()
    results: dict[str, str] = {}

    def noted(event: Event) -> None:
        if event.source.startswith("stack:") and event.status in ("deployed", "unchanged"):
            results[event.source.split(":", 1)[1]] = event.message
        report(event)

    outputs = deploy.deploy(dctx, only=only, confirm=confirm, confirm_recreate=confirm_recreate, report=noted)
    summary: dict = {"stacks": results, "outputs": outputs}
    if not skip_releases and only is None:
        with shows("installing Helm releases…") as progress:
            summary["runtimes"] = rollout.deploy_releases(dctx, dict(outputs), progress)
    summary["seconds"] = round(time.monotonic() - started, 1)
    return summary


def destroy_all(dctx: deploy.Context, *, keep_data: bool, report: Report) -> dict:
    """Releases first (their load balancers and nodes hold the VPC), then the client keys and
    usage plans (`sdctl keys create`: outside the stacks but bound to the API's stage, so left
    behind otherwise), then the stacks and, unless keep_data, the retained data."""
    from sdctl.operate import keys as client_keys

    rollout.destroy_releases(dctx, report)
    clients = client_keys.remove_all(dctx.aws.client("apigateway"), dctx.cfg.stack_name)
    for name in clients:
        report(Event(f"key:{name}", "client key and usage plan deleted", "ok", "deleted"))
    done = deploy.destroy(dctx, keep_data=keep_data, report=report)
    done["client_keys"] = clients
    return done
