"""Helpers shared by test modules (no test module imports another)."""

from __future__ import annotations

import subprocess
import sys

#: How far two renders of the same request may differ, in 8-bit levels per channel. torch
#: promises no bit-equal results across batch shapes or CPU kernels (``ATEN_CPU_CAPABILITY``
#: default, avx2, avx512): a batch of two and a single render were seen one level apart on one
#: pixel of 6,144 on an AVX-512 Xeon. Two levels is far below what another seed or prompt
#: changes (tens of levels on most pixels), so "the same image" still means the same image.
RENDER_TOLERANCE = 2


def assert_same_render(a, b, tolerance: int = RENDER_TOLERANCE) -> None:
    """Two renders (PIL images or encoded bytes) are the same picture within ``tolerance``
    levels on every pixel and channel."""
    import io

    from PIL import Image, ImageChops

    a, b = (Image.open(io.BytesIO(x)) if isinstance(x, bytes | bytearray) else x for x in (a, b))
    assert a.size == b.size, (a.size, b.size)
    worst = max(hi for _, hi in ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getextrema())
    assert worst <= tolerance, f"renders differ by {worst} levels (at most {tolerance} allowed)"


#: A two-runtime stack in an existing VPC: moto cannot delete a VPC stack, so deploy cycles
#: use a VPC made by the test.
CONFIG = """
stackName: cyc
region: us-west-2
modelBucket: {{name: cyc-models}}
network: {{vpcId: {vpc}, privateSubnetIds: [{subnets}]}}
api: {{throttle: {{rateLimit: {rate}}}}}
runtimes:
  - {{name: sdruntime, type: sdwebui}}
  - {{name: comfy, type: comfyui}}
"""


def sdctl(env, cwd, *args, check=True):
    """Run the CLI as a user would, in a subprocess with the given environment."""
    r = subprocess.run([sys.executable, "-m", "sdctl", *args], cwd=cwd, env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"sdctl {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def write_config(tmp_path, vpc, subnets, rate=30):
    (tmp_path / "sdctl.yaml").write_text(CONFIG.format(vpc=vpc, subnets=", ".join(subnets), rate=rate))


#: A config that uses every option sdctl has (the rule tests run on it and on the example).
ALL_OPTIONS = """
stackName: every-option-stack
region: ap-southeast-3
api: {stageName: live, throttle: {rateLimit: 12, burstLimit: 7}}
output: {bucketName: my-team-sd-results, retentionDays: 9, prefix: results/images}
modelBucket: {name: team-models, prefix: /sd/checkpoints}
network: {cidr: 10.42.0.0/16, natPerZone: true}
cluster:
  name: gpu-images-cluster
  version: "1.35"
  publicAccessCidrs: [192.0.2.0/24]
  adminPrincipalArn: arn:aws:iam::111122223333:role/platform/admins
  systemNodes: {instanceTypes: [m7i.large], count: 1, arm64: false}
runtimes:
  - name: webui-with-a-long-runtime-name-of-40ch
    type: sdwebui
    namespace: art
    model: v1-5.safetensors
    dynamicModel: true
    image: 111122223333.dkr.ecr.ap-southeast-3.amazonaws.com/team/webui:2.1
    maxTaskSeconds: 1200
    maxReceiveCount: 5
    scaling: {queueLength: 2, minReplicas: 1, maxReplicas: 7, cooldownSeconds: 300, pollingSeconds: 5,
              scaleOnInFlight: false,
              warm: [{start: "45 8 * * MON-FRI", end: "0 18 * * MON-FRI", replicas: 1, timezone: Asia/Jakarta},
                     {start: "50 8 * * *", end: "15 9 * * *", replicas: 6}]}
    nodes: {instanceTypes: [g6e.xlarge], capacityTypes: [on-demand], gpuLimit: 8, consolidateAfter: 5m,
            volumeSizeGi: 300}
  - name: comfy
    type: comfyui
    agent: {prefetch: 3, runtimeConcurrency: 2, notifyRunning: true}
  - name: turbo
    type: diffusers
    agent: {batchTasks: 4}
"""

#: Bring-your-own network and cluster.
EXISTING_VPC = """
stackName: byo
modelBucket: {name: team-models, prefix: /models}
network: {vpcId: vpc-0123456789abcdef0, privateSubnetIds: [subnet-0aaaaaaaaaaaaaaa1, subnet-0bbbbbbbbbbbbbbb2]}
runtimes: [{name: sdruntime, type: sdwebui}]
"""
EXISTING_CLUSTER = """
stackName: theirs
cluster: {existing: true, name: platform-prod}
modelBucket: {name: team-models, prefix: models}
runtimes: [{name: sdruntime, type: diffusers}]
"""


def local_aws(cwd, name: str, principal: str = "operator"):
    """A boto3 client for the local stack started in `cwd`, signed as one of its principals
    (the stack enforces IAM: sdctl/execute/local/iam.py). The credentials are in its state file."""
    import json
    from pathlib import Path

    import boto3

    state = json.loads((Path(cwd) / ".sdctl" / "state.json").read_text())
    creds = state["credentials"][principal]
    return boto3.client(name, endpoint_url=state["aws_url"], region_name=state["region"],
                        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])


def cli(*args, cwd, check=True) -> subprocess.CompletedProcess:
    """Run the CLI in `cwd` (where a local stack keeps its state), as a user would."""
    r = subprocess.run([sys.executable, "-m", "sdctl", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"sdctl {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def run_json(cwd, *args, code=0):
    """A `--local -o json` command's answer, with its exit code checked."""
    import json

    r = cli(*args, "--local", "-o", "json", cwd=cwd, check=False)
    assert r.returncode == code, f"{args} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


def task_line(task_id: str, runtime: str = "sdruntime", **content) -> str:
    """One line of a .jsonl bulk submission: a tiny, fast text-to-image task."""
    import json

    body = {"prompt": f"a fox {task_id}", "steps": 1, "width": 64, "height": 64, "seed": 1, **content}
    return json.dumps({"task": {"metadata": {"id": task_id, "runtime": runtime, "tasktype": "text-to-image"},
                                "content": body}})


def checkov_binary() -> str:
    import os
    import shutil
    from pathlib import Path

    import pytest

    root = Path(__file__).resolve().parent.parent
    found = os.environ.get("SDCTL_CHECKOV") or shutil.which("checkov") or str(root / ".tools/checkov/bin/checkov")
    if not Path(found).exists():
        pytest.fail("checkov is not installed: `make tools` installs it into .tools/ (CI does this)")
    return found


def wait_for(predicate, seconds: float = 30.0) -> bool:
    """Poll `predicate` until it holds (True) or `seconds` pass (False): a wait on a condition,
    never a fixed sleep."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
