"""`sdctl images publish`: build the queue agent and runtime images (diffusers, AUTOMATIC1111,
ComfyUI) and push them to the stack's ECR repositories, with a local docker/podman/finch when one runs, otherwise
with the stack's CodeBuild project in the user's own account (no local Docker needed).

The plan (which images, which repositories, which tag) and the source zip are pure; the two
builders are thin.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sdctl import __version__
from sdctl.errors import SdctlError, UsageError

#: Image key -> (repository under <stack>/, recipe). Runtime images are keyed by runtime type.
IMAGES = {"agent": ("queue-agent", "docker/agent.Dockerfile"),
          "diffusers": ("diffusers", "docker/runtime.Dockerfile"),
          "sdwebui": ("sdwebui", "docker/sdwebui.Dockerfile"),
          "comfyui": ("comfyui", "docker/comfyui.Dockerfile")}
#: Older names still accepted by --only.
ALIASES = {"runtime": "diffusers"}
SOURCE = ("pyproject.toml", "README.md", "sdctl", "lambda_src", "docker")
BUILDERS = ("docker", "podman", "finch")


def repository_name(stack: str, image: str) -> str:
    return f"{stack}/{image}"


def build_project_name(stack: str) -> str:
    return f"{stack}-images"


def registry(account: str, region: str) -> str:
    return f"{account}.dkr.ecr.{region}.amazonaws.com"


def needed(cfg) -> list[str]:
    """The images a config runs that sdctl builds: the agent, and each runtime type whose
    `image` is not set to the user's own."""
    keys = ["agent"]
    for rt in cfg.runtimes:
        if rt.image is None and rt.type not in keys:
            keys.append(rt.type)
    return keys


def runtime_image(stack: str, rt_type: str, image: str | None, account: str, region: str, tag: str) -> str:
    """The image a runtime's pods run: the configured one, else sdctl's for its type."""
    return image or f"{registry(account, region)}/{repository_name(stack, IMAGES[rt_type][0])}:{tag}"


def agent_image(stack: str, account: str, region: str, tag: str) -> str:
    return f"{registry(account, region)}/{repository_name(stack, IMAGES['agent'][0])}:{tag}"


def ecr_reference(uri: str, account: str, region: str) -> tuple[str, str] | None:
    """(repository, tag) for an image in this account's ECR registry in this region; None for
    any other registry (sdctl cannot look into those)."""
    prefix = registry(account, region) + "/"
    if not uri.startswith(prefix):
        return None
    rest = uri[len(prefix):]
    repo, _, tag = rest.rpartition(":") if ":" in rest.rsplit("/", 1)[-1] else (rest, "", "latest")
    return repo, tag

@dataclass(frozen=True)
class ImageBuild:
    key: str          # agent | runtime
    repository: str   # <stack>/<image>
    dockerfile: str
    uri: str          # <registry>/<repository>:<tag>


def plan(stack: str, account: str, region: str, *, only: list[str] | None = None,
         tag: str = __version__) -> list[ImageBuild]:
    """The images to build and where they go. Pure."""
    keys = [ALIASES.get(k, k) for k in (only or list(IMAGES))]
    unknown = [k for k in keys if k not in IMAGES]
    if unknown:
        raise UsageError(f"no image named {unknown[0]!r}", hint=f"images: {', '.join(IMAGES)}")
    reg = registry(account, region)
    return [ImageBuild(k, repository_name(stack, IMAGES[k][0]), IMAGES[k][1],
                       f"{reg}/{repository_name(stack, IMAGES[k][0])}:{tag}") for k in dict.fromkeys(keys)]


def source_root() -> Path:
    root = Path(__file__).resolve().parent.parent
    if not (root / "docker" / "agent.Dockerfile").is_file():
        raise SdctlError("the image recipes (docker/) are not in this installation",
                         hint="run `sdctl images publish` from a checkout of the sdctl repository")
    return root


def source_zip(root: Path) -> bytes:
    """The build context as a zip whose bytes depend only on the files' paths and contents."""
    files = []
    for name in SOURCE:
        path = root / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                      and not p.name.endswith((".pyc", ".part"))]
    from sdctl.aws.artifacts import deterministic_zip

    return deterministic_zip({p.relative_to(root).as_posix(): p.read_bytes() for p in files})


def source_key(data: bytes) -> str:
    return f"images/source-{hashlib.sha256(data).hexdigest()[:16]}.zip"


def local_builder(which: Callable[[str], str | None] = shutil.which) -> str | None:
    """The first of docker, podman, finch whose engine answers (a client alone is not enough)."""
    for name in BUILDERS:
        exe = which(name)
        if exe and subprocess.run([exe, "info"], capture_output=True, timeout=30).returncode == 0:
            return exe
    return None


# -- executors ------------------------------------------------------------------------------------
def missing_images(ecr, uris: list[str], account: str, region: str) -> list[str]:
    """Those of `uris` that live in this account's ECR and are not there (DescribeImages)."""
    missing = []
    for uri in dict.fromkeys(uris):
        ref = ecr_reference(uri, account, region)
        if ref is None:
            continue
        repo, tag = ref
        try:
            ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": tag}])
        except ecr.exceptions.ImageNotFoundException:
            missing.append(uri)
        except ecr.exceptions.RepositoryNotFoundException:
            missing.append(uri)
    return missing


def publish_local(exe: str, builds: list[ImageBuild], *, ecr, root: Path, on_line: Callable[[str], None]) -> None:
    import base64

    auth = ecr.get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)
    registry = auth["proxyEndpoint"].removeprefix("https://")
    _run([exe, "login", "--username", user, "--password-stdin", registry], on_line, stdin=password)
    for b in builds:
        _run([exe, "build", "-f", b.dockerfile, "-t", b.uri, "."], on_line, cwd=root)
        _run([exe, "push", b.uri], on_line)


def _run(argv: list[str], on_line: Callable[[str], None], *, cwd: Path | None = None, stdin: str | None = None):
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE if stdin else None, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if stdin:
        proc.stdin.write(stdin)
        proc.stdin.close()
    for line in proc.stdout:
        on_line(line.rstrip())
    if proc.wait() != 0:
        shown = " ".join(a for a in argv[:3])
        raise SdctlError(f"`{shown} …` failed (exit {proc.returncode})", hint="see the lines above")


def publish_codebuild(builds: list[ImageBuild], *, codebuild, logs, bucket: str, key: str, project: str,
                      tag: str, on_phase: Callable[[str, str], None], on_line: Callable[[str], None],
                      poll: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> dict:
    """Start the build on the uploaded source; follow its phases and log until it ends."""
    try:
        build = codebuild.start_build(
            projectName=project, sourceTypeOverride="S3", sourceLocationOverride=f"{bucket}/{key}",
            environmentVariablesOverride=[
                {"name": "TAG", "value": tag, "type": "PLAINTEXT"},
                {"name": "IMAGES", "value": " ".join(f"{b.dockerfile}={b.uri}" for b in builds),
                 "type": "PLAINTEXT"}])["build"]
    except codebuild.exceptions.ResourceNotFoundException:
        raise SdctlError(f"no CodeBuild project {project}", hint="deploy the stack first (`sdctl deploy`)") from None
    build_id, seen, token = build["id"], None, None
    while True:
        [build] = codebuild.batch_get_builds(ids=[build_id])["builds"]
        if build.get("currentPhase") != seen:
            seen = build.get("currentPhase")
            on_phase(seen or "?", build.get("buildStatus", "?"))
        token = _follow_log(logs, build, token, on_line)
        if build.get("buildStatus") != "IN_PROGRESS":
            break
        sleep(poll)
    if build["buildStatus"] != "SUCCEEDED":
        failed = next((p for p in build.get("phases", []) if p.get("phaseStatus") not in (None, "SUCCEEDED")), {})
        reason = "; ".join(c.get("message", "") for c in failed.get("contexts", []) if c.get("message"))
        raise SdctlError(f"image build {build_id} ended {build['buildStatus']} in phase "
                         f"{failed.get('phaseType', '?')}: {reason or 'see the build log'}",
                         hint=f"the full log is in CloudWatch Logs, group /aws/codebuild/{project}")
    return {"build_id": build_id, "status": build["buildStatus"]}


def _follow_log(logs, build: dict, token: str | None, on_line: Callable[[str], None]) -> str | None:
    where = build.get("logs") or {}
    if not where.get("groupName") or not where.get("streamName"):
        return token
    kwargs = {"logGroupName": where["groupName"], "logStreamName": where["streamName"], "startFromHead": True}
    if token:
        kwargs["nextToken"] = token
    try:
        page = logs.get_log_events(**kwargs)
    except Exception:  # the stream appears a little after the build starts
        return token
    for event in page.get("events", []):
        on_line(event["message"].rstrip())
    return page.get("nextForwardToken", token)


BUILDSPEC = """version: 0.2
phases:
  pre_build:
    commands:
      - REGISTRY=${AWS_ACCOUNT_ID}.dkr.ecr.${AWS_REGION}.amazonaws.com
      - aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "$REGISTRY"
  build:
    commands:
      - for pair in $IMAGES; do docker build -f "${pair%%=*}" -t "${pair#*=}" . ; done
  post_build:
    commands:
      - test "$CODEBUILD_BUILD_SUCCEEDING" = 1
      - for pair in $IMAGES; do docker push "${pair#*=}" ; done
"""
