"""A scripted AUTOMATIC1111-compatible runtime for chaos tests, run as its own process:

    python -m tests.stub_runtime PORT LATENCY

It answers txt2img after LATENCY seconds with a tiny PNG, except that a prompt starting
with "flaky" fails with 500 on 30 % of calls (which ones is seeded: the same on every run) and "always-fail" fails every time, one starting
with "crash" kills the process mid-call (a poison task), and counts its calls per prompt
(GET /calls).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import random
import sys
from collections import Counter

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

calls: Counter = Counter()
_buf = io.BytesIO()
Image.new("RGB", (8, 8), "green").save(_buf, format="PNG")
PNG = base64.b64encode(_buf.getvalue()).decode()


def app(latency: float) -> Starlette:
    lock = asyncio.Lock()

    async def txt2img(request: Request):
        body = await request.json()
        prompt = body.get("prompt", "")
        calls[prompt] += 1
        if prompt.startswith("crash"):
            os._exit(1)
        async with lock:
            await asyncio.sleep(latency)
        # seeded by the prompt and its call number: the same calls fail on every run, whatever
        # order the agents make them in
        flaky = prompt.startswith("flaky") and random.Random(f"{prompt}:{calls[prompt]}").random() < 0.3
        if prompt.startswith("always-fail") or flaky:
            return JSONResponse({"error": "RuntimeError", "detail": "scripted failure"}, status_code=500)
        return JSONResponse({"images": [PNG], "parameters": body, "info": json.dumps({"seed": 1})})

    async def options(request: Request):
        return JSONResponse({"sd_model_checkpoint": "stub"})

    async def count(request: Request):
        return JSONResponse(dict(calls))

    return Starlette(routes=[Route("/sdapi/v1/txt2img", txt2img, methods=["POST"]),
                             Route("/sdapi/v1/options", options), Route("/calls", count)])


if __name__ == "__main__":
    uvicorn.run(app(float(sys.argv[2])), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
