"""The sd-runtime chart, rendered by the real helm binary and validated without a cluster.

There is no Kubernetes API server here: core objects are checked with kubernetes-validate
for the target Kubernetes version, and Karpenter and KEDA objects against their CRDs'
OpenAPI schemas (tests/data/crds, copied with their sources).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jsonschema
import pytest
import yaml

from sdctl import versions
from sdctl.builders.releases import chart_dir, placeholder_outputs, releases
from sdctl.config import parse
from sdctl.execute.helmbin import find_helm
from tests.conftest import EXAMPLE
from tests.helpers import EXISTING_VPC

CRDS = Path(__file__).parent / "data" / "crds"
ALL_OPTIONS = """
stackName: full
region: eu-central-1
modelBucket: {name: team-models, prefix: sd15/}
runtimes:
  - name: alpha
    type: sdwebui
    namespace: art
    model: v1-5.safetensors
    dynamicModel: true
    image: 111122223333.dkr.ecr.eu-central-1.amazonaws.com/team/webui:2.1
    maxTaskSeconds: 1200
    scaling: {queueLength: 2, minReplicas: 1, maxReplicas: 7, cooldownSeconds: 300, pollingSeconds: 5, scaleOnInFlight: false,
              scaleUpWindowSeconds: 35, scaleDownWindowSeconds: 600, scaleUpPods: 2,
              warm: [{start: "45 8 * * 1-5", end: "0 18 * * 1-5", replicas: 3, timezone: Europe/Berlin}]}
    nodes: {instanceTypes: [g6e.xlarge], capacityTypes: [on-demand], gpuLimit: 8, consolidateAfter: 5m, volumeSizeGi: 300}
  - name: beta
    type: comfyui
    namespace: art
    agent: {prefetch: 3, runtimeConcurrency: 2, notifyRunning: true}
  - name: gamma
    type: diffusers
    compile: true
    agent: {batchTasks: 4}
"""


@pytest.fixture(scope="module")
def helm() -> str:
    path = find_helm()
    if path is None:
        pytest.fail("helm is not installed: `make helm` installs it into .tools/bin (CI does this)")
    return path


def runtime_releases(text: str):
    cfg = parse(text)
    edge, cluster = placeholder_outputs(cfg)
    return [r for r in releases(cfg, edge=edge, cluster=cluster, account="123456789012", region=cfg.region)
            if r.runtime]


def render(helm: str, release, tmp_path: Path) -> list[dict]:
    values = tmp_path / f"{release.name}.values.yaml"
    values.write_text(yaml.safe_dump(release.values))
    out = subprocess.run([helm, "template", release.name, str(chart_dir()), "-n", release.namespace,
                          "-f", str(values)], capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def rendered(helm, tmp_path_factory) -> dict[str, list[dict]]:
    tmp = tmp_path_factory.mktemp("render")
    out = {}
    for name, text in (("example", EXAMPLE.read_text()), ("full", ALL_OPTIONS), ("vpc", EXISTING_VPC)):
        for rel in runtime_releases(text):
            out[f"{name}/{rel.runtime}"] = render(helm, rel, tmp)
    return out


def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


@pytest.mark.parametrize("config", ["example", "full"])
def test_helm_lint_passes_with_the_values_sdctl_writes(helm, tmp_path, config):
    text = EXAMPLE.read_text() if config == "example" else ALL_OPTIONS
    for rel in runtime_releases(text):
        values = tmp_path / "v.yaml"
        values.write_text(yaml.safe_dump(rel.values))
        r = subprocess.run([helm, "lint", str(chart_dir()), "-f", str(values), "--strict"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_values_schema_rejects_typos_and_bad_values(helm, tmp_path):
    rel = runtime_releases(EXAMPLE.read_text())[0]
    for patch, word in (({"scaling": {"queueLenght": 1}}, "queueLenght"),
                        ({"nodes": {"capacityTypes": ["reserved"]}}, "capacityTypes"),
                        ({"runtime": {"type": "Torch Runtime"}}, "type")):  # a known type is sdctl's check (registry)
        values = json.loads(json.dumps(rel.values))
        for k, v in patch.items():
            values[k].update(v)
        (tmp_path / "v.yaml").write_text(yaml.safe_dump(values))
        r = subprocess.run([helm, "template", "x", str(chart_dir()), "-f", str(tmp_path / "v.yaml")],
                           capture_output=True, text=True)
        assert r.returncode != 0 and word in r.stderr


def _crd_schema(kind: str) -> dict:
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
            return version["schema"]["openAPIV3Schema"]
    raise KeyError(kind)


def test_every_rendered_object_validates(rendered):
    import kubernetes_validate

    crd_kinds = {"NodePool", "EC2NodeClass", "ScaledObject", "TriggerAuthentication"}
    seen = set()
    for objs in rendered.values():
        for obj in objs:
            seen.add(obj["kind"])
            if obj["kind"] in crd_kinds:
                jsonschema.validate(obj, _crd_schema(obj["kind"]))
            else:
                kubernetes_validate.validate(obj, versions.KUBERNETES + ".0", strict=True)
    assert seen == {"ServiceAccount", "ConfigMap", "Deployment", "PersistentVolume", "PersistentVolumeClaim",
                    "NetworkPolicy", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", *crd_kinds}


def test_trigger_metadata_are_strings_and_carry_scale_on_in_flight(rendered):
    [so] = by_kind(rendered["full/alpha"], "ScaledObject")
    triggers = so["spec"]["triggers"]
    assert [t["name"] for t in triggers] == ["high", "normal", "low", "warm0"]  # a lane each, a warm window
    assert [t["metadata"]["queueURL"].rsplit("/", 1)[1] for t in triggers[:3]] == [
        "full-alpha-high", "full-alpha", "full-alpha-low"]
    trigger = triggers[1]
    for t in triggers[:3]:
        assert t["type"] == "aws-sqs-queue"
        assert all(isinstance(v, str) for v in t["metadata"].values())
        assert t["metadata"]["scaleOnInFlight"] == "false" and t["metadata"]["queueLength"] == "2"
    # KEDA scales on the lanes' sum; low tasks alone neither scale up from zero nor hold it up.
    modifiers = so["spec"]["advanced"]["scalingModifiers"]
    # ... and while the warm window is open, at least 3 pods (3 x the target of 2).
    assert modifiers["formula"] == "max(high + normal > 0 ? high + normal + low : 0, warm0 > 1 ? 6 : 0)"
    assert triggers[3] == {"type": "cron", "name": "warm0", "metadata": {
        "timezone": "Europe/Berlin", "start": "45 8 * * 1-5", "end": "0 18 * * 1-5", "desiredReplicas": "2"}}
    behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 35
    assert {"type": "Pods", "value": 2, "periodSeconds": 15} in behavior["scaleUp"]["policies"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 600
    assert (modifiers["target"], modifiers["metricType"]) == ("2", "AverageValue")
    assert "scaleOnInFlight" not in so["spec"]
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (1, 7)
    assert (so["spec"]["cooldownPeriod"], so["spec"]["pollingInterval"]) == (300, 5)
    [auth] = by_kind(rendered["full/alpha"], "TriggerAuthentication")
    assert auth["spec"]["podIdentity"] == {"provider": "aws", "identityOwner": "keda"}
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]


def test_nodepool_follows_config_and_tolerations_match_taints(rendered):
    objs = rendered["full/alpha"]
    [pool] = by_kind(objs, "NodePool")
    reqs = {r["key"]: r["values"] for r in pool["spec"]["template"]["spec"]["requirements"]}
    assert reqs == {"karpenter.sh/capacity-type": ["on-demand"], "node.kubernetes.io/instance-type": ["g6e.xlarge"]}
    assert pool["spec"]["limits"] == {"nvidia.com/gpu": 8}
    assert pool["spec"]["disruption"] == {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "5m"}
    [deploy] = by_kind(objs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    for taint in pool["spec"]["template"]["spec"]["taints"]:
        assert any(t["key"] == taint["key"] and t["effect"] == taint["effect"] and
                   (t["operator"] == "Exists" or t.get("value") == taint.get("value")) for t in pod["tolerations"])
    assert pod["nodeSelector"] == {"karpenter.sh/nodepool": pool["metadata"]["name"]}
    [nodeclass] = by_kind(objs, "EC2NodeClass")
    assert nodeclass["spec"]["metadataOptions"]["httpTokens"] == "required"
    assert nodeclass["spec"]["metadataOptions"]["httpPutResponseHopLimit"] == 2
    assert nodeclass["spec"]["amiSelectorTerms"] == [{"alias": f"bottlerocket@v{versions.BOTTLEROCKET}"}]
    assert nodeclass["spec"]["role"] == "KarpenterNodeRole-full"
    assert nodeclass["spec"]["blockDeviceMappings"][1]["ebs"]["volumeSize"] == "300Gi"


def test_grace_period_follows_max_task_seconds_and_pods_are_not_disrupted(rendered):
    for key, seconds in (("full/alpha", 1200), ("example/sdruntime", 600)):
        [deploy] = by_kind(rendered[key], "Deployment")
        tpl = deploy["spec"]["template"]
        assert tpl["spec"]["terminationGracePeriodSeconds"] == seconds + 60
        assert tpl["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
        containers = {c["name"]: c for c in tpl["spec"]["containers"]}
        # The agent image's ENTRYPOINT (python -m sdctl.agent) is the whole command.
        assert "args" not in containers["agent"] and "command" not in containers["agent"]
        assert containers["runtime"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert containers["runtime"]["startupProbe"]["httpGet"]["path"] == "/sdapi/v1/options"


def test_keda_alone_owns_the_replica_count(rendered):
    """Defect 6: a Deployment that sets spec.replicas while a ScaledObject's HPA scales it is
    reset to that number by every `helm upgrade` (or conflicts under server-side apply), which
    kills busy GPU pods. Each rendered Deployment leaves replicas out, and is a ScaledObject's target."""
    for key, objs in rendered.items():
        [deploy] = by_kind(objs, "Deployment")
        [so] = by_kind(objs, "ScaledObject")
        assert "replicas" not in deploy["spec"], key
        assert so["spec"]["scaleTargetRef"]["name"] == deploy["metadata"]["name"]


def test_node_drains_are_bounded_and_outlast_the_pod_grace(rendered):
    """Defect 9: runtime pods carry karpenter.sh/do-not-disrupt, which Karpenter waits on
    without end unless the NodePool sets terminationGracePeriod (Karpenter docs, NodePools:
    "terminationGracePeriod"). It must leave the pod its own grace period to finish a task."""
    for key, objs in rendered.items():
        [pool] = by_kind(objs, "NodePool")
        [deploy] = by_kind(objs, "Deployment")
        spec = pool["spec"]["template"]["spec"]
        assert spec["expireAfter"] == "720h"
        bound = int(spec["terminationGracePeriod"].removesuffix("s"))
        assert bound > deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], key


def test_gpu_nodes_select_subnets_that_exist(rendered):
    """Defect 4: with an existing VPC nothing tags its subnets karpenter.sh/discovery, so a
    tag selector selects none and no GPU node ever launches; they are selected by id. sdctl's
    own network tags its private subnets (checked in test_cfn), so the tag selector stays."""
    [vpc_class] = by_kind(rendered["vpc/sdruntime"], "EC2NodeClass")
    assert vpc_class["spec"]["subnetSelectorTerms"] == [{"id": "subnet-0aaaaaaaaaaaaaaa1"},
                                                        {"id": "subnet-0bbbbbbbbbbbbbbb2"}]
    [own] = by_kind(rendered["example/sdruntime"], "EC2NodeClass")
    assert own["spec"]["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "sdctl"}}]


def test_existing_cluster_nodes_use_the_clusters_subnets():
    cfg = parse("cluster: {existing: true, name: theirs}\nruntimes: [{name: a, type: diffusers}]")
    edge, cluster = placeholder_outputs(cfg)
    [rel] = [r for r in releases(cfg, edge=edge, cluster=cluster, account="123456789012", region="us-west-2",
                                 cluster_subnets=["subnet-0ccccccccccccccc3"]) if r.runtime]
    assert rel.values["nodes"]["subnetIds"] == ["subnet-0ccccccccccccccc3"]


def test_the_model_prefix_reaches_mountpoint_as_a_folder(rendered):
    """Defect 5: Mountpoint refuses `--prefix models` (it must end with '/'). `/models`,
    `models` and `models/` in sdctl.yaml all mount `models/`."""
    [pv] = by_kind(rendered["vpc/sdruntime"], "PersistentVolume")
    assert "prefix models/" in pv["spec"]["mountOptions"]
    for written in ("models", "/models", "models/", " models// "):
        assert parse(f"modelBucket: {{name: b1b, prefix: '{written}'}}\nruntimes: [{{name: a, type: sdwebui}}]"
                     ).model_bucket.prefix == "models/"
    assert parse("runtimes: [{name: a, type: sdwebui}]").model_bucket.prefix == ""


def test_model_volumes_have_a_unique_handle_per_runtime_and_are_read_only(rendered):
    handles = {}
    for key in ("full/alpha", "full/beta"):
        [pv] = by_kind(rendered[key], "PersistentVolume")
        handles[key] = pv["spec"]["csi"]["volumeHandle"]
        assert pv["spec"]["csi"]["driver"] == "s3.csi.aws.com"
        assert pv["spec"]["csi"]["volumeAttributes"] == {"bucketName": "team-models"}
        assert pv["spec"]["accessModes"] == ["ReadOnlyMany"] and "read-only" in pv["spec"]["mountOptions"]
        assert "prefix sd15/" in pv["spec"]["mountOptions"]
    assert len(set(handles.values())) == 2
    assert by_kind(rendered["example/sdruntime"], "PersistentVolume") == []  # no model bucket configured


def test_agent_config_points_at_the_runtime_and_its_queue(rendered):
    [cm] = by_kind(rendered["full/beta"], "ConfigMap")
    assert cm["data"]["API_BASE_URL"] == "http://127.0.0.1:8188"
    assert cm["data"]["SQS_QUEUE_URL"].endswith("/full-beta")
    assert cm["data"]["RUNTIME_TYPE"] == "comfyui"
    assert {k: cm["data"][k] for k in ("PREFETCH", "RUNTIME_CONCURRENCY", "NOTIFY_RUNNING", "RECEIVE_BATCH")} == {
        "PREFETCH": "3", "RUNTIME_CONCURRENCY": "2", "NOTIFY_RUNNING": "true", "RECEIVE_BATCH": "3"}
    [gamma] = by_kind(rendered["full/gamma"], "ConfigMap")
    assert gamma["data"]["BATCH_TASKS"] == "4" and gamma["data"]["RUNTIME_TYPE"] == "diffusers"
    env = {d["metadata"]["name"]: {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
           for d in by_kind(rendered["full/gamma"] + rendered["full/alpha"], "Deployment")}
    assert env["sd-gamma"]["SD_COMPILE"] == "1"  # runtimes[].compile reaches the runtime
    assert "SD_COMPILE" not in env["sd-alpha"]
    # The kubelet restarts a container whose startup probe fails failureThreshold x periodSeconds
    # in a row (https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/):
    # a compiling runtime gets the load budget plus compileSeconds before that happens.
    probe = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
             for d in by_kind(rendered["full/gamma"] + rendered["full/alpha"], "Deployment")}
    budget = {n: p["failureThreshold"] * p["periodSeconds"] for n, p in probe.items()}
    assert budget == {"sd-gamma": 900 + 1800, "sd-alpha": 900}
    [sa] = by_kind(rendered["full/beta"], "ServiceAccount")
    assert sa["metadata"] == {**sa["metadata"], "name": "sd-beta", "namespace": "art"}


def test_release_specs_for_the_example_config():
    cfg = parse(EXAMPLE.read_text())
    edge = {"ResultsTopicArn": "arn:aws:sns:us-west-2:1:r", "OutputBucket": "out", "TasksTable": "sdctl-tasks",
            **{f"QueueSdruntime{lane}Url": f"https://sqs.us-west-2.amazonaws.com/1/sdctl-sdruntime{suffix}"
               for lane, suffix in (("", ""), ("High", "-high"), ("Low", "-low"))}}
    cluster = {"KarpenterNodeRoleName": "KarpenterNodeRole-sdctl", "InterruptionQueueName": "sdctl-karpenter"}
    rels = releases(cfg, edge=edge, cluster=cluster, account="111122223333", region="us-west-2")
    assert [(r.name, r.namespace, r.version) for r in rels] == [
        ("karpenter-crd", "kube-system", versions.KARPENTER), ("karpenter", "kube-system", versions.KARPENTER),
        ("keda", "keda", versions.KEDA), ("sd-sdruntime", "sdctl", None)]
    assert rels[0].chart == "oci://public.ecr.aws/karpenter/karpenter-crd"
    assert rels[1].values["settings"] == {"clusterName": "sdctl", "interruptionQueue": "sdctl-karpenter"}
    assert rels[2].repo == "https://kedacore.github.io/charts"
    v = rels[3].values
    assert v["aws"] == {"region": "us-west-2", "queueUrl": edge["QueueSdruntimeUrl"],
                        "resultsTopicArn": "arn:aws:sns:us-west-2:1:r", "outputBucket": "out",
                        "tasksTable": "sdctl-tasks", "taskTtlDays": 30,
                        "lanes": {"high": edge["QueueSdruntimeHighUrl"], "normal": edge["QueueSdruntimeUrl"],
                                  "low": edge["QueueSdruntimeLowUrl"]}}
    assert v["runtime"]["image"]["repository"] == "111122223333.dkr.ecr.us-west-2.amazonaws.com/sdctl/sdwebui"
    assert v["nodes"]["nodeRole"] == "KarpenterNodeRole-sdctl"


def test_pyhelm3_client_side_dry_run_installs_the_release(tmp_path):
    """helm install --dry-run through pyhelm3, with a kubeconfig pointing nowhere: helm must
    render and validate without contacting a cluster."""
    from sdctl.execute.k8s import helm
    from sdctl.execute.k8s.eks import kubeconfig, write_private

    rel = runtime_releases(ALL_OPTIONS)[0]
    kc = write_private(kubeconfig("none", "https://127.0.0.1:1", base64.b64encode(b"x").decode(),
                                  user={"token": "t"}), tmp_path / "kc.yaml")
    revision = helm.install(rel, kubeconfig=kc, dry_run=True)
    assert revision.release.name == "sd-alpha"
    kinds = {r["kind"] for r in asyncio_run(revision.resources())}
    assert {"Deployment", "ScaledObject", "NodePool"} <= kinds


def asyncio_run(coro):
    import asyncio

    return asyncio.run(coro)


def test_token_has_the_documented_format(monkeypatch):
    import boto3

    from sdctl.execute.k8s.eks import token

    session = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                                    region_name="us-west-2")
    tok = token(session, "my-cluster", "us-west-2")
    assert tok.startswith("k8s-aws-v1.") and not tok.endswith("=")
    body = tok[len("k8s-aws-v1."):]
    assert set(body) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    url = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    assert parsed.netloc == "sts.us-west-2.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"] and query["X-Amz-Expires"] == ["60"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")
    assert "x-k8s-aws-id" not in query  # a header, not a parameter


def test_kubeconfig_is_private(tmp_path):
    from sdctl.execute.k8s.eks import exec_user, kubeconfig, write_private

    path = write_private(kubeconfig("c", "https://x", "Q0E=", user=exec_user("c", "us-west-2")), tmp_path / "k")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    doc = yaml.safe_load(path.read_text())
    exec_ = doc["users"][0]["user"]["exec"]
    assert exec_["command"] == "sdctl" and exec_["args"][-4:] == ["kubeconfig", "--token", "--cluster", "c"]


def _skips(objs: list[dict]) -> dict[str, str]:
    out = {}
    for obj in objs:
        for key, value in (obj["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                out[check] = reason
    return out


def test_checkov_fails_nothing_in_the_manifests_beyond_documented_skips(rendered, tmp_path):
    from tests.helpers import checkov_binary

    for key, objs in rendered.items():
        (tmp_path / f"{key.replace('/', '-')}.yaml").write_text(yaml.safe_dump_all(objs))
    r = subprocess.run([checkov_binary(), "-d", str(tmp_path), "--framework", "kubernetes", "-o", "json",
                        "--skip-download"], capture_output=True, text=True)
    report = json.loads(r.stdout)
    assert [c["check_id"] for c in report["results"]["failed_checks"]] == []
    assert report["summary"]["passed"] > 100
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
    assert skipped == set(_skips(rendered["example/sdruntime"]))


def test_every_manifest_skip_is_documented_with_its_reason(rendered):
    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "security.md").read_text()
    for check, reason in _skips(rendered["example/sdruntime"]).items():
        assert f"| {check} | {reason} |" in doc, check


def test_manifest_diff_names_what_an_upgrade_changes(rendered):
    from sdctl.builders.diff import diff_manifests

    new = rendered["full/alpha"]
    assert diff_manifests(new, new) == []
    installed = json.loads(json.dumps(new))
    so = next(o for o in installed if o["kind"] == "ScaledObject")
    so["spec"]["maxReplicaCount"] = 3
    so["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}  # ignored
    installed = [o for o in installed if o["kind"] != "NetworkPolicy"]
    installed.append({"kind": "Secret", "metadata": {"name": "old", "namespace": "art"}})
    rows = {(r["action"], r["kind"]): r for r in diff_manifests(new, installed)}
    assert set(rows) == {("change", "ScaledObject"), ("add", "NetworkPolicy"), ("remove", "Secret")}
    assert "-  maxReplicaCount: 3" in rows[("change", "ScaledObject")]["diff"]
    assert "+  maxReplicaCount: 7" in rows[("change", "ScaledObject")]["diff"]


def test_only_the_agent_holds_a_kubernetes_token_and_it_may_only_read_nodes(helm, tmp_path):
    """The agent prices each task by its node (sdctl/agent/cost.py); that needs a token, which
    the pod does not mount by default. The token goes to the agent container alone, and its
    role can `get` nodes and nothing else."""
    rel = runtime_releases(EXAMPLE.read_text())[0]
    objs = render(helm, rel, tmp_path)
    [dep] = [o for o in objs if o["kind"] == "Deployment"]
    pod = dep["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    mounts = {c["name"]: [m["mountPath"] for m in c.get("volumeMounts", [])] for c in pod["containers"]}
    token = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert token in mounts["agent"] and token not in mounts["runtime"]
    agent = next(c for c in pod["containers"] if c["name"] == "agent")
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in agent["env"]
    [role] = [o for o in objs if o["kind"] == "ClusterRole"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]
    [binding] = [o for o in objs if o["kind"] == "ClusterRoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": pod["serviceAccountName"],
                                    "namespace": rel.namespace}]
    prices = json.loads(next(o for o in objs if o["kind"] == "ConfigMap")["data"]["GPU_PRICES"])
    assert set(prices) == {"g5.xlarge", "g5.2xlarge", "g6.xlarge", "g6.2xlarge"}
    assert prices["g5.2xlarge"] == {"spot": 0.4968, "on-demand": 1.212}  # the cost model's table


def test_gpu_nodes_pull_images_with_soci_onto_the_instance_store(helm, tmp_path):
    """Cold start: Bottlerocket's SOCI snapshotter in parallel-pull-unpack mode, with the NVMe
    instance store bound as RAID0 (the guidance's EC2NodeClass does the same); the settings are
    Bottlerocket TOML (settings.container-runtime, settings.container-runtime-plugins)."""
    import tomllib

    rel = runtime_releases(EXAMPLE.read_text())[0]
    [nodeclass] = [o for o in render(helm, rel, tmp_path) if o["kind"] == "EC2NodeClass"]
    assert nodeclass["spec"]["instanceStorePolicy"] == "RAID0"
    settings = tomllib.loads(nodeclass["spec"]["userData"])["settings"]
    assert settings["container-runtime"]["snapshotter"] == "soci"
    assert settings["container-runtime-plugins"]["soci-snapshotter"]["pull-mode"] == "parallel-pull-unpack"
    assert "snapshotID" not in nodeclass["spec"]["blockDeviceMappings"][1]["ebs"]  # the snapshot cache is opt-in

    rel.values["nodes"].update(fastPull=False, imageCacheSnapshotId="snap-0123456789abcdef0")
    [nodeclass] = [o for o in render(helm, rel, tmp_path) if o["kind"] == "EC2NodeClass"]
    assert "userData" not in nodeclass["spec"] and "instanceStorePolicy" not in nodeclass["spec"]
    assert nodeclass["spec"]["blockDeviceMappings"][1]["ebs"]["snapshotID"] == "snap-0123456789abcdef0"


def test_the_agent_may_patch_pods_of_its_namespace_only_and_knows_its_pod(rendered):
    """The deletion cost (sdctl/agent/podcost.py): a Role in the runtime's namespace that may
    only `patch` pods, bound to the runtime's service account; the agent gets its pod's name and
    namespace from the downward API, and its token is the only one mounted."""
    objs = rendered["full/alpha"]
    [role] = by_kind(objs, "Role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]
    [binding] = by_kind(objs, "RoleBinding")
    [dep] = by_kind(objs, "Deployment")
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"] == dep["metadata"]["namespace"]
    assert binding["subjects"][0]["name"] == dep["spec"]["template"]["spec"]["serviceAccountName"]
    agent = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "agent")
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in agent["env"]}
    assert env["POD_NAME"] == "metadata.name" and env["POD_NAMESPACE"] == "metadata.namespace"
    runtime = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "runtime")
    assert not any(m["name"] == "kube-api" for m in runtime.get("volumeMounts", []))
