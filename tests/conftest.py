"""Shared fixtures. AWS calls go to a real moto server over HTTP, started here."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import boto3
import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "sdctl.example.yaml"
REGION = "us-west-2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def _aws_env():
    """No test may reach a real AWS account: fake credentials, no profile."""
    saved = dict(os.environ)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "SDCTL_CONFIG", "SDCTL_TARGET"):
        os.environ.pop(k, None)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION)
    yield
    os.environ.clear()
    os.environ.update(saved)


def aws_like_bucket_policies() -> None:
    """moto applies bucket-policy statements without their Conditions (see its
    put_bucket_policy docstring), so the TLS-only Deny on aws:SecureTransport=false that
    sdctl puts on its buckets would deny every request; on AWS it denies only plain HTTP.
    Evaluate policies without conditioned statements, as AWS does for a TLS request."""
    import json as _json

    from moto.s3.models import FakeBucket

    if getattr(FakeBucket, "_sdctl_patched", False):
        return
    original = FakeBucket.get_permission

    def get_permission(self, action, resource):
        if self.policy is None:
            return original(self, action, resource)
        doc = _json.loads(self.policy)
        statements = doc.get("Statement", [])
        doc["Statement"] = [st for st in (statements if isinstance(statements, list) else [statements])
                            if "Condition" not in st]
        saved, self.policy = self.policy, _json.dumps(doc).encode()
        try:
            return original(self, action, resource)
        finally:
            self.policy = saved

    FakeBucket.get_permission = get_permission
    FakeBucket._sdctl_patched = True


def aws_like_change_sets() -> None:
    """moto's ChangeSet.apply() updates a stack's resources but not its outputs, so a
    stack created or updated through a change set reports none; AWS computes them. Rebuild
    the output map after applying, as AWS does. Outputs that reference resource types moto
    skips (AWS::EKS::*, AWS::ApiGateway::ApiKey) cannot be evaluated and are left out.)"""
    from moto.cloudformation.models import ChangeSet

    if getattr(ChangeSet, "_sdctl_patched", False):
        return
    original = ChangeSet.apply

    def apply(self):
        original(self)
        stack = self.stack
        stack.template = self.template
        stack._parse_template()
        output_map = stack._create_output_map()
        for key in list(output_map.outputs):
            try:
                output_map[key]
            except Exception:
                del output_map._output_json_map[key]
        stack.output_map = output_map

    ChangeSet.apply = apply
    ChangeSet._sdctl_patched = True


def aws_like_list_parameters() -> None:
    """moto keeps a CommaDelimitedList parameter as a Python list and DescribeStacks then
    reports its value as "['a', 'b']"; AWS reports the comma-separated string it was given."""
    from moto.cloudformation.models import Stack

    if getattr(Stack, "_sdctl_patched", False):
        return
    original = Stack.parameter_list.fget

    def parameter_list(self):
        return [dict(p, ParameterValue=",".join(map(str, p["ParameterValue"])))
                if isinstance(p["ParameterValue"], list) else p for p in original(self)]

    Stack.parameter_list = property(parameter_list)
    Stack._sdctl_patched = True


def aws_like_kms_keys() -> None:
    """moto's CloudFormation stores an AWS::KMS::Key's KeyPolicy as a dict, and then every
    DescribeKey on that key fails inside moto (it json.loads the policy). AWS stores the JSON."""
    import json as _json

    from moto.kms.models import Key

    if getattr(Key, "_sdctl_patched", False):
        return
    original = Key.create_from_cloudformation_json.__func__

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json.get("Properties", {})
        if isinstance(props.get("KeyPolicy"), dict):
            cloudformation_json = dict(cloudformation_json, Properties=dict(props, KeyPolicy=_json.dumps(
                props["KeyPolicy"])))
        return original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    Key.create_from_cloudformation_json = classmethod(create)
    Key._sdctl_patched = True


def aws_like_table_encryption() -> None:
    """moto keeps a CloudFormation table's SSESpecification as given (SSEEnabled) but reads it
    with the API's key (Enabled), so DescribeTable never shows the table's KMS key; AWS does."""
    from moto.dynamodb.models.table import Table

    if getattr(Table, "_sdctl_patched", False):
        return
    original = Table.create_from_cloudformation_json.__func__

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json.get("Properties", {})
        sse = props.get("SSESpecification")
        if sse and "SSEEnabled" in sse:
            sse = {"Enabled": sse["SSEEnabled"], "SSEType": sse.get("SSEType"), "KMSMasterKeyId": sse.get(
                "KMSMasterKeyId")}
            cloudformation_json = dict(cloudformation_json, Properties=dict(props, SSESpecification=sse))
        return original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    Table.create_from_cloudformation_json = classmethod(create)
    Table._sdctl_patched = True


def patch_moto() -> None:
    from sdctl.execute.local.emulator import rules

    rules.apply()  # the emulator's own rules: what AWS refuses, refused here too
    aws_like_bucket_policies()
    aws_like_change_sets()
    aws_like_list_parameters()
    aws_like_kms_keys()
    aws_like_table_encryption()


@pytest.fixture(scope="session")
def moto_server():
    from moto.server import ThreadedMotoServer

    patch_moto()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server):
    """boto3 clients against a freshly reset moto server."""
    httpx.post(f"{moto_server}/moto-api/reset")
    session = boto3.session.Session(region_name=REGION, aws_access_key_id="testing",
                                    aws_secret_access_key="testing")

    class Clients:
        url = moto_server

        def __getattr__(self, name):
            client = session.client(name, endpoint_url=moto_server)
            setattr(self, name, client)
            return client

    return Clients()


@pytest.fixture
def example_config():
    from sdctl.config import load

    return load(EXAMPLE)


class ServerThread:
    """An ASGI app served by uvicorn on a loopback port, in a background thread."""

    def __init__(self, app):
        import threading

        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture(scope="session")
def tiny_engine():
    """The built-in runtime's engine with the tiny offline model (about 4 s to import and build)."""
    pytest.importorskip("torch")
    from sdctl.runtime.engine import Engine

    return Engine("tiny")


@pytest.fixture(scope="session")
def tiny_runtime(tiny_engine):
    """The real AUTOMATIC1111-compatible runtime over HTTP."""
    from sdctl.runtime.server import create_app

    with ServerThread(create_app(tiny_engine)) as server:
        yield server.url


class CheckIp:
    """A stand-in for checkip.amazonaws.com on loopback: answers the address it is told to."""

    def __init__(self):
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        self.address = "203.0.113.7"
        self.calls = 0

        async def answer(request):
            self.calls += 1
            return PlainTextResponse(self.address + "\n")

        self.app = Starlette(routes=[Route("/", answer)])


@pytest.fixture(scope="session")
def checkip():
    """SDCTL_CHECKIP_URL for deploys that open the cluster endpoint to the deployer's address."""
    ip = CheckIp()
    with ServerThread(ip.app) as server:
        ip.url = server.url + "/"
        yield ip


@pytest.fixture
def env(aws, checkip):
    """The environment a user's shell would have for sdctl against the moto server."""
    checkip.address = "203.0.113.7"
    e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    e.update(AWS_ENDPOINT_URL=aws.url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
             AWS_DEFAULT_REGION="us-west-2", AWS_EC2_METADATA_DISABLED="true", SDCTL_CHECKIP_URL=checkip.url)
    return e


@pytest.fixture
def existing_vpc(aws):
    """A VPC with two subnets and a model bucket, as a user who brings their own network has."""
    vpc = aws.ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [aws.ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    aws.s3.create_bucket(Bucket="cyc-models", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    aws.s3.put_object(Bucket="cyc-models", Key="v1-5.safetensors", Body=b"weights")
    return vpc, subnets


def started_stack(tmp_path_factory, folder: str, *up_args: str):
    """A local stack of the example config, started in a folder of its own with `sdctl local up
    --detach *up_args` as a user starts it; yields (folder, what `local up` printed), then stops
    it. For module-scoped fixtures: one stack per test module that asks for it."""
    from tests.helpers import cli

    cwd = tmp_path_factory.mktemp(folder)
    shutil.copy(EXAMPLE, cwd / "sdctl.yaml")
    env_backup = os.environ.pop("SDCTL_STATE_DIR", None)
    try:
        yield cwd, cli("local", "up", "--detach", *up_args, cwd=cwd).stdout
    finally:
        cli("local", "down", cwd=cwd, check=False)
        if env_backup:
            os.environ["SDCTL_STATE_DIR"] = env_backup


@pytest.fixture(scope="module")
def held_stack(tmp_path_factory):
    """A local stack whose runtime URL points at a closed port: agents never take a task."""
    for cwd, _ in started_stack(tmp_path_factory, "held", "--runtime-url", "sdruntime=http://127.0.0.1:9"):
        yield cwd
