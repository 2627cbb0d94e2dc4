"""`sdctl images publish`: build the images and push them to the stack's ECR repositories,
with a local docker/podman/finch when one runs, otherwise with the stack's CodeBuild project in
the user's own account (no local Docker needed); and check that a release's images are there.
What to build, and where, comes from sdctl/builders/images.py.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sdctl.builders.images import BUILDERS, SOURCE, ImageBuild, ecr_reference
from sdctl.contracts.events import Event, Report, ignore
from sdctl.errors import SdctlError


def source_root() -> Path:
    root = Path(__file__).resolve().parents[2]
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
    from sdctl.execute.aws.artifacts import deterministic_zip

    return deterministic_zip({p.relative_to(root).as_posix(): p.read_bytes() for p in files})


def local_builder(which: Callable[[str], str | None] = shutil.which) -> str | None:
    """The first of docker, podman, finch whose engine answers (a client alone is not enough)."""
    for name in BUILDERS:
        exe = which(name)
        if exe and subprocess.run([exe, "info"], capture_output=True, timeout=30).returncode == 0:
            return exe
    return None


def missing_images(ecr, uris: list[str], account: str, region: str) -> list[str]:
    """Those of `uris` that live in this account's ECR and are not there (DescribeImages)."""
    missing = []
    for uri in dict.fromkeys(uris):
        ref = ecr_reference(uri, account, region)
        if ref is None:
            continue
        repo, tag = ref
        try:
            ecr.describe_images(repositoryName=repo, imageIds=[
                {"imageDigest": tag} if tag.startswith("sha256:") else {"imageTag": tag}])
        except ecr.exceptions.ImageNotFoundException:
            missing.append(uri)
        except ecr.exceptions.RepositoryNotFoundException:
            missing.append(uri)
    return missing


def publish_local(exe: str, builds: list[ImageBuild], *, ecr, root: Path, report: Report = ignore) -> None:
    import base64

    auth = ecr.get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)
    registry = auth["proxyEndpoint"].removeprefix("https://")
    _run([exe, "login", "--username", user, "--password-stdin", registry], "registry", report, stdin=password)
    for b in builds:
        report(Event(f"image:{b.uri}", f"{exe} build -f {b.dockerfile}"))
        _run([exe, "build", "-f", b.dockerfile, "-t", b.uri, "."], f"image:{b.uri}", report, cwd=root)
        report(Event(f"image:{b.uri}", f"{exe} push {b.uri}"))
        _run([exe, "push", b.uri], f"image:{b.uri}", report)
        report(Event(f"image:{b.uri}", "pushed", "ok", "pushed"))


def _run(argv: list[str], source: str, report: Report, *, cwd: Path | None = None, stdin: str | None = None):
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE if stdin else None, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if stdin:
        proc.stdin.write(stdin)
        proc.stdin.close()
    for line in proc.stdout:
        report(Event(source, line.rstrip(), "detail"))
    if proc.wait() != 0:
        shown = " ".join(a for a in argv[:3])
        raise SdctlError(f"`{shown} …` failed (exit {proc.returncode})", hint="see the lines above")


def publish_codebuild(builds: list[ImageBuild], *, codebuild, logs, bucket: str, key: str, project: str,
                      tag: str, report: Report = ignore,
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
            state = build.get("buildStatus", "?")
            report(Event(f"build:{build_id}", f"build {state.lower()}: {(seen or '?').lower()}", "progress", state,
                         {"phase": seen}))
        token = _follow_log(logs, build, token, f"build:{build_id}", report)
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


def _follow_log(logs, build: dict, token: str | None, source: str, report: Report) -> str | None:
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
        report(Event(source, event["message"].rstrip(), "detail"))
    return page.get("nextForwardToken", token)


