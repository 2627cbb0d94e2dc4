"""Before sdctl changes an existing cluster (`cluster.existing: true`): what would fail, and
what to do. Pure: facts in (read by sdctl/execute/aws/preflight.py), problems out.

Each check is a documented way the deploy fails part-way on a cluster sdctl did not make:

- **authentication mode.** sdctl gives Karpenter's nodes an EKS access entry; access entries
  are refused while the cluster authenticates with the aws-auth ConfigMap only (EKS User Guide,
  "Change authentication mode to use access entries").
- **node role name.** ``KarpenterNodeRole-<cluster>`` is also the name upstream Karpenter's
  getting-started template gives its node role; IAM refuses a second role of a name.
- **Karpenter and KEDA installed by someone else.** A service account has at most one EKS Pod
  Identity association (CreatePodIdentityAssociation: "ResourceInUseException"); one for
  kube-system/karpenter or keda/keda-operator that is not this stack's means another install.
- **public subnets.** GPU nodes launched in a subnet whose route to 0.0.0.0/0 is an internet
  gateway get no public address and reach nothing (VPC User Guide, "Subnets"); they are left out,
  and a cluster with no private subnet is refused.
- **Mountpoint driver.** A model bucket is mounted by the Mountpoint for S3 CSI driver, v2 or
  later (v2 maps the pod's fsGroup, so the non-root runtime can read).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ClusterFacts:
    name: str
    auth_mode: str | None = None  # API | API_AND_CONFIG_MAP | CONFIG_MAP (None: not reported)
    version: str | None = None
    node_role: str = ""
    node_role_owner: str | None = None  # the stack that made it; "" if it exists with no stack; None: absent
    identities: dict[str, str] = field(default_factory=dict)  # "ns/sa" -> the stack that made it ("" none)
    public_subnets: list[str] = field(default_factory=list)
    private_subnets: list[str] = field(default_factory=list)
    mountpoint_addon: str | None = None  # the add-on's version, None if not installed


#: Service accounts whose Pod Identity association sdctl's cluster stack creates.
CONTROLLERS = {"kube-system/karpenter": "Karpenter", "keda/keda-operator": "KEDA"}


def problems(cfg, facts: ClusterFacts, *, cluster_stack: str) -> list[tuple[str, str]]:
    """(problem, what to do) for each check that fails; empty when the deploy may go ahead."""
    out = []
    if facts.auth_mode == "CONFIG_MAP":
        out.append((f"cluster {facts.name} authenticates with the aws-auth ConfigMap only, which refuses the "
                    "access entry sdctl gives Karpenter's nodes",
                    f"aws eks update-cluster-config --name {facts.name} --access-config "
                    "authenticationMode=API_AND_CONFIG_MAP (keeps aws-auth working)"))
    if facts.node_role_owner is not None and facts.node_role_owner != cluster_stack:
        out.append((f"IAM role {facts.node_role} exists and is not {cluster_stack}'s (upstream Karpenter's "
                    "getting-started template uses that name)",
                    "this cluster already runs Karpenter: sdctl installs its own and cannot share it; use a "
                    "cluster without Karpenter, or let sdctl create one (cluster.existing: false)"))
    for sa, what in CONTROLLERS.items():
        owner = facts.identities.get(sa)
        if owner is not None and owner != cluster_stack:
            out.append((f"{what} is already installed on {facts.name} (a Pod Identity association for {sa} "
                        f"that {owner or 'no sdctl stack'} made)",
                        f"sdctl installs and upgrades its own {what}; use a cluster without one"))
    if not facts.private_subnets and not cfg.network.private_subnet_ids:
        out.append((f"cluster {facts.name} has no private subnet for GPU nodes (public: "
                    f"{', '.join(facts.public_subnets) or 'none'})",
                    "set network.vpcId and network.privateSubnetIds to subnets with a NAT route"))
    if cfg.model_bucket.name:
        v = facts.mountpoint_addon
        if v is None:
            out.append(("the Mountpoint for Amazon S3 CSI driver add-on is not installed; the model bucket "
                        "cannot be mounted",
                        f"aws eks create-addon --cluster-name {facts.name} --addon-name aws-mountpoint-s3-csi-driver"))
        elif not v.lstrip("v").split(".")[0].isdigit() or int(v.lstrip("v").split(".")[0]) < 2:
            out.append((f"the Mountpoint S3 CSI driver is {v}; v2 or later maps the pod's fsGroup, which the "
                        "non-root runtime needs to read the models",
                        f"aws eks update-addon --cluster-name {facts.name} --addon-name aws-mountpoint-s3-csi-driver"))
    return out
