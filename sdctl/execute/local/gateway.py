"""A local stand-in for API Gateway: checks x-api-key, enforces the stage's and each key's usage
plan throttle and daily quota, builds a REST proxy event and calls the Lambda handler
in-process (moto cannot invoke Lambda without Docker).

The keys are the emulator's API Gateway keys (the stack's own, tagged `default`, and one per
client from `sdctl keys create --local`), with their usage plans; the gateway rereads them
when its copy is over a second old, so a new key works on its first request and a revoked
one is refused within a second (`sdctl keys revoke --local` returns once it is).

The throttle is API Gateway's token bucket (API Gateway Developer Guide, "Throttle API
requests for better throughput"): `burstLimit` requests at once, refilled at `rateLimit` per
second; a request over it gets 429 `{"message": "Too Many Requests"}`, the body API Gateway
sends, before the handler runs. A key past its daily quota gets 429 `{"message": "Limit
Exceeded"}`.

Where the emulator keeps its data (GATEWAY_SYNC_URL set), a request that changed something
(POST, DELETE) is answered only once the emulator has it on disk; if that cannot be
confirmed the answer is 503 with Retry-After, and sending it again with the same id is safe.

Every request is answered within ANSWER_SECONDS (12 s; API Gateway's own integration timeout is
29 s): when the emulator does not answer (frozen, overloaded), the request gets 503 with
Retry-After rather than hanging, and the handler call left behind finishes when it can, so a
retry with the same id is answered 409 if the first one went through after all."""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import threading
import time
import uuid

import httpx
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


class Key:
    """One accepted key: its id and client, its plan's bucket and daily quota."""

    def __init__(self, key_id: str, client: str, bucket: TokenBucket | None, quota: int | None):
        self.key_id, self.client, self.bucket, self.quota = key_id, client, bucket, quota
        self.day, self.used = "", 0

    def over_quota(self) -> bool:
        if not self.quota:
            return False
        today = time.strftime("%Y-%m-%d", time.gmtime())
        if today != self.day:
            self.day, self.used = today, 0
        if self.used >= self.quota:
            return True
        self.used += 1
        return False


class Keys:
    """The keys the gateway accepts, reread through ``load`` (a list of dicts with value, id,
    client, rate, burst, quota) when older than ``refresh`` seconds. A key that stays the
    same keeps its bucket and its day's count across rereads."""

    def __init__(self, load, *, refresh: float = 1.0, clock=time.monotonic, fallback: list[dict] | None = None):
        self.load, self.refresh, self.clock = load, refresh, clock
        self.fallback = fallback or []  # accepted until the first read succeeds (the stack's own key)
        self.by_value: dict[str, Key] = {}
        self.at: float | None = None  # never read yet
        self._lock = threading.Lock()

    @classmethod
    def static(cls, api_key: str) -> Keys:
        return cls(lambda: [{"value": api_key, "id": "local-default", "client": "default"}], refresh=1e12)

    def fresh(self) -> bool:
        """Whether a lookup now needs no reread (so it can run on the event loop)."""
        return self.at is not None and self.clock() - self.at < self.refresh

    def lookup(self, secret: str) -> Key | None:
        with self._lock:
            if self.at is None or self.clock() - self.at >= self.refresh:
                self._reload()
            for value, key in self.by_value.items():
                if hmac.compare_digest(secret.encode(), value.encode()):
                    return key
            return None

    def _reload(self) -> None:
        try:
            rows = self.load()
        except Exception as e:  # the emulator is busy or restarting: keep the last good copy
            print(f"gateway: cannot reread the API keys ({e}); keeping {len(self.by_value)}", flush=True)
            if self.by_value or not self.fallback:
                return
            rows = self.fallback
        old = {k.key_id: k for k in self.by_value.values()}
        fresh = {}
        for r in rows:
            key = old.get(r["id"])
            bucket = (TokenBucket(float(r["rate"]), int(r.get("burst") or 1), clock=self.clock)
                      if r.get("rate") else None)
            if key is None or (key.bucket and bucket and (key.bucket.rate, key.bucket.burst) !=
                               (bucket.rate, bucket.burst)):
                key = Key(r["id"], r["client"], bucket, r.get("quota"))
            fresh[r["value"]] = key
        self.by_value, self.at = fresh, self.clock()


def emulator_keys(apigateway, tag: str = "sdctl:client"):
    """A loader for :class:`Keys`: every enabled key in the emulator's API Gateway with the
    throttle and DAY quota of its usage plan."""
    def load() -> list[dict]:
        limits = {}
        for plan in apigateway.get_usage_plans().get("items", []):
            throttle, quota = plan.get("throttle") or {}, plan.get("quota") or {}
            for pk in apigateway.get_usage_plan_keys(usagePlanId=plan["id"]).get("items", []):
                limits[pk["id"]] = {"rate": throttle.get("rateLimit"), "burst": throttle.get("burstLimit"),
                                    "quota": quota.get("limit") if quota.get("period") == "DAY" else None}
        rows = []
        for page in apigateway.get_paginator("get_api_keys").paginate(includeValues=True):
            for k in page.get("items", []):
                if k.get("enabled", True) and k.get("value"):
                    rows.append({"value": k["value"], "id": k["id"],
                                 "client": (k.get("tags") or {}).get(tag) or "default", **limits.get(k["id"], {})})
        return rows

    return load


ANSWER_SECONDS = 12.0
UNAVAILABLE = {"message": "Service Unavailable: AWS did not answer in time; the request may or may not have been "
                          "accepted; send it again with the same id"}


def create_app(api_key: str, handler, *, stage: str = "local", throttle: TokenBucket | None = None,
               keys: Keys | None = None, sync_url: str | None = None,
               answer_seconds: float = ANSWER_SECONDS) -> Starlette:
    from concurrent.futures import ThreadPoolExecutor

    keys = keys or Keys.static(api_key)
    sync_client = httpx.AsyncClient() if sync_url else None
    # Its own threads: a call stuck on a frozen emulator holds one, not the loop's default pool.
    pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="gateway")

    async def in_thread(fn, *args, deadline: float):
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(pool, fn, *args), timeout=max(0.1, deadline - time.monotonic()))

    async def api(request: Request):
        try:
            return await answer(request, time.monotonic() + answer_seconds)
        except TimeoutError:
            return JSONResponse(UNAVAILABLE, status_code=503, headers={"Retry-After": "5"})

    async def answer(request: Request, deadline: float):
        given = request.headers.get("x-api-key", "")
        if not given:
            key = None
        elif keys.fresh():
            key = keys.lookup(given)
        else:  # a reread calls the emulator: off the event loop
            key = await in_thread(keys.lookup, given, deadline=deadline)
        if key is None:
            return JSONResponse({"message": "Forbidden"}, status_code=403)
        if throttle is not None and not throttle.take():
            return JSONResponse({"message": "Too Many Requests"}, status_code=429)
        if key.bucket is not None and not key.bucket.take():
            return JSONResponse({"message": "Too Many Requests"}, status_code=429)
        if key.over_quota():
            return JSONResponse({"message": "Limit Exceeded"}, status_code=429)
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"message": "Request Too Long"}, status_code=413)
        event = proxy_event(request, body, stage, given)
        event["requestContext"]["identity"]["apiKeyId"] = key.key_id
        try:
            result = await in_thread(handler, event, None, deadline=deadline)
        except TimeoutError:
            raise
        except Exception as e:  # what API Gateway does when the function errors
            return JSONResponse({"message": "Internal server error", "detail": str(e)}, status_code=502)
        payload = result.get("body") or ""
        raw = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        status = int(result.get("statusCode", 200))
        if sync_url and request.method not in ("GET", "HEAD", "OPTIONS") and 200 <= status < 300:
            # Answer only once the emulator has the change on disk: an accepted task survives a
            # crash of the emulator (sdctl/execute/local/emulator/persist.py).
            try:
                left = max(0.5, deadline - time.monotonic())
                (await sync_client.post(sync_url, timeout=left)).raise_for_status()
            except httpx.HTTPError:
                return JSONResponse({"message": "Service Unavailable: the request may not have been saved; "
                                                "send it again with the same id"},
                                    status_code=503, headers={"Retry-After": "1"})
        return Response(raw, status_code=status, headers=result.get("headers") or {})

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
    keys = None
    if os.environ.get("GATEWAY_KEYS_ACCESS_KEY_ID"):  # the emulator's API Gateway holds the keys
        import boto3

        apigateway = boto3.client("apigateway", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                                  aws_access_key_id=os.environ["GATEWAY_KEYS_ACCESS_KEY_ID"],
                                  aws_secret_access_key=os.environ["GATEWAY_KEYS_SECRET_ACCESS_KEY"])
        keys = Keys(emulator_keys(apigateway), fallback=[{"value": os.environ["GATEWAY_API_KEY"], "id": "local-default",
                                                          "client": "default"}])
    app = create_app(os.environ["GATEWAY_API_KEY"], handler.handler, stage=os.environ.get("GATEWAY_STAGE", "local"),
                     throttle=throttle, keys=keys, sync_url=os.environ.get("GATEWAY_SYNC_URL") or None)
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["GATEWAY_PORT"]), log_level="warning")


if __name__ == "__main__":
    main()
