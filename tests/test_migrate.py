"""`sdctl init --from-guidance`: the guidance's config.yaml becomes a valid sdctl.yaml, and
whatever is not carried over is named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sdctl.config import parse
from sdctl.config.migrate import from_guidance
from sdctl.errors import UsageError

GUIDANCE = Path(__file__).parent / "data" / "guidance" / "config.yaml"  # in the guidance's format


def test_the_guidance_default_config_converts_and_validates(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sdctl", "-o", "json", "init", "--from-guidance", str(GUIDANCE)],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["notes"] == []
    cfg = parse((tmp_path / "sdctl.yaml").read_text())
    assert cfg.stack_name == "sdguide" and cfg.api.stage_name == "dev" and cfg.api.throttle.burst_limit == 40
    assert cfg.model_bucket.name == "team-sd-models"
    [rt] = cfg.runtimes
    assert (rt.name, rt.type, rt.namespace, rt.model) == ("webui", "sdwebui", "default", "sd-v1-5.safetensors")
    assert rt.nodes.instance_types == ["g5.xlarge", "g6.2xlarge"] and rt.nodes.capacity_types == ["spot", "on-demand"]
    assert (rt.scaling.queue_length, rt.scaling.min_replicas, rt.scaling.cooldown_seconds) == (5, 0, 120)
    again = subprocess.run([sys.executable, "-m", "sdctl", "init", "--from-guidance", str(GUIDANCE)],
                           cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr  # never overwrites silently


def test_every_mapped_field_and_every_dropped_one_is_named():
    doc = yaml.safe_load(GUIDANCE.read_text())
    doc["stackName"] = "SD_on_EKS"
    doc["clusterComponents"] = {"instanceType": "m7g.xlarge", "desiredCount": 3}
    rt = doc["modelsRuntime"][0]
    rt["type"] = "comfyui"
    prov = rt["extraValues"]["karpenter"]["provisioner"]
    prov.update(capacityType={"onDemand": True, "spot": False}, resourceLimits={"nvidia.com/gpu": "8"},
                disruption={"consolidateAfter": "5m", "expireAfter": "24h"}, labels={"team": "art"})
    rt["extraValues"]["karpenter"]["nodeTemplate"]["dataVolume"] = {"volumeSize": "300Gi", "snapshotID": "snap-1"}
    rt["extraValues"]["runtime"]["scaling"].update(maxReplicaCount=7, pollingInterval=5, scaleOnInFlight=False)
    rt["extraValues"]["runtime"]["inferenceApi"] = {"image": {"repository": "ghcr.io/team/comfy", "tag": "2.1"},
                                                    "extraEnv": {"X": "1"}}
    out, notes = from_guidance(doc)
    cfg = parse(yaml.safe_dump(out))
    assert cfg.stack_name == "sd-on-eks"
    assert cfg.cluster.system_nodes.instance_types == ["m7g.xlarge"] and cfg.cluster.system_nodes.arm64
    assert cfg.cluster.system_nodes.count == 3
    r = cfg.runtimes[0]
    assert r.type == "comfyui" and r.image == "ghcr.io/team/comfy:2.1"
    assert (r.nodes.capacity_types, r.nodes.gpu_limit, r.nodes.consolidate_after, r.nodes.volume_size_gi) == \
        (["on-demand"], 8, "5m", 300)
    assert (r.scaling.max_replicas, r.scaling.polling_seconds, r.scaling.scale_on_in_flight) == (7, 5, False)
    text = " ".join(notes)
    for dropped in ("stackName 'SD_on_EKS'", "provisioner.labels", "expireAfter", "snapshotID", "extraEnv"):
        assert dropped in text


@pytest.mark.parametrize("doc,word", [
    ({"stackName": "x"}, "no modelsRuntime"),
    ({"modelsRuntime": []}, "non-empty"),
    ({"modelBucketArn": "s3://bucket", "modelsRuntime": [{"name": "a", "type": "sdwebui"}]}, "not an S3 bucket ARN"),
])
def test_what_is_not_a_guidance_config_is_refused_by_name(doc, word):
    with pytest.raises(UsageError, match=word):
        from_guidance(doc)
