"""`sdctl deploy` onto an existing cluster checks it before changing anything
(sdctl/builders/preflight.py, sdctl/execute/aws/preflight.py).

moto implements neither ListPodIdentityAssociations nor DescribeAddon ("Not yet implemented")
and reports no accessConfig, so the AWS answers here are recorded ones (botocore's Stubber,
which checks every request and response against the service model), shaped as the EKS, IAM and
EC2 API references document them; the clusters they describe are made up: one ready for
sdctl, one that fails every check.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from sdctl.builders.preflight import ClusterFacts, problems
from sdctl.config import parse
from sdctl.errors import SdctlError
from sdctl.execute.aws import preflight
from tests.helpers import EXISTING_CLUSTER

CLUSTER_STACK = "theirs-cluster"


class Aws:
    """Stubbed clients by service name, as the deployer's Aws hands them out."""

    def __init__(self):
        kw = dict(region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
        self.clients = {n: boto3.client(n, **kw) for n in ("eks", "iam", "ec2")}
        self.stubs = {n: Stubber(c) for n, c in self.clients.items()}

    def client(self, name):
        return self.clients[name]


def role(name: str, stack: str | None) -> dict:
    tags = [{"Key": "aws:cloudformation:stack-name", "Value": stack}] if stack else []
    return {"Role": {"Path": "/", "RoleName": name, "RoleId": "AROAEXAMPLE000000000", "Tags": tags,
                     "Arn": f"arn:aws:iam::123456789012:role/{name}", "CreateDate": "2026-01-01T00:00:00Z"}}


def record(aws: Aws, *, auth: str, node_role_stack: str | None, karpenter_stack: str | None, addon: str | None,
           public: bool) -> None:
    eks, iam, ec2 = aws.stubs["eks"], aws.stubs["iam"], aws.stubs["ec2"]
    eks.add_response("describe_cluster", {"cluster": {
        "name": "platform-prod", "version": "1.34", "accessConfig": {"authenticationMode": auth},
        "resourcesVpcConfig": {"subnetIds": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"]}}},
        {"name": "platform-prod"})
    ec2.add_response("describe_subnets", {"Subnets": [
        {"SubnetId": s, "VpcId": "vpc-0123456789abcdef0"} for s in ("subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2")]},
        {"SubnetIds": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"]})
    igw = {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-0123456789abcdef0"}
    nat = {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-0123456789abcdef0"}
    ec2.add_response("describe_route_tables", {"RouteTables": [
        {"RouteTableId": "rtb-1", "VpcId": "vpc-0123456789abcdef0", "Routes": [igw],
         "Associations": [{"SubnetId": "subnet-0aaaaaaaaaaaaaaa1"}]},
        {"RouteTableId": "rtb-main", "VpcId": "vpc-0123456789abcdef0", "Routes": [igw if public else nat],
         "Associations": [{"Main": True}]}]},
        {"Filters": [{"Name": "vpc-id", "Values": ["vpc-0123456789abcdef0"]}]})
    node_role = "KarpenterNodeRole-platform-prod"
    if node_role_stack is None:
        iam.add_client_error("get_role", "NoSuchEntity", expected_params={"RoleName": node_role})
    else:
        iam.add_response("get_role", role(node_role, node_role_stack), {"RoleName": node_role})
    for ns, sa, stack in (("kube-system", "karpenter", karpenter_stack), ("keda", "keda-operator", None)):
        found = [] if stack is None else [{"associationId": "a-1", "namespace": ns, "serviceAccount": sa}]
        eks.add_response("list_pod_identity_associations", {"associations": found},
                         {"clusterName": "platform-prod", "namespace": ns, "serviceAccount": sa})
        if stack is not None:
            eks.add_response("describe_pod_identity_association", {"association": {
                "roleArn": "arn:aws:iam::123456789012:role/karpenter-controller"}},
                {"clusterName": "platform-prod", "associationId": "a-1"})
            iam.add_response("get_role", role("karpenter-controller", stack), {"RoleName": "karpenter-controller"})
    params = {"clusterName": "platform-prod", "addonName": "aws-mountpoint-s3-csi-driver"}
    if addon is None:
        eks.add_client_error("describe_addon", "ResourceNotFoundException", expected_params=params)
    else:
        eks.add_response("describe_addon", {"addon": {"addonName": params["addonName"], "addonVersion": addon}},
                         params)


def test_a_cluster_ready_for_sdctl_passes_and_only_private_subnets_get_gpu_nodes():
    aws, cfg = Aws(), parse(EXISTING_CLUSTER)
    record(aws, auth="API_AND_CONFIG_MAP", node_role_stack=None, karpenter_stack=None, addon="v2.7.0-eksbuild.1",
           public=False)
    with aws.stubs["eks"], aws.stubs["iam"], aws.stubs["ec2"]:
        facts = preflight.check(aws, cfg, cluster_stack=CLUSTER_STACK)
    assert facts.public_subnets == ["subnet-0aaaaaaaaaaaaaaa1"]  # its own table routes to an internet gateway
    assert facts.private_subnets == ["subnet-0bbbbbbbbbbbbbbb2"]  # the main table routes to a NAT gateway
    assert facts.version == "1.34"


def test_every_problem_is_named_with_its_fix_before_anything_changes():
    aws, cfg = Aws(), parse(EXISTING_CLUSTER)
    record(aws, auth="CONFIG_MAP", node_role_stack="eksctl-karpenter", karpenter_stack="", addon="v1.14.0-eksbuild.1",
           public=True)
    with aws.stubs["eks"], aws.stubs["iam"], aws.stubs["ec2"], pytest.raises(SdctlError) as e:
        preflight.check(aws, cfg, cluster_stack=CLUSTER_STACK)
    text = str(e.value)
    for words in ("aws-auth ConfigMap only", "authenticationMode=API_AND_CONFIG_MAP",
                  "KarpenterNodeRole-platform-prod exists", "Karpenter is already installed",
                  "no private subnet for GPU nodes", "Mountpoint S3 CSI driver is v1.14.0"):
        assert words in text, words
    assert e.value.hint.startswith("nothing was changed")


def test_a_redeploy_finds_its_own_roles_and_associations_and_passes():
    facts = ClusterFacts(name="c", auth_mode="API", node_role="KarpenterNodeRole-c", node_role_owner=CLUSTER_STACK,
                         identities={"kube-system/karpenter": CLUSTER_STACK, "keda/keda-operator": CLUSTER_STACK},
                         private_subnets=["subnet-1"], mountpoint_addon="v2.7.0-eksbuild.1")
    assert problems(parse(EXISTING_CLUSTER), facts, cluster_stack=CLUSTER_STACK) == []
    facts.mountpoint_addon = None
    [(what, fix)] = problems(parse(EXISTING_CLUSTER), facts, cluster_stack=CLUSTER_STACK)
    assert "not installed" in what and "create-addon" in fix


def test_two_stacks_on_one_existing_cluster_get_their_own_node_pools():
    """NodePool and EC2NodeClass are cluster-scoped: on a cluster sdctl did not make, their names
    carry the stack's, so another stack's runtime of the same name does not collide. On sdctl's
    own cluster (one stack) they keep the release's name."""
    from sdctl.builders.releases import placeholder_outputs, releases
    from sdctl.execute.k8s import helm

    names = {}
    for stack in ("alpha", "beta"):
        cfg = parse(EXISTING_CLUSTER.replace("stackName: theirs", f"stackName: {stack}"))
        edge, cluster = placeholder_outputs(cfg)
        [rel] = [r for r in releases(cfg, edge=edge, cluster=cluster, account="123456789012", region="us-west-2",
                                     cluster_subnets=["subnet-0aaaaaaaaaaaaaaa1"]) if r.runtime]
        objs = helm.render(rel)
        pools = {o["metadata"]["name"] for o in objs if o["kind"] in ("NodePool", "EC2NodeClass")}
        [deploy] = [o for o in objs if o["kind"] == "Deployment"]
        assert deploy["spec"]["template"]["spec"]["nodeSelector"]["karpenter.sh/nodepool"] in pools
        names[stack] = pools
    assert names["alpha"] == {"alpha-sdruntime"} and names["beta"] == {"beta-sdruntime"}
