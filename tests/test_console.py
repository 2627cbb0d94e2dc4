"""`sdctl console --local`, driven in a real browser (Playwright with Debian's Chromium, the one
`make tools` installs) against a running local stack: the playground submits and shows the
progress and the image; a running task is cancelled from its page; a dead-lettered task is
redriven; an undelivered webhook is replayed; a chart moves after a burst; a request without the
token is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import started_stack
from tests.helpers import cli, local_aws

pytestmark = pytest.mark.e2e
CHROMIUM = os.environ.get("SDCTL_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    pytest.importorskip("torch")
    for cwd, printed in started_stack(tmp_path_factory, "console", "--allow-local-webhooks", "--show-key", "-o",
                                      "json"):
        yield cwd, json.loads(printed)


@pytest.fixture(scope="module")
def console(stack):
    cwd, _ = stack
    proc = subprocess.Popen([sys.executable, "-m", "sdctl", "console", "--local", "--interval", "2"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:") and "token=" in url, proc.stderr.read()
    yield url
    proc.send_signal(2)  # Ctrl-C
    assert proc.wait(20) == 130


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: `make tools` installs Debian's chromium (CI does this)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, console):
    context = browser.new_context()
    pg = context.new_page()
    pg.goto(console)  # the token's visit: a cookie from then on
    yield pg
    context.close()


def test_the_url_in_json_for_scripts_and_ctrl_c_exits_130(stack):
    cwd, _ = stack
    proc = subprocess.Popen([sys.executable, "-m", "sdctl", "console", "--local", "-o", "json"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed = json.loads(proc.stdout.readline())
    assert printed["url"].startswith("http://127.0.0.1:") and printed["interval_seconds"] == 5
    assert httpx.get(printed["url"], follow_redirects=True).status_code == 200
    proc.send_signal(2)
    assert proc.wait(20) == 130


def test_a_request_without_the_token_is_refused_and_the_page_is_locked_down(console):
    base = console.split("?")[0]
    r = httpx.get(base)
    assert r.status_code == 403 and "token" in r.text
    ok = httpx.get(console, follow_redirects=False)
    assert ok.status_code == 303 and "token" not in ok.headers["location"]
    assert "script-src 'self'" in ok.headers["content-security-policy"]
    cookie = ok.cookies.get("sdctl_console")
    forged = httpx.post(base + "api/submit", cookies={"sdctl_console": cookie}, json={"prompt": "x"})
    assert forged.status_code == 403 and "CSRF" in forged.text  # the token alone does not make a change


def test_the_playground_submits_and_shows_the_progress_then_the_image(page):
    page.fill("textarea[name=prompt]", "a red fox")
    for name, value in (("width", "64"), ("height", "64"), ("steps", "4"), ("seed", "3")):
        page.fill(f"input[name={name}]", value)
    page.click("button[type=submit]")
    page.wait_for_selector("#line:has-text('queued'), #line:has-text('running'), #line:has-text('completed')")
    page.wait_for_selector("#line[data-status=completed]", timeout=120_000)
    image = page.wait_for_selector("#images img")
    page.wait_for_function("img => img.complete && img.naturalWidth === 64", arg=image)
    page.click("#copy summary")
    page.click("[data-copy=curl]")
    snippet = page.inner_text("#snippet")
    assert snippet.startswith("curl -X POST") and "<your key>" in snippet  # the key is not on the page


def test_a_running_task_is_cancelled_from_its_page(page, stack):
    cwd, state = stack
    api = httpx.Client(base_url=state["gateway_url"], headers={"x-api-key": state["api_key"]}, timeout=30)
    body = {"task": {"metadata": {"id": "console-long", "runtime": "sdruntime", "tasktype": "text-to-image"},
                     "content": {"prompt": "a slow fox", "steps": 150, "width": 256, "height": 256}}}
    assert api.post("/v1alpha2", json=body).status_code == 200
    deadline = time.monotonic() + 120
    while api.get("/v1alpha2/tasks/console-long").json()["status"] != "running":
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.2)
    base = page.url.split("/")[0] + "//" + page.url.split("/")[2]
    page.goto(f"{base}/tasks/console-long")
    page.click("#cancel")
    deadline = time.monotonic() + 60
    while page.get_attribute("#record", "data-status") != "cancelled":
        assert time.monotonic() < deadline, "the task was not cancelled"
        time.sleep(0.5)
        page.reload()


def test_a_dead_lettered_task_is_redriven_and_a_chart_moves_after_a_burst(page, stack):
    cwd, _ = stack
    sqs = local_aws(cwd, "sqs")
    state = json.loads((cwd / ".sdctl" / "state.json").read_text())
    lanes = state["resources"]["runtimes"]["sdruntime"]
    task = {"metadata": {"id": "console-dead", "runtime": "sdruntime", "tasktype": "text-to-image",
                         "prefix": "output"}, "content": {"prompt": "back again", "steps": 2, "width": 64, "height": 64}}
    sqs.send_message(QueueUrl=lanes["dead_letter_queue_url"],  # as a dead letter holds it: the SNS envelope
                     MessageBody=json.dumps({"Type": "Notification", "Message": json.dumps(task)}))
    base = page.url.split("/")[0] + "//" + page.url.split("/")[2]
    page.goto(f"{base}/live")
    page.wait_for_function("() => [...document.querySelectorAll('#queues tr')].some("
                           "r => r.cells[3] && r.cells[3].textContent === '1')", timeout=30_000)
    with page.expect_navigation():  # the form posts, then the page comes back to /live
        page.click("text=Redrive sdruntime")
    arn = sqs.get_queue_attributes(QueueUrl=lanes["dead_letter_queue_url"], AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    [move] = sqs.list_message_move_tasks(SourceArn=arn)["Results"]
    assert move["ApproximateNumberOfMessagesMoved"] == 1
    page.goto(f"{base}/tasks/console-dead")  # back on its queue, the agent ran it
    deadline = time.monotonic() + 60
    while page.get_attribute("#record", "data-status") != "completed":
        assert time.monotonic() < deadline, "the redriven task did not complete"
        time.sleep(0.5)
        page.reload()
    with page.expect_navigation():  # Submit again: a new task of the same request
        page.click("text=Submit again")
    assert "/tasks/console-dead" not in page.url and "back again" in page.inner_text("pre")
    page.goto(f"{base}/live")
    before = page.eval_on_selector_all(".chart .s0", "els => els.map(e => e.getAttribute('d')).join()")
    for i in range(6):  # a burst: the queued line rises on the next samples
        cli("generate", f"burst {i}", "--local", "--no-wait", "--width", "64", "--height", "64", "--steps", "2",
            cwd=cwd)
    page.wait_for_function("before => [...document.querySelectorAll('.chart .s0')].map(e => e.getAttribute('d'))"
                           ".join() !== before", arg=before, timeout=30_000)


def test_an_undelivered_webhook_is_replayed_from_its_tasks_page(page, stack):
    """A receiver that answers 410 (Gone: no retry) leaves the task's `completed` event in the
    webhooks dead-letter queue; its row on the task page replays it, and the second delivery
    arrives."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tests.conftest import ServerThread

    _, state = stack
    came = []

    async def hook(request):
        came.append(await request.body())
        return JSONResponse({}, status_code=410 if len(came) == 1 else 200)

    with ServerThread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as receiver:
        api = httpx.Client(base_url=state["gateway_url"], headers={"x-api-key": state["api_key"]}, timeout=30)
        body = {"task": {"metadata": {"id": "console-hook", "runtime": "sdruntime", "tasktype": "text-to-image",
                                      "webhook": {"url": f"{receiver.url}/hook", "events": ["completed"]}},
                         "content": {"prompt": "a fox", "steps": 2, "width": 64, "height": 64}}}
        assert api.post("/v1alpha2", json=body).status_code == 200
        base = page.url.split("/")[0] + "//" + page.url.split("/")[2]
        deadline = time.monotonic() + 90
        while True:
            page.goto(f"{base}/tasks/console-hook")
            if page.query_selector("#undelivered"):
                break
            assert time.monotonic() < deadline, "the undelivered webhook never showed"
            time.sleep(1)
        assert "HTTP 410" in page.inner_text("#undelivered")
        with page.expect_navigation():
            page.click("#undelivered button")
        deadline = time.monotonic() + 30
        while len(came) < 2:
            assert time.monotonic() < deadline, "the replayed webhook did not arrive"
            time.sleep(0.2)
