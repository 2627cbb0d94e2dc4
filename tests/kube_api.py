"""A Kubernetes API server in memory, enough for the real helm binary to install, wait for and
uninstall a release, and for the real kubernetes client to read what it made.

There is no Kubernetes API server on these machines (no kind, no envtest binaries, no
network to fetch them). This one was written against the API conventions helm and client-go
rely on, and checked by running helm 4 against it: legacy discovery (`/api`, `/apis`,
`/apis/<group>/<version>`), create/get/list/replace/patch (merge, strategic merge read as
merge, JSON patch, server-side apply) and delete, label selectors, `resourceVersion`,
`generation`, and watches that stream ADDED/MODIFIED/DELETED. What controllers would do is
done at write time, the way EKS's controllers answer within seconds: a Deployment reports its
replicas ready (the deployment controller plus a kubelet whose pods pass readiness), a
PersistentVolumeClaim is Bound to its volume, and a KEDA ScaledObject gets `Ready`/`Active`
conditions after `ready_after` reads (KEDA 2.20's condition types and reasons).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import uuid
from datetime import UTC, datetime

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

# group/version -> [(plural, kind, namespaced)]
RESOURCES = {
    "v1": [("namespaces", "Namespace", False), ("secrets", "Secret", True), ("configmaps", "ConfigMap", True),
           ("serviceaccounts", "ServiceAccount", True), ("services", "Service", True), ("pods", "Pod", True),
           ("persistentvolumes", "PersistentVolume", False),
           ("persistentvolumeclaims", "PersistentVolumeClaim", True), ("events", "Event", True)],
    "apps/v1": [("deployments", "Deployment", True), ("replicasets", "ReplicaSet", True)],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "rbac.authorization.k8s.io/v1": [("clusterroles", "ClusterRole", False),
                                     ("clusterrolebindings", "ClusterRoleBinding", False),
                                     ("roles", "Role", True), ("rolebindings", "RoleBinding", True)],
    "keda.sh/v1alpha1": [("scaledobjects", "ScaledObject", True),
                         ("triggerauthentications", "TriggerAuthentication", True)],
    "karpenter.sh/v1": [("nodepools", "NodePool", False), ("nodeclaims", "NodeClaim", False)],
    "karpenter.k8s.aws/v1": [("ec2nodeclasses", "EC2NodeClass", False)],
}


def _status(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "reason": reason, "message": message, "code": code}, status_code=code)


def _matches(obj: dict, selector: str | None) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value.lstrip("="):
                return False
        elif labels.get(term) is None:
            return False
    return True


def _merge(base, patch):
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(base)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(base.get(k), v)
    return out


def _fields(buf: bytes):
    """Protocol buffer wire format, as (field number, wire type, value) triples."""
    i = 0

    def varint():
        nonlocal i
        shift = value = 0
        while True:
            b = buf[i]
            i += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7

    while i < len(buf):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, wire, varint()
        elif wire == 2:
            n = varint()
            yield number, wire, buf[i:i + n]
            i += n
        elif wire == 1:
            yield number, wire, buf[i:i + 8]
            i += 8
        elif wire == 5:
            yield number, wire, buf[i:i + 4]
            i += 4
        else:
            raise ValueError(f"wire type {wire}")


def _map_entry(raw: bytes) -> tuple[str, bytes]:
    parts = {n: v for n, _, v in _fields(raw)}
    return parts.get(1, b"").decode(), parts.get(2, b"")


def _protobuf_secret(body: bytes) -> dict:
    """A Secret in Kubernetes' protobuf encoding (k8s.io/api/core/v1/generated.proto), which
    helm's release storage sends: the `k8s\\0` envelope (runtime.Unknown), then the Secret's
    metadata name/namespace/labels, data and type. Only what helm writes is read."""
    if not body.startswith(b"k8s\x00"):
        raise ValueError("not a Kubernetes protobuf body")
    raw = next(v for n, _, v in _fields(body[4:]) if n == 2)
    secret: dict = {"metadata": {}, "data": {}}
    for n, _, v in _fields(raw):
        if n == 1:
            for m, _, mv in _fields(v):
                if m in (1, 3):
                    secret["metadata"]["name" if m == 1 else "namespace"] = mv.decode()
                elif m in (11, 12):
                    k, val = _map_entry(mv)
                    secret["metadata"].setdefault("labels" if m == 11 else "annotations", {})[k] = val.decode()
        elif n == 2:
            k, val = _map_entry(v)
            secret["data"][k] = base64.b64encode(val).decode()
        elif n == 3:
            secret["type"] = v.decode()
    return secret


class Cluster:
    """The objects, by (group/version, plural, namespace, name), and what watches them."""

    def __init__(self, ready_after: int = 2):
        self.objects: dict[tuple, dict] = {}
        self.versions = itertools.count(1)
        self.ready_after = ready_after
        self.reads: dict[tuple, int] = {}
        self.log: list[str] = []  # "VERB path" of every request, for tests to read
        self.changed = asyncio.Event()  # set, and replaced, on every change
        self.events: list[tuple[int, str, tuple, dict]] = []

    # -- controllers ---------------------------------------------------------------------------------
    def _reconcile(self, key: tuple, obj: dict) -> dict:
        gv, plural = key[0], key[1]
        meta, spec = obj["metadata"], obj.get("spec") or {}
        if gv == "apps/v1" and plural == "deployments":
            n = spec.setdefault("replicas", 1)  # the API server's default
            obj["status"] = {"observedGeneration": meta["generation"], "replicas": n, "updatedReplicas": n,
                             "readyReplicas": n, "availableReplicas": n, "conditions": [
                                 {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                                 {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}
        elif gv == "v1" and plural == "persistentvolumeclaims":
            obj["status"] = {"phase": "Bound", "accessModes": spec.get("accessModes", [])}
        elif gv == "v1" and plural == "persistentvolumes":
            obj["status"] = {"phase": "Bound"}
        elif gv == "v1" and plural == "namespaces":
            obj["status"] = {"phase": "Active"}
        return obj

    def _scaledobject_status(self, key: tuple, obj: dict) -> dict:
        self.reads[key] = self.reads.get(key, 0) + 1
        if self.reads[key] >= self.ready_after and not obj.get("status"):
            obj["status"] = {"conditions": [
                {"type": "Ready", "status": "True", "reason": "ScaledObjectReady",
                 "message": "ScaledObject is defined correctly and is ready for scaling"},
                {"type": "Active", "status": "False", "reason": "ScalerNotActive",
                 "message": "Scaling is not performed because triggers are not active"},
                {"type": "Fallback", "status": "False", "reason": "NoFallbackFound",
                 "message": "No fallbacks are active on this scaled object"}]}
        return obj

    # -- storage ---------------------------------------------------------------------------------------
    async def put(self, key: tuple, obj: dict, *, kind: str, gv: str, created: bool) -> dict:
        meta = obj.setdefault("metadata", {})
        old = self.objects.get(key)
        meta["name"], meta["resourceVersion"] = key[3], str(next(self.versions))
        if key[2]:
            meta["namespace"] = key[2]
        if old is None:
            meta.update(uid=str(uuid.uuid4()), generation=1,
                        creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        else:
            meta.update(uid=old["metadata"]["uid"], creationTimestamp=old["metadata"]["creationTimestamp"])
            same_spec = old.get("spec") == obj.get("spec")
            meta["generation"] = old["metadata"]["generation"] + (0 if same_spec else 1)
        obj["apiVersion"], obj["kind"] = gv, kind
        obj = self._reconcile(key, obj)
        self.objects[key] = obj
        await self._notify("ADDED" if created else "MODIFIED", key, obj)
        return obj

    async def remove(self, key: tuple) -> dict:
        obj = self.objects.pop(key)
        await self._notify("DELETED", key, obj)
        return obj

    async def _notify(self, kind: str, key: tuple, obj: dict) -> None:
        self.events.append((int(obj["metadata"]["resourceVersion"]), kind, key, copy.deepcopy(obj)))
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


def app(cluster: Cluster) -> Starlette:
    kinds = {(gv, plural): (kind, namespaced) for gv, rs in RESOURCES.items() for plural, kind, namespaced in rs}

    async def version(request):
        return JSONResponse({"major": "1", "minor": "35", "gitVersion": "v1.35.2-eks-4a1b2c3", "platform": "linux/amd64"})

    async def api_versions(request):
        return JSONResponse({"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})

    async def api_groups(request):
        groups = [{"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                   "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]}}
                  for gv in RESOURCES if "/" in gv]
        return JSONResponse({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    def resource_list(gv: str) -> JSONResponse:
        if gv not in RESOURCES:
            return _status(404, "NotFound", f"the server could not find the requested resource ({gv})")
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        return JSONResponse({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
            {"name": p, "singularName": k.lower(), "namespaced": ns, "kind": k, "verbs": verbs}
            for p, k, ns in RESOURCES[gv]]})

    async def core_resources(request):
        return resource_list("v1")

    async def group_resources(request):
        return resource_list(f"{request.path_params['group']}/{request.path_params['version']}")

    async def handle(request: Request):
        p = request.path_params
        gv = f"{p['group']}/{p['version']}" if "group" in p else "v1"
        plural, ns, name = p["plural"], p.get("ns", ""), p.get("name")
        cluster.log.append(f"{request.method} {request.url.path}")
        if (gv, plural) not in kinds:
            return _status(404, "NotFound", f"the server could not find the requested resource ({plural})")
        kind, namespaced = kinds[(gv, plural)]
        ctype = request.headers.get("content-type", "").split(";")[0]

        async def body() -> dict:
            raw = await request.body()
            if ctype == "application/vnd.kubernetes.protobuf" and plural == "secrets":
                return _protobuf_secret(raw)
            return json.loads(raw)
        if namespaced and not ns and request.method != "GET":
            return _status(400, "BadRequest", f"{plural} is namespaced")
        if name is None:
            if request.method == "GET":
                return await collection(request, gv, plural, ns, kind)
            if request.method == "POST":
                obj = await body()
                name = obj.get("metadata", {}).get("name")
                key = (gv, plural, ns, name)
                if key in cluster.objects:
                    return _status(409, "AlreadyExists", f'{plural} "{name}" already exists')
                return JSONResponse(await cluster.put(key, obj, kind=kind, gv=gv, created=True), status_code=201)
            return _status(405, "MethodNotAllowed", request.method)
        key = (gv, plural, ns, name)
        current = cluster.objects.get(key)
        if request.method == "GET":
            if current is None:
                return _status(404, "NotFound", f'{plural} "{name}" not found')
            if plural == "scaledobjects":
                current = cluster._scaledobject_status(key, current)
            return JSONResponse(current)
        if request.method == "PUT":
            if current is None:
                return _status(404, "NotFound", f'{plural} "{name}" not found')
            return JSONResponse(await cluster.put(key, await body(), kind=kind, gv=gv, created=False))
        if request.method == "PATCH":
            raw = await request.body()
            if ctype == "application/apply-patch+yaml":
                patch = yaml.safe_load(raw)
                if current is None:
                    return JSONResponse(await cluster.put(key, patch, kind=kind, gv=gv, created=True), status_code=201)
                merged = _merge({k: v for k, v in current.items() if k != "status"}, patch)
            elif current is None:
                return _status(404, "NotFound", f'{plural} "{name}" not found')
            elif ctype == "application/json-patch+json":
                import jsonpatch

                merged = jsonpatch.apply_patch(current, json.loads(raw))
            else:  # merge and strategic merge (lists replaced, which is what helm's patches here need)
                merged = _merge(current, json.loads(raw))
            return JSONResponse(await cluster.put(key, merged, kind=kind, gv=gv, created=False))
        if request.method == "DELETE":
            if current is None:
                return _status(404, "NotFound", f'{plural} "{name}" not found')
            await cluster.remove(key)
            return JSONResponse({"kind": "Status", "apiVersion": "v1", "status": "Success",
                                 "details": {"name": name, "kind": plural}})
        return _status(405, "MethodNotAllowed", request.method)

    async def collection(request: Request, gv: str, plural: str, ns: str, kind: str):
        selector = request.query_params.get("labelSelector")
        fields = request.query_params.get("fieldSelector") or ""
        wanted_name = fields.split("=", 1)[1] if fields.startswith("metadata.name=") else None

        def chosen(key, obj):
            return (key[0] == gv and key[1] == plural and (not ns or key[2] == ns) and _matches(obj, selector)
                    and (wanted_name is None or key[3] == wanted_name))

        if request.query_params.get("watch") in ("true", "1"):
            since = int(request.query_params.get("resourceVersion") or 0)
            timeout = float(request.query_params.get("timeoutSeconds") or 30)
            initial = request.query_params.get("sendInitialEvents") == "true"
            return StreamingResponse(watch(chosen, since, timeout, initial, kind, gv), media_type="application/json")
        items = [o for k, o in cluster.objects.items() if chosen(k, o)]
        return JSONResponse({"kind": f"{kind}List", "apiVersion": gv,
                             "metadata": {"resourceVersion": str(cluster.events[-1][0] if cluster.events else 0)},
                             "items": items})

    async def watch(chosen, since: int, timeout: float, initial: bool, kind: str, gv: str):
        """Changes after `since`; with sendInitialEvents (client-go's streaming list), first every
        current object as ADDED and the bookmark that marks the end of them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = since
        if initial:
            seen = cluster.events[-1][0] if cluster.events else 0
            for key, obj in list(cluster.objects.items()):
                if chosen(key, obj):
                    yield (json.dumps({"type": "ADDED", "object": obj}) + "\n").encode()
            yield (json.dumps({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": gv, "metadata": {
                "resourceVersion": str(seen), "annotations": {"k8s.io/initial-events-end": "true"}}}}) + "\n").encode()
        while loop.time() < deadline:
            for rv, kind, key, obj in list(cluster.events):
                if rv <= seen:
                    continue
                seen = rv
                if chosen(key, obj):
                    yield (json.dumps({"type": kind, "object": obj}) + "\n").encode()
            try:
                await asyncio.wait_for(cluster.changed.wait(), timeout=max(0.01, min(1.0, deadline - loop.time())))
            except TimeoutError:
                pass

    def gv_path(gv: str) -> str:
        return f"api/{gv}" if "/" not in gv else f"apis/{gv}"

    async def openapi_paths(request):
        # What client-go's OpenAPI v3 client reads first: where each group version's document is.
        return JSONResponse({"paths": {gv_path(gv): {"serverRelativeURL": f"/openapi/v3/{gv_path(gv)}?hash=1"}
                                       for gv in RESOURCES}})

    async def openapi_gv(request):
        """A group version's document, reduced to what kubectl's validation reads from it: each
        kind's PATCH operation and its `fieldValidation` query parameter (present, so helm lets
        the server validate), tagged with x-kubernetes-group-version-kind."""
        wanted = request.path_params["gv"]
        gv = next((g for g in RESOURCES if gv_path(g) == wanted), None)
        if gv is None:
            return _status(404, "NotFound", wanted)
        group, _, version = gv.rpartition("/")
        paths = {}
        for plural, kind, namespaced in RESOURCES[gv]:
            ns = "/namespaces/{namespace}" if namespaced else ""
            paths[f"/{gv_path(gv)}{ns}/{plural}/{{name}}"] = {"patch": {
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}}}}
        return JSONResponse({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.35.2"},
                             "paths": paths, "components": {"schemas": {}}})

    item = "/{plural}/{name}"
    return Starlette(routes=[
        Route("/version", version), Route("/version/", version),
        Route("/api", api_versions), Route("/apis", api_groups),
        Route("/api/v1", core_resources), Route("/apis/{group}/{version}", group_resources),
        Route("/openapi/v3", openapi_paths), Route("/openapi/v3/{gv:path}", openapi_gv),
        *[Route(prefix + suffix, handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
          for prefix in ("/api/{version}", "/api/{version}/namespaces/{ns}", "/apis/{group}/{version}",
                         "/apis/{group}/{version}/namespaces/{ns}")
          for suffix in ("/{plural}", item)],
    ])
