"""The console's web app over the operate layer (sdctl/operate): it reads what the shared poller
holds and acts through the same calls the commands make (submit, cancel, redrive, replay), so
it adds no second way to read a task, a queue or a cost."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sdctl.console import pages
from sdctl.console.security import Guard, Keys, checked_form

STATIC = Path(__file__).parent / "static"


class Console:
    def __init__(self, target, poller, keys: Keys, *, stack: str, estimate=None) -> None:
        self.target, self.poller, self.keys, self.stack = target, poller, keys, stack
        self.estimate = estimate  # () -> the config's cost estimate (analysis/cost.py), or None

    def html(self, title: str, body: str) -> HTMLResponse:
        where = "local stack" if self.target.kind == "local" else "AWS"
        return HTMLResponse(pages.page(title, body, csrf=self.keys.csrf, stack=self.stack, where=where))

    async def playground(self, request: Request):
        return self.html("Playground", pages.playground(list(self.target.runtimes)))

    async def live(self, request: Request):
        return self.html("Live", pages.live(self.poller.latest(), self.poller.error, self.target.kind == "local")
                         + self._redrive_forms())

    def _redrive_forms(self) -> str:
        return "".join(f'<form method="post" action="/queues/{r}/redrive">{pages.hidden_csrf(self.keys.csrf)}'
                       f'<button>Redrive {r}\'s dead letters</button></form>' for r in self.target.queues)

    async def tasks(self, request: Request):
        from sdctl.operate import tasks as ops

        q = request.query_params
        filters = {k: q.get(k) or None for k in ("status", "client", "runtime", "since")}
        table = ops.require_store(self.target)
        items = await asyncio.to_thread(ops.list_tasks, self.target.client("dynamodb"), table, status=filters["status"],
                                        runtime=filters["runtime"], client=filters["client"],
                                        since=ops.since_timestamp(filters["since"]), limit=100)
        return self.html("Tasks", pages.tasks(items, filters))

    async def task(self, request: Request):
        from sdctl.operate import webhooks

        task_id = request.path_params["id"]
        record = await asyncio.to_thread(self.target.api().task, task_id)
        deliveries = []
        if self.target.webhooks.get("dead_letter_queue_url"):
            rows = await asyncio.to_thread(webhooks.failed, self.target.client("sqs"),
                                           self.target.webhooks["dead_letter_queue_url"])
            deliveries = [r for r in rows if r.get("task") == task_id]
        return self.html(f"Task {task_id}", pages.task(record, self.keys.csrf, deliveries))

    async def cost(self, request: Request):
        from datetime import UTC, datetime

        from sdctl.operate import tasks as ops

        measured = None
        if self.target.tasks_table:  # this calendar month's priced tasks (UTC)
            month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            measured = await asyncio.to_thread(ops.measured_seconds_per_image, self.target.client("dynamodb"),
                                               self.target.tasks_table, since=ops.since_timestamp(month.isoformat()))
        return self.html("Cost", pages.cost(measured, self.estimate() if self.estimate else {"per_image": 0,
                                                                                             "total": 0}))

    async def submit(self, request: Request):
        from sdctl.operate import client

        form = await request.json()
        numbers = {}
        for name, default in (("steps", 20), ("width", 512), ("height", 512), ("seed", -1), ("count", 1)):
            raw = form.get(name)
            try:
                numbers[name] = default if raw in (None, "") else int(raw)
            except (TypeError, ValueError):
                return JSONResponse({"error": f"{name} must be a whole number, not {str(raw)[:40]!r}",
                                     "field": name}, status_code=400)
        body = client.text_to_image(str(form.get("prompt") or ""), runtime=self.target.runtime(form.get("runtime")),
                                    negative=str(form.get("negative") or ""), **numbers)
        if form.get("priority") in ("high", "low"):
            body["task"]["metadata"]["priority"] = form["priority"]
        accepted = await asyncio.to_thread(self.target.api().submit, body)
        self.poller.follow(accepted["id"])
        return JSONResponse({**accepted, "request": body, "api_url": self.target.api_url})

    async def task_json(self, request: Request):
        task_id = request.path_params["id"]
        self.poller.follow(task_id)
        return JSONResponse(self.poller.tasks.get(task_id) or {"id": task_id, "status": "unknown"})

    async def cancel(self, request: Request):
        await checked_form(request, self.keys)
        await asyncio.to_thread(self.target.api().cancel, request.path_params["id"])
        return RedirectResponse(f"/tasks/{request.path_params['id']}", status_code=303)

    async def again(self, request: Request):
        from sdctl.operate import client

        await checked_form(request, self.keys)
        old = await asyncio.to_thread(self.target.api().task, request.path_params["id"])
        body = client.text_to_image(str(old.get("prompt") or ""), runtime=self.target.runtime(old.get("runtime")))
        done = await asyncio.to_thread(client.read_result, self.target.s3(), self.target.bucket,
                                       old.get("prefix") or self.target.prefix, old["id"])
        params = (done or {}).get("parameters")
        if isinstance(params, dict) and {"prompt", "steps"} <= set(params):  # a txt2img request, as it ran
            body["task"]["content"] = params
        accepted = await asyncio.to_thread(self.target.api().submit, body)
        self.poller.follow(accepted["id"])
        return RedirectResponse(f"/tasks/{accepted['id']}", status_code=303)

    async def redrive(self, request: Request):
        from sdctl.operate import queues

        await checked_form(request, self.keys)
        q = self.target.queues[request.path_params["runtime"]]
        for lane in queues.lanes_of(q).values():
            await asyncio.to_thread(queues.redrive, self.target.client("sqs"), lane["dead_letter_queue_url"],
                                    lane["queue_url"])
        return RedirectResponse("/live", status_code=303)

    async def replay(self, request: Request):
        from sdctl.operate import webhooks

        form = await checked_form(request, self.keys)
        hooks = self.target.require_webhooks()
        await asyncio.to_thread(webhooks.replay, self.target.client("sqs"), hooks["dead_letter_queue_url"],
                                hooks["queue_url"], [form["id"]] if form.get("id") else None)
        return RedirectResponse(request.headers.get("referer") or "/tasks", status_code=303)

    async def image(self, request: Request):
        from sdctl.operate.client import parse_s3_url

        record = self.poller.tasks.get(request.path_params["id"]) or await asyncio.to_thread(
            self.target.api().task, request.path_params["id"])
        urls = record.get("image_url") or []
        n = int(request.path_params["n"])
        if not 0 <= n < len(urls):
            return Response("no such image", status_code=404)
        bucket, key = parse_s3_url(urls[n])
        obj = await asyncio.to_thread(self.target.s3().get_object, Bucket=bucket, Key=key)
        return Response(obj["Body"].read(), media_type=obj.get("ContentType") or "image/png")

    async def events(self, request: Request):
        """Server-sent events: each new sample the poller took (the same one for every tab)."""
        async def stream():
            since = 0.0
            while not await request.is_disconnected():
                sample = await asyncio.to_thread(self.poller.wait_for_change, since, 15.0)
                if sample and sample["at"] > since:
                    since = sample["at"]
                    yield f"data: {json.dumps({'sample': sample, 'history': list(self.poller.history)[-120:]})}\n\n"
                else:
                    yield ": keep-alive\n\n"
        return StreamingResponse(stream(), media_type="text/event-stream")

    async def stats(self, request: Request):
        return JSONResponse({"aws_calls": self.poller.calls, "interval_s": self.poller.interval,
                             "samples": len(self.poller.history)})


def create_app(console: Console) -> Starlette:
    c = console
    routes = [Route("/", c.playground), Route("/live", c.live), Route("/tasks", c.tasks), Route("/cost", c.cost),
              Route("/tasks/{id}", c.task), Route("/tasks/{id}/cancel", c.cancel, methods=["POST"]),
              Route("/tasks/{id}/again", c.again, methods=["POST"]),
              Route("/queues/{runtime}/redrive", c.redrive, methods=["POST"]),
              Route("/webhooks/replay", c.replay, methods=["POST"]),
              Route("/images/{id}/{n:int}", c.image), Route("/events", c.events), Route("/api/stats", c.stats),
              Route("/api/submit", c.submit, methods=["POST"]), Route("/api/tasks/{id}", c.task_json),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    app = Starlette(routes=routes, exception_handlers={PermissionError: _forbidden, Exception: _failed})
    app.add_middleware(Guard, keys=console.keys)
    return app


async def _forbidden(request: Request, exc: Exception):
    return Response(f"403: {exc}", status_code=403, media_type="text/plain")


async def _failed(request: Request, exc: Exception):
    from sdctl.errors import SdctlError

    message = exc.message if isinstance(exc, SdctlError) else f"{type(exc).__name__}: {exc}"
    # The API's own answer where it gave one (a task that does not exist is a 404 here too).
    status = getattr(exc, "status", None) if isinstance(exc, SdctlError) else 500
    status = status if isinstance(status, int) and 400 <= status < 600 else 400
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    return Response(f"error: {message}", status_code=status, media_type="text/plain")
