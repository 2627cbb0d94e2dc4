"""EKS access without the aws CLI: a presigned STS GetCallerIdentity token and a kubeconfig.

The token is `k8s-aws-v1.` + base64url(presigned URL) without padding; the URL is signed with
the `x-k8s-aws-id: <cluster>` header, as aws-cli's `eks get-token` does.
"""

from __future__ import annotations

import base64
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_HEADER = "x-k8s-aws-id"
URL_EXPIRES = 60


def token(session, cluster: str, region: str) -> str:
    sts = session.client("sts", region_name=region,
                         endpoint_url=f"https://sts.{region}.amazonaws.com")

    def take_param(params, context, **kwargs):
        if CLUSTER_HEADER in params:
            context[CLUSTER_HEADER] = params.pop(CLUSTER_HEADER)

    def add_header(request, **kwargs):
        if CLUSTER_HEADER in request.context:
            request.headers[CLUSTER_HEADER] = request.context[CLUSTER_HEADER]

    sts.meta.events.register("provide-client-params.sts.GetCallerIdentity", take_param)
    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_header)
    url = sts.generate_presigned_url("get_caller_identity", Params={CLUSTER_HEADER: cluster},
                                     ExpiresIn=URL_EXPIRES, HttpMethod="GET")
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def exec_credential(tok: str) -> dict:
    """What a kubeconfig `exec` user prints (client.authentication.k8s.io/v1beta1)."""
    expires = datetime.now(UTC) + timedelta(minutes=14)
    return {"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1", "spec": {},
            "status": {"expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"), "token": tok}}


def kubeconfig(cluster: str, endpoint: str, ca_data: str, *, user: dict) -> dict:
    """A kubeconfig for one cluster. `user` is {"token": ...} or {"exec": {...}}."""
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": cluster, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
        "users": [{"name": f"sdctl-{cluster}", "user": user}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": f"sdctl-{cluster}"}}],
        "current-context": cluster,
    }


def exec_user(cluster: str, region: str, profile: str | None = None, *, command: list[str] | None = None) -> dict:
    """A kubeconfig user that asks `sdctl kubeconfig --token` for a fresh token whenever the
    last one expires. EKS tokens live 15 minutes; a static one would fail a long
    `helm --wait` or readiness wait midway with 401. `command` is how to run sdctl (default:
    `sdctl` on PATH; sdctl's own deploys use this Python's `-m sdctl`)."""
    command = command or ["sdctl"]
    # --region and --profile are sdctl's global options: they go before the command.
    args = [*command[1:], "--region", region, *(["--profile", profile] if profile else []),
            "kubeconfig", "--token", "--cluster", cluster]
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": command[0], "args": args,
                     "interactiveMode": "Never"}}


def describe(session, cluster: str, region: str) -> tuple[str, str]:
    info = session.client("eks", region_name=region).describe_cluster(name=cluster)["cluster"]
    return info["endpoint"], info["certificateAuthority"]["data"]


def write_private(config: dict, path: Path | None = None) -> Path:
    """Write a kubeconfig readable only by this user (it may hold a token)."""
    if path is None:
        fd, name = tempfile.mkstemp(prefix="sdctl-kubeconfig-", suffix=".yaml")
        path = Path(name)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.chmod(path, 0o600)
    return path
