"""The `sdctl.yaml` model: one typed tree with defaults and validation.

Keys are camelCase in YAML (like the guidance's config); attributes are snake_case here.
Unknown keys are errors, so a typo never passes silently.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from sdctl.config.base import BUCKET_NAME, DNS_LABEL, DURATION, Model
from sdctl.config.cron import check_cron, check_zone
from sdctl.config.infra import Cluster, Network, SystemNodes
from sdctl.config.profiles import apply_profile
from sdctl.contracts.runtimes import INPUT_NAME, TASK_FIELDS, kind
from sdctl.contracts.runtimes import kinds as runtime_kinds
from sdctl.contracts.runtimes import names as runtime_names
from sdctl.contracts.tasks import TASK_TYPES  # noqa: F401 - re-exported (sdctl.config.TASK_TYPES)

__all__ = ["Api", "BUCKET_NAME", "Cluster", "Config", "DNS_LABEL", "DURATION", "Model", "ModelBucket", "Network",
           "Nodes", "Output", "Runtime", "Scaling", "SystemNodes"]

CapacityType = Literal["spot", "on-demand"]
#: Every type of sdctl's registry (sdctl/contracts/runtimes), each declared in its own module.
RuntimeType = Literal[runtime_names()]


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


class WarmWindow(Model):
    """Keep ``replicas`` pods up from each ``start`` until the next ``end`` (KEDA's cron scaler)."""

    start: Annotated[str, Field(description="Cron (minute hour day-of-month month day-of-week) when the floor "
                                            "begins, e.g. '50 8 * * 1-5'.")]
    end: Annotated[str, Field(description="Cron when it ends (the next firing after a start), e.g. '15 9 * * 1-5'.")]
    replicas: Annotated[int, Field(ge=1, le=1000, description="Pods kept up while the window is open "
                                                              "(at most maxReplicas).")] = 1
    timezone: Annotated[str, Field(description="IANA time zone the cron fields are read in.")] = "UTC"

    @field_validator("start", "end")
    @classmethod
    def _cron(cls, v: str) -> str:
        return check_cron(v)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        return check_zone(v)

    @model_validator(mode="after")
    def _apart(self) -> WarmWindow:
        if self.start.split() == self.end.split():
            raise ValueError(f"start and end are the same schedule ({self.start!r}); KEDA's cron scaler refuses it")
        return self


class Scaling(Model):
    """KEDA scaling of one runtime on its queue, and the HPA behaviour KEDA hands on."""

    queue_length: Annotated[int, Field(ge=1, le=1000)] = 1
    min_replicas: Annotated[int, Field(ge=0, le=1000)] = 0
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = 20
    cooldown_seconds: Annotated[int, Field(ge=0, le=86400)] = 60
    polling_seconds: Annotated[int, Field(ge=1, le=3600)] = 1
    scale_on_in_flight: bool = True
    #: Whether low-priority tasks alone scale the runtime up from zero (and keep it up).
    low_scales_from_zero: bool = False
    #: behavior.scaleUp/scaleDown.stabilizationWindowSeconds (autoscaling/v2 allows 0..3600).
    scale_up_window_seconds: Annotated[int, Field(ge=0, le=3600)] = 20
    scale_down_window_seconds: Annotated[int, Field(ge=0, le=3600)] = 720
    #: behavior.scaleUp's Pods policy: at most this many pods more per 15 s (or 100 %, if more).
    scale_up_pods: Annotated[int, Field(ge=1, le=1000)] = 4
    #: Scheduled warm floors (KEDA cron triggers beside the queue's).
    warm: Annotated[list[WarmWindow], Field(max_length=10)] = []

    @model_validator(mode="after")
    def _min_le_max(self) -> Scaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must not exceed maxReplicas ({self.max_replicas})"
            )
        for i, w in enumerate(self.warm):
            if w.replicas > self.max_replicas:
                raise ValueError(f"warm[{i}].replicas ({w.replicas}) must not exceed maxReplicas ({self.max_replicas})")
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


class Runtime(Model):
    """One Stable Diffusion runtime: a queue, a Deployment, a NodePool."""

    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=40)]
    type: RuntimeType
    namespace: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)] = "sdctl"
    model: str | None = None
    dynamic_model: bool = False
    compile: bool = False
    image: str | None = None
    #: For a type that maps a task's fields to its model's inputs (cog): task field -> input
    #: name, over the type's defaults; null leaves a field out.
    inputs: dict[str, str | None] | None = None
    max_task_seconds: Annotated[int, Field(ge=10, le=43200)] = 600
    max_receive_count: Annotated[int, Field(ge=1, le=1000)] = 3
    scaling: Scaling = Field(default_factory=Scaling)
    nodes: Nodes = Field(default_factory=Nodes)
    agent: AgentTuning = Field(default_factory=AgentTuning)

    @model_validator(mode="after")
    def _fits_its_type(self) -> Runtime:
        k = kind(self.type)
        able = [n for n, x in runtime_kinds().items() if x.batches]
        if self.agent.batch_tasks > 1 and not k.batches:
            raise ValueError(f"agent.batchTasks > 1 needs a runtime that takes several tasks in one call "
                             f"({', '.join(able)}); this one is {self.type}")
        if k.needs_image and not self.image:
            raise ValueError(f"a {self.type} runtime runs your own image: set `image` (e.g. what `cog push` pushed)")
        if self.inputs is not None and k.default_inputs is None:
            raise ValueError(f"`inputs` maps a task's fields to a model's inputs; a {self.type} runtime takes none")
        unknown = sorted(set(self.inputs or {}) - set(TASK_FIELDS))
        if unknown:
            raise ValueError(f"inputs.{unknown[0]} is not a text-to-image task field; they are: "
                             f"{', '.join(TASK_FIELDS)}")
        odd = sorted(k for k, v in (self.inputs or {}).items() if v is not None and not re.match(INPUT_NAME, v))
        if odd:
            raise ValueError(f"inputs.{odd[0]}: {self.inputs[odd[0]]!r} is not an input name (letters, digits, _)")
        if self.compile and not k.compiles:
            raise ValueError(f"compile needs a runtime that compiles its model "
                             f"({', '.join(n for n, x in runtime_kinds().items() if x.compiles)}); "
                             f"this one is {self.type}")
        return self

    @property
    def task_types(self) -> tuple[str, ...]:
        return kind(self.type).task_types


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
