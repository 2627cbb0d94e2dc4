"""Runtime adapters: turn a task into runtime calls and the runtime's answer into images.

Failures are classified so the agent knows what to do with the message:
TransientFailure (retry later: timeouts, 5xx, connection refused) and PermanentFailure
(never retry: the runtime rejected the request, unknown model, bad input).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

import httpx


class TaskFailure(Exception):
    retry = False

    def __init__(self, code: str, message: str, *, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        d = {"code": self.code, "message": self.message}
        if self.field:
            d["field"] = self.field
        return d


class TransientFailure(TaskFailure):
    retry = True


class PermanentFailure(TaskFailure):
    retry = False


@dataclass
class RuntimeOutput:
    images: list[bytes]
    parameters: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    model: str | None = None


class A1111Adapter:
    """AUTOMATIC1111 `/sdapi/v1/` API: sdwebui and sdctl's diffusers runtime."""

    ENDPOINTS = {
        "text-to-image": "txt2img",
        "image-to-image": "img2img",
        "extra-single-image": "extra-single-image",
    }

    def __init__(self, base_url: str, *, timeout: float = 600, dynamic_model: bool = False,
                 client: httpx.Client | None = None):
        root = base_url.rstrip("/")
        if root.endswith("/sdapi/v1"):
            root = root[: -len("/sdapi/v1")]
        self.root = root
        self.dynamic_model = dynamic_model
        self.http = client or httpx.Client(
            base_url=root, timeout=httpx.Timeout(timeout, connect=5.0))

    def close(self) -> None:
        self.http.close()

    def ready(self) -> bool:
        try:
            return self.http.get("/sdapi/v1/options", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def run(self, tasktype: str, content: dict) -> RuntimeOutput:
        endpoint = self.ENDPOINTS.get(tasktype)
        if endpoint is None:
            raise PermanentFailure("unsupported-tasktype", f"tasktype {tasktype!r} is not supported by this runtime",
                                   field="task.metadata.tasktype")
        payload = dict(content)
        scripts = payload.get("alwayson_scripts")
        if isinstance(scripts, dict):
            # v1alpha1 compatibility: routing keys once lived in alwayson_scripts.
            scripts = {k: v for k, v in scripts.items() if k not in ("task", "id_task", "uid", "sd_model_checkpoint",
                                                                     "image_link", "save_dir", "sd_vae",
                                                                     "override_settings")}
            payload["alwayson_scripts"] = scripts
        body = self._post(f"/sdapi/v1/{endpoint}", payload)
        if "images" in body:
            images = [_b64decode(i, "images") for i in body.get("images") or []]
            info = body.get("info")
            if isinstance(info, str):
                try:
                    info = json.loads(info)
                except ValueError:
                    info = {"text": info}
            first = (info or {}).get("index_of_first_image", 0) if isinstance(info, dict) else 0
            return RuntimeOutput(images=images[first:], parameters=body.get("parameters") or {},
                                 info=info if isinstance(info, dict) else {},
                                 model=(info or {}).get("sd_model_name") if isinstance(info, dict) else None)
        if "image" in body:
            return RuntimeOutput(images=[_b64decode(body["image"], "image")],
                                 info={"html_info": body.get("html_info")})
        raise TransientFailure("runtime-bad-response", "the runtime's answer holds no images")

    def _post(self, path: str, payload: dict) -> dict:
        try:
            r = self.http.post(path, json=payload)
        except httpx.TimeoutException:
            self._interrupt()
            raise TransientFailure("runtime-timeout", f"the runtime did not answer {path} in time") from None
        except httpx.HTTPError as e:
            raise TransientFailure("runtime-unavailable", f"cannot reach the runtime: {e}") from None
        if r.status_code >= 500:
            raise TransientFailure("runtime-error", f"runtime answered {r.status_code}: {_detail(r)}")
        if r.status_code >= 400:
            raise PermanentFailure("runtime-rejected", f"runtime answered {r.status_code}: {_detail(r)}",
                                   field="task.content")
        try:
            body = r.json()
        except ValueError:
            raise TransientFailure("runtime-bad-response", "the runtime's answer is not JSON") from None
        if not isinstance(body, dict):
            raise TransientFailure("runtime-bad-response", "the runtime's answer is not a JSON object")
        return body

    def _interrupt(self) -> None:
        try:
            self.http.post("/sdapi/v1/interrupt", timeout=5)
        except httpx.HTTPError:
            pass


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:500]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("error") or body)[:500]
    return str(body)[:500]


def _b64decode(data, field: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise TransientFailure("runtime-bad-response", f"the runtime's {field} are not base64") from None


def adapter_for(runtime_type: str, base_url: str, *, timeout: float, dynamic_model: bool = False):
    if runtime_type in ("sdwebui", "diffusers"):
        return A1111Adapter(base_url, timeout=timeout, dynamic_model=dynamic_model)
    raise PermanentFailure("unsupported-runtime", f"runtime type {runtime_type!r} has no adapter yet")
