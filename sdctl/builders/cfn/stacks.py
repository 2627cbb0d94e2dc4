"""The stacks sdctl deploys, in dependency order, and how outputs flow into parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sdctl.builders.cfn.cluster import cluster_template
from sdctl.builders.cfn.edge import edge_template
from sdctl.builders.cfn.network import network_parameters, network_template
from sdctl.builders.names import names, queue_arn_key
from sdctl.config.model import Config
from sdctl.contracts.tasks import PRIORITIES


@dataclass(frozen=True)
class Site:
    """What the stacks' parameters take from the account and the deploying machine, as values:
    where the Lambda zip is (`code`: bucket, key), the IAM principal given cluster-admin, the
    address the cluster's public endpoint opens to when the config names none, and the
    CloudWatch role API Gateway already has in this account and region ("" when it has none,
    or when it is this stack's own). A stack's `needs` says which of them it reads, so the
    executor looks up only those."""

    code: tuple[str, str] = ("", "")
    admin_principal: str = ""
    deployer_cidr: str = "<deployer-address>/32"
    api_logs_role: str = ""


@dataclass
class StackSpec:
    """One stack: its template and how to compute its parameters from earlier stacks' outputs
    and the site's values."""

    key: str
    name: str
    template: dict
    parameters: Callable[[dict[str, dict[str, str]], Site], dict[str, str]] = field(repr=False)
    needs: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ("CAPABILITY_NAMED_IAM",)
    tags: dict[str, str] = field(default_factory=dict)


def stack_name(cfg: Config, key: str) -> str:
    return f"{cfg.stack_name}-{key}"


def stacks(cfg: Config) -> list[StackSpec]:
    """Every stack for this config, in deployment order. Pure, and independent of the account:
    the same config gives the same templates everywhere; what the account adds comes in as a
    Site when parameters are computed."""
    n = names(cfg, account="${AWS::AccountId}", region="${AWS::Region}")
    tags = {"sdctl:stack": cfg.stack_name}
    specs: list[StackSpec] = []
    if not cfg.network.vpc_id and not cfg.cluster.existing:
        specs.append(StackSpec("network", stack_name(cfg, "network"), network_template(cfg),
                               lambda outs, site: network_parameters(cfg), tags=tags))
    specs.append(StackSpec("edge", stack_name(cfg, "edge"), edge_template(cfg, n),
                           lambda outs, site: {"CodeBucket": site.code[0], "CodeKey": site.code[1],
                                               "ExistingApiGatewayLogsRoleArn": site.api_logs_role},
                           needs=("code", "api_logs_role"), tags=tags))

    def cluster_params(outs: dict[str, dict[str, str]], site: Site) -> dict[str, str]:
        edge = outs["edge"]
        params = {"ResultsTopicArn": edge["ResultsTopicArn"], "TopicKeyArn": edge["TopicKeyArn"],
                  "OutputBucket": edge["OutputBucket"], "TasksTableArn": edge["TasksTableArn"],
                  "WebhooksQueueArn": edge["WebhooksQueueArn"]}
        for rt in cfg.runtimes:
            for priority in PRIORITIES:
                params[queue_arn_key(rt.name, priority)] = edge[queue_arn_key(rt.name, priority)]
        if not cfg.cluster.existing:
            params["AdminPrincipalArn"] = cfg.cluster.admin_principal_arn or site.admin_principal
            if cfg.cluster.admin_principal_arn:
                params["DeployerPrincipalArn"] = site.admin_principal
            params["PublicAccessCidrs"] = ",".join(cfg.cluster.public_access_cidrs or [site.deployer_cidr])
            params["PrivateSubnetIds"] = (",".join(cfg.network.private_subnet_ids) if cfg.network.vpc_id
                                          else outs["network"]["PrivateSubnetIds"])
        return params

    needs = () if cfg.cluster.existing else ("admin_principal",) + (
        () if cfg.cluster.public_access_cidrs else ("deployer_cidr",))
    specs.append(StackSpec("cluster", stack_name(cfg, "cluster"), cluster_template(cfg, n), cluster_params,
                           needs=needs, tags=tags))
    return specs


def placeholder_outputs(cfg: Config) -> dict[str, dict[str, str]]:
    """Outputs to show parameters with before anything is deployed (for synth)."""
    return {"network": {"PrivateSubnetIds": "<network.PrivateSubnetIds>"},
            "edge": {k: f"<edge.{k}>" for k in
                     ["ResultsTopicArn", "TopicKeyArn", "OutputBucket", "TasksTableArn", "WebhooksQueueArn",
                      *[queue_arn_key(rt.name, pr) for rt in cfg.runtimes for pr in PRIORITIES]]}}
