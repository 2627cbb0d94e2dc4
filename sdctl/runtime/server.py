"""The AUTOMATIC1111-compatible HTTP API (`/sdapi/v1/...`) over an Engine.

Endpoints: txt2img, img2img, extra-single-image, options (GET/POST), sd-models,
refresh-checkpoints, progress, interrupt, memory, and /internal/ping; plus sdctl's
`/sdctl/v1/txt2img-batch` (several tasks in one pipeline call). Errors come back the
way the webui sends them: {error, detail, body, errors} with status 422, 404 or 500.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import time

from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sdctl.runtime.engine import Engine, RequestError, upscale


def _error(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, "body": "", "errors": detail}, status_code=status)


def _not_json(constant: str):
    raise ValueError(f"{constant} is not a JSON number")


async def _json(request: Request) -> dict:
    """The body as a JSON object. NaN and Infinity, which Python's json reads but JSON does not
    have, are refused here: echoed back in `parameters`, they made the answer itself fail."""
    try:
        body = json.loads(await request.body(), parse_constant=_not_json)
    except RecursionError:
        raise RequestError("the body is nested too deeply") from None
    except ValueError as e:
        detail = str(e) if "is not a JSON number" in str(e) else "the body is not valid JSON"
        raise RequestError(detail) from None
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    return body


def _decode_image(data, field: str) -> Image.Image:
    if not isinstance(data, str) or not data:
        raise RequestError(f"{field} must be a base64-encoded image")
    if data.startswith("data:"):
        data = data.split(",", 1)[-1]
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        image.load()
        return image
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
        raise RequestError(f"{field} is not a valid base64-encoded image") from None


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


class Api:
    """The AUTOMATIC1111-compatible endpoints over one Engine (and sdctl's batch extension)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def title(self) -> str:
        return self.engine.model

    def run(self, fn, *args):
        """Await `fn(*args)` on the engine's torch thread (never on the event loop, never on a
        thread of the server's pool: see Engine)."""
        import asyncio

        return asyncio.wrap_future(self.engine.submit(fn, *args))

    async def txt2img(self, request: Request):
        req = await _json(request)
        images, info = await self.run(self.engine.txt2img, req)
        return JSONResponse({"images": [_b64(i) for i in images], "parameters": req, "info": json.dumps(info)})

    async def txt2img_batch(self, request: Request):
        """sdctl's extension: several tasks' txt2img requests in one pipeline call."""
        body = await _json(request)
        reqs = body.get("requests")
        if not isinstance(reqs, list) or not all(isinstance(r, dict) for r in reqs):
            raise RequestError("requests must be a list of txt2img request objects")
        results = await self.run(self.engine.txt2img_many, reqs)
        return JSONResponse({"results": [
            {"images": [_b64(i) for i in images], "parameters": req, "info": json.dumps(info)}
            for req, (images, info) in zip(reqs, results, strict=True)]})

    async def img2img(self, request: Request):
        req = await _json(request)
        inits = req.get("init_images")
        if not isinstance(inits, list) or not inits:
            raise RequestError("init_images must be a non-empty list of base64 images")
        init = _decode_image(inits[0], "init_images[0]")
        images, info = await self.run(self.engine.img2img, req, init)
        shown = {k: v for k, v in req.items() if k != "init_images"}
        return JSONResponse({"images": [_b64(i) for i in images], "parameters": shown, "info": json.dumps(info)})

    async def extra_single_image(self, request: Request):
        req = await _json(request)
        image = _decode_image(req.get("image"), "image")
        out = upscale(image, req)
        buf = io.BytesIO()
        out.save(buf, format="PNG")
        return JSONResponse({"image": _b64(buf.getvalue()), "html_info": f"<p>{out.width}x{out.height}</p>"})

    async def options(self, request: Request):
        if request.method == "GET":
            return JSONResponse({"sd_model_checkpoint": self.title(), "samples_format": "png"})
        req = await _json(request)
        name = req.get("sd_model_checkpoint")
        if name is not None:
            target = self.engine.resolve(str(name))
            if target.split("/")[-1] != self.engine.model:
                await self.run(self.engine.load, target)
        return JSONResponse(None)

    async def sd_models(self, request: Request):
        return JSONResponse([
            {"title": n, "model_name": n.rsplit(".", 1)[0], "hash": None, "sha256": None,
             "filename": n, "config": None}
            for n in self.engine.available()
        ])

    async def refresh(self, request: Request):
        return JSONResponse(None)

    async def progress(self, request: Request):
        p = self.engine.progress
        busy = bool(p.job)
        done = 0.0
        if busy and p.sampling_steps and p.job_count:
            done = (p.job_no * p.sampling_steps + p.sampling_step) / (p.sampling_steps * p.job_count)
        elapsed = time.monotonic() - p.started if busy else 0.0
        eta = elapsed / done * (1 - done) if done > 0 else 0.0
        return JSONResponse({
            "progress": round(done, 4), "eta_relative": round(eta, 3), "current_image": None, "textinfo": None,
            "state": {"skipped": False, "interrupted": p.interrupted, "job": p.job, "job_count": p.job_count,
                      "job_timestamp": "0", "job_no": p.job_no, "sampling_step": p.sampling_step,
                      "sampling_steps": p.sampling_steps},
        })

    async def interrupt(self, request: Request):
        self.engine.interrupt()
        return JSONResponse({})

    async def memory(self, request: Request):
        return JSONResponse({"ram": _ram(), "cuda": _cuda()})

    async def ping(self, request: Request):
        return JSONResponse({"status": "ok", "model": self.title()})

    async def ready(self, request: Request):
        """Ready (the port opens only after load and warm-up), with how long each start phase
        took and how the pipeline runs (device, dtype, recipes)."""
        return JSONResponse({"status": "ready", "model": self.title(), "start_seconds": self.engine.phases,
                             "accel": self.engine.accel.to_dict()})


def create_app(engine: Engine) -> Starlette:
    api = Api(engine)
    routes = [
        Route("/sdapi/v1/txt2img", api.txt2img, methods=["POST"]),
        Route("/sdapi/v1/img2img", api.img2img, methods=["POST"]),
        Route("/sdapi/v1/extra-single-image", api.extra_single_image, methods=["POST"]),
        Route("/sdapi/v1/options", api.options, methods=["GET", "POST"]),
        Route("/sdapi/v1/sd-models", api.sd_models, methods=["GET"]),
        Route("/sdapi/v1/refresh-checkpoints", api.refresh, methods=["POST"]),
        Route("/sdapi/v1/progress", api.progress, methods=["GET"]),
        Route("/sdapi/v1/interrupt", api.interrupt, methods=["POST"]),
        Route("/sdapi/v1/memory", api.memory, methods=["GET"]),
        Route("/internal/ping", api.ping, methods=["GET"]),
        Route("/readyz", api.ready, methods=["GET"]),
        Route("/sdctl/v1/txt2img-batch", api.txt2img_batch, methods=["POST"]),
    ]

    async def request_error(request: Request, exc: RequestError):
        return _error(422, "RequestError", str(exc))

    async def server_error(request: Request, exc: Exception):
        return _error(500, type(exc).__name__, str(exc))

    async def not_found(request: Request, exc):
        status = getattr(exc, "status_code", 404)
        return _error(status, "HTTPException", getattr(exc, "detail", "Not Found"))

    return Starlette(routes=routes, exception_handlers={
        RequestError: request_error, Exception: server_error, 404: not_found, 405: not_found})




def _ram() -> dict:
    total = free = 0
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        total, free = info.get("MemTotal", 0), info.get("MemAvailable", 0)
    except OSError:
        pass
    return {"free": free, "used": total - free, "total": total}


def _cuda() -> dict:
    try:
        import torch

        if not torch.cuda.is_available():
            return {"error": "CUDA is not available"}
        free, total = torch.cuda.mem_get_info()
        return {"system": {"free": free, "used": total - free, "total": total}}
    except Exception as e:  # pragma: no cover - depends on the machine
        return {"error": str(e)}


def serve(model: str, host: str, port: int, models_dir: str | None = None) -> None:
    """Load the model, then serve. The port opens only once the model is loaded."""
    import uvicorn

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import json
    import sys

    engine = Engine(model, models_dir=models_dir)
    print(json.dumps({"msg": "runtime ready", "model": engine.model, "start_seconds": engine.phases,
                      "accel": engine.accel.to_dict()}), file=sys.stderr, flush=True)
    uvicorn.run(create_app(engine), host=host, port=port, log_level="warning", access_log=False)
