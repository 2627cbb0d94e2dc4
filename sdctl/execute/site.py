"""What a stack's parameters take from the account and this machine (builders/cfn/stacks.py
``Site``), each looked up only when a stack being deployed or planned needs it, once per run.
``ctx`` is the deploy context (sdctl/execute/deploy.py)."""

from __future__ import annotations

from collections.abc import Callable

from sdctl.builders.cfn.stacks import Site, StackSpec, stack_name
from sdctl.errors import SdctlError


def site(ctx, spec: StackSpec) -> Site:
    """The values `spec`'s parameters need, each looked up (once per run) only when it does."""
    found = ctx.site_values
    for need in spec.needs:
        if need not in found:
            found[need] = _LOOKUPS[need](ctx)
    return Site(**found)


def _previous(ctx, key: str, parameter: str) -> str | None:
    data = ctx.deployer.describe(stack_name(ctx.cfg, key)) or {}
    return next((p.get("ParameterValue") for p in data.get("Parameters", []) if p["ParameterKey"] == parameter),
                None)


_LOOKUPS: dict[str, Callable] = {
    "code": lambda ctx: (ctx.code_bucket, ctx.code_key),
    "admin_principal": lambda ctx: ctx.aws.iam_principal(),
    # Keep the address the cluster was opened to: a deploy from another machine must not lock
    # the first one out. Set cluster.publicAccessCidrs to choose.
    "deployer_cidr": lambda ctx: _previous(ctx, "cluster", "PublicAccessCidrs") or deployer_cidr(),
    "api_logs_role": lambda ctx: existing_api_logs_role(
        ctx.aws.client("apigateway"), ctx.cfg.stack_name, ctx.aws.region,
        owned=_previous(ctx, "edge", "ExistingApiGatewayLogsRoleArn") == ""),
}


def existing_api_logs_role(apigateway, stack: str, region: str, *, owned: bool) -> str:
    """The CloudWatch role API Gateway's account settings already name, for the edge stack's
    ExistingApiGatewayLogsRoleArn: "" when none is set (the stack sets its own) or when the
    role set is the one this stack owns now; another stack's, or this stack's retained from an
    earlier deploy, is kept as it is."""
    from sdctl.builders.cfn.api import api_logs_role_name

    role = apigateway.get_account().get("cloudwatchRoleArn") or ""
    ours = role.endswith("/" + api_logs_role_name(stack).replace("${AWS::Region}", region))
    return "" if not role or (ours and owned) else role


def deployer_cidr() -> str:
    """This machine's public IPv4 address as a /32, asked of AWS's checkip service (or the
    URL in SDCTL_CHECKIP_URL)."""
    import ipaddress
    import os

    import httpx

    url = os.environ.get("SDCTL_CHECKIP_URL", "https://checkip.amazonaws.com")
    try:
        text = httpx.get(url, timeout=10).raise_for_status().text.strip()
        return f"{ipaddress.IPv4Address(text)}/32"
    except (httpx.HTTPError, ValueError) as e:
        raise SdctlError(f"cannot find this machine's public address for the cluster's API endpoint ({url}: {e})",
                         hint="set cluster.publicAccessCidrs in sdctl.yaml (e.g. your office's CIDR)") from None
