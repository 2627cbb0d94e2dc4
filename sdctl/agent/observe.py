"""The agent's health and metrics: /healthz, /readyz and Prometheus /metrics on one port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self, runtime: str):
        self.registry = CollectorRegistry()
        self.started = time.monotonic()
        labels = {"runtime": runtime}
        self.tasks = Counter("sdctl_agent_tasks", "Tasks by outcome.", ["runtime", "outcome"], registry=self.registry)
        self.task_seconds = Histogram("sdctl_agent_task_seconds", "From receipt to result stored and announced.",
                                      ["runtime"], buckets=BUCKETS, registry=self.registry).labels(**labels)
        self.runtime_seconds = Histogram("sdctl_agent_runtime_seconds", "Time in the runtime call.", ["runtime"],
                                         buckets=BUCKETS, registry=self.registry).labels(**labels)
        self.queue_wait = Histogram("sdctl_agent_queue_wait_seconds", "From the message being sent to work starting.",
                                    ["runtime"], buckets=BUCKETS + (1800, 3600), registry=self.registry).labels(**labels)
        self.busy_seconds = 0.0
        busy = Gauge("sdctl_agent_runtime_busy_ratio", "Share of the agent's life the runtime spent on tasks.",
                     ["runtime"], registry=self.registry).labels(**labels)
        busy.set_function(lambda: self.busy_seconds / max(time.monotonic() - self.started, 1e-9))
        self.runtime = runtime

    def outcome(self, outcome: str) -> None:
        self.tasks.labels(runtime=self.runtime, outcome=outcome).inc()

    def ran(self, seconds: float) -> None:
        self.busy_seconds += seconds
        self.runtime_seconds.observe(seconds)


def app(metrics: Metrics, ready: Callable[[], bool]) -> Starlette:
    cache = {"at": 0.0, "ok": False}

    async def healthz(request):
        return JSONResponse({"status": "ok"})

    async def readyz(request):
        if time.monotonic() - cache["at"] > 2:  # do not hammer the runtime with probes
            cache.update(at=time.monotonic(), ok=ready())
        return JSONResponse({"ready": cache["ok"]}, status_code=200 if cache["ok"] else 503)

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz),
                             Mount("/metrics", make_asgi_app(registry=metrics.registry))])


def serve(metrics: Metrics, ready: Callable[[], bool], port: int) -> None:
    """Serve health and metrics from a daemon thread (the agent itself is synchronous)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app(metrics, ready), host="0.0.0.0", port=port, log_level="warning",
                                           access_log=False))
    server.install_signal_handlers = lambda: None  # the agent owns SIGTERM
    threading.Thread(target=server.run, name="health", daemon=True).start()
