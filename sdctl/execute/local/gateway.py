"""A local stand-in for API Gateway: checks x-api-key, enforces the usage plan's throttle,
builds a REST proxy event and calls the Lambda handler in-process (moto cannot invoke Lambda
without Docker).

The throttle is API Gateway's token bucket (API Gateway Developer Guide, "Throttle API
requests for better throughput"): `burstLimit` requests at once, refilled at `rateLimit` per
second; a request over it gets 429 `{"message": "Too Many Requests"}`, the body API Gateway
sends, before the handler runs."""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import threading
import time
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit


def proxy_event(request: Request, body: bytes, stage: str, api_key: str | None) -> dict:
    path = request.url.path
    parts = path.strip("/").split("/")
    resource, path_params = path, None
    if len(parts) == 3 and parts[:2] == ["v1alpha2", "tasks"]:
        resource, path_params = "/v1alpha2/tasks/{id}", {"id": parts[2]}
    try:
        text, is_b64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_b64 = base64.b64encode(body).decode(), True
    headers = dict(request.headers)
    query = dict(request.query_params) or None
    return {
        "resource": resource,
        "path": path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource, "httpMethod": request.method, "path": f"/{stage}{path}",
            "stage": stage, "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": request.client.host if request.client else "127.0.0.1", "apiKey": api_key},
        },
        "body": text or None,
        "isBase64Encoded": is_b64,
    }


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.at = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


def create_app(api_key: str, handler, *, stage: str = "local", throttle: TokenBucket | None = None) -> Starlette:
    async def api(request: Request):
        given = request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            return JSONResponse({"message": "Forbidden"}, status_code=403)
        if throttle is not None and not throttle.take():
            return JSONResponse({"message": "Too Many Requests"}, status_code=429)
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"message": "Request Too Long"}, status_code=413)
        event = proxy_event(request, body, stage, given)
        try:
            result = await asyncio.to_thread(handler, event, None)
        except Exception as e:  # what API Gateway does when the function errors
            return JSONResponse({"message": "Internal server error", "detail": str(e)}, status_code=502)
        payload = result.get("body") or ""
        raw = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        return Response(raw, status_code=int(result.get("statusCode", 200)), headers=result.get("headers") or {})

    async def ping(request: Request):
        return JSONResponse({"status": "ok"})

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    return Starlette(routes=[
        Route("/ping", ping),
        Route("/v1alpha2", api, methods=methods),
        Route("/v1alpha2/{rest:path}", api, methods=methods),
    ])


def main() -> None:
    import uvicorn

    from lambda_src import handler

    throttle = None
    if os.environ.get("GATEWAY_RATE"):
        throttle = TokenBucket(float(os.environ["GATEWAY_RATE"]), int(os.environ.get("GATEWAY_BURST") or 1))
    app = create_app(os.environ["GATEWAY_API_KEY"], handler.handler, stage=os.environ.get("GATEWAY_STAGE", "local"),
                     throttle=throttle)
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["GATEWAY_PORT"]), log_level="warning")


if __name__ == "__main__":
    main()
