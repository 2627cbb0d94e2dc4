"""What AWS, EKS, Karpenter and Mountpoint check at create or run time and moto does not.

moto's CloudFormation skips many resource types and evaluates no policy conditions, so a
template moto deploys can still fail on a real account (issue 11 lists the defects that did).
Each rule below is one documented check, with its source in the docstring, applied to what
sdctl builds for the example config and for configs that use every option, an existing VPC
and an existing cluster. A rule reads only sdctl's pure builders' output (templates, release
values, rendered manifests): no AWS, no cluster.
"""

from __future__ import annotations

import json
import re

import pytest

from sdctl import versions
from sdctl.builders.cfn.stacks import Site, stacks
from sdctl.builders.releases import images_of, placeholder_outputs, releases
from sdctl.config import parse
from sdctl.config.ec2 import architecture
from sdctl.execute.helmbin import find_helm
from tests.conftest import EXAMPLE
from tests.helpers import ALL_OPTIONS, EXISTING_CLUSTER, EXISTING_VPC

CONFIGS = {"example": EXAMPLE.read_text(), "every-option": ALL_OPTIONS, "existing-vpc": EXISTING_VPC,
           "existing-cluster": EXISTING_CLUSTER}
#: The longest region names and account ids a name can be built with.
LONGEST_REGION = "ap-southeast-3"
ACCOUNT = "123456789012"


@pytest.fixture(scope="module", params=list(CONFIGS))
def built(request):
    cfg = parse(CONFIGS[request.param])
    templates = {s.key: s.template for s in stacks(cfg)}
    edge, cluster = placeholder_outputs(cfg)
    rels = releases(cfg, edge=edge, cluster=cluster, account=ACCOUNT, region=cfg.region,
                    cluster_subnets=["subnet-0ccccccccccccccc3"] if cfg.cluster.existing else None)
    return request.param, cfg, templates, rels


@pytest.fixture(scope="module")
def rendered(built):
    """The runtime releases rendered by the real helm binary, per runtime."""
    from sdctl.execute.k8s import helm

    if find_helm() is None:
        pytest.fail("helm is not installed: `make helm` installs it into .tools/bin (CI does this)")
    name, cfg, templates, rels = built
    return {rel.runtime: helm.render(rel) for rel in rels if rel.runtime}


# -- helpers ------------------------------------------------------------------------------------
def resources(templates: dict, rtype: str | None = None) -> dict[str, dict]:
    return {lid: res for tpl in templates.values() for lid, res in tpl["Resources"].items()
            if rtype is None or res["Type"] == rtype}


def referenced(obj) -> set[str]:
    """Logical ids (and parameters) an expression refers to through Ref, GetAtt or Sub."""
    found: set[str] = set()
    if isinstance(obj, dict):
        if "Ref" in obj:
            found.add(obj["Ref"])
        if "Fn::GetAtt" in obj:
            found.add(obj["Fn::GetAtt"][0])
        if "Fn::Sub" in obj:
            text = obj["Fn::Sub"] if isinstance(obj["Fn::Sub"], str) else obj["Fn::Sub"][0]
            found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
        for v in obj.values():
            found |= referenced(v)
    elif isinstance(obj, list):
        for v in obj:
            found |= referenced(v)
    return found


def statements(role: dict) -> list[dict]:
    return [st for p in role["Properties"].get("Policies", []) for st in p["PolicyDocument"]["Statement"]]


def allows(role: dict, action: str, resource_ref: str | None = None) -> bool:
    """The role's inline policies allow `action` (wildcards as IAM reads them) on a resource
    that names `resource_ref` (or on "*")."""
    for st in statements(role):
        if st["Effect"] != "Allow":
            continue
        if not any(re.fullmatch(a.replace("*", ".*"), action) for a in st["Action"]):
            continue
        if resource_ref is None or "*" in st["Resource"] or resource_ref in referenced(st["Resource"]):
            return True
    return False


def rendered_name(value, cfg) -> str:
    """A name as AWS will see it, with pseudo parameters at their longest."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        value = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
    assert isinstance(value, str), value
    return value.replace("${AWS::Region}", LONGEST_REGION).replace("${AWS::AccountId}", ACCOUNT) \
        .replace("${AWS::StackName}", f"{cfg.stack_name}-cluster")


# -- IAM and Lambda -----------------------------------------------------------------------------
def test_traced_lambdas_may_send_traces(built):
    """Lambda CreateFunction with TracingConfig Mode Active fails when the execution role
    lacks xray:PutTraceSegments and xray:PutTelemetryRecords ("The provided execution role
    does not have permissions to call PutTraceSegments on XRAY"); Lambda Developer Guide,
    "Visualize Lambda function invocations using AWS X-Ray", execution role permissions."""
    _, _, templates, _ = built
    roles = resources(templates, "AWS::IAM::Role")
    for lid, fn in resources(templates, "AWS::Lambda::Function").items():
        if fn["Properties"].get("TracingConfig", {}).get("Mode") == "Active":
            [role] = referenced(fn["Properties"]["Role"])
            for action in ("xray:PutTraceSegments", "xray:PutTelemetryRecords"):
                assert allows(roles[role], action), f"{lid}: {role} lacks {action}"


def test_lambda_roles_can_write_their_own_log_group(built):
    """Lambda writes to /aws/lambda/<function name>; the role needs logs:CreateLogStream and
    logs:PutLogEvents there (Lambda Developer Guide, "Sending Lambda function logs to
    CloudWatch Logs"). A pre-made, encrypted group must carry exactly that name."""
    _, _, templates, _ = built
    roles = resources(templates, "AWS::IAM::Role")
    groups = resources(templates, "AWS::Logs::LogGroup")
    for fn in resources(templates, "AWS::Lambda::Function").values():
        name = fn["Properties"]["FunctionName"]
        [group] = [lid for lid, g in groups.items() if g["Properties"]["LogGroupName"] == f"/aws/lambda/{name}"]
        [role] = referenced(fn["Properties"]["Role"])
        assert allows(roles[role], "logs:PutLogEvents", group) and allows(roles[role], "logs:CreateLogStream", group)
        assert group in fn.get("DependsOn", []), "the group must exist before Lambda creates its own"


def test_publishers_and_writers_may_use_the_key_that_encrypts_what_they_write(built):
    """An SNS topic with a customer managed key: publishers need kms:GenerateDataKey* and
    kms:Decrypt on it (SNS Developer Guide, "Encryption at rest", key management). A DynamoDB
    table encrypted with one likewise (DynamoDB Developer Guide, "Using a customer managed
    key"). moto evaluates none of this."""
    _, _, templates, _ = built
    r = resources(templates)
    roles = resources(templates, "AWS::IAM::Role")
    handler = roles["ApiHandlerRole"]
    assert allows(handler, "sns:Publish", "RequestsTopic")
    key = next(iter(referenced(r["RequestsTopic"]["Properties"]["KmsMasterKeyId"])))
    assert allows(handler, "kms:GenerateDataKeyWithoutPlaintext", key) and allows(handler, "kms:Decrypt", key)
    table_key = next(iter(referenced(r["TasksTable"]["Properties"]["SSESpecification"]["KMSMasterKeyId"])))
    assert table_key == key and allows(handler, "kms:GenerateDataKey", key)
    for lid, role in roles.items():
        if lid.startswith("Runtime") and lid.endswith("Role"):  # the agents: results topic + task store
            assert allows(role, "sns:Publish", "ResultsTopicArn") and allows(role, "kms:GenerateDataKey",
                                                                               "TopicKeyArn")
            assert allows(role, "dynamodb:UpdateItem", "TasksTableArn") and allows(role, "kms:Decrypt",
                                                                                     "TopicKeyArn")


def test_queries_of_an_index_are_allowed_on_the_index(built):
    """DynamoDB authorizes Query on a global secondary index against the index's ARN
    (`<table ARN>/index/<name>`), not the table's (DynamoDB Developer Guide, "Using IAM
    policy conditions for fine-grained access control"); moto authorizes it against "*"."""
    _, _, templates, _ = built
    handler = resources(templates, "AWS::IAM::Role")["ApiHandlerRole"]
    grants = [st["Resource"] for st in statements(handler) if "dynamodb:Query" in st["Action"]]
    assert grants == [[{"Fn::Sub": "${TasksTable.Arn}/index/by-status"}]]


def test_an_sqs_event_source_fits_its_queue_and_its_role(built):
    """CreateEventSourceMapping fails when the queue's visibility timeout is shorter than the
    function's timeout, and the execution role needs sqs:ReceiveMessage, DeleteMessage and
    GetQueueAttributes on the queue (Lambda Developer Guide, "Using Lambda with Amazon SQS":
    configuring a queue, execution role permissions). ReportBatchItemFailures is the only
    FunctionResponseTypes value. moto creates the mapping without these checks."""
    _, _, templates, _ = built
    r, roles = resources(templates), resources(templates, "AWS::IAM::Role")
    mappings = resources(templates, "AWS::Lambda::EventSourceMapping")
    assert mappings
    for lid, m in mappings.items():
        [fn] = referenced(m["Properties"]["FunctionName"])
        [queue] = referenced(m["Properties"]["EventSourceArn"])
        assert r[queue]["Properties"]["VisibilityTimeout"] >= r[fn]["Properties"]["Timeout"], lid
        assert m["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        [role] = referenced(r[fn]["Properties"]["Role"])
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                       "sqs:ChangeMessageVisibility"):  # the last: the deliverer delays its retries
            assert allows(roles[role], action, queue), f"{role} lacks {action} on {queue}"


def test_secrets_the_stack_deletes_have_no_fixed_name(built):
    """A deleted secret is only scheduled for deletion (7 to 30 days of recovery window), and
    its name stays taken meanwhile: CreateSecret with it fails ("You can't create this secret
    because a secret with this name is already scheduled for deletion"; Secrets Manager User
    Guide, "Delete an AWS Secrets Manager secret"). So a stack created again after `sdctl
    destroy` would fail on a named secret; moto frees the name at once. The deliverer reads
    the secret through the stack's output, its ARN."""
    _, _, templates, _ = built
    secrets = resources(templates, "AWS::SecretsManager::Secret")
    assert secrets
    for lid, secret in secrets.items():
        assert "Name" not in secret["Properties"] or secret.get("DeletionPolicy") == "Retain", lid


def test_senders_of_webhook_events_may_send_to_the_webhooks_queue(built):
    """Agents and the API handler queue webhook events with sqs:SendMessage; the deliverer
    parks undeliverable ones in the dead-letter queue and reads the secret (with kms:Decrypt on
    its key: Secrets Manager User Guide, "Secret encryption and decryption")."""
    _, _, templates, _ = built
    roles = resources(templates, "AWS::IAM::Role")
    r = resources(templates)
    assert allows(roles["ApiHandlerRole"], "sqs:SendMessage", "WebhooksQueue")
    for lid, role in roles.items():
        if lid.startswith("Runtime") and lid.endswith("Role"):
            assert allows(role, "sqs:SendMessage", "WebhooksQueueArn"), lid
    deliverer = roles["WebhookDelivererRole"]
    [key] = referenced(r["WebhookSecret"]["Properties"]["KmsKeyId"])
    assert allows(deliverer, "sqs:SendMessage", "WebhooksDeadLetterQueue")
    assert allows(deliverer, "secretsmanager:GetSecretValue", "WebhookSecret") and allows(deliverer, "kms:Decrypt", key)


def test_key_policies_name_the_services_that_use_the_key(built):
    """CloudWatch Logs can use a customer managed key for a log group only when the key
    policy allows the logs.<region>.amazonaws.com principal (CloudWatch Logs User Guide,
    "Encrypt log data in CloudWatch Logs using AWS KMS", step 2); CreateLogGroup fails
    otherwise. SNS needs sns.amazonaws.com for the AWS services that publish to the topic."""
    _, _, templates, _ = built
    keys = resources(templates, "AWS::KMS::Key")
    for lid, group in resources(templates, "AWS::Logs::LogGroup").items():
        if "KmsKeyId" not in group["Properties"]:
            continue
        [key] = referenced(group["Properties"]["KmsKeyId"])
        principals = [json.dumps(st.get("Principal")) for st in keys[key]["Properties"]["KeyPolicy"]["Statement"]
                      if st["Effect"] == "Allow" and any(a.startswith(("kms:Encrypt", "kms:GenerateDataKey"))
                                                         for a in st["Action"])]
        assert any("logs.${AWS::Region}.amazonaws.com" in p for p in principals), lid
    for topic in resources(templates, "AWS::SNS::Topic").values():
        [key] = referenced(topic["Properties"]["KmsMasterKeyId"])
        assert any(st.get("Principal") == {"Service": "sns.amazonaws.com"}
                   for st in keys[key]["Properties"]["KeyPolicy"]["Statement"])


def test_retained_data_keeps_the_key_that_decrypts_it(built):
    """Data encrypted under a deleted KMS key cannot be decrypted (KMS Developer Guide,
    "Deleting AWS KMS keys"). A resource CloudFormation retains (the task store, so that
    `destroy --keep-data` keeps it) must not reference a key CloudFormation deletes."""
    _, _, templates, _ = built
    r = resources(templates)
    for lid, res in r.items():
        if res.get("DeletionPolicy") != "Retain":
            continue
        for dep in referenced(res["Properties"]):
            if r.get(dep, {}).get("Type") == "AWS::KMS::Key":
                assert r[dep].get("DeletionPolicy") == "Retain", f"{lid} keeps data under {dep}, which is deleted"


# -- API Gateway --------------------------------------------------------------------------------
def test_the_api_gateway_account_setting_is_never_owned_and_undone(built):
    """AWS::ApiGateway::Account sets the account- and region-wide CloudWatch role that every
    REST API's logging uses (CloudFormation User Guide, AWS::ApiGateway::Account; API Gateway
    Developer Guide, "Set up CloudWatch API logging in API Gateway"). A stack that owns it
    overwrites another stack's and, when deleted, leaves the setting naming a deleted role. It
    must be conditional (set only where unset) and retained, with the role it names."""
    _, _, templates, _ = built
    r = templates["edge"]["Resources"]
    account = r["ApiGatewayAccount"]
    assert account.get("Condition") and account["DeletionPolicy"] == "Retain"
    [role] = referenced(account["Properties"]["CloudWatchRoleArn"])
    assert r[role]["DeletionPolicy"] == "Retain" and r[role].get("Condition") == account["Condition"]


def test_nothing_depends_on_a_resource_that_may_not_exist(built):
    """A DependsOn naming a resource whose Condition is false fails the whole template
    ("Template format error: Unresolved resource dependencies"); CloudFormation User Guide,
    "DependsOn attribute" and "Conditions"."""
    _, _, templates, _ = built
    for tpl in templates.values():
        r = tpl["Resources"]
        for lid, res in r.items():
            for dep in res.get("DependsOn", []) if isinstance(res.get("DependsOn"), list) else [res.get("DependsOn")]:
                if dep and r[dep].get("Condition"):
                    assert res.get("Condition") == r[dep]["Condition"], f"{lid} DependsOn conditional {dep}"


def test_a_changed_api_makes_a_new_deployment():
    """CloudFormation updates an AWS::ApiGateway::Deployment in place only for its own
    properties; a changed method or integration reaches the stage only through a new
    deployment, i.e. a new logical id (CloudFormation User Guide, AWS::ApiGateway::Deployment,
    and the SAM/CDK practice of hashing the API into the id)."""
    from sdctl.builders.cfn import api as edge_module

    def deployment_ids(text):
        tpl = {s.key: s.template for s in stacks(parse(text))}["edge"]
        return [lid for lid, res in tpl["Resources"].items() if res["Type"] == "AWS::ApiGateway::Deployment"], tpl

    [first], tpl = deployment_ids(EXAMPLE.read_text())
    assert tpl["Resources"]["ApiStage"]["Properties"]["DeploymentId"] == {"Ref": first}
    [throttled], _ = deployment_ids(EXAMPLE.read_text().replace("rateLimit: 30", "rateLimit: 31"))
    assert throttled == first  # a stage setting needs no new deployment
    changed = json.loads(json.dumps(tpl))
    changed["Resources"]["ApiTasksMethod"]["Properties"]["ApiKeyRequired"] = False
    assert edge_module.deployment_id(changed) != first


# -- names ---------------------------------------------------------------------------------------
LIMITS = {  # resource type -> (property, most characters, pattern or None); each from its CFN reference page
    "AWS::IAM::Role": ("RoleName", 64, r"[\w+=,.@-]+"),
    "AWS::SQS::Queue": ("QueueName", 80, r"[A-Za-z0-9_-]+"),
    "AWS::SNS::Topic": ("TopicName", 256, r"[A-Za-z0-9_-]+"),
    "AWS::S3::Bucket": ("BucketName", 63, r"[a-z0-9][a-z0-9.-]+[a-z0-9]"),
    "AWS::Lambda::Function": ("FunctionName", 64, r"[A-Za-z0-9_-]+"),
    "AWS::DynamoDB::Table": ("TableName", 255, r"[A-Za-z0-9_.-]{3,}"),
    "AWS::ECR::Repository": ("RepositoryName", 256, r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"),
    "AWS::CodeBuild::Project": ("Name", 255, r"[A-Za-z0-9][A-Za-z0-9_-]{1,254}"),
    "AWS::Logs::LogGroup": ("LogGroupName", 512, r"[.\-_/#A-Za-z0-9]+"),
    "AWS::EKS::Cluster": ("Name", 100, r"[0-9A-Za-z][A-Za-z0-9\-_]*"),
    "AWS::EKS::Nodegroup": ("NodegroupName", 63, None),
}


def test_the_largest_config_fits_cloudformations_template_limits():
    """A template may hold at most 500 resources, 200 outputs and 200 parameters, and its body
    at most 1 MB from S3 (CloudFormation User Guide, "CloudFormation quotas"); moto checks
    none. The largest config sdctl accepts, 16 runtimes, must fit in each stack."""
    runtimes = "\n".join(f"  - {{name: r{i}, type: diffusers}}" for i in range(16))
    cfg = parse(f"stackName: big\nruntimes:\n{runtimes}\n")
    for spec in stacks(cfg):
        t = spec.template
        assert len(t["Resources"]) <= 500 and len(t.get("Outputs", {})) <= 200, spec.key
        assert len(t.get("Parameters", {})) <= 200 and len(json.dumps(t)) <= 1_000_000, spec.key
    from sdctl.errors import ConfigError

    with pytest.raises(ConfigError) as e:  # a 17th is refused before anything is built
        parse(f"stackName: big\nruntimes:\n{runtimes}\n  - {{name: r16, type: diffusers}}\n")
    assert "17 runtimes; at most 16" in e.value.problems[0]["message"]


def test_names_fit_their_limits(built):
    """Each name against its documented length and character limit (CloudFormation resource
    reference of each type), with the longest region name and a 12-digit account: moto
    accepts longer names than AWS for most of these."""
    _, cfg, templates, _ = built
    checked = 0
    for lid, res in resources(templates).items():
        rule = LIMITS.get(res["Type"])
        if not rule or rule[0] not in res["Properties"]:
            continue
        prop, most, pattern = rule
        name = rendered_name(res["Properties"][prop], cfg)
        assert len(name) <= most, f"{lid}.{prop} {name!r} is {len(name)} > {most}"
        assert pattern is None or re.fullmatch(pattern, name), f"{lid}.{prop} {name!r}"
        checked += 1
    assert checked >= 8


# -- EKS ---------------------------------------------------------------------------------------------
def test_eks_add_ons_are_pinned_and_the_bill_cannot_change_by_itself(built):
    """Without AddonVersion EKS installs whatever is default that day; without UpgradePolicy
    STANDARD a cluster whose version leaves standard support moves to extended support, billed
    at 6x (EKS User Guide, "Cluster upgrade policy"). Mountpoint's CSI driver must be v2+ to
    honour the pod's fsGroup (mountpoint-s3-csi-driver docs, v2 upgrade)."""
    name, cfg, templates, _ = built
    if cfg.cluster.existing:
        assert "Cluster" not in templates["cluster"]["Resources"]
        return
    r = templates["cluster"]["Resources"]
    assert r["Cluster"]["Properties"]["UpgradePolicy"] == {"SupportType": "STANDARD"}
    addons = {res["Properties"]["AddonName"]: res["Properties"] for res in r.values() if res["Type"] == "AWS::EKS::Addon"}
    assert set(addons) == set(versions.ADDONS)
    for addon, props in addons.items():
        assert props["AddonVersion"] == versions.ADDONS[addon]
    assert int(addons["aws-mountpoint-s3-csi-driver"]["AddonVersion"].lstrip("v").split(".")[0]) >= 2


def test_network_policies_are_enforced_where_the_chart_ships_them(built, rendered):
    """The VPC CNI enforces Kubernetes NetworkPolicy only with enableNetworkPolicy "true" in
    its add-on configuration (EKS User Guide, "Limit pod traffic with Kubernetes network
    policies"); otherwise the chart's NetworkPolicy is accepted and ignored."""
    name, cfg, templates, _ = built
    ships = any(o["kind"] == "NetworkPolicy" for objs in rendered.values() for o in objs)
    assert ships
    if cfg.cluster.existing:
        return  # the cluster's own CNI: docs/security.md says enforcement depends on it
    [cni] = [res for res in templates["cluster"]["Resources"].values()
             if res["Type"] == "AWS::EKS::Addon" and res["Properties"]["AddonName"] == "vpc-cni"]
    assert json.loads(cni["Properties"]["ConfigurationValues"]) == {"enableNetworkPolicy": "true"}


def test_the_cluster_endpoint_is_not_open_to_the_internet_by_default():
    """EKS best practices: restrict the public endpoint to known CIDR blocks. The default is
    the deployer's /32, not 0.0.0.0/0."""
    cfg = parse(EXAMPLE.read_text())
    [cluster] = [s for s in stacks(cfg) if s.key == "cluster"]
    outs = {"edge": {k: "x" for k in ("ResultsTopicArn", "TopicKeyArn", "OutputBucket", "TasksTableArn",
                                      "WebhooksQueueArn", "QueueSdruntimeHighArn", "QueueSdruntimeLowArn",
                                      "QueueSdruntimeArn")}, "network": {"PrivateSubnetIds": "a,b"}}
    assert cluster.parameters(outs, Site(deployer_cidr="203.0.113.7/32"))["PublicAccessCidrs"] == "203.0.113.7/32"
    vpc = cluster.template["Resources"]["Cluster"]["Properties"]["ResourcesVpcConfig"]
    assert vpc["PublicAccessCidrs"] == {"Ref": "PublicAccessCidrs"} and vpc["EndpointPrivateAccess"] is True


# -- Karpenter, KEDA, Mountpoint -------------------------------------------------------------------------
def test_gpu_nodes_select_subnets_and_security_groups_that_exist(built, rendered):
    """An EC2NodeClass whose subnetSelectorTerms match no subnet launches no node (Karpenter
    docs, NodeClasses, subnetSelectorTerms). sdctl's network tags its private subnets
    karpenter.sh/discovery=<cluster>; an existing VPC's subnets are selected by id, an
    existing cluster's by the cluster's own. EKS tags the cluster security group it creates
    aws:eks:cluster-name (EKS User Guide, "Amazon EKS security group requirements")."""
    name, cfg, templates, _ = built
    for _runtime, objs in rendered.items():
        [nc] = [o for o in objs if o["kind"] == "EC2NodeClass"]
        terms = nc["spec"]["subnetSelectorTerms"]
        if cfg.network.private_subnet_ids:
            assert terms == [{"id": s} for s in cfg.network.private_subnet_ids]
        elif cfg.cluster.existing:
            assert terms == [{"id": "subnet-0ccccccccccccccc3"}]
        else:
            assert terms == [{"tags": {"karpenter.sh/discovery": cfg.cluster_name}}]
            private = [res for lid, res in templates["network"]["Resources"].items()
                       if lid.startswith("PrivateSubnet") and res["Type"] == "AWS::EC2::Subnet"]
            assert private and all({"Key": "karpenter.sh/discovery", "Value": {"Ref": "ClusterName"}}
                                   in s["Properties"]["Tags"] for s in private)
            assert templates["network"]["Parameters"]["ClusterName"]
        assert nc["spec"]["securityGroupSelectorTerms"] == [{"tags": {"aws:eks:cluster-name": cfg.cluster_name}}]


def test_node_images_are_pinned_and_drains_end(rendered):
    """`bottlerocket@latest` drifts every node, busy GPU nodes included, when a release comes
    out (Karpenter docs, "Managing AMIs"); pin a version. Pods with karpenter.sh/do-not-disrupt
    block a drain until the NodePool's terminationGracePeriod, which must be set (Karpenter docs,
    NodePools, terminationGracePeriod) and outlast the pod's own grace period."""
    for _runtime, objs in rendered.items():
        [nc] = [o for o in objs if o["kind"] == "EC2NodeClass"]
        [pool] = [o for o in objs if o["kind"] == "NodePool"]
        [deploy] = [o for o in objs if o["kind"] == "Deployment"]
        assert [t["alias"] for t in nc["spec"]["amiSelectorTerms"]] == [versions.BOTTLEROCKET_ALIAS]
        assert not versions.BOTTLEROCKET_ALIAS.endswith("@latest")
        pod = deploy["spec"]["template"]
        if pod["metadata"]["annotations"].get("karpenter.sh/do-not-disrupt") == "true":
            bound = int(pool["spec"]["template"]["spec"]["terminationGracePeriod"].removesuffix("s"))
            assert bound > pod["spec"]["terminationGracePeriodSeconds"]


def test_a_composite_scaling_formula_names_only_named_triggers(rendered):
    """KEDA's admission webhook rejects a ScaledObject whose `advanced.scalingModifiers` has a
    formula without a `target`, a trigger without a unique `name`, or a formula that names a
    trigger that is not there; `metricType` is AverageValue or Value (KEDA docs, "Scaling
    Modifiers"). The formula is expr-lang (github.com/expr-lang/expr), whose builtins (`max`)
    are the only other names it may use. No KEDA runs here: the CRD schema cannot say any of
    this."""
    words = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
    builtins = {"max", "min", "abs", "ceil", "floor", "float"}
    for runtime, objs in rendered.items():
        for so in (o for o in objs if o["kind"] == "ScaledObject"):
            modifiers = so["spec"].get("advanced", {}).get("scalingModifiers")
            if not modifiers:
                continue
            names = [t.get("name") for t in so["spec"]["triggers"]]
            assert all(names) and len(set(names)) == len(names), runtime
            assert set(words.findall(modifiers["formula"])) <= set(names) | builtins, modifiers["formula"]
            assert float(modifiers["target"]) > 0 and modifiers.get("metricType", "AverageValue") in (
                "AverageValue", "Value")


def test_the_hpa_behaviour_keda_hands_on_is_one_the_api_server_accepts(rendered):
    """KEDA creates the HPA with `advanced.horizontalPodAutoscalerConfig.behavior` as written;
    the API server then validates it (Kubernetes API reference, HPAScalingRules and
    HPAScalingPolicy): stabilizationWindowSeconds "must be greater than or equal to zero and
    less than or equal to 3600 (one hour)", a policy's periodSeconds "must be greater than zero
    and less than or equal to 1800 (30 min)" and its value "must be greater than zero", type
    Pods or Percent, selectPolicy Max, Min or Disabled. The KEDA CRD's schema types these
    fields but bounds none of them, and no API server runs here. The config's own limits
    (scaleUp/DownWindowSeconds 0..3600, scaleUpPods >= 1) keep every rendering inside."""
    seen = 0
    for objs in rendered.values():
        for so in (o for o in objs if o["kind"] == "ScaledObject"):
            behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
            for direction in ("scaleUp", "scaleDown"):
                rules = behavior[direction]
                assert 0 <= rules["stabilizationWindowSeconds"] <= 3600
                assert rules.get("selectPolicy", "Max") in ("Max", "Min", "Disabled")
                for policy in rules["policies"]:
                    assert policy["type"] in ("Pods", "Percent")
                    assert 0 < policy["periodSeconds"] <= 1800 and policy["value"] > 0
                seen += 1
    assert seen >= 2


def test_projected_tokens_live_long_enough_and_name_the_cluster_ca(rendered):
    """A projected serviceAccountToken's expirationSeconds must be at least 600 (the API server
    rejects the pod: Kubernetes docs, "Configure Service Accounts for Pods", service account
    token volume projection); the cluster CA is published to every namespace as the ConfigMap
    kube-root-ca.crt, key ca.crt (Kubernetes docs, "Managing Service Accounts", root CA
    publisher)."""
    found = 0
    for runtime, objs in rendered.items():
        for d in (o for o in objs if o["kind"] == "Deployment"):
            for volume in d["spec"]["template"]["spec"].get("volumes", []):
                for source in (volume.get("projected") or {}).get("sources", []):
                    if "serviceAccountToken" in source:
                        found += 1
                        assert source["serviceAccountToken"].get("expirationSeconds", 3600) >= 600, runtime
                    if "configMap" in source:
                        assert source["configMap"]["name"] == "kube-root-ca.crt"
                        assert [i["key"] for i in source["configMap"]["items"]] == ["ca.crt"]
    assert found


def test_cluster_scoped_names_are_valid_and_unique_per_release(rendered):
    """ClusterRoles and ClusterRoleBindings share one cluster-wide namespace: their names must
    be DNS subdomains of at most 253 characters (Kubernetes docs, "Object Names and IDs") and
    must not collide between two releases of the same name in different namespaces."""
    subdomain = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    for objs in rendered.values():
        for o in (o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding")):
            name = o["metadata"]["name"]
            assert len(name) <= 253 and subdomain.match(name), name
            assert o["metadata"].get("namespace") is None
            [ns] = {x["metadata"]["namespace"] for x in objs if x["kind"] == "Deployment"}
            assert ns in name  # the namespace is part of it


def test_sns_filter_policies_fit_amazon_sns_limits(built):
    """A filter policy may have at most 5 keys and at most 150 combinations of values (the
    product of each key's array length, per `$or` branch); `$or` needs at least two branches
    (SNS Developer Guide, "Filter policy constraints", "AND/OR logic"). moto checks neither."""
    _, _, templates, _ = built

    def branches(policy: dict) -> list[dict]:
        if "$or" not in policy:
            return [policy]
        assert len(policy["$or"]) >= 2
        rest = {k: v for k, v in policy.items() if k != "$or"}
        return [{**rest, **b} for branch in policy["$or"] for b in branches(branch)]

    policies = [s["Properties"]["FilterPolicy"] for s in resources(templates, "AWS::SNS::Subscription").values()
                if "FilterPolicy" in s["Properties"]]
    assert policies
    for policy in policies:
        keys, combinations = set(), 0
        for branch in branches(policy):
            keys |= set(branch)
            n = 1
            for values in branch.values():
                n *= len(values)
            combinations += n
        assert len(keys) <= 5 and combinations <= 150, policy


def test_keda_owns_the_replicas_of_what_it_scales(rendered):
    """KEDA creates an HPA for a ScaledObject's target; a manifest that also sets
    spec.replicas fights it on every apply (KEDA docs, "Scaling Deployments"; Kubernetes docs,
    HorizontalPodAutoscaler, "Migrating Deployments and StatefulSets to horizontal autoscaling")."""
    for runtime, objs in rendered.items():
        targets = {o["spec"]["scaleTargetRef"]["name"] for o in objs if o["kind"] == "ScaledObject"}
        for d in (o for o in objs if o["kind"] == "Deployment"):
            if d["metadata"]["name"] in targets:
                assert "replicas" not in d["spec"], runtime


def test_mountpoint_gets_a_prefix_it_accepts(rendered):
    """Mountpoint for Amazon S3's --prefix must end with '/' (mountpoint-s3 CONFIGURATION.md,
    "Mounting a bucket prefix"); it refuses to mount otherwise, and the pod never starts."""
    for _runtime, objs in rendered.items():
        for pv in (o for o in objs if o["kind"] == "PersistentVolume"):
            prefixes = [m.split(" ", 1)[1] for m in pv["spec"]["mountOptions"] if m.startswith("prefix ")]
            assert all(p.endswith("/") and not p.startswith("/") for p in prefixes), prefixes


def test_a_model_bucket_in_another_region_or_under_a_kms_key_can_be_read():
    """Mountpoint signs its requests for the region it is given (mountpoint-s3 CONFIGURATION.md,
    "--region"), and S3 answers a bucket of another region with a redirect; reading an SSE-KMS
    object needs kms:Decrypt on its key (S3 User Guide, "Using server-side encryption with AWS
    KMS keys"). Without modelBucket.region the stack's region is used, as before."""
    from sdctl.execute.k8s import helm

    key = "arn:aws:kms:eu-west-1:123456789012:key/12345678-1234-1234-1234-123456789012"
    for extra, region in (("", "us-west-2"), (f", region: eu-west-1, kmsKeyArn: '{key}'", "eu-west-1")):
        cfg = parse(f"modelBucket: {{name: team-models{extra}}}\nruntimes: [{{name: sd, type: sdwebui}}]\n")
        edge, cluster = placeholder_outputs(cfg)
        [rel] = [r for r in releases(cfg, edge=edge, cluster=cluster, account=ACCOUNT, region=cfg.region) if r.runtime]
        [pv] = [o for o in helm.render(rel) if o["kind"] == "PersistentVolume"]
        assert f"region {region}" in pv["spec"]["mountOptions"]
        tpl = {x.key: x.template for x in stacks(cfg)}
        role = resources(tpl)["MountpointRole"]
        assert allows(role, "kms:Decrypt") == bool(extra)


def test_every_image_a_release_runs_is_one_sdctl_builds_or_the_users_own(built):
    """A pod whose image is not in a registry sits in ImagePullBackOff on a paid GPU node.
    Each image the releases run is either the user's own (runtimes[].image) or lives in an ECR
    repository the edge stack creates and `sdctl images publish` fills."""
    from sdctl.builders import images

    _, cfg, templates, rels = built
    repos = {res["Properties"]["RepositoryName"] for res in templates["edge"]["Resources"].values()
             if res["Type"] == "AWS::ECR::Repository"}
    own = {rt.image for rt in cfg.runtimes if rt.image}
    for uri in images_of(rels):
        if uri in own:
            continue
        repo, _tag = images.ecr_reference(uri, ACCOUNT, cfg.region)
        assert repo in repos, uri
        key = next(k for k, (name, _) in images.IMAGES.items() if images.repository_name(cfg.stack_name, name) == repo)
        assert key in images.needed(cfg)  # and publish builds it by default


def test_one_subscription_per_topic_and_queue(built):
    """SNS keeps one subscription per topic, protocol and endpoint: Subscribe with the same
    endpoint returns the existing one (SNS API Reference, Subscribe), so a second
    AWS::SNS::Subscription of a queue would replace the first one's filter, and deleting either
    removes both. Routing that needs two conditions uses `$or` in one filter policy."""
    _, _, templates, _ = built
    seen = [json.dumps([s["Properties"]["TopicArn"], s["Properties"]["Protocol"], s["Properties"]["Endpoint"]],
                       sort_keys=True) for s in resources(templates, "AWS::SNS::Subscription").values()]
    assert len(seen) == len(set(seen))


def test_queues_accept_messages_from_the_topic_that_feeds_them(built):
    """An SQS queue subscribed to an SNS topic receives nothing unless its queue policy lets
    sns.amazonaws.com SendMessage (SNS Developer Guide, "Subscribing an Amazon SQS queue to an
    Amazon SNS topic"). moto skips AWS::SQS::QueuePolicy and AWS::SNS::Subscription."""
    _, _, templates, _ = built
    r = templates["edge"]["Resources"]
    for lid, sub in resources(templates, "AWS::SNS::Subscription").items():
        [queue] = referenced(sub["Properties"]["Endpoint"])
        policies = [p for p in r.values() if p["Type"] == "AWS::SQS::QueuePolicy"
                    and queue in referenced(p["Properties"]["Queues"])]
        assert any(st["Effect"] == "Allow" and st["Principal"] == {"Service": "sns.amazonaws.com"}
                   and "sqs:SendMessage" in st["Action"] and referenced(sub["Properties"]["TopicArn"])
                   <= referenced(st.get("Condition", {})) for p in policies
                   for st in p["Properties"]["PolicyDocument"]["Statement"]), lid


def test_a_nat_instance_is_one_that_ec2_and_vpc_routing_accept(built):
    """EC2 and VPC rules for a NAT instance, none of which moto checks:
    - a route's InstanceId works only for an instance with exactly one network interface
      (EC2 API Reference, CreateRoute: "the operation fails if you specify an instance ID
      unless exactly one network interface is attached");
    - forwarding needs the source/destination check off (VPC user guide, NAT instances);
    - the AMI's architecture must match the instance type's (RunInstances fails otherwise:
      "The architecture 'x86_64' of the specified instance type does not match the
      architecture 'arm64' of the specified AMI"): the AL2023 parameter of the type's own
      architecture (sdctl/config/ec2.py reads it from the name);
    - the recover alarm action exists only for StatusCheckFailed_System on supported types
      (EC2 user guide, "Recover your instance"; T4g, C6g/C7g, M6g/M7g are);
    - a security group's GroupDescription allows only a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*;
    - RunInstances refuses SubnetId or security groups beside NetworkInterfaces (EC2 API
      Reference, RunInstances: "you cannot specify this option and the network interfaces
      option in the same request");
    - the AMI comes from the public SSM parameter AWS publishes for AL2023 arm64 in every
      commercial region (AL2023 user guide, "Launching AL2023 using the SSM parameter")."""
    name, cfg, templates, _ = built
    net = templates.get("network")
    if net is None or cfg.network.nat != "instance":
        assert not resources(templates, "AWS::EC2::Instance")
        return
    r = net["Resources"]
    nat = r["NatInstance"]["Properties"]
    assert len(nat["NetworkInterfaces"]) == 1 and nat["NetworkInterfaces"][0]["DeviceIndex"] == "0"
    assert nat["SourceDestCheck"] is False
    arch = architecture(nat["InstanceType"])
    assert nat["ImageId"] == \
        f"{{{{resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}}}}}"
    # RunInstances refuses subnet or security groups at the instance level beside NetworkInterfaces
    assert not {"SubnetId", "SecurityGroupIds", "SecurityGroups"} & set(nat)
    # the user data installs iptables-services from the internet: the public route must exist first
    assert r["NatInstance"]["DependsOn"] == "PublicRoute"
    alarm = r["NatInstanceRecovery"]["Properties"]
    assert alarm["MetricName"] == "StatusCheckFailed_System" and alarm["Namespace"] == "AWS/EC2"
    assert re.fullmatch(r"[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]*",
                        r["NatInstanceSecurityGroup"]["Properties"]["GroupDescription"])
    # every private route table reaches it; none still points at a NAT gateway
    for n in (1, 2, 3):
        route = r[f"PrivateRoute{n}"]["Properties"]
        assert route == {"RouteTableId": {"Ref": f"PrivateRouteTable{n}"}, "DestinationCidrBlock": "0.0.0.0/0",
                         "InstanceId": {"Ref": "NatInstance"}}


def test_the_handler_may_read_api_keys_by_their_account_less_arn_and_the_stacks_key_is_tagged(built):
    """API Gateway authorizes its management calls as HTTP methods on resource paths, and its
    ARNs carry no account: `arn:aws:apigateway:REGION::/apikeys/ID` (API Gateway Developer
    Guide, "Control access for managing an API"). A resource with an account in it, or an
    action like apigateway:GetApiKey, never matches on AWS, so the handler could not name a
    task's client. The stack's own key carries the client tag the handler reads (Tags on
    AWS::ApiGateway::ApiKey), or its tasks would have no client."""
    name, cfg, templates, _ = built
    edge = templates["edge"]["Resources"]
    doc = edge["ApiHandlerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    reads = [s for s in doc["Statement"] if any(a.startswith("apigateway:") for a in s["Action"])]
    assert reads == [{"Effect": "Allow", "Action": ["apigateway:GET"],
                      "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::/apikeys/*"}]}]
    assert {"Key": "sdctl:client", "Value": "default"} in edge["ApiKey"]["Properties"]["Tags"]



def test_a_system_node_group_change_that_replaces_it_also_renames_it(built):
    """AWS::EKS::Nodegroup: InstanceTypes and AmiType changes require replacement (CloudFormation
    resource reference), and CloudFormation cannot replace a custom-named resource ("cannot
    update a stack when a custom-named resource requires replacing"). Moving from `ha`'s
    m7g.large to `lean`'s t4g.medium must therefore give the group another name; moto replaces
    resources without that check. The count (ScalingConfig) updates in place and keeps it."""
    name, cfg, templates, _ = built
    group = resources(templates, "AWS::EKS::Nodegroup")
    if not group:
        return  # an existing cluster: sdctl makes no node group
    ha, lean = cfg.with_profile("ha"), cfg.with_profile("lean")
    names = {}
    for label, c in (("ha", ha), ("lean", lean), ("ha-3", ha.model_copy(deep=True))):
        if label == "ha-3":
            c.cluster.system_nodes.__dict__["count"] = 3
        tpl = {s.key: s.template for s in stacks(c)}
        names[label] = next(iter(resources(tpl, "AWS::EKS::Nodegroup").values()))["Properties"]["NodegroupName"]
    if ha.cluster.system_nodes.instance_types != lean.cluster.system_nodes.instance_types:
        assert names["ha"] != names["lean"]
    assert names["ha"] == names["ha-3"]


def test_an_instance_types_architecture_is_read_from_its_name_as_ec2_names_them():
    """sdctl/config/ec2.py reads the architecture from the name ("Instance type naming
    conventions": g after the generation is Graviton); every type in moto's EC2 catalogue
    (copied from DescribeInstanceTypes) agrees with its SupportedArchitectures."""
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    wrong = {t: v["ProcessorInfo"]["SupportedArchitectures"] for t, v in INSTANCE_TYPES.items()
             if architecture(t) not in v["ProcessorInfo"]["SupportedArchitectures"]
             and not any(a.endswith("_mac") for a in v["ProcessorInfo"]["SupportedArchitectures"])}
    assert len(INSTANCE_TYPES) > 1000 and wrong == {}


@pytest.mark.parametrize(("yaml", "types", "ami"), [
    ("cluster: {systemNodes: {arm64: false}}", ["t3.medium"], "AL2023_x86_64_STANDARD"),
    ("profile: ha\ncluster: {systemNodes: {arm64: false}}", ["m7i.large"], "AL2023_x86_64_STANDARD"),
    ("cluster: {systemNodes: {instanceTypes: [m5.large]}}", ["m5.large"], "AL2023_x86_64_STANDARD"),
    ("cluster: {systemNodes: {instanceTypes: [m7g.large]}}", ["m7g.large"], "AL2023_ARM_64_STANDARD"),
    ("", ["t4g.medium"], "AL2023_ARM_64_STANDARD"),
])
def test_the_system_node_groups_ami_type_runs_its_instance_types(yaml, types, ami):
    """EKS CreateNodegroup refuses instance types the AMI type cannot run ("[t4g.medium] is not
    a valid instance type for requested amiType AL2023_x86_64_STANDARD", HHS/simpler-grants-gov
    #12404), and only after the ~15-minute cluster create. `arm64: false` alone picks the
    profile's x86 types; instance types alone pick their AMI type."""
    cfg = parse(f"{yaml}\nruntimes: [{{name: sd, type: sdwebui}}]\n")
    tpl = {s.key: s.template for s in stacks(cfg)}
    group = next(iter(resources(tpl, "AWS::EKS::Nodegroup").values()))["Properties"]
    assert group["InstanceTypes"] == types and group["AmiType"] == ami
    assert {architecture(t) for t in types} == {"arm64" if "ARM" in ami else "x86_64"}


def test_another_admin_does_not_lock_the_deployer_out_of_the_cluster():
    """The cluster is created with BootstrapClusterCreatorAdminPermissions false (no implicit
    admin: EKS User Guide, "Grant IAM users access to Kubernetes with EKS access entries"), and
    `deploy` installs its Helm releases as the deploying principal right after the stacks. With
    adminPrincipalArn naming someone else, the deployer gets its own entry, unless it is that
    admin (one principal, one access entry: CreateAccessEntry refuses a second)."""
    cfg = parse("cluster: {adminPrincipalArn: 'arn:aws:iam::123456789012:role/platform-admins'}\n"
                "runtimes: [{name: sd, type: sdwebui}]\n")
    [spec] = [s for s in stacks(cfg) if s.key == "cluster"]
    entries = resources({"c": spec.template}, "AWS::EKS::AccessEntry")
    assert entries["DeployerAccess"]["Condition"] == "DeployerIsNotAdmin"
    assert entries["DeployerAccess"]["Properties"]["PrincipalArn"] == {"Ref": "DeployerPrincipalArn"}
    assert entries["DeployerAccess"]["Properties"]["AccessPolicies"] == \
        entries["AdminAccess"]["Properties"]["AccessPolicies"]
    outs = {"edge": {k: "x" for k in ("ResultsTopicArn", "TopicKeyArn", "OutputBucket", "TasksTableArn",
                                       "WebhooksQueueArn")}, "network": {"PrivateSubnetIds": "a,b"}}
    outs["edge"].update({k: "x" for k in spec.template["Parameters"] if k.startswith("Queue")})
    params = spec.parameters(outs, Site(admin_principal="arn:aws:iam::123456789012:role/ci"))
    assert params["AdminPrincipalArn"].endswith("platform-admins") and params["DeployerPrincipalArn"].endswith("/ci")
    example = [s for s in stacks(parse(EXAMPLE.read_text())) if s.key == "cluster"][0]
    assert "DeployerAccess" not in example.template["Resources"]  # the deployer is the admin


@pytest.mark.parametrize(("region", "arn"), [("us-west-2", "aws"), ("cn-north-1", "aws-cn"),
                                             ("us-gov-west-1", "aws-us-gov"), ("us-iso-east-1", "aws-iso"),
                                             ("us-isob-east-1", "aws-iso-b")])
def test_arns_sdctl_writes_itself_name_the_regions_partition(region, arn):
    """An ARN carries its partition (AWS General Reference, "Amazon Resource Names"): arn:aws
    is refused in GovCloud, China and the ISO regions. Templates use ${AWS::Partition}; the ARNs
    sdctl writes itself (the artifacts bucket policy, the synth placeholders) use this."""
    from sdctl.builders.names import partition

    assert partition(region) == arn
    cfg = parse(f"region: {region}\nruntimes: [{{name: sd, type: sdwebui}}]\n")
    edge, _ = placeholder_outputs(cfg)
    assert edge["ResultsTopicArn"].startswith(f"arn:{arn}:sns:{region}:")


def test_node_pool_names_are_label_values_and_stay_apart_when_cut():
    """Karpenter labels each node it launches karpenter.sh/nodepool=<NodePool name>, and a label
    value is at most 63 characters of [A-Za-z0-9_.-], starting and ending alphanumeric
    (Kubernetes docs, "Labels and Selectors"); the chart's schema holds poolName to that. The
    longest names (a 24-character stack, 40-character runtimes) are cut, and two runtimes alike
    up to the cut still get two pools."""
    from sdctl.builders.names import pool_name

    stack = "s" * 24
    a, b = pool_name(stack, "r" * 38 + "ab"), pool_name(stack, "r" * 38 + "cd")
    label = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    assert a != b and all(len(x) <= 63 and label.match(x) for x in (a, b))
    assert pool_name("theirs", "sd") == "theirs-sd"
