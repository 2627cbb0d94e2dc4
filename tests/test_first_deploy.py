"""The first `sdctl deploy` and `sdctl destroy` on a real account: the defects a review of
sdctl's output against AWS documentation found, each shown where moto can show it.

moto over HTTP stands in for AWS. Where it skips what AWS does, the test says so and adapts
(never the product): it has no EKS, so the cluster's parameters are read from the stack moto
keeps; it has no DescribeAddonVersions, so the add-on pin check runs on that API's documented
answer shape. What moto cannot check at all is a rule in test_aws_rules.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sdctl import __version__, versions
from sdctl.execute import deploy
from tests.helpers import CONFIG, sdctl, write_config

SSO_PATH = "/aws-reserved/sso.amazonaws.com/us-west-2/"
SSO_ROLE = "AWSReservedSSO_AdministratorAccess_0123456789abcdef"


def stack_parameters(aws, name: str) -> dict[str, str]:
    [stack] = aws.cloudformation.describe_stacks(StackName=name)["Stacks"]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


@pytest.fixture
def sso_env(aws, env):
    """Credentials of an IAM Identity Center role session, as `aws sso login` gives them: the
    caller's ARN (arn:aws:sts::…:assumed-role/<name>/<user>) lacks the role's path."""
    role = aws.iam.create_role(RoleName=SSO_ROLE, Path=SSO_PATH, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]
    creds = aws.sts.assume_role(RoleArn=role["Arn"], RoleSessionName="ana@example.com")["Credentials"]
    return dict(env, AWS_ACCESS_KEY_ID=creds["AccessKeyId"], AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
                AWS_SESSION_TOKEN=creds["SessionToken"]), role["Arn"]


def test_the_sso_admin_role_gets_the_access_entry_with_its_path(aws, sso_env, tmp_path, existing_vpc):
    """Defect 2: EKS rejects an access entry for the pathless role ARN ("invalid principal"),
    after ~15 minutes of cluster creation. The cluster stack gets the ARN IAM reports."""
    env, role_arn = sso_env
    assert "/aws-reserved/sso.amazonaws.com/" in role_arn
    write_config(tmp_path, *existing_vpc)
    sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases")
    assert stack_parameters(aws, "cyc-cluster")["AdminPrincipalArn"] == role_arn


def test_the_cluster_endpoint_opens_to_the_deployer_alone_and_stays_so(aws, env, checkip, tmp_path, existing_vpc):
    """Defect 11: the endpoint was public to 0.0.0.0/0. With publicAccessCidrs unset it opens
    to the deploying machine's /32; a later deploy from elsewhere keeps it (no lock-out)."""
    write_config(tmp_path, *existing_vpc)
    sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases")
    assert stack_parameters(aws, "cyc-cluster")["PublicAccessCidrs"] == "203.0.113.7/32"
    checkip.address = "198.51.100.9"
    again = json.loads(sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases", "-o", "json").stdout)
    assert again["stacks"]["cyc-cluster"] == "no changes"
    assert stack_parameters(aws, "cyc-cluster")["PublicAccessCidrs"] == "203.0.113.7/32"


def test_a_configured_cidr_list_is_used_as_given(aws, env, checkip, tmp_path, existing_vpc):
    write_config(tmp_path, *existing_vpc)
    with open(tmp_path / "sdctl.yaml", "a") as f:
        f.write("cluster: {publicAccessCidrs: [192.0.2.0/24, 198.51.100.0/24]}\n")
    calls = checkip.calls
    sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases")
    assert stack_parameters(aws, "cyc-cluster")["PublicAccessCidrs"] == "192.0.2.0/24,198.51.100.0/24"
    assert checkip.calls == calls  # nobody asked


def test_keep_data_keeps_the_key_the_kept_table_needs(aws, env, tmp_path, existing_vpc):
    """Defect 8: `destroy --keep-data` kept the task store but deleted the KMS key encrypting
    it, leaving the data unreadable. The key is retained with it; a later full destroy, which
    deletes the table, schedules the key's deletion too (found through the table)."""
    write_config(tmp_path, *existing_vpc)
    outs = json.loads(sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases", "-o", "json").stdout)["outputs"]
    key = outs["edge"]["TopicKeyId"]
    aws.dynamodb.put_item(TableName="cyc-tasks", Item={"id": {"S": "t1"}, "status": {"S": "completed"},
                                                       "created_at": {"S": "2026-12-01T00:00:00Z"}})
    sdctl(env, tmp_path, "destroy", "--yes", "--keep-data")
    assert aws.kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
    sse = aws.dynamodb.describe_table(TableName="cyc-tasks")["Table"]["SSEDescription"]
    assert sse["KMSMasterKeyArn"].endswith(key)
    assert aws.dynamodb.get_item(TableName="cyc-tasks", Key={"id": {"S": "t1"}})["Item"]["status"]["S"] == "completed"

    r = sdctl(env, tmp_path, "destroy", "--yes", "-o", "json")
    report = json.loads(r.stdout)
    assert report["tables"] == ["cyc-tasks"] and report["keys"], r.stderr
    assert report["keys"] and report["keys"][0].endswith(key)
    assert aws.kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_a_full_destroy_schedules_the_key_with_the_stack(aws, env, tmp_path, existing_vpc):
    write_config(tmp_path, *existing_vpc)
    outs = json.loads(sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases", "-o", "json").stdout)["outputs"]
    sdctl(env, tmp_path, "destroy", "--yes")
    assert aws.kms.describe_key(KeyId=outs["edge"]["TopicKeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"


def karpenter_instance(aws, subnet: str, cluster: str, stack: str) -> str:
    """An instance tagged as Karpenter 1.x tags what it launches (plus the EC2NodeClass's tags)."""
    tags = [{"Key": f"kubernetes.io/cluster/{cluster}", "Value": "owned"},
            {"Key": "eks:eks-cluster-name", "Value": cluster},
            {"Key": "karpenter.sh/nodepool", "Value": "sd-sdruntime"},
            {"Key": "karpenter.k8s.aws/ec2nodeclass", "Value": "sd-sdruntime"},
            {"Key": "sdctl:stack", "Value": stack}]
    [inst] = aws.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="g5.xlarge",
                                   SubnetId=subnet, TagSpecifications=[
                                       {"ResourceType": "instance", "Tags": tags}])["Instances"]
    return inst["InstanceId"]


def test_destroy_without_a_cluster_terminates_what_karpenter_launched(aws, env, tmp_path, existing_vpc):
    """Defect 10: with the cluster unreachable, destroy skipped the Helm uninstall and deleted
    the stacks, leaving GPU instances billing and launch templates and instance profiles
    behind (the profile also blocks deleting the node role). moto has no EKS, so the cluster
    is unreachable here as it would be after a failed or half-deleted cluster."""
    vpc, subnets = existing_vpc
    write_config(tmp_path, vpc, subnets)
    sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases")
    gpu = [karpenter_instance(aws, subnets[0], "cyc", "cyc") for _ in range(2)]
    other = karpenter_instance(aws, subnets[1], "someone-else", "theirs")
    tags = [{"Key": "kubernetes.io/cluster/cyc", "Value": "owned"}, {"Key": "karpenter.sh/nodepool", "Value": "x"},
            {"Key": "sdctl:stack", "Value": "cyc"}]
    lt = aws.ec2.create_launch_template(LaunchTemplateName="karpenter.k8s.aws/1234", LaunchTemplateData={},
                                        TagSpecifications=[{"ResourceType": "launch-template", "Tags": tags}])
    aws.iam.create_instance_profile(InstanceProfileName="cyc_1234567890", Path="/karpenter/us-west-2/cyc/abc/")
    aws.iam.add_role_to_instance_profile(InstanceProfileName="cyc_1234567890", RoleName="KarpenterNodeRole-cyc")

    r = sdctl(env, tmp_path, "destroy", "--yes", "-o", "json")
    report = json.loads(r.stdout)
    assert sorted(report["leftovers"]["instances"]) == sorted(gpu)
    assert report["leftovers"]["launch_templates"] == [lt["LaunchTemplate"]["LaunchTemplateId"]]
    assert report["leftovers"]["instance_profiles"] == ["cyc_1234567890"]
    states = {i["InstanceId"]: i["State"]["Name"] for res in aws.ec2.describe_instances()["Reservations"]
              for i in res["Instances"]}
    assert [states[i] for i in gpu] == ["terminated", "terminated"]
    assert states[other] == "running"  # another cluster's node is not ours to stop
    assert aws.ec2.describe_launch_templates(Filters=[{"Name": "tag:sdctl:stack", "Values": ["cyc"]}]
                                             )["LaunchTemplates"] == []
    assert aws.iam.list_instance_profiles()["InstanceProfiles"] == []
    assert report["stacks"] == {"cyc-cluster": "deleted", "cyc-edge": "deleted"}


def test_deploy_stops_before_the_releases_when_an_image_is_missing(aws, env, tmp_path, existing_vpc):
    """Defect 3: the example's runtime (type sdwebui, image null) pointed at <stack>/sdwebui,
    which nothing created: a paid GPU node sat in ImagePullBackOff. Now every runtime type has
    a repository and a recipe, and deploy checks ECR before installing a release."""
    write_config(tmp_path, *existing_vpc)
    r = sdctl(env, tmp_path, "deploy", "--yes", check=False)
    assert r.returncode == 1
    assert "cyc/sdwebui:" in r.stderr and "cyc/comfyui:" in r.stderr and "cyc/queue-agent:" in r.stderr
    assert "sdctl images publish" in r.stderr
    repos = {x["repositoryName"] for x in aws.ecr.describe_repositories()["repositories"]}
    assert {"cyc/sdwebui", "cyc/comfyui", "cyc/queue-agent", "cyc/diffusers"} <= repos

    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                                      "digest": "sha256:" + "0" * 64}, "layers": []})
    for repo in ("cyc/sdwebui", "cyc/comfyui", "cyc/queue-agent"):
        aws.ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag=__version__)
    r = sdctl(env, tmp_path, "deploy", "--yes", check=False)
    assert "not in ECR" not in r.stderr
    assert "cannot reach EKS cluster cyc" in r.stderr  # the next step: moto has no EKS


def test_the_api_gateway_account_setting_is_set_only_where_unset(aws):
    """Defect 12: AWS::ApiGateway::Account is one per account and region. The edge stack sets
    it only when no CloudWatch role is set, or when the one set is its own."""
    from sdctl.builders.cfn.api import api_logs_role_name
    from sdctl.execute import site

    apigw = aws.apigateway
    assert site.existing_api_logs_role(apigw, "cyc", "us-west-2", owned=False) == ""
    ours = "arn:aws:iam::123456789012:role/" + api_logs_role_name("cyc").replace("${AWS::Region}", "us-west-2")
    apigw.update_account(patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": ours}])
    assert site.existing_api_logs_role(apigw, "cyc", "us-west-2", owned=True) == ""  # it keeps its own
    assert site.existing_api_logs_role(apigw, "cyc", "us-west-2", owned=False) == ours  # retained earlier
    theirs = "arn:aws:iam::123456789012:role/their-apigw-logs"
    apigw.update_account(patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": theirs}])
    assert site.existing_api_logs_role(apigw, "cyc", "us-west-2", owned=True) == theirs


def test_a_second_stack_leaves_the_first_ones_api_logging_alone(aws, env, tmp_path, existing_vpc):
    """moto's CloudFormation skips AWS::ApiGateway::Account, so the setting is made here as
    AWS would have after the first stack; the second stack must then pass it through."""
    write_config(tmp_path, *existing_vpc)
    sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases", "--only", "edge")
    assert stack_parameters(aws, "cyc-edge")["ExistingApiGatewayLogsRoleArn"] == ""
    first = "arn:aws:iam::123456789012:role/cyc-apigw-cloudwatch-us-west-2"
    aws.apigateway.update_account(patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": first}])
    other = tmp_path / "two"
    other.mkdir()
    (other / "sdctl.yaml").write_text(CONFIG.format(vpc=existing_vpc[0], subnets=", ".join(existing_vpc[1]), rate=30)
                                      .replace("stackName: cyc", "stackName: two")
                                      .replace("cyc-models", "two-models"))
    sdctl(env, other, "deploy", "--yes", "--skip-releases", "--only", "edge")
    assert stack_parameters(aws, "two-edge")["ExistingApiGatewayLogsRoleArn"] == first
    again = json.loads(sdctl(env, tmp_path, "deploy", "--yes", "--skip-releases", "--only", "edge", "-o", "json"
                             ).stdout)
    assert again["stacks"]["cyc-edge"] == "no changes"  # still its own


class AddonVersions:
    """DescribeAddonVersions as the EKS API reference documents its answer (moto has none)."""

    def __init__(self, offered: dict[str, list[str]]):
        self.offered = offered

    def get_paginator(self, name):
        assert name == "describe_addon_versions"
        offered = self.offered

        class Pages:
            def paginate(self, addonName, kubernetesVersion):
                return [{"addons": [{"addonName": addonName, "type": "networking", "addonVersions": [
                    {"addonVersion": v, "architecture": ["amd64", "arm64"],
                     "compatibilities": [{"clusterVersion": kubernetesVersion, "defaultVersion": i == 0}]}
                    for i, v in enumerate(offered.get(addonName, []))]}]}]

        return Pages()


def test_addon_pins_are_checked_before_the_cluster_is_created():
    """Defect 14: pinned add-on versions; a pin EKS does not offer stops the deploy before a
    15-minute cluster creation, naming what is offered."""
    offered = {a: ["v9.9.9-eksbuild.1", v] for a, v in versions.ADDONS.items()}
    assert deploy.check_addon_pins(AddonVersions(offered), "1.35") == []
    offered["coredns"] = ["v1.12.0-eksbuild.1"]
    with pytest.raises(deploy.SdctlError) as e:
        deploy.check_addon_pins(AddonVersions(offered), "1.35")
    assert f"coredns {versions.ADDONS['coredns']}" in e.value.message and "v1.12.0-eksbuild.1" in e.value.message
    assert versions.ADDONS["aws-mountpoint-s3-csi-driver"].startswith("v2.")  # maps fsGroup for non-root pods


def test_the_exec_kubeconfig_gets_a_token_without_asking_sts(tmp_path):
    """The exec plugin sdctl writes runs as kubectl or helm would run it, with no network: a
    token is a presigned URL, made locally."""
    from sdctl.execute.k8s import eks

    doc = eks.kubeconfig("c", "https://x", "Q0E=", user=eks.exec_user("c", "us-west-2",
                                                                        command=[sys.executable, "-m", "sdctl"]))
    spec = doc["users"][0]["user"]["exec"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="AKIAEXAMPLE", AWS_SECRET_ACCESS_KEY="secret", AWS_EC2_METADATA_DISABLED="true",
               AWS_ENDPOINT_URL="http://127.0.0.1:9")  # nothing listens: no call may be made
    r = subprocess.run([spec["command"], *spec["args"]], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cred = json.loads(r.stdout)
    assert cred["kind"] == "ExecCredential" and cred["status"]["token"].startswith("k8s-aws-v1.")


def eks_like_api(token_life: float, ready_after: float):
    """The two reads `deploy`'s readiness wait makes, behind EKS's token rule: a token is a
    presigned GetCallerIdentity URL, accepted for a limited time from its X-Amz-Date (15
    minutes on EKS; `token_life` seconds here), then 401 Unauthorized."""
    import base64
    import time
    from datetime import UTC, datetime
    from urllib.parse import parse_qs, urlparse

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    started = time.time()
    seen = {"tokens": set(), "rejected": 0}

    def authorized(request) -> bool:
        auth = request.headers.get("authorization", "")
        tok = auth.removeprefix("Bearer ").removeprefix("k8s-aws-v1.")
        try:
            url = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)).decode()
            signed = datetime.strptime(parse_qs(urlparse(url).query)["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
        except Exception:
            return False
        seen["tokens"].add(tok)
        return datetime.now(UTC).replace(tzinfo=None).timestamp() - signed.timestamp() <= token_life

    def guarded(handler):
        async def run(request):
            if not authorized(request):
                seen["rejected"] += 1
                return JSONResponse({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                     "message": "Unauthorized", "reason": "Unauthorized", "code": 401},
                                    status_code=401)
            return await handler(request)
        return run

    async def deployment(request):
        ready = time.time() - started > ready_after
        return JSONResponse({"kind": "Deployment", "apiVersion": "apps/v1",
                             "metadata": {"name": "sd-sdruntime", "namespace": "sdctl", "generation": 2},
                             "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {}},
                             "status": {"observedGeneration": 2 if ready else 1, "replicas": 0}})

    async def scaledobject(request):
        return JSONResponse({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                             "metadata": {"name": "sd-sdruntime", "namespace": "sdctl"},
                             "status": {"conditions": [{"type": "Ready", "status": "True"},
                                                       {"type": "Active", "status": "False"}]}})

    app = Starlette(routes=[
        Route("/apis/apps/v1/namespaces/{ns}/deployments/{name}", guarded(deployment)),
        Route("/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects/{name}", guarded(scaledobject))])
    return app, seen


@pytest.mark.parametrize("user", ["exec plugin", "static token"])
def test_a_wait_longer_than_a_token_lives_keeps_its_credentials(tmp_path, monkeypatch, user):
    """Defect 7: one EKS token served every helm --wait and the readiness wait, so a deploy
    slower than the token's life failed midway with 401. The kubeconfig sdctl writes runs
    `sdctl kubeconfig --token` as an exec plugin and the wait reads it on every poll. The
    static-token case is the old behaviour, kept to show that the server does enforce expiry."""
    import boto3

    from sdctl.builders.releases import Release
    from sdctl.execute.k8s import cluster, eks
    from tests.conftest import ServerThread

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    # 3 s stands for EKS's 15 minutes; each exec-plugin token is about a second old when used.
    app, seen = eks_like_api(token_life=3, ready_after=6.5)
    with ServerThread(app) as server:
        if user == "exec plugin":
            creds = eks.exec_user("c", "us-west-2", command=[sys.executable, "-m", "sdctl"])
        else:
            creds = {"token": eks.token(boto3.session.Session(region_name="us-west-2"), "c", "us-west-2")}
        path = eks.write_private(eks.kubeconfig("c", server.url, "Q0E=", user=creds), tmp_path / "kubeconfig")
        rel = Release("sd-sdruntime", "chart", "sdctl", runtime="sdruntime")
        if user == "static token":
            from kubernetes.client.exceptions import ApiException

            with pytest.raises(ApiException) as e:
                cluster.wait_ready([rel], path, lambda step: None, timeout=30, poll=1)
            assert e.value.status == 401
            return
        state = cluster.wait_ready([rel], path, lambda step: None, timeout=30, poll=1)
    assert state["sdruntime"]["scaledobject_ready"] is True
    assert len(seen["tokens"]) >= 3 and seen["rejected"] == 0


def publish_public_parameter(name: str, value: str) -> None:
    """AWS publishes /aws/service/... parameters itself and refuses them from accounts (so does
    moto); the test server is in this process, so the parameter is placed in its backend as
    AWS would have it."""
    from moto.ssm.models import ssm_backends

    backend = ssm_backends["123456789012"]["us-west-2"]
    backend.put_parameter(name="sdctl-test-public", description=None, value=value, parameter_type="String",
                          allowed_pattern=None, keyid=None, overwrite=True, tags=None, data_type="text",
                          tier=None, policies=None)
    versions_ = backend._parameters.pop("sdctl-test-public")
    for v in versions_:
        v.name = name
    backend._parameters[name] = versions_


def test_doctor_sees_what_only_a_deployed_stack_shows(aws, existing_vpc):
    """`sdctl doctor` on a stack: images in ECR for every runtime, subnets the GPU nodes
    select, the pinned Bottlerocket image in this region (its SSM parameter), the endpoint's
    openness. moto has no EKS cluster, so the endpoint is judged from the config."""
    from sdctl.config import parse
    from sdctl.execute.aws.session import Aws
    from sdctl.operate import doctor

    vpc, subnets = existing_vpc
    cfg = parse(CONFIG.format(vpc=vpc, subnets=", ".join(subnets), rate=30)
                + "cluster: {publicAccessCidrs: [0.0.0.0/0]}\n")
    client = Aws(session=None, region="us-west-2", account="123456789012", principal_arn="x")
    client.client = lambda name: getattr(aws, name)
    aws.ecr.create_repository(repositoryName="cyc/queue-agent")
    rows = dict(doctor.aws_checks(client, cfg))
    assert rows["images"][0] == doctor.FAIL and "cyc/sdwebui:" in rows["images"][1]
    assert rows["images"][2] == "sdctl images publish"
    assert rows["subnets"][0] == doctor.OK and "2 subnet(s)" in rows["subnets"][1]
    assert rows["endpoint"][0] == doctor.WARN and "0.0.0.0/0" in rows["endpoint"][1]
    assert rows["node image"][0] == doctor.FAIL  # moto holds no public SSM parameters
    publish_public_parameter(doctor.ami_parameter("1.35"), "ami-0123456789abcdef0")
    rows = dict(doctor.aws_checks(client, cfg.model_copy(update={"network": cfg.network.model_copy(
        update={"private_subnet_ids": ["subnet-0ddddddddddddddd4", "subnet-0eeeeeeeeeeeeeee5"]})})))
    assert rows["node image"][0] == doctor.OK
    assert rows["subnets"][0] == doctor.FAIL
