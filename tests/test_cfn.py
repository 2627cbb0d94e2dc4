"""The CloudFormation builders: snapshots for the example config, and the properties that matter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdctl.builders.cfn.skips import SKIPS
from sdctl.builders.cfn.stacks import stacks
from sdctl.config import parse
from tests.conftest import EXAMPLE, ROOT
from tests.helpers import checkov_binary

SNAPSHOTS = Path(__file__).parent / "snapshots"
TWO_RUNTIMES = """
stackName: demo
region: eu-west-1
api: {throttle: {rateLimit: 12, burstLimit: 7}}
output: {retentionDays: 9}
modelBucket: {name: my-models}
network: {natPerZone: true}
runtimes:
  - {name: fast, type: sdwebui, maxTaskSeconds: 120, maxReceiveCount: 4}
  - {name: comfy, type: comfyui, namespace: art}
"""


def build(text: str | None = None) -> dict[str, dict]:
    cfg = parse(text) if text else parse(EXAMPLE.read_text())
    return {s.key: s.template for s in stacks(cfg)}


def resources(tpl: dict, rtype: str) -> dict[str, dict]:
    return {k: v for k, v in tpl["Resources"].items() if v["Type"] == rtype}


@pytest.mark.parametrize("key", ["network", "edge", "cluster"])
def test_templates_match_their_snapshots(key):
    """A change to a template must be deliberate: SDCTL_UPDATE_SNAPSHOTS=1 rewrites them."""
    tpl = build()[key]
    path = SNAPSHOTS / f"{key}.json"
    text = json.dumps(tpl, indent=2, sort_keys=True) + "\n"
    if os.environ.get("SDCTL_UPDATE_SNAPSHOTS"):
        path.write_text(text)
    assert text == path.read_text()


def test_each_runtime_gets_a_filtered_queue_with_a_dead_letter_queue_per_priority_lane():
    edge = build(TWO_RUNTIMES)["edge"]
    r = edge["Resources"]
    subs = resources(edge, "AWS::SNS::Subscription")
    routes = {(s["Properties"]["Endpoint"]["Fn::GetAtt"][0], json.dumps(s["Properties"]["FilterPolicy"]))
              for s in subs.values()}
    untagged = [{"priority": ["normal"]}, {"priority": [{"exists": False}]}]  # no priority: the normal lane
    assert routes == {(f"Queue{rt}{lane}", json.dumps({"runtime": [name], **match}))
                      for rt, name in (("Fast", "fast"), ("Comfy", "comfy"))
                      for lane, match in (("High", {"priority": ["high"]}), ("", {"$or": untagged}),
                                          ("Low", {"priority": ["low"]}))}
    assert all(s["Properties"]["FilterPolicyScope"] == "MessageAttributes" for s in subs.values())
    fast = r["QueueFast"]["Properties"]
    assert fast["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueueFast", "Arn"]},
                                     "maxReceiveCount": 4}
    assert fast["VisibilityTimeout"] == 180  # maxTaskSeconds + 60
    assert r["QueueComfy"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 3
    assert r["QueueFastHigh"]["Properties"]["QueueName"] == "demo-fast-high"
    for q in ("QueueFast", "QueueComfy", "DeadLetterQueueFast", "QueueFastLow", "DeadLetterQueueFastLow"):
        assert r[q]["DeletionPolicy"] == "Retain" and r[q]["Properties"]["SqsManagedSseEnabled"] is True


def test_only_the_requests_topic_may_send_to_a_queue_and_only_over_tls():
    r = build(TWO_RUNTIMES)["edge"]["Resources"]
    statements = r["QueueFastPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    allow, deny = statements
    assert allow["Principal"] == {"Service": "sns.amazonaws.com"}
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "RequestsTopic"}}}
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_output_bucket_is_private_encrypted_tls_only_and_expires():
    r = build(TWO_RUNTIMES)["edge"]["Resources"]
    props = r["OutputBucket"]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert {"Id": "expire-results", "Status": "Enabled", "ExpirationInDays": 9} in props["LifecycleConfiguration"]["Rules"]
    [deny] = r["OutputBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"]["Bool"]["aws:SecureTransport"] == "false"
    assert r["OutputBucket"]["DeletionPolicy"] == "Retain"


def test_api_requires_a_key_and_throttles_as_configured():
    r = build(TWO_RUNTIMES)["edge"]["Resources"]
    assert r["ApiTasksMethod"]["Properties"]["ApiKeyRequired"] is True
    assert r["ApiUsagePlan"]["Properties"]["Throttle"] == {"RateLimit": 12, "BurstLimit": 7}
    settings = r["ApiStage"]["Properties"]["MethodSettings"][0]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (12, 7)
    assert r["ApiStage"]["Properties"]["AccessLogSetting"]["DestinationArn"]
    env = r["ApiHandler"]["Properties"]["Environment"]["Variables"]
    assert json.loads(env["RUNTIMES"]) == {"comfy": "comfyui", "fast": "sdwebui"}


def _statements(node):
    if isinstance(node, dict):
        if "Statement" in node and isinstance(node["Statement"], list):
            yield from node["Statement"]
        for v in node.values():
            yield from _statements(v)
    elif isinstance(node, list):
        for v in node:
            yield from _statements(v)


@pytest.mark.parametrize("config", [None, TWO_RUNTIMES])
def test_no_policy_allows_every_action_on_every_resource(config):
    for key, tpl in build(config).items():
        for st in _statements(tpl):
            actions = st.get("Action") if isinstance(st.get("Action"), list) else [st.get("Action")]
            res = st.get("Resource") if isinstance(st.get("Resource"), list) else [st.get("Resource")]
            assert not (st["Effect"] == "Allow" and "*" in actions and "*" in res), (key, st)


def test_workload_roles_are_scoped_to_their_own_queue():
    cluster = build(TWO_RUNTIMES)["cluster"]
    fast = cluster["Resources"]["RuntimeFastRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    sqs = next(s for s in fast if "sqs:ReceiveMessage" in s["Action"])
    assert sqs["Resource"] == [{"Ref": "QueueFastHighArn"}, {"Ref": "QueueFastArn"}, {"Ref": "QueueFastLowArn"}]
    assert any(s["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:s3:::my-models/*"}] for s in fast)
    ident = cluster["Resources"]["RuntimeComfyIdentity"]["Properties"]
    assert (ident["Namespace"], ident["ServiceAccount"]) == ("art", "sd-comfy")
    keda = cluster["Resources"]["KedaOperatorRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert keda == [{"Effect": "Allow", "Action": ["sqs:GetQueueAttributes"],
                     "Resource": [{"Ref": f"Queue{rt}{lane}Arn"} for rt in ("Fast", "Comfy")
                                  for lane in ("High", "", "Low")]}]


def test_cluster_uses_access_entries_without_creator_admin():
    r = build()["cluster"]["Resources"]
    access = r["Cluster"]["Properties"]["AccessConfig"]
    assert access == {"AuthenticationMode": "API", "BootstrapClusterCreatorAdminPermissions": False}
    assert r["AdminAccess"]["Properties"]["PrincipalArn"] == {"Ref": "AdminPrincipalArn"}
    assert r["KarpenterNodeAccess"]["Properties"]["Type"] == "EC2_LINUX"
    assert "AccessPolicies" not in r["KarpenterNodeAccess"]["Properties"]
    assert {a["Properties"]["AddonName"] for a in resources(build()["cluster"], "AWS::EKS::Addon").values()} == {
        "vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-mountpoint-s3-csi-driver"}
    assert r["SystemNodes"]["Properties"]["AmiType"] == "AL2023_ARM_64_STANDARD"
    rules = resources(build()["cluster"], "AWS::Events::Rule")
    assert len(rules) == 5


def test_karpenter_condition_keys_carry_the_literal_cluster_name():
    text = json.dumps(build(TWO_RUNTIMES)["cluster"]["Resources"]["KarpenterControllerRole"])
    assert "aws:ResourceTag/kubernetes.io/cluster/demo" in text
    assert "${ClusterName}" not in text


def test_network_zones_tags_and_nat_options():
    lean = build()["network"]["Resources"]
    one = build("profile: ha\nruntimes: [{name: a, type: sdwebui}]\n")["network"]["Resources"]
    per_zone = build(TWO_RUNTIMES)["network"]["Resources"]
    assert len(resources({"Resources": one}, "AWS::EC2::NatGateway")) == 1
    assert len(resources({"Resources": per_zone}, "AWS::EC2::NatGateway")) == 3
    # lean: no NAT gateway; every private route goes through the one NAT instance
    assert not resources({"Resources": lean}, "AWS::EC2::NatGateway")
    assert not resources({"Resources": lean}, "AWS::EC2::EIP")
    nat = lean["NatInstance"]["Properties"]
    assert nat["SourceDestCheck"] is False and nat["MetadataOptions"]["HttpTokens"] == "required"
    assert nat["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True
    assert all(lean[f"PrivateRoute{n}"]["Properties"]["InstanceId"] == {"Ref": "NatInstance"} for n in (1, 2, 3))
    ingress = lean["NatInstanceSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert {(r["IpProtocol"], r["CidrIp"]) for r in ingress} == {(p, "10.0.0.0/16") for p in ("tcp", "udp", "icmp")}
    assert "ec2:recover" in json.dumps(lean["NatInstanceRecovery"])
    private = [one[f"PrivateSubnet{n}"]["Properties"] for n in (1, 2, 3)]
    assert all({"Key": "karpenter.sh/discovery", "Value": {"Ref": "ClusterName"}} in p["Tags"] for p in private)
    assert [p["CidrBlock"] for p in private] == ["10.0.96.0/19", "10.0.128.0/19", "10.0.160.0/19"]
    assert one["S3Endpoint"]["Properties"]["VpcEndpointType"] == "Gateway"


def test_existing_vpc_and_cluster_options():
    vpc = build(EXAMPLE.read_text() + "\n").keys()
    assert list(vpc) == ["network", "edge", "cluster"]
    existing_vpc = parse("network: {vpcId: vpc-0123456789abcdef0, privateSubnetIds: [subnet-01234567, subnet-89abcdef]}\n"
                         "runtimes: [{name: a, type: sdwebui}]\n")
    assert [s.key for s in stacks(existing_vpc)] == ["edge", "cluster"]
    existing = build("cluster: {existing: true, name: theirs}\nruntimes: [{name: a, type: sdwebui}]\n")
    assert list(existing) == ["edge", "cluster"]
    assert not resources(existing["cluster"], "AWS::EKS::Cluster")
    assert existing["cluster"]["Resources"]["KarpenterIdentity"]["Properties"]["ClusterName"] == "theirs"


def synth_all(folder: Path) -> list[Path]:
    paths = []
    for name, text in (("example", None), ("two", TWO_RUNTIMES)):
        for key, tpl in build(text).items():
            path = folder / f"{name}-{key}.json"
            path.write_text(json.dumps(tpl))
            paths.append(path)
    return paths


def test_cfn_lint_finds_nothing(tmp_path):
    paths = synth_all(tmp_path)
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    r = subprocess.run([str(cfn_lint), *map(str, paths)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_checkov_fails_nothing_beyond_documented_skips(tmp_path):
    synth_all(tmp_path)
    r = subprocess.run([checkov_binary(), "-d", str(tmp_path), "--framework", "cloudformation", "-o", "json",
                        "--skip-download"], capture_output=True, text=True)
    report = json.loads(r.stdout)
    results, summary = report["results"], report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
    skipped = {c["check_id"] for c in results["skipped_checks"]}
    assert failed == []
    assert summary["parsing_errors"] == 0 and summary["passed"] > 100
    assert skipped == set(SKIPS)  # every documented skip is used, and no other


def test_every_skip_is_documented_with_its_reason():
    doc = (ROOT / "docs" / "security.md").read_text()
    for check, reason in SKIPS.items():
        assert f"| {check} | {reason} |" in doc, check


def test_synth_writes_templates_parameters_and_manifests_without_aws(tmp_path):
    import yaml

    from tests.helpers import cli

    r = cli("synth", "-c", str(EXAMPLE), "--out", str(tmp_path), "-o", "json", cwd=tmp_path, check=False)
    assert r.returncode == 0, r.stderr
    written = sorted(Path(p).name for p in json.loads(r.stdout)["written"])
    assert written == sorted([f"sdctl-{k}.{kind}.json" for k in ("network", "edge", "cluster")
                              for kind in ("template", "parameters")] + ["releases.json", "sd-sdruntime.manifests.yaml"])
    params = json.loads((tmp_path / "sdctl-cluster.parameters.json").read_text())
    assert params["PrivateSubnetIds"] == "<network.PrivateSubnetIds>"
    kinds = [d["kind"] for d in yaml.safe_load_all((tmp_path / "sd-sdruntime.manifests.yaml").read_text())]
    assert {"Deployment", "ScaledObject", "NodePool", "EC2NodeClass"} <= set(kinds)
    releases = json.loads((tmp_path / "releases.json").read_text())
    assert [(x["name"], x["version"]) for x in releases][:3] == [
        ("karpenter-crd", "1.14.1"), ("karpenter", "1.14.1"), ("keda", "2.20.2")]
