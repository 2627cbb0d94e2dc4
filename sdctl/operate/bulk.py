"""Submit many tasks at once, and follow them to the end.

Requests run concurrently (httpx's async client, at most `concurrency` in flight); a 429
(the usage plan's throttle) or a 5xx is retried with exponential backoff and jitter, so a
burst larger than the API allows still gets through. Each line ends as `accepted`,
`duplicate` (the id exists: the API answered 409, nothing ran twice) or `rejected` (with
the API's reason and field).
"""

from __future__ import annotations

import asyncio
import random
import time

import httpx

from sdctl.contracts.events import Event, Report, ignore
from sdctl.contracts.tasks import FINAL

RETRY_STATUSES = {429, 500, 502, 503, 504}


def summary(rows: list[dict]) -> dict:
    """Counts by result, the answers that were retried (429 throttling, 5xx), the latency of
    the answering request and the accepted rate over the whole submit."""
    counts = {k: sum(1 for r in rows if r["result"] == k) for k in ("accepted", "duplicate", "rejected")}
    counts["rejected_reasons"] = {}
    for r in rows:
        if r["result"] == "rejected":
            counts["rejected_reasons"][r["message"]] = counts["rejected_reasons"].get(r["message"], 0) + 1
    answers: dict[str, int] = {}
    for r in rows:
        for status, n in (r.get("retried") or {}).items():
            answers[status] = answers.get(status, 0) + n
    counts["throttled"] = answers.get("429", 0)
    counts["server_errors"] = sum(n for status, n in answers.items() if status.startswith("5"))
    counts["unreachable"] = answers.get("none", 0)
    took = sorted(r["seconds"] for r in rows if r.get("seconds") is not None)
    if took:
        counts["latency_ms"] = {"p50": round(_pct(took, 50) * 1000, 1), "p99": round(_pct(took, 99) * 1000, 1)}
    spans = [(r["sent_at"], r["answered_at"]) for r in rows if "sent_at" in r]
    if spans:
        elapsed = max(b for _, b in spans) - min(a for a, _ in spans)
        counts["elapsed_seconds"] = round(elapsed, 2)
        counts["accepted_per_second"] = round(counts["accepted"] / elapsed, 1) if elapsed > 0 else None
    return counts


def _pct(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _submit_one(http: httpx.AsyncClient, url: str, line: int, body: dict, *, attempts: int,
                      base_delay: float) -> dict:
    task_id = ((body.get("task") or {}).get("metadata") or {}).get("id") if isinstance(body, dict) else None
    row = {"line": line, "id": task_id, "sent_at": time.time()}
    retried: dict[str, int] = {}
    for attempt in range(attempts):
        started = time.monotonic()
        try:
            r = await http.post(f"{url}/v1alpha2", json=body)
        except httpx.TransportError as e:
            status, data = None, {"message": f"cannot reach the API: {e}"}
        else:
            status = r.status_code
            try:
                data = r.json()
            except ValueError:
                data = {"message": r.text[:200]}
        row["seconds"] = round(time.monotonic() - started, 4)
        if status not in RETRY_STATUSES and status is not None:
            break
        retried[str(status).lower()] = retried.get(str(status).lower(), 0) + 1
        if attempt + 1 < attempts:
            await asyncio.sleep(min(base_delay * 2 ** attempt, 5.0) * (0.5 + random.random()))
    row["answered_at"] = time.time()
    row["retries"] = attempt
    if retried:
        row["retried"] = retried
    if status == 200:
        row.update(result="accepted", id=data.get("id", task_id), output_location=data.get("output_location"))
    elif status == 409:
        row.update(result="duplicate", status=data.get("status"), message=data.get("message"))
    else:
        row.update(result="rejected", http_status=status, message=data.get("message", "no reason given"),
                   field=data.get("field"))
    return row


def _final(task_id: str, record: dict) -> Event:
    status = "timed-out" if record.get("timed_out") else str(record.get("status"))
    return Event(f"task:{task_id}", status, "ok" if status == "completed" else "error", status, record)


async def submit_all(url: str, api_key: str, bodies: list[tuple[int, dict]], *, concurrency: int = 8,
                     attempts: int = 8, base_delay: float = 0.2,
                     report: Report = ignore) -> list[dict]:
    """Submit every body; one row per body, in input order."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers={"x-api-key": api_key}, timeout=30, limits=limits) as http:
        async def one(line: int, body: dict) -> dict:
            async with gate:
                row = await _submit_one(http, url.rstrip("/"), line, body, attempts=attempts, base_delay=base_delay)
            report(Event(f"task:{row.get('id')}", row["result"], "error" if row["result"] == "rejected" else "ok",
                         row["result"], row))
            return row

        return list(await asyncio.gather(*(one(line, body) for line, body in bodies)))


async def follow_all(url: str, api_key: str, ids: list[str], *, timeout: float, concurrency: int = 8,
                     report: Report = ignore) -> dict[str, dict]:
    """Poll each task's record until it is final (or the time is up); id -> last record."""
    gate = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient(headers={"x-api-key": api_key}, timeout=30) as http:
        async def one(task_id: str) -> tuple[str, dict]:
            delay, record = 0.2, {"id": task_id, "status": "unknown"}
            while loop.time() < deadline:
                async with gate:
                    try:
                        r = await http.get(f"{url.rstrip('/')}/v1alpha2/tasks/{task_id}")
                        if r.status_code == 200:
                            record = r.json()
                    except httpx.TransportError:
                        pass
                if record.get("status") in FINAL:
                    report(_final(task_id, record))
                    return task_id, record
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 3.0)
            record = {**record, "timed_out": True}
            report(_final(task_id, record))
            return task_id, record

        return dict(await asyncio.gather(*(one(i) for i in ids)))
