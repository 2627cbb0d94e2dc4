"""`sdctl scale status`, `sdctl doctor`'s cluster checks and pod logs, read with the real
kubernetes client from a server answering with realistic, hand-written API objects
(tests/kube_replay.py: no Kubernetes API server exists here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
import yaml

from sdctl import versions
from sdctl.analysis import scale
from sdctl.execute.k8s.scale import collect
from tests.conftest import ServerThread
from tests.kube_replay import app, kubeconfig, scenario

CRDS = Path(__file__).parent / "data" / "crds"
NOW = datetime(2026, 11, 20, 10, 0, 40, tzinfo=UTC)
SCENARIOS = ("launching", "capacity", "steady", "idle")


def crd_schema(kind: str) -> dict:
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            return next(v for v in crd["spec"]["versions"] if v.get("storage"))["schema"]["openAPIV3Schema"]
    raise KeyError(kind)


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_recorded_objects_are_valid_api_objects(name):
    import kubernetes_validate

    objs = scenario(name)["objects"]
    jsonschema.validate(objs["scaledobject"], crd_schema("ScaledObject"))
    for claim in objs["nodeclaims"]:
        jsonschema.validate(claim, crd_schema("NodeClaim"))
    for obj in [objs["deployment"], *objs["pods"], *objs["nodes"]]:
        kubernetes_validate.validate(obj, versions.KUBERNETES + ".0", strict=True)


def explained(name: str, tmp_path) -> dict:
    from sdctl.execute.k8s.cluster import api_client

    sc = scenario(name)
    with ServerThread(app(sc["objects"])) as server:
        api = api_client(kubeconfig(tmp_path / "kubeconfig", server.url))[0]
        objs = collect(api, release="sd-sdruntime", namespace="sdctl")
    return scale.explain("sdruntime", sc["queue"], objs, queue_length=1, min_replicas=0, max_replicas=20, now=NOW)


def test_pods_waiting_for_a_launched_node(tmp_path):
    r = explained("launching", tmp_path)
    assert r["verdict"] == "2 pod(s) pending: NodeClaim launched 40 s ago, waiting for the node to register"
    assert r["scaledobject"] == {"ready": True, "active": True, "wants": 2, "message": r["scaledobject"]["message"]}
    assert r["deployment"] == {"desired": 2, "ready": 0}
    assert [p["reason"] for p in r["pods"]["pending"]] == ["Unschedulable", "Unschedulable"]
    [claim] = r["nodeclaims"]
    assert (claim["instance_type"], claim["capacity"], claim["zone"], claim["launched"], claim["registered"]) == \
        ("g5.xlarge", "spot", "us-west-2a", "True", "Unknown")


def test_a_capacity_error_names_the_type_and_zone(tmp_path):
    r = explained("capacity", tmp_path)
    assert r["verdict"].startswith("capacity error for g5.2xlarge in us-west-2b")


def test_a_busy_runtime_and_an_idle_one(tmp_path):
    steady = explained("steady", tmp_path)
    assert steady["verdict"] == "working: 1 replica(s) on 1 node(s) through 1 task(s)"
    [node] = steady["nodes"]
    assert node["ready"] and node["instance_type"] == "g5.xlarge" and node["age_s"] == pytest.approx(1290)
    idle = explained("idle", tmp_path)
    assert idle["verdict"].startswith("idle: scaled to zero") and idle["scaledobject"]["wants"] == 0


def test_a_runtime_kept_up_after_its_queue_empties_says_what_holds_it(tmp_path):
    """The steady recording with its one task gone: a ready replica and an empty queue. The
    HPA's scale-down window holds it, or an open warm window, and the verdict says which."""
    from sdctl.execute.k8s.cluster import api_client

    sc = scenario("steady")
    with ServerThread(app(sc["objects"])) as server:
        api = api_client(kubeconfig(tmp_path / "kubeconfig", server.url))[0]
        objs = collect(api, release="sd-sdruntime", namespace="sdctl")
    empty = {"visible": 0, "in_flight": 0, "delayed": 0}
    held = scale.explain("sdruntime", empty, objs, queue_length=1, min_replicas=0, max_replicas=20, now=NOW,
                         scale_down_window=720)
    assert held["verdict"] == ("idle: 1 replica(s) ready; the HPA keeps them through its 720 s scale-down window "
                               "after the last task, then the cooldown scales to zero")
    warm = scale.explain("sdruntime", empty, objs, queue_length=1, min_replicas=0, max_replicas=20, now=NOW, warm=1)
    assert warm["verdict"] == "idle: 1 replica(s) ready, kept warm by an open scaling.warm window (1 pod(s))"
    opening = scale.explain("sdruntime", empty, objs, queue_length=1, min_replicas=0, max_replicas=20, now=NOW, warm=3)
    assert opening["verdict"] == "scaling up: KEDA asks for 3 replica(s), the Deployment has 1"


def test_a_missing_release_says_to_deploy(tmp_path):
    from sdctl.execute.k8s.cluster import api_client

    with ServerThread(app({})) as server:
        api = api_client(kubeconfig(tmp_path / "k", server.url))[0]
        objs = collect(api, release="sd-sdruntime", namespace="sdctl")
    r = scale.explain("sdruntime", {"visible": 3}, objs, queue_length=1, min_replicas=0, max_replicas=5, now=NOW)
    assert "release is not installed" in r["verdict"]


def test_keda_that_cannot_read_the_queue_says_why():
    objs = scenario("launching")["objects"]
    so = objs["scaledobject"]
    so["status"]["conditions"][0].update(status="False", message="error parsing SQS queue metadata: AccessDenied")
    r = scale.explain("sdruntime", {"visible": 3}, objs, queue_length=1, min_replicas=0, max_replicas=5, now=NOW)
    assert r["verdict"] == "KEDA cannot read the queue: error parsing SQS queue metadata: AccessDenied"


def test_pod_logs_are_read_per_pod(tmp_path):
    from sdctl.execute.k8s.cluster import api_client
    from sdctl.operate import logs

    objs = scenario("steady")["objects"]
    pod = objs["pods"][0]["metadata"]["name"]
    text = '2026-11-20T09:45:00Z {"level": "info", "msg": "task completed", "task_id": "t-1"}\n'
    with ServerThread(app(objs, logs={f"{pod}/agent": text})) as server:
        api = api_client(kubeconfig(tmp_path / "k", server.url))[0]
        lines = list(logs.pod_lines(api, release="sd-sdruntime", namespace="sdctl", container="agent",
                                    follow=False, since_seconds=600))
    assert lines == [(pod, text.strip())]


def test_pod_logs_follow_reads_older_pods_whole_and_streams_the_newest(tmp_path):
    """`sdctl logs --follow` on EKS: the older pod's log as it stands, then the newest pod's
    stream line by line until the kubelet ends it (the replay streams a list of lines)."""
    import copy

    from sdctl.execute.k8s.cluster import api_client
    from sdctl.operate import logs

    objs = scenario("steady")["objects"]
    newest = objs["pods"][0]
    older = copy.deepcopy(newest)
    older["metadata"].update(name="sd-sdruntime-7d9c8b6f5d-a1b2c", creationTimestamp="2026-11-20T09:00:00Z")
    objs["pods"].insert(0, older)
    streamed = [f"2026-11-20T10:00:0{i}Z step {i}\n" for i in range(3)]
    served = {f"{older['metadata']['name']}/runtime": "2026-11-20T09:30:00Z loaded\n",
              f"{newest['metadata']['name']}/runtime": streamed}
    with ServerThread(app(objs, logs=served)) as server:
        api = api_client(kubeconfig(tmp_path / "k", server.url))[0]
        lines = list(logs.pod_lines(api, release="sd-sdruntime", namespace="sdctl", container="runtime",
                                    follow=True, since_seconds=None))
    assert lines == [(older["metadata"]["name"], "2026-11-20T09:30:00Z loaded"),
                     *[(newest["metadata"]["name"], line.strip()) for line in streamed]]


def doctor(objects: dict, tmp_path, monkeypatch) -> tuple[dict, int]:
    """`sdctl doctor --kubeconfig` against the replay server serving `objects`, with no AWS
    credentials anywhere: its checks by name, and its exit code."""
    import os
    import subprocess
    import sys

    from tests.conftest import EXAMPLE

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with ServerThread(app(objects)) as server:
        kc = kubeconfig(tmp_path / "k", server.url)
        r = subprocess.run([sys.executable, "-m", "sdctl", "-c", str(EXAMPLE), "-o", "json", "doctor",
                            "--kubeconfig", str(kc)], capture_output=True, text=True,
                           env={**os.environ, "AWS_CONFIG_FILE": "/nonexistent",
                                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"})
    return {c["check"]: c for c in json.loads(r.stdout)["checks"]}, r.returncode


def test_doctor_checks_the_cluster_and_names_chart_drift(tmp_path, monkeypatch):
    """`sdctl doctor --kubeconfig` against the replay server: Karpenter healthy, KEDA healthy but
    on an older chart than sdctl pins, the runtime's ScaledObject Ready."""
    checks, code = doctor(scenario("steady")["objects"], tmp_path, monkeypatch)
    assert checks["cluster"]["status"] == "ok" and "v1.35.2-eks" in checks["cluster"]["detail"]
    assert checks["karpenter"]["status"] == "ok" and "karpenter-1.14.1" in checks["karpenter"]["detail"]
    assert checks["keda"]["status"] == "warn" and "sdctl pins keda-2.20.2" in checks["keda"]["detail"]
    assert "sdctl deploy" in checks["keda"]["fix"]
    assert checks["runtime sdruntime"]["status"] == "ok"
    assert checks["scaledobject sdruntime"] == {**checks["scaledobject sdruntime"], "status": "ok",
                                                 "detail": "Ready, active"}
    assert "runtime sdruntime tasks" not in checks  # its agent is running
    assert checks["aws credentials"]["status"] == "warn"  # none here; quotas are then not checked
    assert code == 0


def test_gpu_quota_verdicts():
    from sdctl.config import parse
    from sdctl.operate import doctor

    cfg = parse("runtimes: [{name: a, type: sdwebui, scaling: {maxReplicas: 4}, "
                "nodes: {instanceTypes: [g5.xlarge, g5.2xlarge], capacityTypes: [spot]}}]\n")
    assert doctor.gpu_needs(cfg) == {("g", "spot"): (8, 32, "g5.2xlarge")}
    name, code = "All G and VT Spot Instance Requests", "L-3819A6DF"
    assert doctor.quota_verdict(name, code, 0, 8, 32, "g5.2xlarge")[0] == "fail"
    status, detail, fix = doctor.quota_verdict(name, code, 16, 8, 32, "g5.2xlarge")
    assert status == "warn" and "2 node(s)" in detail and code in fix
    assert doctor.quota_verdict(name, code, 64, 8, 32, "g5.2xlarge")[0] == "ok"
    assert doctor.quota_verdict(name, code, None, 8, 32, "g5.2xlarge")[0] == "warn"


def test_a_cold_start_is_split_into_its_phases():
    """A pod that waited for a node Karpenter launched: the objects as EKS 1.35 and Karpenter
    1.14 write them (hand-written with the timestamps a real g5 start shows: ~40 s to launch,
    ~50 s for the node to register and initialize, ~60 s to pull the runtime image, ~30 s for
    the model to load)."""
    pod = {"metadata": {"name": "sd-sdruntime-abc", "creationTimestamp": "2026-11-20T10:00:00Z",
                        "labels": {"app.kubernetes.io/instance": "sd-sdruntime"}},
           "spec": {"nodeName": "ip-10-0-1-2.us-west-2.compute.internal"},
           "status": {"phase": "Running", "conditions": [
               {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-20T10:01:35Z"},
               {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-20T10:03:05Z"}],
               "containerStatuses": [{"name": "runtime", "ready": True,
                                      "state": {"running": {"startedAt": "2026-11-20T10:02:35Z"}}}]}}
    claim = {"metadata": {"name": "sd-sdruntime-x1", "creationTimestamp": "2026-11-20T10:00:03Z"},
             "status": {"nodeName": "ip-10-0-1-2.us-west-2.compute.internal", "conditions": [
                 {"type": "Launched", "status": "True", "lastTransitionTime": "2026-11-20T10:00:43Z"},
                 {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-11-20T10:01:33Z"}]}}
    assert scale.start_phases(pod, [claim]) == {
        "pod": "sd-sdruntime-abc", "node_launch_s": 40.0, "node_start_s": 50.0, "scheduled_after_s": 95.0,
        "image_pull_s": 60.0, "model_load_s": 30.0, "total_s": 185.0}
    starting = {**pod, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "lastTransitionTime": "2026-11-20T10:00:00Z"}]}}
    assert scale.start_phases(starting, [claim])["image_pull_s"] is None  # not reached yet
    r = scale.explain("sdruntime", {"visible": 1}, {"pods": [pod], "nodeclaims": [claim]}, queue_length=1,
                      min_replicas=0, max_replicas=5, now=datetime(2026, 11, 20, 10, 5, tzinfo=UTC))
    assert [s["pod"] for s in r["starts"]] == ["sd-sdruntime-abc"]


def test_a_runtime_that_can_never_take_a_task_says_why(tmp_path):
    """A Cog model whose setup failed: its agent stops with exit code 3 and the reason as its
    termination message (sdctl/agent/runner.py), and `scale status` names it instead of a crash
    loop nobody explains. The pod is the recorded steady one with the agent's container status
    as the kubelet writes it after such an exit (state waiting CrashLoopBackOff, lastState
    terminated with the message), checked against the Kubernetes schema."""
    import copy

    import kubernetes_validate

    from sdctl.execute.k8s.cluster import api_client

    sc = copy.deepcopy(scenario("steady"))
    pod = sc["objects"]["pods"][0]
    why = "the Cog model's setup failed (SETUP_FAILED): weights not found: /src/weights/model.safetensors"
    pod["status"]["containerStatuses"] = [{
        "name": "agent", "ready": False, "restartCount": 4, "image": "queue-agent:1", "imageID": "sha256:ab",
        "containerID": "containerd://1", "started": False,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container"}},
        "lastState": {"terminated": {"exitCode": 3, "reason": "Error", "message": why,
                                     "startedAt": "2026-12-06T10:00:00Z", "finishedAt": "2026-12-06T10:00:02Z",
                                     "containerID": "containerd://1"}}}]
    kubernetes_validate.validate(pod, versions.KUBERNETES + ".0", strict=True)
    with ServerThread(app(sc["objects"])) as server:
        api = api_client(kubeconfig(tmp_path / "kubeconfig", server.url))[0]
        objs = collect(api, release="sd-sdruntime", namespace="sdctl")
    r = scale.explain("sdruntime", sc["queue"], objs, queue_length=1, min_replicas=0, max_replicas=20, now=NOW)
    assert r["verdict"].startswith(f"the runtime cannot take tasks: {why}")


def test_doctor_fails_a_runtime_whose_agent_stopped_because_it_can_never_take_a_task(tmp_path, monkeypatch):
    """The same stopped agent as above, through `sdctl doctor --kubeconfig`: a failed check that
    names the reason and what to fix, exit 1."""
    import copy

    objects = copy.deepcopy(scenario("steady")["objects"])
    objects["pods"][0]["status"]["containerStatuses"] = [{
        "name": "agent", "ready": False, "restartCount": 2, "image": "a", "imageID": "b",
        "state": {"terminated": {"exitCode": 3, "reason": "Error", "message": "inputs.cfg_scale names 'guidance_scale', "
                                 "an input the model lacks"}}}]
    checks, code = doctor(objects, tmp_path, monkeypatch)
    assert checks["runtime sdruntime tasks"]["status"] == "fail"
    assert "an input the model lacks" in checks["runtime sdruntime tasks"]["detail"] and code == 1
