"""Runtime adapters: turn a task into runtime calls and the runtime's answer into images.
Failures are classified (sdctl/agent/failures.py) so the agent knows what to do with the
message."""

from __future__ import annotations

import base64
import binascii
import json

import httpx

from sdctl.agent.adapter import Adapter
from sdctl.agent.failures import PermanentFailure, RuntimeOutput, TransientFailure


class A1111Adapter(Adapter):
    """AUTOMATIC1111 `/sdapi/v1/` API: sdwebui and sdctl's diffusers runtime."""

    ready_path = "/sdapi/v1/options"
    interrupt_path = "/sdapi/v1/interrupt"

    ENDPOINTS = {
        "text-to-image": "txt2img",
        "image-to-image": "img2img",
        "extra-single-image": "extra-single-image",
    }

    def __init__(self, base_url: str, *, timeout: float = 600, dynamic_model: bool = False,
                 client: httpx.Client | None = None, batches: bool = False):
        root = base_url.rstrip("/")
        if root.endswith("/sdapi/v1"):
            root = root[: -len("/sdapi/v1")]
        super().__init__(root, client or httpx.Client(base_url=root, timeout=httpx.Timeout(timeout, connect=5.0)))
        # sdctl's diffusers runtime also takes several tasks in one call (/sdctl/v1/txt2img-batch).
        self.batches = batches
        self.dynamic_model = dynamic_model

    @classmethod
    def for_kind(cls, kind, base_url: str, *, timeout: float, settings=None) -> A1111Adapter:
        return cls(base_url, timeout=timeout, dynamic_model=bool(settings and settings.dynamic_model),
                   batches=kind.batches)

    def progress(self) -> dict | None:
        """Where the call in flight is (`/sdapi/v1/progress`): step k of N, percent, ETA; None
        when the runtime says nothing useful."""
        try:
            body = self.http.get("/sdapi/v1/progress", params={"skip_current_image": "true"}, timeout=2).json()
            state = body.get("state") or {}
            steps = int(state.get("sampling_steps") or 0)
            if steps <= 0:
                return None
            return {"step": int(state.get("sampling_step") or 0), "steps": steps,
                    "percent": round(float(body.get("progress") or 0) * 100, 1),
                    "eta_seconds": round(float(body.get("eta_relative") or 0), 1)}
        except (httpx.HTTPError, ValueError, TypeError, AttributeError):
            return None

    def run(self, tasktype: str, content: dict, *, task_id: str | None = None) -> RuntimeOutput:
        endpoint = self.ENDPOINTS.get(tasktype)
        if endpoint is None:
            raise PermanentFailure("unsupported-tasktype", f"tasktype {tasktype!r} is not supported by this runtime",
                                   field="task.metadata.tasktype")
        payload = dict(content)
        if tasktype in ("text-to-image", "image-to-image"):
            self._ensure_model(_requested_model(payload))
        scripts = payload.get("alwayson_scripts")
        if isinstance(scripts, dict):
            # v1alpha1 compatibility: routing keys once lived in alwayson_scripts.
            scripts = {k: v for k, v in scripts.items() if k not in ("task", "id_task", "uid", "sd_model_checkpoint",
                                                                     "image_link", "save_dir", "sd_vae",
                                                                     "override_settings")}
            payload["alwayson_scripts"] = scripts
        body = self._post(f"/sdapi/v1/{endpoint}", payload)
        if "images" in body:
            return _output(body)
        if "image" in body:
            return RuntimeOutput(images=[_b64decode(body["image"], "image")],
                                 info={"html_info": body.get("html_info")})
        raise TransientFailure("runtime-bad-response", "the runtime's answer holds no images")

    def run_many(self, contents: list[dict]) -> list[RuntimeOutput]:
        """Several text-to-image tasks that differ only in prompt, negative prompt and seed, in
        one runtime call; one output per task, in order."""
        body = self._post("/sdctl/v1/txt2img-batch", {"requests": contents})
        results = body.get("results")
        if not isinstance(results, list) or len(results) != len(contents) or \
                not all(isinstance(r, dict) and "images" in r for r in results):
            raise TransientFailure("runtime-bad-response", "the runtime's batch answer does not match the request")
        return [_output(r) for r in results]

    def _ensure_model(self, wanted: str | None) -> None:
        """Switch to the requested model if it is allowed and listed; never render with another."""
        if not wanted:
            return
        current = str(self._get("/sdapi/v1/options").get("sd_model_checkpoint") or "")
        if _same_model(wanted, current):
            return
        if not self.dynamic_model:
            raise PermanentFailure("model-switch-disabled",
                                   f"the task asks for model {wanted!r} but this runtime serves {current!r} "
                                   "and dynamicModel is off", field="task.content.override_settings")
        models = self._models()
        match = next((m for m in models if _same_model(wanted, m)), None)
        if match is None:
            self._post("/sdapi/v1/refresh-checkpoints", {}, expect_object=False)
            models = self._models()
            match = next((m for m in models if _same_model(wanted, m)), None)
        if match is None:
            raise PermanentFailure("unknown-model", f"model {wanted!r} is not one of this runtime's: "
                                   f"{', '.join(models) or 'none'}", field="task.content.override_settings")
        self._post("/sdapi/v1/options", {"sd_model_checkpoint": match}, expect_object=False)

    def _models(self) -> list[str]:
        body = self._get("/sdapi/v1/sd-models", expect_object=False)
        return [m.get("title") or m.get("model_name") for m in body if isinstance(m, dict)] if isinstance(body, list) else []

    def _get(self, path: str, expect_object: bool = True):
        try:
            r = self.http.get(path, timeout=30)
        except httpx.HTTPError as e:
            raise TransientFailure("runtime-unavailable", f"cannot reach the runtime: {e}") from None
        if r.status_code >= 400:
            raise TransientFailure("runtime-error", f"runtime answered {r.status_code} for {path}")
        body = r.json()
        if expect_object and not isinstance(body, dict):
            raise TransientFailure("runtime-bad-response", f"{path} did not answer an object")
        return body

    def _post(self, path: str, payload: dict, expect_object: bool = True) -> dict:
        try:
            r = self.http.post(path, json=payload)
        except httpx.TimeoutException:
            self.interrupt()
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
        if not expect_object:
            return body
        if not isinstance(body, dict):
            raise TransientFailure("runtime-bad-response", "the runtime's answer is not a JSON object")
        return body



def _output(body: dict) -> RuntimeOutput:
    """A txt2img/img2img answer: images from index_of_first_image on (A1111 puts a grid first)."""
    images = [_b64decode(i, "images") for i in body.get("images") or []]
    info = body.get("info")
    if isinstance(info, str):
        try:
            info = json.loads(info)
        except ValueError:
            info = {"text": info}
    info = info if isinstance(info, dict) else {}
    first = info.get("index_of_first_image", 0)
    return RuntimeOutput(images=images[first if isinstance(first, int) else 0:],
                         parameters=body.get("parameters") or {}, info=info, model=info.get("sd_model_name"))


def _requested_model(payload: dict) -> str | None:
    """The model a task asks for: override_settings, or the v1alpha1 place in alwayson_scripts."""
    for holder in (payload.get("override_settings"), payload.get("alwayson_scripts")):
        if isinstance(holder, dict) and holder.get("sd_model_checkpoint"):
            return str(holder["sd_model_checkpoint"])
    return None


def _same_model(a: str, b: str) -> bool:
    """'v1-5.safetensors [6ce0161689]', 'v1-5.safetensors' and 'v1-5' name the same model."""
    def norm(x: str) -> str:
        x = x.split(" [")[0].strip()
        return x.rsplit(".", 1)[0] if x.endswith((".safetensors", ".ckpt")) else x
    return bool(a) and norm(a) == norm(b)


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


def adapter_for(runtime_type: str, base_url: str, *, timeout: float, settings=None):
    """The adapter the type's module names (sdctl/contracts/runtimes), made for this runtime."""
    import importlib

    from sdctl.contracts.runtimes import kind

    try:
        k = kind(runtime_type)
    except ValueError as e:
        raise PermanentFailure("unsupported-runtime", str(e)) from None
    module, _, name = k.adapter.partition(":")
    return getattr(importlib.import_module(module), name).for_kind(k, base_url, timeout=timeout, settings=settings)
