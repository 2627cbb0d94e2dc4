"""API keys per client: one API Gateway key and one usage plan (throttle, daily quota) each.

On AWS the usage plan is bound to the API's stage, so API Gateway itself enforces the key and
its limits; on the local stack the same keys and plans live in the emulator's API Gateway and
the local gateway enforces them the same way (sdctl/execute/local/gateway.py). Every key
carries the `sdctl:client` tag; the API handler records it on each task the key submits.

Secrets are returned only by `create` and `rotate` (and `list(show=True)`).
"""

from __future__ import annotations

import re

from sdctl.builders.names import CLIENT_NAME, client_key_name
from sdctl.contracts.tasks import CLIENT_TAG, DEFAULT_CLIENT
from sdctl.errors import SdctlError, UsageError


def check_name(name: str) -> str:
    if not re.match(CLIENT_NAME, name) or name == DEFAULT_CLIENT:
        raise UsageError(f"client name {name!r} is not allowed",
                         hint="1-40 lowercase letters, digits and '-', starting with a letter or digit "
                              f"(and not {DEFAULT_CLIENT!r}, the stack's own key)")
    return name


def _plan_body(stack: str, name: str, *, api_id: str | None, stage: str | None, rate: float, burst: int,
               quota_per_day: int | None) -> dict:
    body = {"name": client_key_name(stack, name), "description": f"sdctl client {name}",
            "throttle": {"rateLimit": rate, "burstLimit": burst}, "tags": {CLIENT_TAG: name}}
    if api_id and stage:
        body["apiStages"] = [{"apiId": api_id, "stage": stage}]
    if quota_per_day:
        body["quota"] = {"limit": quota_per_day, "period": "DAY"}
    return body


def _find(apigateway, stack: str, name: str) -> dict | None:
    wanted = client_key_name(stack, name)
    for page in apigateway.get_paginator("get_api_keys").paginate(nameQuery=wanted, includeValues=False):
        for key in page.get("items", []):
            if key.get("name") == wanted:
                return key
    return None


def _plan_of(apigateway, key_id: str) -> dict | None:
    plans = apigateway.get_usage_plans(keyId=key_id).get("items", [])
    return plans[0] if plans else None


def create(apigateway, stack: str, name: str, *, api_id: str | None, stage: str | None, rate: float, burst: int,
           quota_per_day: int | None = None) -> dict:
    check_name(name)
    if rate <= 0 or burst < 1:
        raise UsageError("--rate must be > 0 and --burst >= 1")
    if _find(apigateway, stack, name):
        raise UsageError(f"client {name!r} already has a key", hint=f"`sdctl keys rotate {name}` for a new secret")
    plan = apigateway.create_usage_plan(**_plan_body(stack, name, api_id=api_id, stage=stage, rate=rate, burst=burst,
                                                     quota_per_day=quota_per_day))
    try:
        key = _new_key(apigateway, stack, name, plan["id"])
    except Exception:
        try:
            delete_plan(apigateway, plan)
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        raise
    return _describe(key, plan, secret=key["value"])


def _new_key(apigateway, stack: str, name: str, plan_id: str) -> dict:
    key = apigateway.create_api_key(name=client_key_name(stack, name), description=f"sdctl client {name}",
                                    enabled=True, tags={CLIENT_TAG: name})
    try:
        apigateway.create_usage_plan_key(usagePlanId=plan_id, keyId=key["id"], keyType="API_KEY")
    except Exception:
        apigateway.delete_api_key(apiKey=key["id"])
        raise
    return key


def list_keys(apigateway, stack: str, *, show: bool = False) -> list[dict]:
    prefix = client_key_name(stack, "")
    out = []
    for page in apigateway.get_paginator("get_api_keys").paginate(nameQuery=prefix, includeValues=show):
        for key in page.get("items", []):
            if not key.get("name", "").startswith(prefix):
                continue
            out.append(_describe(key, _plan_of(apigateway, key["id"]), secret=key.get("value") if show else None))
    return sorted(out, key=lambda k: k["client"])


def rotate(apigateway, stack: str, name: str) -> dict:
    """A new key with a new secret on the same usage plan; the old key is deleted, so the old
    secret stops working (at once locally; on AWS within API Gateway's propagation time)."""
    check_name(name)
    old = _find(apigateway, stack, name)
    if old is None:
        raise SdctlError(f"client {name!r} has no key", hint=f"`sdctl keys create {name}`")
    plan = _plan_of(apigateway, old["id"])
    if plan is None:
        raise SdctlError(f"client {name!r}'s key has no usage plan", hint="revoke it and create it again")
    key = _new_key(apigateway, stack, name, plan["id"])
    apigateway.delete_api_key(apiKey=old["id"])
    return _describe(key, plan, secret=key["value"])


def revoke(apigateway, stack: str, name: str) -> dict:
    check_name(name)
    key = _find(apigateway, stack, name)
    if key is None:
        raise SdctlError(f"client {name!r} has no key", hint="`sdctl keys list` shows the clients")
    plan = _plan_of(apigateway, key["id"])
    if plan is not None:  # the plan first: if it cannot go, the key stays and revoke can be run again
        delete_plan(apigateway, plan)
    apigateway.delete_api_key(apiKey=key["id"])
    return {"client": name, "key_id": key["id"], "revoked": True}


def delete_plan(apigateway, plan: dict) -> None:
    """API Gateway refuses to delete a usage plan that still lists an API stage ("Cannot delete
    Usage Plan ... because there are API Stages associated with it"): remove its stages first."""
    stages = plan.get("apiStages") or []
    if stages:
        apigateway.update_usage_plan(usagePlanId=plan["id"], patchOperations=[
            {"op": "remove", "path": "/apiStages", "value": f"{s['apiId']}:{s['stage']}"} for s in stages])
    apigateway.delete_usage_plan(usagePlanId=plan["id"])


def remove_all(apigateway, stack: str) -> list[str]:
    """Every client key of the stack and its usage plan (for `destroy`); returns the clients."""
    gone = []
    for k in list_keys(apigateway, stack):
        revoke(apigateway, stack, k["client"])
        gone.append(k["client"])
    return gone


def _describe(key: dict, plan: dict | None, *, secret: str | None) -> dict:
    throttle = (plan or {}).get("throttle") or {}
    quota = (plan or {}).get("quota") or {}
    out = {"client": (key.get("tags") or {}).get(CLIENT_TAG) or key["name"].rsplit("-client-", 1)[-1],
           "key_id": key["id"], "enabled": key.get("enabled", True),
           "created": str(key.get("createdDate", "")), "rate": throttle.get("rateLimit"),
           "burst": throttle.get("burstLimit"), "quota_per_day": quota.get("limit") if quota.get("period") == "DAY"
           else None, "usage_plan_id": (plan or {}).get("id")}
    if secret is not None:
        out["secret"] = secret
    return out


def secret_of(apigateway, stack: str, name: str) -> str | None:
    """A client's current secret (to check that it stops working), or None."""
    key = _find(apigateway, stack, check_name(name))
    if key is None:
        return None
    return apigateway.get_api_key(apiKey=key["id"], includeValue=True).get("value")
