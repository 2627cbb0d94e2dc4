"""The images sdctl builds (the queue agent and a runtime image per runtime type), their
repositories, tags and build spec: what `sdctl images publish` builds and what a release
runs. Pure; the builders themselves are in sdctl/execute/publish.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sdctl import __version__
from sdctl.contracts.runtimes import kinds
from sdctl.errors import UsageError

#: Image key -> (repository under <stack>/, recipe). Runtime images are keyed by runtime type:
#: each type sdctl builds an image for says its recipe (sdctl/contracts/runtimes).
IMAGES = {"agent": ("queue-agent", "docker/agent.Dockerfile"),
          **{k.name: (k.image_name, k.recipe) for k in kinds().values() if k.recipe}}
#: Older names still accepted by --only: `runtime` is sdctl's own runtime's image.
ALIASES = {"runtime": next(k.name for k in kinds().values() if k.recipe == "docker/runtime.Dockerfile")}
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
    if image is None and rt_type not in IMAGES:
        raise UsageError(f"a {rt_type} runtime runs the user's own image: set its `image`")
    return image or f"{registry(account, region)}/{repository_name(stack, IMAGES[rt_type][0])}:{tag}"


def agent_image(stack: str, account: str, region: str, tag: str) -> str:
    return f"{registry(account, region)}/{repository_name(stack, IMAGES['agent'][0])}:{tag}"


def ecr_reference(uri: str, account: str, region: str) -> tuple[str, str] | None:
    """(repository, tag) for an image in this account's ECR registry in this region, the tag
    being `sha256:...` for an image named by its digest (`repo@sha256:...`, as `cog push`
    prints); None for any other registry (sdctl cannot look into those)."""
    prefix = registry(account, region) + "/"
    if not uri.startswith(prefix):
        return None
    rest = uri[len(prefix):]
    if "@" in rest:
        repo, _, digest = rest.partition("@")
        return repo, digest
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


def source_key(data: bytes) -> str:
    return f"images/source-{hashlib.sha256(data).hexdigest()[:16]}.zip"


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
