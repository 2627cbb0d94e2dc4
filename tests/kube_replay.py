"""A small HTTP server that answers the Kubernetes API reads `sdctl scale status` and
`sdctl logs` make, from recorded objects.

There is no Kubernetes API server on these machines, nor a cluster to record from. The
objects in tests/data/k8s/ were written by hand in the API's JSON shape, after what EKS
1.35, KEDA 2.20 and Karpenter 1.14 publish (their conditions, reasons and messages), kept
to the fields that matter, and checked against the CRD schemas and the Kubernetes 1.35
schemas in test_scale.py. The real kubernetes client talks to this server over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

DATA = Path(__file__).parent / "data" / "k8s"


def scenario(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def _matches(obj: dict, selector: str | None) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, (selector or "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _missing(kind: str, name: str) -> JSONResponse:
    return JSONResponse({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                         "message": f'{kind} "{name}" not found', "code": 404}, status_code=404)


def app(objects: dict, logs: dict | None = None) -> Starlette:
    """Serve one scenario's objects: {scaledobject, deployment, pods, nodeclaims, nodes,
    system_deployments}. `logs` maps "pod/container" to its text, or, for `follow=true`, to
    an iterable of lines streamed as they come."""
    logs = logs or {}

    def listing(kind: str, items: list[dict], request: Request) -> JSONResponse:
        chosen = [o for o in items if _matches(o, request.query_params.get("labelSelector"))]
        return JSONResponse({"kind": f"{kind}List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                             "items": chosen})

    async def scaledobject(request: Request):
        so = objects.get("scaledobject")
        if not so or so["metadata"]["name"] != request.path_params["name"]:
            return _missing("scaledobjects.keda.sh", request.path_params["name"])
        return JSONResponse(so)

    deployments = {(d["metadata"]["namespace"], d["metadata"]["name"]): d
                   for d in [objects.get("deployment"), *objects.get("system_deployments", [])] if d}

    async def deployment(request: Request):
        dep = deployments.get((request.path_params["ns"], request.path_params["name"]))
        if dep is None:
            return _missing("deployments.apps", request.path_params["name"])
        return JSONResponse(dep)

    async def version(request: Request):
        return JSONResponse({"major": "1", "minor": "35", "gitVersion": "v1.35.2-eks-4a1b2c3",
                             "platform": "linux/amd64", "goVersion": "go1.25.4", "compiler": "gc",
                             "gitCommit": "4a1b2c3d", "gitTreeState": "clean", "buildDate": "2026-10-30T18:04:11Z"})

    async def pods(request: Request):
        return listing("Pod", [p for p in objects.get("pods", []) if p["metadata"]["namespace"] ==
                               request.path_params["ns"]], request)

    async def pod_log(request: Request):
        name = request.path_params["name"]
        key = f"{name}/{request.query_params.get('container', '')}"
        if key not in logs:
            return _missing("pods", name)
        text = logs[key]
        if request.query_params.get("follow") == "true" and not isinstance(text, str):
            async def lines():  # what the kubelet streams: each line as the container writes it
                for line in text:
                    yield line.encode()
            return StreamingResponse(lines(), media_type="text/plain")
        return PlainTextResponse(text)

    async def nodeclaims(request: Request):
        return listing("NodeClaim", objects.get("nodeclaims", []), request)

    async def nodes(request: Request):
        return listing("Node", objects.get("nodes", []), request)

    async def node(request: Request):
        name = request.path_params["name"]
        found = next((n for n in objects.get("nodes", []) if n["metadata"]["name"] == name), None)
        return JSONResponse(found) if found else _missing("nodes", name)

    return Starlette(routes=[
        Route("/version", version),
        Route("/version/", version),
        Route("/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects/{name}", scaledobject),
        Route("/apis/apps/v1/namespaces/{ns}/deployments/{name}", deployment),
        Route("/api/v1/namespaces/{ns}/pods", pods),
        Route("/api/v1/namespaces/{ns}/pods/{name}/log", pod_log),
        Route("/apis/karpenter.sh/v1/nodeclaims", nodeclaims),
        Route("/api/v1/nodes", nodes),
        Route("/api/v1/nodes/{name}", node),
    ])


def kubeconfig(path: Path, url: str) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "replay",
        "clusters": [{"name": "replay", "cluster": {"server": url}}],
        "users": [{"name": "replay", "user": {"token": "replay"}}],
        "contexts": [{"name": "replay", "context": {"cluster": "replay", "user": "replay"}}]}))
    return path
