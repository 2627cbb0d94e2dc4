"""Talk to a deployed (or local) image service: submit tasks, wait for results, download."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from sdctl.contracts.events import Event, Report, ignore
from sdctl.contracts.tasks import result_key
from sdctl.errors import ApiError, SdctlError, TaskFailed, WaitTimeout


@dataclass
class Target:
    """Where the API, the output bucket, the task store and the queues are, and how to reach them."""

    kind: str
    api_url: str
    api_key: str
    bucket: str
    prefix: str
    runtimes: dict[str, str]
    client_factory: Callable[[str], object] = field(repr=False)
    tasks_table: str | None = None
    queues: dict[str, dict[str, str]] = field(default_factory=dict)  # runtime -> {queue_url, dead_letter_queue_url}
    webhooks: dict[str, str] = field(default_factory=dict)  # queue_url, dead_letter_queue_url, secret_arn
    stack: str = ""
    api_id: str | None = None  # the REST API (on AWS; the local gateway has none)
    stage: str | None = None
    _clients: dict = field(default_factory=dict, repr=False)

    def client(self, name: str):
        if name not in self._clients:
            self._clients[name] = self.client_factory(name)
        return self._clients[name]

    def s3(self):
        return self.client("s3")

    def api(self) -> ImageApi:
        return ImageApi(self.api_url, self.api_key)

    @property
    def flags(self) -> str:
        """The CLI flags that reach this target again, for hints (" --local" or "")."""
        return " --local" if self.kind == "local" else ""

    def require_webhooks(self) -> dict[str, str]:
        if not self.webhooks.get("queue_url"):
            raise SdctlError("this deployment has no webhook delivery",
                             hint="redeploy with this sdctl version (`sdctl deploy`), or restart the local stack")
        return self.webhooks

    def runtime(self, name: str | None) -> str:
        if name is None:
            return next(iter(self.runtimes))
        if name not in self.runtimes:
            from sdctl.errors import UsageError

            raise UsageError(f"no runtime named {name!r}", hint=f"available: {', '.join(self.runtimes)}")
        return name


def local_target() -> Target:
    from sdctl.execute.local import state as st
    from sdctl.execute.local.stack import local_clients

    state = st.running()
    res = state["resources"]
    clients = {}

    def factory(name: str):
        if name not in clients:
            creds = (state.get("credentials") or {}).get("operator")
            clients.update(local_clients(state["aws_url"], state["region"], creds, services=(name,)))
        return clients[name]

    return Target(
        kind="local", api_url=state["gateway_url"], api_key=state["api_key"], bucket=res["bucket"],
        prefix=res["prefix"], runtimes={n: r["type"] for n, r in res["runtimes"].items()},
        client_factory=factory, tasks_table=res.get("tasks_table"),
        queues={n: {"queue_url": r["queue_url"], "dead_letter_queue_url": r["dead_letter_queue_url"],
                    "lanes": {p: {"queue_url": lane["queue_url"], "dead_letter_queue_url": lane["dead_letter_queue_url"]}
                              for p, lane in (r.get("lanes") or {}).items()}}
                for n, r in res["runtimes"].items()},
        webhooks={k: v for k, v in (res.get("webhooks") or {}).items()
                  if k in ("queue_url", "dead_letter_queue_url", "secret_arn")},
        stack=state.get("stack", ""))


def resolve_target(local: bool, *, config=None, region: str | None = None, profile: str | None = None) -> Target:
    """The local stack, or the deployed one named by the config (endpoint and key from its outputs)."""
    if local:
        return local_target()
    from sdctl.config import load
    from sdctl.execute.aws.session import connect

    try:
        cfg = load(config)
        return aws_target(cfg, connect(region=region, profile=profile, config_region=cfg.region))
    except SdctlError as e:
        local_running = _local_stack_running()
        if local_running and "--local" not in (e.hint or ""):
            e.hint = (f"a local stack is running here ({local_running}): add --local, or set SDCTL_TARGET=local"
                      + (f"\n{e.hint}" if e.hint else ""))
        raise


def _local_stack_running() -> str | None:
    """The local stack's gateway URL if one runs from this folder (the user may have meant it)."""
    from sdctl.execute.local import state as st

    try:
        state = st.read()
    except SdctlError:
        return None
    if state and st.pid_alive(state.get("supervisor_pid")):
        return state.get("gateway_url") or "starting"
    return None


def aws_target(cfg, aws) -> Target:
    """The deployed API and bucket, from the edge stack's outputs."""
    from sdctl.builders.cfn.stacks import stack_name
    from sdctl.builders.names import dead_letter_url_key, queue_url_key
    from sdctl.contracts.tasks import PRIORITIES
    from sdctl.execute import deploy
    from sdctl.execute.aws.cloudformation import Deployer

    # The outputs, read by the stack's name: an operate command builds no template and no zip.
    edge = stack_name(cfg, "edge")
    outs = Deployer(aws.client("cloudformation")).outputs(edge)
    if "ApiEndpoint" not in outs or "ApiKeyId" not in outs:
        raise SdctlError(f"stack {edge} is not deployed (or has no API outputs)",
                         hint="run `sdctl deploy` first, or use --local")
    queues = {rt.name: {"queue_url": outs.get(queue_url_key(rt.name), ""),
                        "dead_letter_queue_url": outs.get(dead_letter_url_key(rt.name), ""),
                        "lanes": {p: {"queue_url": outs[queue_url_key(rt.name, p)],
                                      "dead_letter_queue_url": outs.get(dead_letter_url_key(rt.name, p), "")}
                                  for p in PRIORITIES if queue_url_key(rt.name, p) in outs}}
              for rt in cfg.runtimes}
    return Target(kind="aws", api_url=outs["ApiEndpoint"], api_key=deploy.api_key_value(aws, outs["ApiKeyId"]),
                  bucket=outs["OutputBucket"], prefix=cfg.output.prefix,
                  runtimes={rt.name: rt.type for rt in cfg.runtimes}, client_factory=aws.client,
                  tasks_table=outs.get("TasksTable"), queues=queues,
                  webhooks={"queue_url": outs.get("WebhooksQueueUrl", ""),
                            "dead_letter_queue_url": outs.get("WebhooksDeadLetterQueueUrl", ""),
                            "secret_arn": outs.get("WebhookSecretArn", "")},
                  stack=cfg.stack_name, api_id=outs.get("ApiId"), stage=cfg.api.stage_name)


def new_task_id() -> str:
    return uuid.uuid4().hex


def text_to_image(prompt: str, *, runtime: str, task_id: str | None = None, negative: str = "", steps: int = 20,
                  width: int = 512, height: int = 512, seed: int = -1, count: int = 1,
                  sampler: str | None = None, prefix: str | None = None, context: object = "") -> dict:
    """A v1alpha2 text-to-image request body (content is AUTOMATIC1111's txt2img payload)."""
    content = {"prompt": prompt, "negative_prompt": negative, "steps": steps, "width": width, "height": height,
               "seed": seed, "batch_size": count, "n_iter": 1}
    if sampler:
        content["sampler_name"] = sampler
    meta = {"id": task_id or new_task_id(), "runtime": runtime, "tasktype": "text-to-image", "context": context}
    if prefix:
        meta["prefix"] = prefix
    return {"task": {"metadata": meta, "content": content}}


class ImageApi:
    """The image API: submit a task, read its record, cancel it."""

    def __init__(self, url: str, api_key: str, *, timeout: float = 30):
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=timeout, headers={"x-api-key": api_key})

    def submit(self, body: dict) -> dict:
        return self._call("POST", "/v1alpha2", json=body)

    def task(self, task_id: str) -> dict:
        return self._call("GET", f"/v1alpha2/tasks/{check_id(task_id)}")

    def cancel(self, task_id: str) -> dict:
        return self._call("DELETE", f"/v1alpha2/tasks/{check_id(task_id)}")

    def _call(self, method: str, path: str, **kw) -> dict:
        try:
            r = self.http.request(method, f"{self.url}{path}", **kw)
        except httpx.HTTPError as e:
            raise SdctlError(f"cannot reach the API at {self.url}: {e}",
                             hint="check the stack is up (`sdctl local status` or `sdctl status`)") from None
        return _answer(r)


def check_id(task_id: str) -> str:
    """A task id as the wire contract allows it (letters, digits, '-' and '_', at most 64), checked
    here: an id such as ../x would otherwise be read by the server as another route."""
    from sdctl.contracts.tasks import ID_PATTERN
    from sdctl.errors import UsageError

    if not ID_PATTERN.match(task_id or ""):
        shown = task_id if len(task_id) <= 80 else task_id[:80] + "..."
        raise UsageError(f"{shown!r} is not a task id", hint="ids are 1-64 letters, digits, '-' and '_' "
                                                              "(`sdctl tasks list` shows them)")
    return task_id


def _answer(r: httpx.Response) -> dict:
    try:
        data = r.json()
    except ValueError:
        data = {"message": r.text[:300]}
    if not 200 <= r.status_code < 300:  # 202: a running task's cancel was accepted
        message = data.get("message", r.reason_phrase) if isinstance(data, dict) else str(data)
        hint = {403: "check the API key", 429: "the API is throttling; slow down or raise api.throttle"}.get(
            r.status_code)
        raise ApiError(r.status_code, message, body=data, hint=hint)
    return data


def parse_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise SdctlError(f"not an s3:// URL: {url}")
    bucket, key = url[5:].split("/", 1)
    return bucket, key


def read_result(s3, bucket: str, prefix: str, task_id: str) -> dict | None:
    try:
        obj = s3.get_object(Bucket=bucket, Key=result_key(prefix, task_id))
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(obj["Body"].read())


def wait_result(s3, bucket: str, prefix: str, task_id: str, *, timeout: float,
                report: Report = ignore, flags: str = "") -> dict:
    """Poll for the task's result object; return it once it exists. `flags` are the CLI flags
    that reach the same target again (`--local`), for the hint."""
    start = time.monotonic()
    delay = 0.05
    while True:
        doc = read_result(s3, bucket, prefix, task_id)
        if doc is not None:
            return doc
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            raise WaitTimeout(f"task {task_id} has no result after {timeout:.0f}s; it is still queued or running",
                              hint=f"fetch it later with `sdctl fetch {task_id}{flags}`")
        report(Event(f"task:{task_id}", f"waiting… {elapsed:.0f}s", "progress", "waiting",
                     {"elapsed": round(elapsed, 1)}))
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def download(s3, urls: list[str], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for url in urls:
        bucket, key = parse_s3_url(url)
        path = out_dir / key.rsplit("/", 1)[-1]
        tmp = path.with_suffix(path.suffix + ".part")
        s3.download_file(bucket, key, str(tmp))
        tmp.replace(path)
        paths.append(path)
    return paths


def finished(doc: dict) -> dict:
    """Raise TaskFailed for a failed result document; return it otherwise."""
    if doc.get("status") != "completed":
        err = doc.get("error") or {}
        raise TaskFailed(doc.get("id", "?"), f"{err.get('code', 'failed')}: {err.get('message', 'no reason given')}",
                         result=doc)
    return doc
