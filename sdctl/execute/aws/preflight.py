"""Read what sdctl/builders/preflight.py judges, from an existing cluster's account: EKS (the
cluster, its Pod Identity associations, the Mountpoint add-on), IAM (who made a role) and EC2
(which of the cluster's subnets route to an internet gateway). Nothing here changes anything."""

from __future__ import annotations

import botocore.exceptions as bex

from sdctl.builders.names import karpenter_node_role
from sdctl.builders.preflight import CONTROLLERS, ClusterFacts, problems
from sdctl.errors import SdctlError

STACK_TAG = "aws:cloudformation:stack-name"


def _code(e: bex.ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def role_stack(iam, name: str) -> str | None:
    """The stack that made IAM role ``name`` ("" if none did), or None if there is no such role."""
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except bex.ClientError as e:
        if _code(e) == "NoSuchEntity":
            return None
        raise
    return next((t["Value"] for t in role.get("Tags", []) if t["Key"] == STACK_TAG), "")


def public_subnets(ec2, subnet_ids: list[str]) -> set[str]:
    """The subnets whose route table (their own, else the VPC's main one) sends 0.0.0.0/0 to an
    internet gateway."""
    if not subnet_ids:
        return set()
    subnets = ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]
    vpcs = sorted({s["VpcId"] for s in subnets})
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": vpcs}])["RouteTables"]

    def to_internet(table: dict) -> bool:
        return any(r.get("DestinationCidrBlock") == "0.0.0.0/0" and str(r.get("GatewayId", "")).startswith("igw-")
                   for r in table.get("Routes", []))

    own, main = {}, {}
    for t in tables:
        for a in t.get("Associations", []):
            if a.get("SubnetId"):
                own[a["SubnetId"]] = t
            if a.get("Main"):
                main[t["VpcId"]] = t
    return {s["SubnetId"] for s in subnets
            if to_internet(own.get(s["SubnetId"]) or main.get(s["VpcId"]) or {})}


def facts(aws, cfg) -> ClusterFacts:
    eks, iam = aws.client("eks"), aws.client("iam")
    name = cfg.cluster_name
    try:
        cluster = eks.describe_cluster(name=name)["cluster"]
    except bex.ClientError as e:
        raise SdctlError(f"cluster {name} (cluster.existing: true) cannot be read: {e}",
                         hint="check cluster.name, the region, and that your credentials may eks:DescribeCluster") \
            from None
    subnets = (cluster.get("resourcesVpcConfig") or {}).get("subnetIds") or []
    public = public_subnets(aws.client("ec2"), subnets)
    out = ClusterFacts(name=name, auth_mode=(cluster.get("accessConfig") or {}).get("authenticationMode"),
                       version=cluster.get("version"), node_role=karpenter_node_role(name),
                       public_subnets=[s for s in subnets if s in public],
                       private_subnets=[s for s in subnets if s not in public])
    out.node_role_owner = role_stack(iam, out.node_role)
    for sa in CONTROLLERS:
        ns, account = sa.split("/")
        found = eks.list_pod_identity_associations(clusterName=name, namespace=ns, serviceAccount=account)
        for assoc in found.get("associations", []):
            detail = eks.describe_pod_identity_association(clusterName=name, associationId=assoc["associationId"])
            role = detail["association"]["roleArn"].rsplit("/", 1)[-1]
            out.identities[sa] = role_stack(iam, role) or ""
    if cfg.model_bucket.name:
        try:
            out.mountpoint_addon = eks.describe_addon(clusterName=name, addonName="aws-mountpoint-s3-csi-driver")[
                "addon"]["addonVersion"]
        except bex.ClientError as e:
            if _code(e) != "ResourceNotFoundException":
                raise
    return out


def check(aws, cfg, *, cluster_stack: str) -> ClusterFacts:
    """Raise one SdctlError naming every problem (nothing has been changed yet); else the facts."""
    found = facts(aws, cfg)
    bad = problems(cfg, found, cluster_stack=cluster_stack)
    if bad:
        lines = "; ".join(f"{what} (fix: {fix})" for what, fix in bad)
        raise SdctlError(f"cluster {found.name} is not ready for sdctl: {lines}",
                         hint="nothing was changed; fix the above and deploy again")
    return found
