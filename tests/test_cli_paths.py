"""Commands no other test ran as a user runs them: the `sdctl` program with its flags, its
output and its exit code (`kubeconfig`, `webhooks verify`, `runtime serve`)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import yaml
from standardwebhooks import Webhook

from tests.conftest import free_port
from tests.helpers import sdctl, wait_for


def test_kubeconfig_writes_a_private_file_and_token_prints_an_exec_credential(env, tmp_path, aws):
    """`--write` reads the cluster (moto's EKS) and writes a kubeconfig whose user runs
    `sdctl kubeconfig --token`; `--token` presigns STS GetCallerIdentity offline: the token
    is `k8s-aws-v1.` + base64url(the presigned URL) (aws-iam-authenticator's format)."""
    role = aws.iam.create_role(RoleName="eks", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    vpc = aws.ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnet = aws.ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]
    aws.eks.create_cluster(name="demo", roleArn=role, resourcesVpcConfig={"subnetIds": [subnet]})
    (tmp_path / "sdctl.yaml").write_text("stackName: demo\nruntimes: [{name: sd, type: sdwebui}]\n")
    r = sdctl(env, tmp_path, "kubeconfig", "--write", "kc", "-o", "json")
    path = tmp_path / "kc"
    assert path.stat().st_mode & 0o077 == 0  # private: it names the cluster and how to get a token
    cfg = yaml.safe_load(path.read_text())
    user = cfg["users"][0]["user"]["exec"]
    assert user["command"] == "sdctl" and user["args"][-4:] == ["kubeconfig", "--token", "--cluster", "demo"]
    assert cfg["clusters"][0]["cluster"]["server"].startswith("https://")
    assert json.loads(r.stdout)["written"].endswith("kc") and json.loads(r.stdout)["cluster"] == "demo"
    token = sdctl(env, tmp_path, "kubeconfig", "--token", "--cluster", "demo")
    cred = json.loads(token.stdout)
    assert cred["kind"] == "ExecCredential" and cred["status"]["token"].startswith("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(cred["status"]["token"].removeprefix("k8s-aws-v1.") + "==").decode()
    assert "Action=GetCallerIdentity" in url and "x-k8s-aws-id" in url.lower()


def test_webhooks_verify_exits_0_for_a_good_signature_and_1_for_a_forged_one(tmp_path):
    """A receiver's check, as the CLI runs it: the body on stdin, the three headers as flags;
    signed by the Standard Webhooks reference library."""
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    body = b'{"type":"task.completed","data":{"id":"t-1"}}'
    stamp = int(time.time())
    signature = Webhook(secret).sign("t-1.completed", datetime.fromtimestamp(stamp, UTC), body.decode())

    def verify(payload: bytes) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sdctl", "webhooks", "verify", "-", "--id", "t-1.completed",
                               "--timestamp", str(stamp), "--signature", signature, "-o", "json"],
                              input=payload, capture_output=True, cwd=tmp_path, timeout=60,
                              env={**__import__("os").environ, "SDCTL_WEBHOOK_SECRET": secret})

    good = verify(body)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["valid"] is True
    forged = verify(body.replace(b"completed", b"failed"))
    assert forged.returncode == 1 and b"Traceback" not in forged.stderr
    assert secret.encode() not in forged.stdout + forged.stderr  # the secret is never printed


def test_runtime_serve_answers_the_a1111_api(tmp_path):
    """`sdctl runtime serve` on the offline `tiny` model: it listens where told and answers
    the AUTOMATIC1111 calls the agent makes; SIGTERM stops it."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sdctl", "runtime", "serve", "--port", str(port)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "runtime.log").open("w"))
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/sdapi/v1/sd-models", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_for(ready, 180), (tmp_path / "runtime.log").read_text()[-2000:]
        log = (tmp_path / "runtime.log").read_text()
        assert "requires torchvision" not in log and "float32: []" not in log  # libraries' noise dropped
        assert [m["model_name"] for m in httpx.get(f"{url}/sdapi/v1/sd-models").json()] == ["tiny"]
        r = httpx.post(f"{url}/sdapi/v1/txt2img", json={"prompt": "a red fox", "steps": 1, "width": 64, "height": 64,
                                                        "seed": 1}, timeout=120)
        assert r.status_code == 200 and base64.b64decode(r.json()["images"][0])[:4] == b"\x89PNG"
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) in (0, -15)


def test_synth_without_helm_writes_nothing_and_says_what_it_needs(tmp_path):
    """`synth` renders the charts with helm; without it, it used to stop after writing 7 of its
    8 files. Now every file or none: the templates alone with --no-manifests."""
    import os

    from tests.helpers import cli

    (tmp_path / "sdctl.yaml").write_text("runtimes: [{name: sd, type: sdwebui}]\n")
    env = {**os.environ, "SDCTL_HELM": str(tmp_path / "no-helm-here")}
    r = subprocess.run([sys.executable, "-m", "sdctl", "synth", "--out", "synth"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "helm binary was not found" in r.stderr and "--no-manifests" in r.stderr
    assert not (tmp_path / "synth").exists() or list((tmp_path / "synth").iterdir()) == []
    r = subprocess.run([sys.executable, "-m", "sdctl", "synth", "--out", "synth", "--no-manifests"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and sorted(p.name for p in (tmp_path / "synth").iterdir()) == sorted(
        f"sdctl-{k}.{kind}.json" for k in ("network", "edge", "cluster") for kind in ("template", "parameters"))
    assert cli("synth", "--out", "full", cwd=tmp_path).returncode == 0  # with helm (make demo installs it)
    assert (tmp_path / "full" / "releases.json").exists()


def test_init_guided_asks_again_for_a_bad_region_at_once(tmp_path):
    """On a terminal (a pseudo-terminal here), a region that is not one is asked again right
    away instead of failing after all four answers; the file is then written."""
    import os
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: sdctl on the terminal
        os.chdir(tmp_path)
        os.execv(sys.executable, [sys.executable, "-m", "sdctl", "init", "--guided"])
    seen = b""

    def until(text: bytes, seconds: float = 60) -> None:
        nonlocal seen
        deadline = time.monotonic() + seconds
        while text not in seen:
            left = deadline - time.monotonic()
            assert left > 0, seen.decode(errors="replace")
            if select.select([fd], [], [], left)[0]:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    break

    until(b"AWS region")
    os.write(fd, b"mars-north-9\n")
    until(b"'mars-north-9' is not an AWS region code")
    os.write(fd, b"eu-west-1\n")
    until(b"Runtime type")
    os.write(fd, b"diffusers\n")
    until(b"GPU instance types")
    os.write(fd, b"g5.xlarge\n")
    until(b"spot")
    os.write(fd, b"y\n")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen.decode(errors="replace")
    text = (tmp_path / "sdctl.yaml").read_text()
    assert "region: eu-west-1" in text and "type: diffusers" in text
