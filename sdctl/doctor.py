"""Checks that say what is wrong and how to fix it. Each returns (status, detail, fix)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

OK, WARN, FAIL = "ok", "warn", "fail"


def check_helm() -> tuple[str, str, str | None]:
    from sdctl.helmbin import find_helm

    helm = find_helm()
    if helm is None:
        return FAIL, "helm not found", "make helm (or python -m sdctl.helmbin install), or set SDCTL_HELM"
    version = subprocess.run([helm, "version", "--short"], capture_output=True, text=True).stdout.strip()
    major = version.lstrip("v").split(".")[0]
    if major not in ("3", "4"):
        return WARN, f"{helm} is {version}", "use helm 3 or 4"
    return OK, f"{helm} {version}", None


def check_config(path) -> tuple[str, str, str | None]:
    from sdctl.config import config_path, load
    from sdctl.errors import ConfigError

    p = config_path(path)
    try:
        cfg = load(p)
    except ConfigError as e:
        return FAIL, e.message, e.hint or f"sdctl validate -c {p}"
    return OK, f"{p}: stack {cfg.stack_name}, {len(cfg.runtimes)} runtime(s)", None


def check_credentials(region: str | None, profile: str | None) -> tuple[str, str, str | None]:
    from sdctl.aws.session import connect
    from sdctl.errors import SdctlError

    try:
        aws = connect(region=region, profile=profile, config_region=region)
    except SdctlError as e:
        return WARN, e.message, e.hint
    return OK, f"account {aws.account} as {aws.principal_arn} in {aws.region}", None


def run(checks: dict[str, Callable[[], tuple[str, str, str | None]]]) -> list[dict]:
    return [dict(zip(("check", "status", "detail", "fix"), (name, *fn()), strict=True)) for name, fn in checks.items()]
