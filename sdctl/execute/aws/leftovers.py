"""What Karpenter launches outside CloudFormation, found by its tags and removed before the
stacks go: GPU instances (billing until terminated), their launch templates, and the instance
profiles that hold the node role (IAM refuses to delete a role still in a profile, so the
cluster stack's deletion would fail on KarpenterNodeRole).

Karpenter tags every instance and launch template it creates with
`kubernetes.io/cluster/<cluster>=owned` and `karpenter.sh/nodepool=<pool>`, and copies the
EC2NodeClass's own tags (sdctl's include `sdctl:stack=<stack>`), so an existing cluster's other
node pools are never touched. Its instance profiles carry the node role, which is this
stack's alone (see templates/karpenter-controller-policy.yaml for the same tags).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sdctl.contracts.events import Event, Report, ignore


@dataclass
class Leftovers:
    instances: list[str] = field(default_factory=list)
    launch_templates: list[str] = field(default_factory=list)
    instance_profiles: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.instances or self.launch_templates or self.instance_profiles)

    def to_dict(self) -> dict:
        return {"instances": self.instances, "launch_templates": self.launch_templates,
                "instance_profiles": self.instance_profiles}


def filters(cluster: str, stack: str) -> list[dict]:
    return [{"Name": f"tag:kubernetes.io/cluster/{cluster}", "Values": ["owned"]},
            {"Name": "tag:sdctl:stack", "Values": [stack]},
            {"Name": "tag-key", "Values": ["karpenter.sh/nodepool"]}]


def find(ec2, iam, *, cluster: str, stack: str, node_role: str) -> Leftovers:
    found = Leftovers()
    live = ["pending", "running", "stopping", "stopped", "shutting-down"]
    for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[*filters(cluster, stack), {"Name": "instance-state-name", "Values": live}]):
        for res in page["Reservations"]:
            found.instances += [i["InstanceId"] for i in res["Instances"]]
    for page in ec2.get_paginator("describe_launch_templates").paginate(Filters=filters(cluster, stack)):
        found.launch_templates += [lt["LaunchTemplateId"] for lt in page["LaunchTemplates"]]
    try:
        profiles = iam.list_instance_profiles_for_role(RoleName=node_role)["InstanceProfiles"]
    except iam.exceptions.NoSuchEntityException:
        profiles = []
    found.instance_profiles = [p["InstanceProfileName"] for p in profiles]
    return found


def remove(ec2, iam, found: Leftovers, *, node_role: str, report: Report = ignore,
           timeout: float = 600, poll: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> None:
    """Terminate, wait until terminated, then delete the templates and profiles."""
    if found.instances:
        report(Event("karpenter", f"terminating {len(found.instances)} Karpenter instance(s): {', '.join(found.instances)}"))
        ec2.terminate_instances(InstanceIds=found.instances)
        deadline = time.monotonic() + timeout
        while True:
            states = [i["State"]["Name"] for page in ec2.get_paginator("describe_instances").paginate(
                InstanceIds=found.instances) for r in page["Reservations"] for i in r["Instances"]]
            if all(s == "terminated" for s in states):
                break
            if time.monotonic() > deadline:
                from sdctl.errors import SdctlError

                raise SdctlError(f"Karpenter instances not terminated after {timeout:.0f}s: {found.instances}",
                                 hint="the stacks were kept; run `sdctl destroy` again once they are gone")
            sleep(poll)
    for lt in found.launch_templates:
        report(Event("karpenter", f"deleting launch template {lt}"))
        ec2.delete_launch_template(LaunchTemplateId=lt)
    for name in found.instance_profiles:
        report(Event("karpenter", f"deleting instance profile {name}"))
        iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=node_role)
        iam.delete_instance_profile(InstanceProfileName=name)
