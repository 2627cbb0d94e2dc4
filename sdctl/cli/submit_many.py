"""`sdctl submit` of a .jsonl file: read it a line at a time (each bad line reported, not
fatal), send every task concurrently with backoff, follow them to their end, download the
completed ones' images, and the summary a person reads."""

from __future__ import annotations

import json
from pathlib import Path

from sdctl.cli.common import err, out

#: The API's own limit on a request body (API Gateway's payload quota, 10 MB): a task file, or a
#: line of a .jsonl file, larger than that could never be accepted.
MAX_TASK_BYTES = 10 * 1024 * 1024


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(f"{where} is not UTF-8: byte 0x{data[e.start]:02x} on line {line} (save it as UTF-8)") \
            from None


def read_tasks(file: Path) -> tuple[list[tuple[int, dict]], list[dict]]:
    """(line, body) for each task; in a .jsonl file a line that cannot be a task (not UTF-8, not
    JSON, over the API's size, an id an earlier line has) is reported, not fatal. The file is
    read a line at a time."""
    from sdctl.errors import UsageError

    if file.suffix != ".jsonl":
        if file.stat().st_size > MAX_TASK_BYTES:
            raise UsageError(f"{file} is {file.stat().st_size:,} bytes; a task is at most {MAX_TASK_BYTES:,} "
                             "(the API's request limit)")
        try:
            return [(1, json.loads(_decode(file.read_bytes(), str(file))))], []
        except ValueError as e:
            raise UsageError(f"{file} is not a JSON task: {str(e)[:200]}") from None
    bodies, bad, seen = [], [], {}
    with file.open("rb") as f:
        for i, raw in enumerate(iter(lambda: f.readline(MAX_TASK_BYTES + 1), b""), 1):
            problem, body = None, None
            if len(raw) > MAX_TASK_BYTES:
                problem = f"longer than {MAX_TASK_BYTES:,} bytes (the API's request limit)"
                while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                    raw = f.readline(MAX_TASK_BYTES + 1)
            elif not raw.strip():
                continue
            else:
                try:
                    body = json.loads(_decode(raw, "the line"))
                except ValueError as e:
                    problem = str(e) if str(e).startswith("the line") else f"not valid JSON: {str(e)[:200]}"
            task_id = _task_id(body)
            if problem is None and task_id is not None and task_id in seen:
                problem = f"id {task_id} is already on line {seen[task_id]} of this file"
            if problem is not None:
                bad.append({"line": i, "id": task_id, "result": "rejected", "message": problem, "retries": 0})
                continue
            if task_id is not None:
                seen[task_id] = i
            bodies.append((i, body))
    return bodies, bad


def _task_id(body) -> str | None:
    try:
        value = body["task"]["metadata"]["id"]
    except (TypeError, KeyError):
        return None
    return value if isinstance(value, str) else None


def download_completed(target, rows: list[dict], bodies: dict[int, dict], out_dir: Path) -> int:
    """Download the images of each completed row's task; returns how many files were written."""
    from sdctl.operate import client

    s3, written = target.s3(), 0
    for r in rows:
        if r.get("status") != "completed":
            continue
        prefix = (bodies.get(r["line"], {}).get("task", {}).get("metadata", {}).get("prefix")) or target.prefix
        doc = client.read_result(s3, target.bucket, prefix, r["id"])
        if doc:
            r["files"] = [str(f) for f in client.download(s3, doc.get("image_url", []), out_dir)]
            written += len(r["files"])
    return written


def submit_many(target, bodies, bad, *, concurrency: int, wait: bool, timeout: float) -> dict:
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sdctl.cli.common import RUN, Output
    from sdctl.cli.progress import json_lines, tee
    from sdctl.operate import bulk

    shown = json_lines() if RUN["output"] == Output.json else (lambda event: None)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err.real, transient=True, disable=not err.is_terminal) as progress:
        sent = progress.add_task("submitting", total=len(bodies))
        rows = asyncio.run(bulk.submit_all(target.api_url, target.api_key, bodies, concurrency=concurrency,
                                           report=tee(lambda e: progress.advance(sent), shown)))
        rows = sorted(rows + bad, key=lambda r: r["line"])
        summary = bulk.summary(rows)
        if wait:
            # A duplicate is a task that exists already (a file resubmitted in part): follow it
            # to its end like the new ones, and count it by the state it reaches.
            ids = [r["id"] for r in rows if r["result"] in ("accepted", "duplicate")]
            done = progress.add_task("running", total=len(ids))
            records = asyncio.run(bulk.follow_all(target.api_url, target.api_key, ids, timeout=timeout,
                                                  concurrency=concurrency, report=tee(lambda e: progress.advance(done), shown)))
            for r in rows:
                if r["id"] in records and r["result"] in ("accepted", "duplicate"):
                    rec = records[r["id"]]
                    r["status"] = "timed-out" if rec.get("timed_out") else rec.get("status")
                    if rec.get("error"):
                        r["error"] = rec["error"]
            for state in ("completed", "failed", "cancelled", "timed-out"):
                summary[state] = sum(1 for r in rows if r.get("status") == state)
    return {"summary": summary, "tasks": rows}


def print_report(report: dict) -> None:
    s = report["summary"]
    for r in report["tasks"]:
        if r["result"] == "rejected":
            field = f" ({r['field']})" if r.get("field") else ""
            out.print(f"line {r['line']}: [red]rejected[/]{field} {r['message']}")
        elif r["result"] == "duplicate" and "completed" not in s:
            out.print(f"line {r['line']}: [yellow]duplicate[/] {r['id']} is already {r.get('status')}")
        elif r.get("status") not in (None, "completed"):
            reason = (r.get("error") or {}).get("message", "")
            out.print(f"line {r['line']}: [red]{r['status']}[/] {r['id']} {reason}")
    line = f"{s['accepted']} accepted, {s['duplicate']} duplicate, {s['rejected']} rejected"
    if "completed" in s:
        line += f"; {s['completed']} completed, {s['failed']} failed, {s['cancelled']} cancelled, " \
                f"{s['timed-out']} still running"
    out.print(line)
    if s.get("files"):
        err.print(f"[dim]{s['files']} image(s) downloaded[/]")
    if s.get("accepted_per_second") is not None:
        extra = f"{s['accepted_per_second']:g} accepted/s over {s['elapsed_seconds']:g} s"
        if "latency_ms" in s:
            extra += f"; request latency p50 {s['latency_ms']['p50']:g} ms, p99 {s['latency_ms']['p99']:g} ms"
        if s.get("throttled") or s.get("server_errors"):
            extra += f"; retried {s['throttled']} throttled (429) and {s['server_errors']} server error(s)"
        err.print(f"[dim]{extra}[/]")
