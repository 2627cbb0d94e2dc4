"""Container images: the recipes lint clean, the agent image needs only the `agent` extra, and
`sdctl images publish` builds through CodeBuild against a moto server when no local engine runs."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sdctl.builders import images
from sdctl.execute import publish
from tests.conftest import EXAMPLE
from tests.helpers import checkov_binary

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))


def test_every_image_has_a_recipe():
    assert [p.name for p in DOCKERFILES] == ["agent.Dockerfile", "comfyui.Dockerfile", "runtime.Dockerfile",
                                             "sdwebui.Dockerfile"]
    assert {recipe for _, recipe in images.IMAGES.values()} == {f"docker/{p.name}" for p in DOCKERFILES}


@pytest.mark.parametrize(("recipe", "arg", "pinned"), [("sdwebui", "SDWEBUI_VERSION", "SDWEBUI"),
                                                       ("comfyui", "COMFYUI_VERSION", "COMFYUI")])
def test_upstream_runtimes_are_built_from_the_pinned_release(recipe, arg, pinned):
    from sdctl import versions

    text = (ROOT / "docker" / f"{recipe}.Dockerfile").read_text()
    assert f"ARG {arg}={getattr(versions, pinned)}\n" in text
    assert f'--branch "${{{arg}}}"' in text  # the clone uses it


def test_the_images_a_config_needs():
    """The example runs AUTOMATIC1111 (`type: sdwebui`, no image of its own): its image and
    the agent's are what `images publish` builds and what deploy checks for."""
    from sdctl.config import load, parse

    assert images.needed(load(EXAMPLE)) == ["agent", "sdwebui"]
    cfg = parse("runtimes: [{name: a, type: comfyui}, {name: b, type: diffusers}, "
                "{name: c, type: sdwebui, image: 'example.com/mine:1'}, {name: d, type: comfyui}]")
    assert images.needed(cfg) == ["agent", "comfyui", "diffusers"]
    assert images.plan("s", "1", "r", only=["runtime"])[0].key == "diffusers"  # the old name still works


def test_the_diffusers_image_can_run_what_compile_true_asks_for():
    """sdctl/runtime/accel.py's toolchain_missing() checks a C compiler and Python.h at start;
    the image installs both (with the C library's headers gcc needs) from the distribution."""
    text = (ROOT / "docker" / "runtime.Dockerfile").read_text()
    apt = text[text.index("apt-get install"):text.index("rm -rf /var/lib/apt/lists/*")]
    assert all(f" {pkg}=" in apt for pkg in ("gcc", "libc6-dev", "python3-dev"))


@pytest.mark.parametrize("recipe", ["runtime", "sdwebui", "comfyui"])
def test_gpu_images_carry_one_copy_of_the_cuda_libraries(recipe):
    """torch's Linux CUDA wheels carry the CUDA runtime, cuBLAS and cuDNN (inside or as nvidia-* packages), so
    the base is NVIDIA's `base` flavour (the container toolkit's settings, no libraries): a
    `runtime` or `cudnn` base would ship them twice and every new GPU node would pull both."""
    text = (ROOT / "docker" / f"{recipe}.Dockerfile").read_text()
    base = next(line.split()[1] for line in text.splitlines() if line.startswith("FROM "))
    assert base.startswith("nvidia/cuda:") and "-base-ubuntu" in base, base


def test_the_sdwebui_image_starts_without_downloading_or_rehashing_the_model():
    """AUTOMATIC1111 builds an SD 1.x or SDXL checkpoint's CLIP text encoder from
    openai/clip-vit-large-patch14's config and tokenizer (modules/sd_disable_initialization.py
    looks in the Hub cache first, then downloads). No Docker here, so the recipe's text: the
    files are fetched at build time into the HF_HOME the non-root user reads at start."""
    text = (ROOT / "docker" / "sdwebui.Dockerfile").read_text()
    assert "HF_HOME=/opt/huggingface" in text
    run = text[text.index("prepare_environment()"):text.index("USER 10001")]
    assert "d('openai/clip-vit-large-patch14', allow_patterns=['*.json', '*.txt'])" in run
    assert run.index("chmod -R a+rX \"${HF_HOME}\"") < run.index("rm -rf .git /root/.cache")
    entry = next(line for line in text.splitlines() if line.startswith("ENTRYPOINT"))
    assert "--no-hashing" in entry  # no second read of the whole checkpoint at every start


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    r = subprocess.run([hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_checkov_finds_nothing_in_the_recipes():
    r = subprocess.run([checkov_binary(), "-d", str(ROOT / "docker"), "--framework", "dockerfile", "-o", "json",
                        "--skip-download"], capture_output=True, text=True)
    report = json.loads(r.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c["check_id"] for rep in reports for c in rep["results"]["failed_checks"]]
    passed = sum(rep["summary"]["passed"] for rep in reports)
    assert failed == [] and passed >= 10


def test_the_agent_runs_on_the_agent_extra_alone():
    """Import everything `python -m sdctl.agent` needs with the CLI's libraries made unimportable."""
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'typer', 'rich', 'kubernetes', 'pyhelm3', 'pydantic', 'yaml', 'torch', 'moto'}:
            raise ImportError('not in the agent image: ' + name)
sys.meta_path.insert(0, Block())
import sdctl.agent.__main__, sdctl.agent.worker, sdctl.agent.observe, sdctl.agent.store, sdctl.agent.comfyui
from sdctl.agent.adapters import adapter_for
print('ok')
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip() == "ok", r.stderr
    extra = subprocess.run([sys.executable, str(ROOT / "docker" / "extra-requirements.py"), "agent"],
                           capture_output=True, text=True)
    names = {line.split("<")[0].split(">")[0].split("=")[0].split("[")[0] for line in extra.stdout.split()}
    assert names == {"boto3", "python-dateutil", "httpx", "starlette", "uvicorn", "prometheus-client", "websockets"}


def test_a_client_without_an_engine_is_not_a_builder():
    assert publish.local_builder(lambda name: "/bin/false" if name == "docker" else None) is None
    assert publish.local_builder(lambda name: "/bin/true" if name == "podman" else None) == "/bin/true"


def test_the_source_zip_is_deterministic_and_holds_the_build_context():
    one, two = publish.source_zip(ROOT), publish.source_zip(ROOT)
    assert one == two
    names = zipfile.ZipFile(io.BytesIO(one)).namelist()
    assert {"pyproject.toml", "docker/agent.Dockerfile", "docker/runtime.Dockerfile", "sdctl/agent/__main__.py",
            "lambda_src/handler.py"} <= set(names)
    assert not any("__pycache__" in n or n.startswith(("tests/", ".venv/")) for n in names)


def test_publish_builds_in_codebuild_when_no_engine_runs(aws, tmp_path):
    """moto's CloudFormation has no CodeBuild, so the project is created here from the edge
    template's own properties, as CloudFormation would; the product only starts and follows it."""
    from sdctl.builders.cfn.stacks import stacks
    from sdctl.config import load

    cfg = load(EXAMPLE)
    [edge] = [s for s in stacks(cfg) if s.key == "edge"]
    props = edge.template["Resources"]["ImageBuildProject"]["Properties"]
    aws.iam.create_role(RoleName="build", AssumeRolePolicyDocument="{}")
    aws.codebuild.create_project(
        name=props["Name"], source={"type": "S3", "location": "sdctl-artifacts/images/source.zip",
                                    "buildspec": props["Source"]["BuildSpec"]},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={"type": "LINUX_CONTAINER", "image": props["Environment"]["Image"],
                     "computeType": props["Environment"]["ComputeType"], "privilegedMode": True},
        serviceRole="arn:aws:iam::123456789012:role/build")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=aws.url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-west-2", AWS_EC2_METADATA_DISABLED="true", PATH="/usr/bin:/bin")
    r = subprocess.run([sys.executable, "-m", "sdctl", "-c", str(EXAMPLE), "-o", "json", "images", "publish"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["builder"] == "codebuild" and report["status"] == "SUCCEEDED"
    assert report["images"] == [f"123456789012.dkr.ecr.us-west-2.amazonaws.com/sdctl/{n}:{images.__version__}"
                                for n in ("queue-agent", "sdwebui")]
    bucket, key = report["source"][5:].split("/", 1)
    body = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == publish.source_zip(ROOT)
    assert aws.codebuild.list_builds_for_project(projectName="sdctl-images")["ids"] == [report["build_id"]]
    assert "source:" in r.stderr  # progress goes to stderr, the report to stdout


def test_the_edge_stack_holds_the_repositories_and_the_build_project():
    from sdctl.builders.cfn.stacks import stacks
    from sdctl.config import load

    [edge] = [s for s in stacks(load(EXAMPLE)) if s.key == "edge"]
    res = edge.template["Resources"]
    repos = {r["Properties"]["RepositoryName"] for r in res.values() if r["Type"] == "AWS::ECR::Repository"}
    assert repos == {"sdctl/queue-agent", "sdctl/diffusers", "sdctl/sdwebui", "sdctl/comfyui"}
    assert all(r["Properties"]["ImageScanningConfiguration"]["ScanOnPush"] for r in res.values()
               if r["Type"] == "AWS::ECR::Repository")
    project = res["ImageBuildProject"]["Properties"]
    assert project["Environment"]["PrivilegedMode"] and project["Artifacts"] == {"Type": "NO_ARTIFACTS"}
