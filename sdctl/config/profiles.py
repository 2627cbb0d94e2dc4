"""Profiles: what `profile: lean | ha` fills in where the config leaves a field out, and the
system nodes' architecture that follows their instance types."""

from __future__ import annotations

#: What `profile` sets where the config leaves a field out. `lean` halves the fixed monthly
#: cost; `ha` is the shape that survives a zone outage and a system node loss (sdctl.example.yaml
#: lists the trade-offs; `sdctl cost --compare` prints both).
PROFILES: dict[str, dict] = {
    "lean": {"nat": "instance", "system_instance_types": ["t4g.medium"], "system_instance_types_x86": ["t3.medium"],
             "system_count": 1},
    "ha": {"nat": "gateway", "system_instance_types": ["m7g.large"], "system_instance_types_x86": ["m7i.large"],
           "system_count": 2},
}


def apply_profile(cfg, profile: str, *, force: bool = False) -> None:
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


def _system_architecture(nodes, filled: set[str]) -> None:
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
