"""Resource names derived from the config. Pure: the same config gives the same names
on AWS and on the local stack."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sdctl.contracts.tasks import PRIORITIES

if TYPE_CHECKING:  # the agent image imports this module without pydantic
    from sdctl.config.model import Config

LOCAL_ACCOUNT = "123456789012"
#: The webhooks queue's redrive: a safety net past the deliverer's own retries (7 of them), for
#: an event the deliverer cannot even read.
WEBHOOK_RECEIVES = 10


@dataclass(frozen=True)
class RuntimeNames:
    name: str
    queue: str  # the normal lane: the name every sdctl version gave the runtime's queue
    dead_letter_queue: str

    def lane(self, priority: str) -> tuple[str, str]:
        """The queue and dead-letter queue of one priority lane."""
        if priority == "normal":
            return self.queue, self.dead_letter_queue
        return f"{self.queue}-{priority}", f"{self.queue}-{priority}-dlq"

    def lanes(self) -> list[tuple[str, str, str]]:
        """(priority, queue, dead-letter queue), highest priority first."""
        return [(p, *self.lane(p)) for p in PRIORITIES]


@dataclass(frozen=True)
class Names:
    stack: str
    requests_topic: str
    results_topic: str
    results_queue: str
    output_bucket: str
    tasks_table: str
    runtimes: tuple[RuntimeNames, ...]
    webhooks_queue: str = ""
    webhooks_dead_letter_queue: str = ""
    webhook_secret: str = ""

    def runtime(self, name: str) -> RuntimeNames:
        for r in self.runtimes:
            if r.name == name:
                return r
        raise KeyError(name)


def names(cfg: Config, *, account: str, region: str | None = None) -> Names:
    region = region or cfg.region
    stack = cfg.stack_name
    bucket = cfg.output.bucket_name or f"{stack}-output-{account}-{region}"
    return Names(
        stack=stack,
        requests_topic=f"{stack}-requests",
        results_topic=f"{stack}-results",
        results_queue=f"{stack}-results",
        output_bucket=bucket,
        tasks_table=f"{stack}-tasks",
        webhooks_queue=f"{stack}-webhooks",
        webhooks_dead_letter_queue=f"{stack}-webhooks-dlq",
        webhook_secret=f"{stack}/webhooks",
        runtimes=tuple(
            RuntimeNames(name=r.name, queue=f"{stack}-{r.name}", dead_letter_queue=f"{stack}-{r.name}-dlq")
            for r in cfg.runtimes
        ),
    )


def logical_id(*parts: str) -> str:
    """CamelCase alphanumeric CloudFormation id from names like 'sd-runtime'."""
    return "".join(p[:1].upper() + p[1:] for part in parts for p in re.split(r"[^A-Za-z0-9]+", part) if p)


# -- the stacks' outputs and parameters that other parts read by key (written once, here) ----------
def queue_ids(runtime: str, priority: str = "normal") -> tuple[str, str]:
    """The logical ids of a runtime's queue of one priority lane and its dead-letter queue (the
    normal lane keeps the ids every sdctl version used)."""
    base = logical_id(runtime) + ("" if priority == "normal" else logical_id(priority))
    return f"Queue{base}", f"DeadLetterQueue{base}"


def lane_filter(runtime: str, priority: str) -> dict:
    """The SNS filter policy of a runtime's lane: how a task reaches it. The normal lane also
    takes tasks published with no priority at all (every guidance client's): `$or` of the
    value and the attribute's absence (SNS Developer Guide, "AND/OR logic"). One policy per
    queue: SNS keeps one subscription per topic and endpoint, so a second would replace it."""
    if priority == "normal":
        return {"runtime": [runtime], "$or": [{"priority": ["normal"]}, {"priority": [{"exists": False}]}]}
    return {"runtime": [runtime], "priority": [priority]}


def queue_url_key(runtime: str, priority: str = "normal") -> str:
    """The edge stack's output with the URL of the runtime's queue of that lane."""
    return f"{queue_ids(runtime, priority)[0]}Url"


def dead_letter_url_key(runtime: str, priority: str = "normal") -> str:
    """The edge stack's output with the URL of that lane's dead-letter queue."""
    return f"{queue_ids(runtime, priority)[1]}Url"


def queue_arn_key(runtime: str, priority: str = "normal") -> str:
    """The edge stack's output (and the cluster stack's parameter) with that lane's queue ARN."""
    return f"{queue_ids(runtime, priority)[0]}Arn"


def runtime_role_id(runtime: str) -> str:
    """The cluster stack's workload role of a runtime; its ARN is the output `<id>Arn`."""
    return f"Runtime{logical_id(runtime)}Role"


def repository_id(image: str) -> str:
    """The edge stack's ECR repository of an image; its URI is the output `<id>Uri`."""
    return f"Repository{logical_id(image)}"


def artifacts_bucket(stack: str, account: str, region: str) -> str:
    """Where deploy uploads the Lambda code and large templates, and `images publish` the source
    (in a template: account `${AWS::AccountId}`, region `${AWS::Region}`)."""
    return f"{stack}-artifacts-{account}-{region}"


def release_name(runtime: str) -> str:
    """The Helm release of a runtime, and the name of its Deployment, ScaledObject and NodePool."""
    return f"sd-{runtime}"


def pool_name(stack: str, runtime: str) -> str:
    """The NodePool and EC2NodeClass of a runtime on a cluster sdctl did not make (cluster-
    scoped, so they carry the stack's name). Karpenter puts it on every node as the label
    karpenter.sh/nodepool, whose value is at most 63 characters (Kubernetes docs, "Labels and
    Selectors"): a longer name is cut and given a digest of the whole, so two runtimes whose
    names differ only past the cut still get two pools."""
    name = f"{stack}-{runtime}"
    if len(name) <= 63:
        return name
    return f"{name[:54].rstrip('-')}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def runtime_service_account(runtime: str) -> str:
    """The Kubernetes service account a runtime's pods run as (bound to its workload role)."""
    return f"sd-{runtime}"


def karpenter_node_role(cluster: str) -> str:
    """The IAM role Karpenter gives this cluster's GPU nodes (IAM names: at most 64)."""
    return f"KarpenterNodeRole-{cluster}"[:64]




def visibility_timeout(max_task_seconds: int) -> int:
    """Queue visibility: a whole task plus a margin for upload and notification."""
    return min(43200, max_task_seconds + 60)


CLIENT_NAME = r"^[a-z0-9][a-z0-9-]{0,39}$"


def client_key_name(stack: str, client: str) -> str:
    """The API key (and usage plan) of one client: `<stack>-client-<name>`."""
    return f"{stack}-client-{client}"


def system_nodegroup_name(instance_types: list[str], arm64: bool) -> str:
    """The system node group's name, which changes with what forces its replacement.

    AWS::EKS::Nodegroup replaces the group when InstanceTypes or AmiType change, and
    CloudFormation cannot replace a resource that keeps its custom name ("CloudFormation
    cannot update a stack when a custom-named resource requires replacing"): the name carries a
    digest of both, so the new group is made beside the old one, which is then deleted."""
    digest = hashlib.sha256(json.dumps([list(instance_types), arm64]).encode()).hexdigest()[:8]
    return f"system-{digest}"


def partition(region: str) -> str:
    """The ARN partition of a region: aws, aws-cn (cn-*), aws-us-gov (*-gov-*), aws-iso
    (*-iso-*) or aws-iso-b (*-isob-*) (AWS General Reference, "Amazon Resource Names")."""
    if region.startswith("cn-"):
        return "aws-cn"
    for infix, name in (("-gov-", "aws-us-gov"), ("-isob-", "aws-iso-b"), ("-iso-", "aws-iso")):
        if infix in region:
            return name
    return "aws"
