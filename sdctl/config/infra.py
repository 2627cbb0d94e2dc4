"""The config's infrastructure: the network (sdctl's VPC or an existing one, the NAT) and the
EKS cluster with its system nodes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from sdctl.config.base import Model


class Network(Model):
    """The VPC: sdctl's own (default) or an existing one."""

    vpc_id: Annotated[str | None, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")] = None
    private_subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = []
    cidr: Annotated[str, Field(pattern=r"^(\d{1,3}\.){3}\d{1,3}/16$")] = "10.0.0.0/16"
    #: How the private subnets reach the internet: a managed NAT gateway, or one small EC2
    #: NAT instance. Unset: the profile's choice (lean: instance, ha: gateway).
    nat: Literal["gateway", "instance"] | None = None
    nat_instance_type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")] = "t4g.nano"
    nat_per_zone: bool = False

    @model_validator(mode="after")
    def _existing_needs_subnets(self) -> Network:
        if self.nat == "instance" and self.nat_per_zone:
            raise ValueError("natPerZone needs nat: gateway (a NAT instance is one per VPC)")
        if self.vpc_id and len(self.private_subnet_ids) < 2:
            raise ValueError("an existing vpcId needs at least two privateSubnetIds")
        if self.private_subnet_ids and not self.vpc_id:
            raise ValueError("privateSubnetIds need the vpcId they belong to")
        return self


class SystemNodes(Model):
    """The small managed node group for Karpenter, KEDA and CoreDNS. Unset fields take the
    profile's values (lean: one t4g.medium; ha: two m7g.large)."""

    instance_types: Annotated[list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")]] | None,
                              Field(min_length=1)] = None
    count: Annotated[int | None, Field(ge=1, le=10)] = None
    #: The nodes' AMI type (AL2023 arm64 or x86_64). Unset: what instanceTypes are. Set to
    #: false with no instanceTypes, the profile's x86 types (lean t3.medium, ha m7i.large).
    arm64: bool | None = None

    @field_validator("instance_types")
    @classmethod
    def _one_architecture(cls, v: list[str] | None) -> list[str] | None:
        from sdctl.config.ec2 import architecture

        arches = {t: architecture(t) for t in v or []}
        if len(set(arches.values())) > 1:
            raise ValueError("a node group has one AMI type, so its instance types share one architecture: "
                             + ", ".join(f"{t} is {a}" for t, a in arches.items()))
        return v


class Cluster(Model):
    """The EKS cluster: sdctl's own (default) or an existing one (`existing: true`)."""

    name: Annotated[str | None, Field(pattern=r"^[a-zA-Z][-a-zA-Z0-9]{0,99}$")] = None
    existing: bool = False
    version: Annotated[str, Field(pattern=r"^1\.\d\d$")] = "1.35"
    public_access_cidrs: Annotated[list[str] | None, Field(min_length=1)] = None
    admin_principal_arn: Annotated[str | None, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/.+$")] = None
    system_nodes: SystemNodes = Field(default_factory=SystemNodes)


    @model_validator(mode="after")
    def _pinned_version(self) -> Cluster:
        from sdctl import versions

        if not self.existing and self.version != versions.KUBERNETES:
            raise ValueError(f"version {self.version}: this sdctl creates Kubernetes {versions.KUBERNETES} clusters "
                             "only (its EKS add-on and node image pins are for that version; sdctl/versions.py)")
        return self

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, v: list[str] | None) -> list[str] | None:
        import ipaddress

        for cidr in v or []:
            try:
                ipaddress.IPv4Network(cidr, strict=True)
            except ValueError as e:
                raise ValueError(f"{cidr!r} is not an IPv4 CIDR block ({e})") from None
        return v
