"""`sdctl init --from-guidance`: the AWS guidance's config.yaml as an sdctl.yaml.

Pure: the guidance's document in, sdctl's document and notes out (every setting sdctl
does not carry over is named in a note, so nothing is dropped silently).
"""

from __future__ import annotations

import re

from sdctl.contracts.runtimes import GUIDANCE_DEFAULT
from sdctl.errors import UsageError

GI = re.compile(r"^(\d+)\s*Gi?$")


def _bucket(arn: str | None, notes: list[str]) -> str | None:
    if not arn:
        return None
    m = re.match(r"^arn:aws[a-z-]*:s3:::([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/?$", str(arn))
    if not m:
        raise UsageError(f"modelBucketArn {arn!r} is not an S3 bucket ARN (arn:aws:s3:::name)")
    return m.group(1)


def _runtime(i: int, rt: dict, notes: list[str]) -> dict:
    if not isinstance(rt, dict) or "name" not in rt:
        raise UsageError(f"modelsRuntime[{i}] has no name")
    where = f"modelsRuntime[{i}] ({rt['name']})"
    out: dict = {"name": rt["name"], "type": rt.get("type", GUIDANCE_DEFAULT)}
    if rt.get("namespace"):
        out["namespace"] = rt["namespace"]
    if rt.get("modelFilename"):
        out["model"] = rt["modelFilename"]
    if "dynamicModel" in rt:
        out["dynamicModel"] = bool(rt["dynamicModel"])
    extra = rt.get("extraValues") or {}
    karpenter = extra.get("karpenter") or {}
    prov = karpenter.get("provisioner") or {}
    nodes: dict = {}
    if prov.get("instanceType"):
        nodes["instanceTypes"] = list(prov["instanceType"])
    cap = prov.get("capacityType") or {}
    if cap:
        kinds = [k for k, on in (("spot", cap.get("spot", True)), ("on-demand", cap.get("onDemand", True))) if on]
        if not kinds:
            raise UsageError(f"{where}: capacityType allows neither spot nor on-demand")
        nodes["capacityTypes"] = kinds
    gpus = (prov.get("resourceLimits") or {}).get("nvidia.com/gpu")
    if gpus is not None:
        nodes["gpuLimit"] = int(gpus)
    disruption = prov.get("disruption") or {}
    if prov.get("consolidation") is False:
        nodes["consolidateAfter"] = "Never"
    elif disruption.get("consolidateAfter"):
        nodes["consolidateAfter"] = str(disruption["consolidateAfter"])
    for key in ("labels", "extraRequirements", "extraTaints"):
        if prov.get(key):
            notes.append(f"{where}: karpenter.provisioner.{key} is not carried over (sdctl sets its own labels, "
                         "requirements and taints per runtime)")
    if disruption.get("expireAfter"):
        notes.append(f"{where}: disruption.expireAfter is not carried over (Karpenter's default, 720h, applies)")
    template = karpenter.get("nodeTemplate") or {}
    data = template.get("dataVolume") or {}
    if data.get("volumeSize"):
        m = GI.match(str(data["volumeSize"]))
        if m:
            nodes["volumeSizeGi"] = int(m.group(1))
        else:
            notes.append(f"{where}: dataVolume.volumeSize {data['volumeSize']!r} is not in Gi; using sdctl's default")
    for key in sorted(set(template) - {"amiFamily", "dataVolume"}):
        notes.append(f"{where}: karpenter.nodeTemplate.{key} is not carried over (sdctl's EC2NodeClass decides it)")
    if data.get("snapshotID"):
        notes.append(f"{where}: dataVolume.snapshotID (a pre-cached image snapshot) is not carried over")
    if nodes:
        out["nodes"] = nodes
    runtime_values = extra.get("runtime") or {}
    scaling_in = runtime_values.get("scaling") or {}
    scaling: dict = {}
    for theirs, ours in (("queueLength", "queueLength"), ("minReplicaCount", "minReplicas"),
                         ("maxReplicaCount", "maxReplicas"), ("cooldownPeriod", "cooldownSeconds"),
                         ("pollingInterval", "pollingSeconds"), ("scaleOnInFlight", "scaleOnInFlight")):
        if theirs in scaling_in:
            scaling[ours] = scaling_in[theirs]
    if scaling_in.get("enabled") is False:
        replicas = max(1, int(scaling_in.get("minReplicaCount") or 1))
        scaling.update(minReplicas=replicas, maxReplicas=replicas)
        notes.append(f"{where}: scaling.enabled false becomes a fixed {replicas} replica(s) (min = max)")
    if scaling_in.get("extraHPAConfig"):
        notes.append(f"{where}: scaling.extraHPAConfig is not carried over")
    if scaling:
        out["scaling"] = scaling
    image = ((runtime_values.get("inferenceApi") or {}).get("image")) or {}
    if image.get("repository"):
        out["image"] = f"{image['repository']}:{image.get('tag', 'latest')}"
    for key in ("labels", "annotations", "queueAgent"):
        if runtime_values.get(key):
            what = "sdctl runs its own queue agent" if key == "queueAgent" else "not carried over"
            notes.append(f"{where}: runtime.{key}: {what}")
    for key in ("extraEnv", "commandArguments", "resources", "modelMountPath"):
        if (runtime_values.get("inferenceApi") or {}).get(key):
            notes.append(f"{where}: runtime.inferenceApi.{key} is not carried over; set it in your image")
    return out


def from_guidance(doc: dict) -> tuple[dict, list[str]]:
    """(sdctl config document, notes on what was not carried over)."""
    if not isinstance(doc, dict) or "modelsRuntime" not in doc:
        raise UsageError("this is not the guidance's config.yaml: it has no modelsRuntime list",
                         hint="pass the config.yaml from the guidance repository's root")
    notes: list[str] = []
    out: dict = {}
    if doc.get("stackName"):
        name = str(doc["stackName"])
        safe = re.sub(r"[^a-z0-9-]", "-", name.lower())[:24].strip("-") or "sdctl"
        if safe != name:
            notes.append(f"stackName {name!r} became {safe!r} (lowercase letters, digits and '-', at most 24)")
        out["stackName"] = safe
    apigw = doc.get("APIGW") or {}
    api: dict = {}
    if apigw.get("stageName"):
        api["stageName"] = apigw["stageName"]
    throttle = apigw.get("throttle") or {}
    if throttle:
        api["throttle"] = {k: throttle[k] for k in ("rateLimit", "burstLimit") if k in throttle}
    if api:
        out["api"] = api
    bucket = _bucket(doc.get("modelBucketArn"), notes)
    if bucket:
        out["modelBucket"] = {"name": bucket}
    components = doc.get("clusterComponents") or {}
    if components:
        system: dict = {}
        if components.get("instanceType"):
            itype = str(components["instanceType"])
            system["instanceTypes"] = [itype]
            system["arm64"] = bool(re.match(r"^[a-z]+\d+g", itype))
        if components.get("desiredCount"):
            system["count"] = int(components["desiredCount"])
        out["cluster"] = {"systemNodes": system}
    runtimes = doc.get("modelsRuntime")
    if not isinstance(runtimes, list) or not runtimes:
        raise UsageError("modelsRuntime must be a non-empty list")
    out["runtimes"] = [_runtime(i, rt, notes) for i, rt in enumerate(runtimes)]
    return out, notes


def render(doc: dict, notes: list[str], source: str) -> str:
    import yaml

    head = [f"# sdctl.yaml converted from the guidance's {source} by `sdctl init --from-guidance`.",
            "# Every key is documented in docs/config-reference.md; `sdctl validate` checks this file."]
    if notes:
        head.append("# Not carried over (review these):")
        head += [f"#   - {n}" for n in notes]
    return "\n".join(head) + "\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
