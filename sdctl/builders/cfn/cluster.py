"""The cluster stack: EKS with access entries, system nodes, add-ons, and the IAM that
Karpenter, KEDA, the Mountpoint S3 driver and each runtime's pods get by pod identity."""

from __future__ import annotations

import json

from sdctl import versions
from sdctl.builders.cfn import policies
from sdctl.builders.cfn.base import (
    allow,
    getatt,
    load_static,
    output,
    policy,
    prune,
    ref,
    sub,
    tags,
    template,
    trust,
)
from sdctl.builders.cfn.skips import skip
from sdctl.builders.names import (
    Names,
    karpenter_node_role,
    queue_arn_key,
    runtime_role_id,
    runtime_service_account,
    system_nodegroup_name,
)
from sdctl.config.model import Config
from sdctl.contracts.tasks import PRIORITIES

INTERRUPTION_EVENTS = [
    ("HealthEvent", "aws.health", "AWS Health Event"),
    ("SpotInterruption", "aws.ec2", "EC2 Spot Instance Interruption Warning"),
    ("Rebalance", "aws.ec2", "EC2 Instance Rebalance Recommendation"),
    ("InstanceStateChange", "aws.ec2", "EC2 Instance State-change Notification"),
    ("CapacityReservationInterruption", "aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
]
#: Logical ids of the EKS add-ons; versions.ADDONS pins their versions.
ADDON_IDS = {"vpc-cni": "VpcCni", "kube-proxy": "KubeProxy", "eks-pod-identity-agent": "PodIdentityAgent",
             "coredns": "CoreDns", "aws-mountpoint-s3-csi-driver": "MountpointS3"}
#: The VPC CNI enforces Kubernetes NetworkPolicy only with its network policy agent on; off
#: by default (https://docs.aws.amazon.com/eks/latest/userguide/cni-network-policy-configure.html).
VPC_CNI_CONFIGURATION = json.dumps({"enableNetworkPolicy": "true"}, separators=(",", ":"))
PODS_TRUST = trust("pods.eks.amazonaws.com", ["sts:AssumeRole", "sts:TagSession"])


def managed(name: str) -> dict:
    return sub(f"arn:${{AWS::Partition}}:iam::aws:policy/{name}")


def cluster_template(cfg: Config, n: Names) -> dict:
    name = cfg.cluster_name
    tpl = template(f"sdctl {cfg.stack_name} cluster: EKS, Karpenter, KEDA and runtime IAM")
    p, r, o = tpl["Parameters"], tpl["Resources"], tpl["Outputs"]
    p["ResultsTopicArn"] = {"Type": "String"}
    p["TopicKeyArn"] = {"Type": "String"}
    p["OutputBucket"] = {"Type": "String"}
    p["TasksTableArn"] = {"Type": "String", "Description": "the task store"}
    p["WebhooksQueueArn"] = {"Type": "String", "Description": "where agents send webhook events"}
    for rt in cfg.runtimes:
        for priority in PRIORITIES:
            p[queue_arn_key(rt.name, priority)] = {"Type": "String", "Description": f"queue of runtime {rt.name}"}
    cluster_name = name if cfg.cluster.existing else ref("Cluster")
    if not cfg.cluster.existing:
        _control_plane(cfg, tpl)
        _system_nodes(cfg, r, o, cluster_name)
    if cfg.model_bucket.name:
        _model_bucket_reader(cfg, r, cluster_name)
    _karpenter(name, r, cluster_name)
    _keda_and_runtimes(cfg, r, o, cluster_name)
    o["ClusterName"] = output(cluster_name)
    o["KarpenterNodeRoleName"] = output(ref("KarpenterNodeRole"))
    o["KarpenterControllerRoleArn"] = output(getatt("KarpenterControllerRole", "Arn"))
    o["InterruptionQueueName"] = output(getatt("InterruptionQueue", "QueueName"))
    o["KedaOperatorRoleArn"] = output(getatt("KedaOperatorRole", "Arn"))
    return prune(tpl)


def _control_plane(cfg: Config, tpl: dict) -> None:
    """The EKS cluster (access entries only, secrets encrypted, standard support) and its admins."""
    name, cluster_name = cfg.cluster_name, ref("Cluster")
    p, r = tpl["Parameters"], tpl["Resources"]
    p["PrivateSubnetIds"] = {"Type": "List<AWS::EC2::Subnet::Id>"}
    p["AdminPrincipalArn"] = {"Type": "String", "Description": "IAM role or user given cluster-admin."}
    p["PublicAccessCidrs"] = {"Type": "CommaDelimitedList",
                              "Description": "Who may reach the public API endpoint (default: the deployer's address)."}
    r["ClusterRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": trust("eks.amazonaws.com", ["sts:AssumeRole", "sts:TagSession"]),
        "ManagedPolicyArns": [managed("AmazonEKSClusterPolicy")]}}
    r["SecretsKey"] = {"Type": "AWS::KMS::Key", "Properties": {
        "Description": f"sdctl {name}: Kubernetes secrets encryption", "EnableKeyRotation": True,
        "KeyPolicy": policy(allow("kms:*", "*", Principal={
            "AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")}))}}
    r["Cluster"] = {"Type": "AWS::EKS::Cluster", "Properties": {
        "Name": name, "Version": cfg.cluster.version, "RoleArn": getatt("ClusterRole", "Arn"),
        "AccessConfig": {"AuthenticationMode": "API", "BootstrapClusterCreatorAdminPermissions": False},
        "BootstrapSelfManagedAddons": False,
        "ResourcesVpcConfig": {"SubnetIds": ref("PrivateSubnetIds"), "EndpointPublicAccess": True,
                               "EndpointPrivateAccess": True,
                               "PublicAccessCidrs": ref("PublicAccessCidrs")},
        # Standard support only: extended support bills 6x the hourly price, by itself,
        # once the version ages out (https://docs.aws.amazon.com/eks/latest/userguide/view-upgrade-policy.html).
        "UpgradePolicy": {"SupportType": "STANDARD"},
        "EncryptionConfig": [{"Resources": ["secrets"], "Provider": {"KeyArn": getatt("SecretsKey", "Arn")}}],
        "Logging": {"ClusterLogging": {"EnabledTypes": [{"Type": t} for t in
                                                        ("api", "audit", "authenticator")]}}}}
    r["AdminAccess"] = {"Type": "AWS::EKS::AccessEntry", "Properties": {
        "ClusterName": cluster_name, "PrincipalArn": ref("AdminPrincipalArn"), "Type": "STANDARD",
        "AccessPolicies": [{"PolicyArn": sub("arn:${AWS::Partition}:eks::aws:cluster-access-policy/"
                                             "AmazonEKSClusterAdminPolicy"),
                            "AccessScope": {"Type": "cluster"}}]}}
    if cfg.cluster.admin_principal_arn:
        # The principal that runs `sdctl deploy` installs the Helm releases after the stacks:
        # with another admin named and the creator's own admin off, it would be locked out.
        p["DeployerPrincipalArn"] = {"Type": "String", "Description": "IAM role or user that deploys."}
        tpl.setdefault("Conditions", {})["DeployerIsNotAdmin"] = {"Fn::Not": [
            {"Fn::Equals": [ref("AdminPrincipalArn"), ref("DeployerPrincipalArn")]}]}
        r["DeployerAccess"] = {"Type": "AWS::EKS::AccessEntry", "Condition": "DeployerIsNotAdmin", "Properties": {
            **r["AdminAccess"]["Properties"], "PrincipalArn": ref("DeployerPrincipalArn")}}


def _system_nodes(cfg: Config, r: dict, o: dict, cluster_name) -> None:
    """The on-demand node group for the controllers, and the add-ons."""
    sys_nodes = cfg.cluster.system_nodes
    r["SystemNodeRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": _ec2_trust(),
        "ManagedPolicyArns": [managed("AmazonEKSWorkerNodePolicy"), managed("AmazonEKS_CNI_Policy"),
                              managed("AmazonEC2ContainerRegistryPullOnly"),
                              managed("AmazonSSMManagedInstanceCore")]}}
    r["SystemNodes"] = {"Type": "AWS::EKS::Nodegroup", "DependsOn": ["VpcCni", "PodIdentityAgent", "KubeProxy"],
                        "Properties": {
        "ClusterName": cluster_name, "NodegroupName": system_nodegroup_name(sys_nodes.instance_types, sys_nodes.arm64), "NodeRole": getatt("SystemNodeRole", "Arn"),
        "Subnets": ref("PrivateSubnetIds"), "InstanceTypes": sys_nodes.instance_types,
        "AmiType": "AL2023_ARM_64_STANDARD" if sys_nodes.arm64 else "AL2023_x86_64_STANDARD",
        "CapacityType": "ON_DEMAND",
        "ScalingConfig": {"MinSize": sys_nodes.count, "MaxSize": sys_nodes.count + 1,
                          "DesiredSize": sys_nodes.count},
        "Labels": {"sdctl.io/role": "system"}}}
    for addon, lid in ADDON_IDS.items():
        props = {"ClusterName": cluster_name, "AddonName": addon, "AddonVersion": versions.ADDONS[addon],
                 "ResolveConflicts": "OVERWRITE"}
        if addon == "vpc-cni":
            props["ConfigurationValues"] = VPC_CNI_CONFIGURATION
        res = {"Type": "AWS::EKS::Addon", "Properties": props}
        if addon in ("coredns", "aws-mountpoint-s3-csi-driver"):
            res["DependsOn"] = ["SystemNodes"]  # their pods need nodes to become healthy
        if addon == "aws-mountpoint-s3-csi-driver" and cfg.model_bucket.name:
            props["PodIdentityAssociations"] = [{"ServiceAccount": "s3-csi-driver-sa",
                                                 "RoleArn": getatt("MountpointRole", "Arn")}]
        r[lid] = res
    o["ClusterEndpoint"] = output(getatt("Cluster", "Endpoint"))
    o["ClusterArn"] = output(getatt("Cluster", "Arn"))
    o["ClusterSecurityGroupId"] = output(getatt("Cluster", "ClusterSecurityGroupId"))


def _model_bucket_reader(cfg: Config, r: dict, cluster_name) -> None:
    """Mountpoint for S3's role: read the model bucket (with its key, if it has one)."""
    bucket = cfg.model_bucket.name
    r["MountpointRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": PODS_TRUST,
        "Policies": [{"PolicyName": "read-models", "PolicyDocument": policy(
            allow("s3:ListBucket", sub(f"arn:${{AWS::Partition}}:s3:::{bucket}")),
            allow("s3:GetObject", sub(f"arn:${{AWS::Partition}}:s3:::{bucket}/*")),
            # an SSE-KMS bucket's objects are read with its key (S3 User Guide, SSE-KMS:
            # "you must have kms:Decrypt permission" to read them)
            *([allow("kms:Decrypt", cfg.model_bucket.kms_key_arn)] if cfg.model_bucket.kms_key_arn else []))}]}}
    if cfg.cluster.existing:
        r["MountpointIdentity"] = _pod_identity(cluster_name, "kube-system", "s3-csi-driver-sa", "MountpointRole")


def _karpenter(name: str, r: dict, cluster_name) -> None:
    """Karpenter's node role, its interruption queue and events, its controller's role."""
    r["KarpenterNodeRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": karpenter_node_role(name), "AssumeRolePolicyDocument": _ec2_trust(),
        "ManagedPolicyArns": [managed("AmazonEKSWorkerNodePolicy"), managed("AmazonEKS_CNI_Policy"),
                              managed("AmazonEC2ContainerRegistryPullOnly"), managed("AmazonSSMManagedInstanceCore")]}}
    r["KarpenterNodeAccess"] = {"Type": "AWS::EKS::AccessEntry", "Properties": {
        "ClusterName": cluster_name, "PrincipalArn": getatt("KarpenterNodeRole", "Arn"), "Type": "EC2_LINUX"}}
    r["InterruptionQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {
        "QueueName": f"{name}-karpenter"[:80], "MessageRetentionPeriod": 300, "SqsManagedSseEnabled": True}}
    skip(r["InterruptionQueue"], "CKV_AWS_27")
    r["InterruptionQueuePolicy"] = {"Type": "AWS::SQS::QueuePolicy", "Properties": {
        "Queues": [ref("InterruptionQueue")],
        "PolicyDocument": policy(
            allow("sqs:SendMessage", getatt("InterruptionQueue", "Arn"), Sid="EC2Events",
                  Principal={"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]}),
            {"Sid": "DenyHTTP", "Effect": "Deny", "Principal": "*", "Action": "sqs:*",
             "Resource": getatt("InterruptionQueue", "Arn"), "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        )}}
    for lid, source, detail in INTERRUPTION_EVENTS:
        r[f"{lid}Rule"] = {"Type": "AWS::Events::Rule", "Properties": {
            "EventPattern": {"source": [source], "detail-type": [detail]},
            "Targets": [{"Id": "KarpenterInterruptionQueue", "Arn": getatt("InterruptionQueue", "Arn")}]}}
    controller_policy = load_static("karpenter-controller-policy.yaml")
    r["KarpenterControllerRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": PODS_TRUST,
        "Policies": [{"PolicyName": "karpenter-controller", "PolicyDocument": _sub_strings(_keys_with_cluster(controller_policy, name), {
            "NodeRoleArn": getatt("KarpenterNodeRole", "Arn"),
            "InterruptionQueueArn": getatt("InterruptionQueue", "Arn")})}]}}
    r["KarpenterIdentity"] = _pod_identity(cluster_name, "kube-system", "karpenter", "KarpenterControllerRole")


def _keda_and_runtimes(cfg: Config, r: dict, o: dict, cluster_name) -> None:
    """KEDA reads queue depths; each runtime's workload role reads its lanes and writes results."""
    queue_arns = [ref(queue_arn_key(rt.name, pr)) for rt in cfg.runtimes for pr in PRIORITIES]
    r["KedaOperatorRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": PODS_TRUST,
        "Policies": [{"PolicyName": "read-queue-depth",
                      "PolicyDocument": policies.keda_operator(queue_arns)}]}}
    r["KedaIdentity"] = _pod_identity(cluster_name, "keda", "keda-operator", "KedaOperatorRole")
    # -- one workload role per runtime ----------------------------------------------------------------------
    for rt in cfg.runtimes:
        role = runtime_role_id(rt.name)
        workload = policies.runtime_workload(
            queue=[ref(queue_arn_key(rt.name, pr)) for pr in PRIORITIES], output_bucket=sub("arn:${AWS::Partition}:s3:::${OutputBucket}"),
            output_objects=sub("arn:${AWS::Partition}:s3:::${OutputBucket}/*"), results_topic=ref("ResultsTopicArn"),
            tasks_table=ref("TasksTableArn"), key=ref("TopicKeyArn"), webhooks_queue=ref("WebhooksQueueArn"),
            model_objects=sub(f"arn:${{AWS::Partition}}:s3:::{cfg.model_bucket.name}/*") if cfg.model_bucket.name
            else None)
        r[role] = {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": PODS_TRUST,
            "Policies": [{"PolicyName": "runtime-workload", "PolicyDocument": workload}],
            "Tags": tags({"sdctl:runtime": rt.name})}}
        r[role.removesuffix("Role") + "Identity"] = _pod_identity(cluster_name, rt.namespace,
                                                                  runtime_service_account(rt.name), role)
        o[f"{role}Arn"] = output(getatt(role, "Arn"))


def _ec2_trust() -> dict:
    return trust(sub("ec2.${AWS::URLSuffix}"))


def _pod_identity(cluster, namespace: str, service_account: str, role: str) -> dict:
    return {"Type": "AWS::EKS::PodIdentityAssociation", "Properties": {
        "ClusterName": cluster, "Namespace": namespace, "ServiceAccount": service_account,
        "RoleArn": getatt(role, "Arn")}}


def _sub_strings(doc, variables: dict):
    """Wrap every string holding ${...} in Fn::Sub with the given variables."""
    if isinstance(doc, dict):
        return {k: _sub_strings(v, variables) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_sub_strings(v, variables) for v in doc]
    if isinstance(doc, str) and "${" in doc:
        used = {k: v for k, v in variables.items() if "${" + k + "}" in doc}
        return {"Fn::Sub": [doc, used]} if used else {"Fn::Sub": doc}
    return doc


def _keys_with_cluster(doc: dict, name: str) -> dict:
    """Condition keys cannot hold intrinsics: write the cluster name into them literally."""
    return json.loads(json.dumps(doc).replace("${ClusterName}", name))
