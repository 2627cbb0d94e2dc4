"""`sdctl webhooks secret|failed|replay|verify`: the signing secret, undeliverable events, and a
receiver's check of a signature."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sdctl.cli.common import LocalOpt, OutputOpt, emit_json, is_local, out, output_mode, target_for
from sdctl.cli.lazy import group_app

app = group_app("webhooks")


@app.command()
def secret(
    ctx: typer.Context,
    rotate: Annotated[bool, typer.Option("--rotate", help="Make a new secret; the old one keeps signing "
                                                          "beside it for 24 h.")] = False,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    """Show the secret that signs webhook deliveries, or rotate it (this prints the secret)."""
    from sdctl.operate import webhooks

    mode = output_mode(ctx, output)
    target = target_for(ctx, is_local(local))
    arn = target.require_webhooks()["secret_arn"]
    sm = target.client("secretsmanager")
    doc = webhooks.rotate(sm, arn) if rotate else webhooks.secret(sm, arn)
    if mode == "json":
        emit_json(doc)
        return
    out.print(doc["current"], markup=False)
    if doc["previous"]:
        from datetime import UTC, datetime

        until = datetime.fromtimestamp(doc["previous_signs_until"], UTC).strftime("%Y-%m-%d %H:%M UTC")
        out.print(f"previous (still signs until {until}): {doc['previous']}", markup=False)


@app.command()
def failed(ctx: typer.Context, local: LocalOpt = False, output: OutputOpt = None) -> None:
    """Webhook events that could not be delivered (answered 4xx, or retries used up)."""
    from sdctl.operate import webhooks

    mode = output_mode(ctx, output)
    target = target_for(ctx, is_local(local))
    rows = webhooks.failed(target.client("sqs"), target.require_webhooks()["dead_letter_queue_url"])
    if mode == "json":
        emit_json(rows)
        return
    if not rows:
        out.print("no undeliverable webhooks")
    for r in rows:
        out.print(f"[bold]{r['id']}[/] {r['type']} → {r['url']}", highlight=False)
        out.print(f"  {r['attempts']} attempt(s): {r['reason']}", markup=False)


@app.command()
def replay(
    ctx: typer.Context,
    ids: Annotated[list[str] | None, typer.Argument(metavar="[ID]...", help="webhook-id(s) to send again.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Send every undeliverable event again.")] = False,
    local: LocalOpt = False,
    output: OutputOpt = None,
) -> None:
    """Send undeliverable webhook events again, each with a fresh retry schedule."""
    from sdctl.errors import UsageError
    from sdctl.operate import webhooks

    mode = output_mode(ctx, output)
    if bool(ids) == all_:
        raise UsageError("name the webhook ids to send again, or pass --all", hint="see them: sdctl webhooks failed")
    target = target_for(ctx, is_local(local))
    hooks = target.require_webhooks()
    done = webhooks.replay(target.client("sqs"), hooks["dead_letter_queue_url"], hooks["queue_url"],
                           None if all_ else list(ids or []))
    emit_json({"replayed": done}) if mode == "json" else out.print(f"sent again: {len(done)}")


@app.command()
def verify(
    ctx: typer.Context,
    body: Annotated[Path, typer.Argument(help="The request body as received ('-' for stdin).",
                                         allow_dash=True)],
    secret_: Annotated[str, typer.Option("--secret", envvar="SDCTL_WEBHOOK_SECRET",
                                         help="whsec_… [env SDCTL_WEBHOOK_SECRET]")],
    msg_id: Annotated[str, typer.Option("--id", help="The webhook-id header.")],
    timestamp: Annotated[str, typer.Option("--timestamp", help="The webhook-timestamp header.")],
    signature: Annotated[str, typer.Option("--signature", help="The webhook-signature header.")],
    tolerance: Annotated[int, typer.Option(min=0, help="Seconds a timestamp may differ from now.")] = 300,
    output: OutputOpt = None,
) -> None:
    """Check a delivery as a receiver would: exit 0 if the signature is the secret's, 1 if not."""
    from sdctl.contracts.webhooks import verify as check
    from sdctl.errors import SdctlError

    mode = output_mode(ctx, output)
    data = sys.stdin.buffer.read() if str(body) == "-" else body.read_bytes()
    try:
        check(secret_, {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature},
              data, tolerance=tolerance)
    except ValueError as e:
        raise SdctlError(f"signature not valid: {e}") from None
    emit_json({"valid": True, "id": msg_id}) if mode == "json" else out.print("valid")
