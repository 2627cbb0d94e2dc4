"""The `sdctl.yaml` model: one typed tree with defaults and validation.

Keys are camelCase in YAML (like the guidance's config); attributes are snake_case here.
Unknown keys are errors, so a typo never passes silently.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic.alias_generators import to_camel

from sdctl.contracts.tasks import TASK_TYPES

RuntimeType = Literal["sdwebui", "comfyui", "diffusers"]
CapacityType = Literal["spot", "on-demand"]


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
BUCKET_NAME = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
DURATION = r"^(Never|\d+(s|m|h))$"


class Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
        # Built on first use, once for the whole tree, instead of once per class at import:
        # a fifth less of `sdctl validate`'s config time (bench/cli_start.py).
        defer_build=True,
    )


class Throttle(Model):
    """API Gateway usage-plan throttle."""

    rate_limit: Annotated[float, Field(gt=0, le=10000, description="Steady requests per second.")] = 30
    burst_limit: Annotated[int, Field(ge=1, le=5000, description="Requests allowed in a burst.")] = 50


class Api(Model):
    stage_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,128}$")] = "prod"
    throttle: Throttle = Field(default_factory=Throttle)


class Output(Model):
    """Where results go."""

    bucket_name: Annotated[str | None, Field(pattern=BUCKET_NAME)] = None
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$")] = "output"

    @field_validator("prefix")
    @classmethod
    def _no_dot_segments(cls, v: str) -> str:
        if any(part in (".", "..") for part in v.split("/")):
            raise ValueError("must not contain '.' or '..' segments")
        return v


class ModelBucket(Model):
    """The S3 bucket models are read from (mounted into runtimes; never modified)."""

    name: Annotated[str | None, Field(pattern=BUCKET_NAME)] = None
    prefix: str = ""
    #: The bucket's region, where it is not the stack's (Mountpoint signs for the region it is
    #: told; a bucket elsewhere answers every read with a redirect it does not follow).
    region: Annotated[str | None, Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")] = None
    #: The KMS key of a bucket encrypted with SSE-KMS: the driver's role may then decrypt with it.
    kms_key_arn: Annotated[str | None, Field(pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$")] = None

    @field_validator("prefix")
    @classmethod
    def _folder(cls, v: str) -> str:
        """Mountpoint's --prefix must end with '/' (it refuses to mount otherwise), and S3 keys
        never start with one: `models`, `/models` and `models/` all mean `models/`."""
        v = v.strip().strip("/")
        if not v:
            return ""
        if any(part in ("", ".", "..") for part in v.split("/")):
            raise ValueError("must be a folder path such as models/ (no empty, '.' or '..' segments)")
        return v + "/"


class Scaling(Model):
    """KEDA scaling of one runtime on its queue."""

    queue_length: Annotated[int, Field(ge=1, le=1000)] = 1
    min_replicas: Annotated[int, Field(ge=0, le=1000)] = 0
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = 20
    cooldown_seconds: Annotated[int, Field(ge=0, le=86400)] = 60
    polling_seconds: Annotated[int, Field(ge=1, le=3600)] = 1
    scale_on_in_flight: bool = True
    #: Whether low-priority tasks alone scale the runtime up from zero (and keep it up).
    low_scales_from_zero: bool = False

    @model_validator(mode="after")
    def _min_le_max(self) -> Scaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must not exceed maxReplicas ({self.max_replicas})"
            )
        return self


class AgentTuning(Model):
    """How the queue agent beside each runtime pod keeps the runtime busy."""

    prefetch: Annotated[int, Field(ge=1, le=10)] = 1
    runtime_concurrency: Annotated[int, Field(ge=1, le=8)] = 1
    batch_tasks: Annotated[int, Field(ge=1, le=16)] = 1
    notify_running: bool = False


class Nodes(Model):
    """Karpenter GPU nodes for one runtime."""

    instance_types: Annotated[list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")]],
                              Field(min_length=1)] = ["g5.xlarge", "g5.2xlarge", "g6.xlarge", "g6.2xlarge"]
    capacity_types: Annotated[list[CapacityType], Field(min_length=1)] = ["spot", "on-demand"]
    gpu_limit: Annotated[int, Field(ge=1, le=10000)] = 100
    consolidate_after: Annotated[str, Field(pattern=DURATION)] = "60s"
    volume_size_gi: Annotated[int, Field(ge=20, le=16384)] = 150
    #: Pull images with Bottlerocket's SOCI snapshotter in parallel-pull mode, onto the NVMe
    #: instance store bound as RAID0 for containerd, kubelet and SOCI.
    fast_pull: bool = True
    #: An EBS snapshot holding the runtime's image, restored as the data volume (opt-in).
    image_cache_snapshot_id: Annotated[str | None, Field(pattern=r"^snap-[0-9a-f]{8,17}$")] = None

    @model_validator(mode="after")
    def _one_image_store(self) -> Nodes:
        """fastPull binds the instance store (RAID0) over /var/lib/containerd and switches the
        snapshotter to SOCI, which resets containerd's state when it differs from the last
        boot's (Karpenter's Bottlerocket bootstrap; Bottlerocket settings reference,
        settings.container-runtime.snapshotter): a cached image snapshot would be hidden and
        then discarded, silently."""
        if self.fast_pull and self.image_cache_snapshot_id:
            raise ValueError("imageCacheSnapshotId needs fastPull: false: fast pull puts the instance store over "
                             "containerd's directory and resets its state, so the cached images would not be used")
        return self

    @field_validator("capacity_types", "instance_types")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dupes = sorted({x for x in v if v.count(x) > 1})
        if dupes:
            raise ValueError(f"duplicate entries: {', '.join(dupes)}")
        return v


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


#: What `profile` sets where the config leaves a field out. `lean` halves the fixed monthly
#: cost; `ha` is the shape that survives a zone outage and a system node loss (sdctl.example.yaml
#: lists the trade-offs; `sdctl cost --compare` prints both).
PROFILES: dict[str, dict] = {
    "lean": {"nat": "instance", "system_instance_types": ["t4g.medium"], "system_instance_types_x86": ["t3.medium"],
             "system_count": 1},
    "ha": {"nat": "gateway", "system_instance_types": ["m7g.large"], "system_instance_types_x86": ["m7i.large"],
           "system_count": 2},
}


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


class Runtime(Model):
    """One Stable Diffusion runtime: a queue, a Deployment, a NodePool."""

    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=40)]
    type: RuntimeType
    namespace: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)] = "sdctl"
    model: str | None = None
    dynamic_model: bool = False
    compile: bool = False
    image: str | None = None
    max_task_seconds: Annotated[int, Field(ge=10, le=43200)] = 600
    max_receive_count: Annotated[int, Field(ge=1, le=1000)] = 3
    scaling: Scaling = Field(default_factory=Scaling)
    nodes: Nodes = Field(default_factory=Nodes)
    agent: AgentTuning = Field(default_factory=AgentTuning)

    @model_validator(mode="after")
    def _batching_needs_diffusers(self) -> Runtime:
        if self.agent.batch_tasks > 1 and self.type != "diffusers":
            raise ValueError(f"agent.batchTasks > 1 needs a diffusers runtime (this one is {self.type}): "
                             "only sdctl's runtime takes several tasks in one call")
        return self

    @model_validator(mode="after")
    def _compile_needs_diffusers(self) -> Runtime:
        if self.compile and self.type != "diffusers":
            raise ValueError(f"compile needs a diffusers runtime (this one is {self.type}): "
                             "it is sdctl's runtime that compiles its UNet with torch.compile")
        return self

    @property
    def task_types(self) -> tuple[str, ...]:
        return TASK_TYPES[self.type]


class Config(Model):
    """The whole `sdctl.yaml`."""

    stack_name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,23}$")] = "sdctl"
    #: lean (default) or ha: the defaults for the NAT and the system nodes (see PROFILES).
    profile: Literal["lean", "ha"] = "lean"
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")] = "us-west-2"
    api: Api = Field(default_factory=Api)
    output: Output = Field(default_factory=Output)
    model_bucket: ModelBucket = Field(default_factory=ModelBucket)
    network: Network = Field(default_factory=Network)
    cluster: Cluster = Field(default_factory=Cluster)
    # At most 16: with three priority lanes each, more would pass CloudFormation's 200 outputs
    # per template (tests/test_aws_rules.py checks the largest config against its limits).
    runtimes: Annotated[list[Runtime], Field(min_length=1, max_length=16)]
    #: Paths whose values came from the profile, not from the file.
    _from_profile: set[str] = PrivateAttr(default_factory=set)

    @field_validator("runtimes")
    @classmethod
    def _unique_names(cls, v: list[Runtime]) -> list[Runtime]:
        names = [r.name for r in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"runtime names must be unique; repeated: {', '.join(dupes)}")
        return v

    @model_validator(mode="after")
    def _apply_profile(self) -> Config:
        apply_profile(self, self.profile)
        return self

    def with_profile(self, profile: str) -> Config:
        """This config under another profile: what the file sets stays, the rest follows it."""
        other = self.model_copy(deep=True)
        apply_profile(other, profile, force=True)
        return other

    def runtime(self, name: str) -> Runtime:
        for r in self.runtimes:
            if r.name == name:
                return r
        known = ", ".join(r.name for r in self.runtimes)
        from sdctl.errors import UsageError

        raise UsageError(f"no runtime named {name!r} in the config", hint=f"configured runtimes: {known}")

    @property
    def cluster_name(self) -> str:
        return self.cluster.name or self.stack_name

    @property
    def default_runtime(self) -> Runtime:
        return self.runtimes[0]


def apply_profile(cfg: Config, profile: str, *, force: bool = False) -> None:
    """Fill from the profile what the file leaves out or sets to null. With ``force`` (another
    profile for the same file), what an earlier profile filled is replaced too; what the file
    sets is never touched. Writes through ``__dict__``: no validation re-runs, and the field
    still reads as not given."""
    p = PROFILES[profile]
    cfg.__dict__["profile"] = profile
    net, nodes = cfg.network, cfg.cluster.system_nodes
    filled = cfg._from_profile

    def fill(model, field: str, path: str, value) -> None:
        if getattr(model, field) is None or (force and path in filled):
            model.__dict__[field] = value
            filled.add(path)

    fill(net, "nat", "network.nat", "gateway" if net.nat_per_zone else p["nat"])
    x86 = nodes.arm64 is False and "cluster.systemNodes.arm64" not in filled
    fill(nodes, "instance_types", "cluster.systemNodes.instanceTypes",
         list(p["system_instance_types_x86" if x86 else "system_instance_types"]))
    fill(nodes, "count", "cluster.systemNodes.count", p["system_count"])
    _system_architecture(nodes, filled)


def _system_architecture(nodes: SystemNodes, filled: set[str]) -> None:
    """The AMI type follows the instance types; a file that sets both must make them agree.
    EKS refuses a node group whose instance types the AMI type cannot run ("[t4g.medium] is
    not a valid instance type for requested amiType AL2023_x86_64_STANDARD"), and only after
    the cluster (~15 minutes) is up."""
    from sdctl.config.ec2 import architecture

    arm64 = architecture(nodes.instance_types[0]) == "arm64"
    if nodes.arm64 is None or "cluster.systemNodes.arm64" in filled:
        nodes.__dict__["arm64"] = arm64
        filled.add("cluster.systemNodes.arm64")
    elif nodes.arm64 != arm64:
        want = "arm64" if nodes.arm64 else "x86_64"
        raise ValueError(f"cluster.systemNodes.arm64 is {str(nodes.arm64).lower()} ({want}), but instanceTypes "
                         f"{', '.join(nodes.instance_types)} are {architecture(nodes.instance_types[0])}: set "
                         f"instanceTypes to {want} types, or leave arm64 out and it follows them")
