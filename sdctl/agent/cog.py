"""The Cog adapter: any model packaged with Cog (replicate/cog), through the HTTP API its
docs/http.md documents.

- Ready: GET /health-check says READY (or BUSY). SETUP_FAILED is for good: RuntimeUnusable,
  with the end of the setup's logs. On the first READY the model's GET /openapi.json is read and
  the `inputs` mapping checked against it (an input the model lacks, or a required one the
  mapping leaves out, is RuntimeUnusable naming it); a server without a schema says "OpenAPI
  schema not available", and the check is skipped and said so in the log.
- Run: PUT /predictions/{task id}, so a redelivered task's second PUT meets the prediction
  already running (Cog answers 202 with it) instead of starting another. A `text-to-image`
  task is mapped to the model's inputs (the type's defaults, then the config's `inputs`, each
  default kept only where the model has that input); a `predict` task's content is the input.
- Progress: the prediction's `logs` webhook events (to a receiver on 127.0.0.1, in the pod),
  whose last "k/N" (a sampler's counter, tqdm's too) is step k of N.
- Interrupt: POST /predictions/{id}/cancel. Outputs: files as data URIs (or URLs, fetched under
  the task inputs' rules) become images with their media type; anything else is the `output`
  of the result document; Cog's `metrics` go beside sdctl's timings.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from sdctl.agent.adapter import Adapter
from sdctl.agent.failures import PermanentFailure, RuntimeOutput, RuntimeUnusable, TransientFailure
from sdctl.contracts.runtimes import mapping

log = logging.getLogger("sdctl.agent")
STEP = re.compile(r"(\d+)\s*/\s*(\d+)")
DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[^,]*)?,", re.S)


class CogAdapter(Adapter):
    ready_path = "/health-check"

    def __init__(self, base_url: str, *, timeout: float = 600, inputs: dict | None = None, kind=None,
                 fetcher=None, client: httpx.Client | None = None) -> None:
        root = base_url.rstrip("/")
        super().__init__(root, client or httpx.Client(base_url=root, timeout=httpx.Timeout(timeout, connect=5.0)))
        self.explicit = {k: v for k, v in (inputs or {}).items() if v}  # checked strictly
        self.inputs = mapping(kind, inputs) if kind is not None else dict(self.explicit)
        self.fetcher = fetcher
        self.checked = False
        self.current: str | None = None
        self.hooks = Hooks()

    @classmethod
    def for_kind(cls, kind, base_url: str, *, timeout: float, settings=None) -> CogAdapter:
        return cls(base_url, timeout=timeout, inputs=getattr(settings, "inputs", None), kind=kind)

    def ready(self) -> bool:
        try:
            body = self.http.get(self.ready_path, timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return False
        status = body.get("status") if isinstance(body, dict) else None
        if status == "SETUP_FAILED":
            logs = str((body.get("setup") or {}).get("logs") or "").strip().splitlines()
            raise RuntimeUnusable("the Cog model's setup failed (SETUP_FAILED): "
                                  + (" | ".join(logs[-3:]) or "its setup logs are empty"))
        if status not in ("READY", "BUSY"):
            return False
        if not self.checked:
            self.check_schema()
            self.checked = True
        return True

    def check_schema(self) -> None:
        """The mapping against the model's inputs (GET /openapi.json)."""
        try:
            doc = self.http.get("/openapi.json", timeout=10).json()
        except (httpx.HTTPError, ValueError):
            doc = {}
        model = ((doc.get("components") or {}).get("schemas") or {}).get("Input") if isinstance(doc, dict) else None
        if not isinstance(model, dict):
            log.warning("the Cog model serves no OpenAPI schema; its inputs are not checked against `inputs`",
                        extra={"answer": str(doc.get("error") if isinstance(doc, dict) else doc)[:200]})
            return
        has = set(model.get("properties") or {})
        for field, name in sorted(self.explicit.items()):
            if name not in has:
                raise RuntimeUnusable(f"inputs.{field} names {name!r}, an input the model lacks; it has: "
                                      f"{', '.join(sorted(has))}")
        self.inputs = {k: v for k, v in self.inputs.items() if v in has}  # defaults only where they apply
        missing = sorted(set(model.get("required") or []) - set(self.inputs.values()))
        if missing:
            raise RuntimeUnusable(f"the model requires the input {missing[0]!r}, which `inputs` maps no task field to")

    def run(self, tasktype: str, content: dict, *, task_id: str | None = None) -> RuntimeOutput:
        if tasktype == "predict":
            payload = content
        elif tasktype == "text-to-image":
            payload = {name: content[field] for field, name in self.inputs.items()
                       if field in content and not (field == "seed" and content[field] in (-1, None))}
        else:
            raise PermanentFailure("unsupported-tasktype", f"a cog runtime takes text-to-image or predict, not "
                                                           f"{tasktype!r}", field="task.metadata.tasktype")
        prediction = task_id or uuid.uuid4().hex
        self.current = prediction
        try:
            body = self._predict(prediction, payload)
        finally:
            self.current = None
        return self._output(body, payload)

    def _predict(self, prediction: str, payload: dict) -> dict:
        request = {"input": payload, "webhook": self.hooks.url(prediction), "webhook_events_filter": ["logs"]}
        try:
            r = self.http.put(f"/predictions/{prediction}", json=request)
        except httpx.TimeoutException:
            raise TransientFailure("runtime-timeout", "the Cog model did not answer within maxTaskSeconds") from None
        except httpx.HTTPError as e:
            raise TransientFailure("runtime-unavailable", f"cannot reach the Cog model: {e}") from None
        finally:
            self.hooks.forget(prediction)
        if r.status_code == 202:  # another delivery of this task is running it now
            raise TransientFailure("runtime-error", f"prediction {prediction} is already running; this delivery "
                                                    "waits for it")
        if r.status_code == 422:
            raise PermanentFailure("invalid-task", f"the model refused its input: {r.text[:400]}")
        if r.status_code >= 400:
            kind = PermanentFailure if r.status_code < 500 else TransientFailure
            raise kind("runtime-rejected" if r.status_code < 500 else "runtime-error",
                       f"Cog answered {r.status_code}: {r.text[:400]}")
        try:
            body = r.json()
        except ValueError:
            raise TransientFailure("runtime-bad-response", "the Cog model's answer is not JSON") from None
        status = body.get("status")
        if status == "failed":
            raise TransientFailure("runtime-error", f"the model failed: {str(body.get('error'))[:400]}")
        if status == "canceled":
            raise TransientFailure("runtime-interrupted", "the prediction was canceled")
        if status != "succeeded":
            raise TransientFailure("runtime-bad-response", f"the prediction ended {status!r}")
        return body

    def _output(self, body: dict, payload: dict) -> RuntimeOutput:
        images, types, values = [], [], []
        for item in body.get("output") if isinstance(body.get("output"), list) else [body.get("output")]:
            file = self._file(item) if isinstance(item, str) else None
            if file is None:
                values.append(item)
            else:
                images.append(file[0])
                types.append(file[1])
        value = None if not values or values == [None] else (values[0] if len(values) == 1 else values)
        return RuntimeOutput(images=images, media_types=types, parameters=payload,
                             metrics=body.get("metrics") or {}, value=value,
                             info={"seed": payload.get(self.inputs.get("seed", "seed"))})

    def _file(self, item: str) -> tuple[bytes, str] | None:
        match = DATA_URI.match(item)
        if match:
            try:
                data = base64.b64decode(item[match.end():], validate=True)
            except (binascii.Error, ValueError):
                raise TransientFailure("runtime-bad-response", "an output's data URI is not base64") from None
            return data, match.group(1) or "application/octet-stream"
        if item.startswith(("https://", "http://")) and self.fetcher is not None:
            return self.fetcher.fetch(item, "output"), _media_type(item)
        return None

    def progress(self) -> dict | None:
        prediction = self.current
        logs = self.hooks.logs(prediction) if prediction else ""
        found = [(int(a), int(b)) for a, b in STEP.findall(logs) if 0 < int(b) and int(a) <= int(b)]
        if not found:
            return None
        step, steps = found[-1]
        return {"step": step, "steps": steps, "percent": round(100 * step / steps, 1), "eta_seconds": 0.0}

    def interrupt(self) -> None:
        prediction = self.current
        if prediction:
            try:
                self.http.post(f"/predictions/{prediction}/cancel", timeout=5)
            except httpx.HTTPError:
                pass

    def close(self) -> None:
        self.hooks.stop()
        super().close()


def _media_type(url: str) -> str:
    ext = url.split("?")[0].rsplit(".", 1)[-1].lower()
    return {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}.get(
        ext, "application/octet-stream")


class Hooks:
    """Where Cog posts a prediction's webhook events: a server on 127.0.0.1 (the pod's own
    network), started on first use, keeping each running prediction's latest logs."""

    def __init__(self) -> None:
        self._logs: dict[str, str] = {}
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def url(self, prediction: str) -> str:
        with self._lock:
            if self._server is None:
                self._server = ThreadingHTTPServer(("127.0.0.1", 0), _receiver(self._logs))
                threading.Thread(target=self._server.serve_forever, name="cog-webhooks", daemon=True).start()
            self._logs[prediction] = ""
            return f"http://127.0.0.1:{self._server.server_address[1]}/{prediction}"

    def logs(self, prediction: str) -> str:
        return self._logs.get(prediction, "")

    def forget(self, prediction: str) -> None:
        time.sleep(0)  # the receiver may still be writing; a late event finds no entry and is dropped
        self._logs.pop(prediction, None)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _receiver(logs: dict[str, str]):
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            prediction = self.path.strip("/")
            try:
                body = json.loads(self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 1 << 20)))
                if prediction in logs and isinstance(body, dict):
                    logs[prediction] = str(body.get("logs") or "")
            except ValueError:
                pass
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    return Receiver
