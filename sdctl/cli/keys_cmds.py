"""`sdctl keys create|list|rotate|revoke`: one API key, with its own throttle and quota, per client."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from sdctl.cli.common import (
    LocalOpt,
    OutputOpt,
    confirm,
    emit_json,
    err,
    is_local,
    out,
    output_mode,
    target_for,
)
from sdctl.cli.lazy import group_app

app = group_app("keys")

NameArg = Annotated[str, typer.Argument(help="The client's name (lowercase letters, digits, '-').",
                                        show_default=False)]


def _target(ctx, local):
    target = target_for(ctx, is_local(local))
    return target, target.client("apigateway")


@app.command()
def create(
    ctx: typer.Context,
    name: NameArg,
    # AWS refuses a plan above the account's default throttle (10,000 requests/s, burst 5,000).
    rate: Annotated[float, typer.Option(min=0.001, max=10000, help="Steady requests per second for this "
                                                                  "client.")] = 10,
    burst: Annotated[int, typer.Option(min=1, max=5000, help="Requests above the rate it may send at once.")] = 20,
    quota_per_day: Annotated[int | None, typer.Option(min=1, help="Requests per UTC day (none: unlimited).")]
    = None,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    """Make a client's key and usage plan; prints its secret (the only time it is shown)."""
    from sdctl.operate import keys

    mode = output_mode(ctx, output)
    target, ag = _target(ctx, local)
    doc = keys.create(ag, target.stack, name, api_id=target.api_id, stage=target.stage, rate=rate, burst=burst,
                      quota_per_day=quota_per_day)
    if mode == "json":
        return emit_json(doc)
    out.print(doc["secret"], markup=False)
    err.print(f"[dim]client {name}: {rate:g} requests/s, burst {burst}"
              + (f", {quota_per_day} a day" if quota_per_day else "") + "; send it as the x-api-key header[/]")


@app.command("list")
def list_(
    ctx: typer.Context,
    show: Annotated[bool, typer.Option("--show", help="Print each secret too.")] = False,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    """Every client's key: its limits and when it was made (secrets only with --show)."""
    from rich.table import Table

    from sdctl.operate import keys

    mode = output_mode(ctx, output)
    target, ag = _target(ctx, local)
    rows = keys.list_keys(ag, target.stack, show=show)
    if mode == "json":
        return emit_json(rows)
    if not rows:
        out.print(f"no client keys (the stack's own key is `default`); `sdctl keys create NAME{target.flags}`")
        return
    table = Table("client", "key id", "rate/s", "burst", "quota/day", "created")
    for r in rows:
        table.add_row(r["client"], r["key_id"], f"{r['rate']:g}" if r["rate"] is not None else "-",
                      str(r["burst"] or "-"), str(r["quota_per_day"] or "-"), r["created"][:19])
    out.print(table)
    if show:  # whole, one per line: a table would fold them
        for r in rows:
            out.print(f"{r['client']} {r.get('secret', '')}", markup=False, soft_wrap=True)


@app.command()
def rotate(ctx: typer.Context, name: NameArg, local: LocalOpt = False, output: OutputOpt = None) -> None:
    """Give a client a new secret (same limits); the old one stops working. Prints the new one."""
    from sdctl.operate import keys

    mode = output_mode(ctx, output)
    target, ag = _target(ctx, local)
    old = keys.secret_of(ag, target.stack, name)
    doc = keys.rotate(ag, target.stack, name)
    _await_refusal(target, old)
    if mode == "json":
        return emit_json(doc)
    out.print(doc["secret"], markup=False)
    err.print(f"[dim]client {name}: the old secret {_stops(target)}[/]")


@app.command()
def revoke(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    """Delete a client's key and usage plan; its requests get 403 from then on."""
    from sdctl.operate import keys

    mode = output_mode(ctx, output)
    target, ag = _target(ctx, local)
    confirm(ctx, f"Revoke client {name}'s key? Its requests will be refused.", yes=yes)
    old = keys.secret_of(ag, target.stack, name)
    doc = keys.revoke(ag, target.stack, name)
    _await_refusal(target, old)
    if mode == "json":
        return emit_json(doc)
    out.print(f"revoked {name}: its key {_stops(target)}")


def _stops(target) -> str:
    if target.kind == "local":
        return "is refused (403) from now on"
    return "is refused once API Gateway's key cache catches up (usually within a minute)"


def _await_refusal(target, secret: str | None, seconds: float = 10) -> None:
    """Locally, return only once the gateway refuses the old secret, so "revoked" means it."""
    if target.kind != "local" or not secret:
        return
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{target.api_url}/v1alpha2/tasks/x", headers={"x-api-key": secret}, timeout=5)
            if r.status_code == 403:
                return
        except httpx.TransportError:
            return
        time.sleep(0.1)
