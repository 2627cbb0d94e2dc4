"""Operating the service through the CLI on a real local stack: the task store, bulk
submission, queue views and purge.

The stack here is "held": its agent waits for a runtime that never answers, so tasks stay
queued long enough to cancel, count and purge. Tasks that run to the end are followed in
test_e2e, on the full stack.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import ServerThread
from tests.helpers import cli as sdctl
from tests.helpers import run_json, task_line

pytestmark = pytest.mark.e2e


def test_bulk_submit_reports_every_line_and_records_each_task_once(held_stack):
    cwd = held_stack
    lines = [task_line(f"h-{i}") for i in range(12)]
    lines += [task_line("h-0"), "{not json", task_line("h-x", runtime="nope")]
    (cwd / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    report = run_json(cwd, "submit", "tasks.jsonl", "--concurrency", "6", code=1)  # 1: some were rejected
    s = report["summary"]
    assert (s["accepted"], s["duplicate"], s["rejected"]) == (12, 0, 3)
    by_line = {r["line"]: r for r in report["tasks"]}
    # an id the file already used is refused before sending (it would not run, yet counted twice)
    assert by_line[13]["result"] == "rejected" and "id h-0 is already on line 1" in by_line[13]["message"]
    assert by_line[14]["result"] == "rejected" and "not valid JSON" in by_line[14]["message"]
    assert by_line[15]["field"] == "task.metadata.runtime" and "unknown runtime 'nope'" in by_line[15]["message"]
    queued = run_json(cwd, "tasks", "list", "--status", "queued", "--since", "10m")
    assert sorted(t["id"] for t in queued) == sorted(f"h-{i}" for i in range(12))
    assert all(t["runtime"] == "sdruntime" and t["attempts"] == 0 for t in queued)
    assert run_json(cwd, "tasks", "list", "--runtime", "sdruntime", "--limit", "5").__len__() == 5


def test_get_and_cancel_a_queued_task(held_stack):
    cwd = held_stack
    record = run_json(cwd, "tasks", "get", "h-3")
    assert record["status"] == "queued" and record["prompt"] == "a fox h-3"
    assert run_json(cwd, "tasks", "cancel", "h-3") == {"id": "h-3", "status": "cancelled"}
    again = run_json(cwd, "tasks", "cancel", "h-3", code=1)
    assert again["error"]["status"] == 409 and "is cancelled" in again["error"]["message"]
    assert run_json(cwd, "tasks", "get", "nope", code=1)["error"]["status"] == 404
    assert run_json(cwd, "tasks", "wait", "h-3", "--timeout", "5", code=1)["status"] == "cancelled"
    bad = sdctl("tasks", "list", "--status", "lost", "--local", cwd=cwd, check=False)
    assert bad.returncode == 2 and "--status 'lost' is not one of" in bad.stderr


def test_queue_watch_shows_depth_age_and_rates(held_stack):
    [row] = run_json(held_stack, "queue", "watch", "--once")
    assert row["runtime"] == "sdruntime"
    assert row["visible"] == 12 and row["in_flight"] == 0 and row["dead_letter"] == 0
    assert row["oldest_age_s"] >= 0 and row["arrivals_per_min"] >= 11  # 11 still queued, 1 cancelled
    assert row["completions_per_min"] == 0
    text = sdctl("queue", "watch", "--once", "--local", cwd=held_stack).stdout
    assert "sdruntime" in text and "oldest" in text and "12" in text


def test_scale_status_explains_the_chain_from_the_queue(held_stack, tmp_path):
    """Queue depth from the local stack; Kubernetes objects from the replay server (no API
    server exists here; see tests/kube_replay.py)."""
    from tests.kube_replay import app, kubeconfig, scenario

    with ServerThread(app(scenario("launching")["objects"])) as server:
        kc = str(kubeconfig(tmp_path / "kubeconfig", server.url))
        [r] = run_json(held_stack, "scale", "status", "--kubeconfig", kc)
        text = sdctl("scale", "status", "--local", "--kubeconfig", kc, cwd=held_stack).stdout
    assert r["queue"]["visible"] == 12 and r["scaledobject"]["wants"] == 12
    assert r["deployment"] == {"desired": 2, "ready": 0}
    assert r["verdict"].startswith("2 pod(s) pending: NodeClaim launched")
    assert "queue 12" in text and "→" in text and "waiting for the node to register" in text


def test_logs_come_from_the_local_processes(held_stack):
    lines = [json.loads(x) for x in sdctl("logs", "--runtime", "sdruntime", "--agent", "--local", "-o", "json",
                                          cwd=held_stack).stdout.splitlines()]
    assert lines and all(x["source"] == "agent-sdruntime-1" for x in lines)
    assert any("waiting for the runtime" in x["line"] for x in lines)
    missing = sdctl("logs", "--runtime", "sdruntime", "--local", cwd=held_stack, check=False)
    assert missing.returncode == 1 and "--runtime-url" in missing.stderr
    unknown = sdctl("logs", "--runtime", "nope", "--local", cwd=held_stack, check=False)
    assert unknown.returncode == 2 and "no runtime named 'nope'" in unknown.stderr


def test_purge_empties_the_queue_and_cancels_its_records(held_stack):
    cwd = held_stack
    refused = sdctl("queue", "purge", "--runtime", "sdruntime", "--local", cwd=cwd, check=False)
    assert refused.returncode == 2 and "pass --yes" in refused.stderr  # no terminal to ask on
    report = run_json(cwd, "queue", "purge", "--runtime", "sdruntime", "--yes")
    assert report["tasks_cancelled"] == 11
    [row] = run_json(cwd, "queue", "watch", "--once")
    assert row["visible"] == 0
    record = run_json(cwd, "tasks", "get", "h-5")
    assert record["status"] == "cancelled" and record["error"]["code"] == "purged"


def test_bulk_submit_backs_off_when_throttled():
    """A gateway that answers 429 to the first requests, as API Gateway's usage plan does."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from sdctl.operate import bulk

    seen = {"calls": 0}

    async def post(request: Request):
        seen["calls"] += 1
        if seen["calls"] <= 6:
            return JSONResponse({"message": "Too Many Requests"}, status_code=429)
        body = await request.json()
        return JSONResponse({"id": body["task"]["metadata"]["id"], "runtime": "r", "output_location": "s3://b/x"})

    with ServerThread(Starlette(routes=[Route("/v1alpha2", post, methods=["POST"])])) as server:
        bodies = [(i, json.loads(task_line(f"t-{i}"))) for i in range(1, 5)]
        rows = asyncio.run(bulk.submit_all(server.url, "k", bodies, concurrency=2, base_delay=0.01))
    assert [r["result"] for r in rows] == ["accepted"] * 4
    assert sum(r["retries"] for r in rows) == 6 and seen["calls"] == 10


@pytest.mark.parametrize("status,runtime,since", [
    (None, None, None), ("failed", None, None), ("queued", "r", "2026-01-01T00:00:00.000000Z"),
    (None, "r", "2026-01-01T00:00:00.000000Z"), ("completed", "r", None)])
def test_every_list_request_uses_exactly_the_names_and_values_it_declares(status, runtime, since):
    """DynamoDB rejects declared-but-unused expression names and values."""
    import re

    from sdctl.operate.tasks import list_request

    op, req = list_request("t", status=status, runtime=runtime, since=since)
    assert op == ("query" if status else "scan")
    text = " ".join(req.get(k, "") for k in ("KeyConditionExpression", "FilterExpression"))
    assert set(re.findall(r"#\w+", text)) == set(req.get("ExpressionAttributeNames", {}))
    assert set(re.findall(r":\w+", text)) == set(req.get("ExpressionAttributeValues", {}))
