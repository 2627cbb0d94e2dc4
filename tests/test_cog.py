"""The cog runtime type against the real Cog HTTP server (replicate/cog's PyPI packages, cog and
coglet 0.23: `python -m cog.server.http` with COG_PREDICT_TYPE_STUB=predict.py:Predictor and
PORT, the venv's bin first on PATH so its worker finds coglet), serving tests/data/cog/predict.py:
a model that draws a PNG and prints a step counter. No Docker, no GPU.

`cog build` (which needs Docker) is what writes a model's `.cog/openapi_schema.json`; here
tests/data/cog/openapi_schema.json is written by hand in that shape (the Input and Output
components of predict.py's signature) and copied where the server reads it. A server started
without it answers GET /openapi.json with "OpenAPI schema not available", as an image built
another way would."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from sdctl.agent.cog import CogAdapter
from sdctl.agent.failures import RuntimeUnusable, TransientFailure
from sdctl.contracts.runtimes import kind

MODEL = Path(__file__).parent / "data" / "cog"


class CogServer:
    def __init__(self, folder: Path, *, schema: bool = True, **env: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(MODEL / "predict.py", folder / "predict.py")
        if schema:
            (folder / ".cog").mkdir(exist_ok=True)
            shutil.copy(MODEL / "openapi_schema.json", folder / ".cog" / "openapi_schema.json")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.count = folder / "predictions.txt"
        bin_dir = str(Path(sys.executable).parent)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"], cwd=folder,
            env={**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "PORT": str(self.port),
                 "COG_PREDICT_TYPE_STUB": "predict.py:Predictor", "COG_TEST_COUNT": str(self.count), **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait(self, timeout: float = 60) -> str:
        """The health-check's status once setup is over (READY or SETUP_FAILED)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                status = httpx.get(f"{self.url}/health-check", timeout=2).json().get("status")
                if status not in (None, "STARTING"):
                    return status
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("the Cog server did not finish its setup")

    def predictions(self) -> int:
        return len(self.count.read_text().splitlines()) if self.count.exists() else 0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def cog(tmp_path_factory):
    server = CogServer(tmp_path_factory.mktemp("cog"), COG_TEST_STEP_SECONDS="0.05")
    assert server.wait() == "READY"
    yield server
    server.stop()


def adapter(url: str, inputs: dict | None = None) -> CogAdapter:
    return CogAdapter(url, timeout=60, inputs=inputs, kind=kind("cog"))


def test_a_text_to_image_task_is_mapped_to_the_models_inputs_and_its_png_and_metrics_come_back(cog):
    a = adapter(cog.url)
    assert a.ready()  # READY, and the mapping checked against the model's schema
    assert "negative_prompt" not in a.inputs.values()  # a default the model lacks is left out
    out = a.run("text-to-image", {"prompt": "a red fox", "steps": 3, "width": 32, "height": 16, "seed": 7,
                                  "negative_prompt": "blur"}, task_id="fox-1")
    import io

    from PIL import Image

    [png] = out.images
    assert out.media_types == ["image/png"] and Image.open(io.BytesIO(png)).size == (32, 16)
    assert out.parameters == {"prompt": "a red fox", "num_inference_steps": 3, "width": 32, "height": 16, "seed": 7}
    assert out.metrics["predict_time"] > 0


def test_progress_is_the_models_step_counter_from_its_logs_webhook(cog, tmp_path):
    """Cog posts the prediction's logs to the agent's receiver while it runs; the last "k/N"
    there is step k of N."""
    a = adapter(cog.url)
    a.ready()
    seen = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            p = a.progress()
            if p:
                seen.append(p["step"])
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        a.run("text-to-image", {"prompt": "slow", "steps": 30}, task_id="slow-1")
    finally:
        done.set()
        watcher.join()
    assert seen and seen == sorted(seen) and 1 <= seen[-1] <= 30


def test_a_cancel_mid_prediction_stops_it(cog):
    a = adapter(cog.url)
    a.ready()
    threading.Timer(0.4, a.interrupt).start()
    started = time.monotonic()
    with pytest.raises(TransientFailure) as e:
        a.run("text-to-image", {"prompt": "long", "steps": 50}, task_id="cancel-1")
    assert e.value.code == "runtime-interrupted" and time.monotonic() - started < 2.0  # not 50 x 0.05 s


def test_a_redelivered_task_starts_no_second_prediction_while_the_first_runs(cog):
    """Both deliveries PUT /predictions/{the task's id}: Cog answers the second with the
    prediction already running (202), so the model runs once."""
    first, second = adapter(cog.url), adapter(cog.url)
    before = cog.predictions()
    results = {}
    t = threading.Thread(target=lambda: results.update(first=first.run(
        "text-to-image", {"prompt": "once", "steps": 20}, task_id="twice-1")))
    t.start()
    time.sleep(0.3)
    with pytest.raises(TransientFailure, match="already running"):
        second.run("text-to-image", {"prompt": "once", "steps": 20}, task_id="twice-1")
    t.join()
    assert results["first"].images and cog.predictions() == before + 1


def test_a_predict_task_passes_its_content_as_the_input(cog):
    out = adapter(cog.url).run("predict", {"prompt": "as is", "num_inference_steps": 1, "width": 8, "height": 8},
                               task_id="predict-1")
    assert len(out.images) == 1 and out.parameters == {"prompt": "as is", "num_inference_steps": 1,
                                                       "width": 8, "height": 8}


def test_a_mapping_naming_an_input_the_model_lacks_keeps_the_agent_from_becoming_ready(cog):
    with pytest.raises(RuntimeUnusable, match="inputs.cfg_scale names 'guidance_scale', an input the model lacks"):
        adapter(cog.url, {"cfg_scale": "guidance_scale"}).ready()
    with pytest.raises(RuntimeUnusable, match="requires the input 'prompt'"):
        adapter(cog.url, {"prompt": None}).ready()


def test_a_model_without_a_schema_is_not_checked_and_the_log_says_so(tmp_path, caplog):
    server = CogServer(tmp_path / "m", schema=False)
    try:
        assert server.wait() == "READY"
        assert adapter(server.url, {"cfg_scale": "guidance_scale"}).ready()
        assert "serves no OpenAPI schema" in caplog.text
        assert httpx.get(f"{server.url}/openapi.json").json() == {"error": "OpenAPI schema not available"}
    finally:
        server.stop()


def test_a_model_whose_setup_failed_is_a_permanent_error_naming_why(tmp_path):
    server = CogServer(tmp_path / "m", COG_TEST_SETUP_FAIL="1")
    try:
        assert server.wait() == "SETUP_FAILED"
        with pytest.raises(RuntimeUnusable, match="SETUP_FAILED.*weights not found"):
            adapter(server.url).ready()
    finally:
        server.stop()


def test_the_agent_stops_with_the_reason_when_the_runtime_cannot_take_tasks(tmp_path):
    """`python -m sdctl.agent` against a model whose setup failed: it exits 3 and logs why,
    instead of waiting for a runtime that will never be ready."""
    server = CogServer(tmp_path / "m", COG_TEST_SETUP_FAIL="1")
    try:
        assert server.wait() == "SETUP_FAILED"
        env = {**os.environ, "SQS_QUEUE_URL": "http://127.0.0.1:9/q", "SNS_TOPIC_ARN": "arn:aws:sns:us-west-2:1:t",
               "S3_BUCKET": "b", "RUNTIME_NAME": "mycog", "RUNTIME_TYPE": "cog", "API_BASE_URL": server.url,
               "AWS_DEFAULT_REGION": "us-west-2", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
        r = subprocess.run([sys.executable, "-m", "sdctl.agent"], env=env, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 3
        [line] = [json.loads(x) for x in r.stderr.splitlines() if "cannot take tasks" in x]
        assert "weights not found" in line["why"]
    finally:
        server.stop()


@pytest.mark.e2e
def test_a_cog_model_behind_the_local_stack_makes_the_image_and_answers_a_predict_task(cog, tmp_path):
    """What a user runs: a `type: cog` runtime in sdctl.yaml, `sdctl local up --runtime-url
    mycog=URL`, then `sdctl generate "a red fox" --runtime mycog --local` writes the model's
    image, and a raw `predict` task's content reaches the model as its input."""
    from tests.helpers import cli

    cwd = tmp_path / "stack"
    cwd.mkdir()
    (cwd / "sdctl.yaml").write_text("region: us-west-2\nruntimes:\n  - name: mycog\n    type: cog\n"
                                    "    image: r8.im/acme/fox-painter@sha256:" + "0" * 64 + "\n")
    state = os.environ.pop("SDCTL_STATE_DIR", None)
    try:
        cli("local", "up", "--detach", "--runtime-url", f"mycog={cog.url}", cwd=cwd)
        before = cog.predictions()
        r = cli("generate", "a red fox", "--runtime", "mycog", "--local", "--steps", "3", "--width", "96",
                "--height", "64", "-o", "json", cwd=cwd)
        [png] = json.loads(r.stdout)["files"]
        from PIL import Image

        assert png.endswith(".png") and Image.open(cwd / png if not Path(png).is_absolute() else png).size == (96, 64)
        assert cog.predictions() == before + 1
        task = {"task": {"metadata": {"id": "predict-e2e", "runtime": "mycog", "tasktype": "predict"},
                         "content": {"prompt": "as is", "num_inference_steps": 2, "width": 8, "height": 8}}}
        (cwd / "task.json").write_text(json.dumps(task))
        r = cli("submit", "task.json", "--local", "--wait", "-o", "json", cwd=cwd)
        done = json.loads(r.stdout)
        assert done["status"] == "completed" and len(done["files"]) == 1, r.stdout
    finally:
        cli("local", "down", cwd=cwd, check=False)
        if state:
            os.environ["SDCTL_STATE_DIR"] = state


def test_deploy_finds_a_cog_image_in_ecr_by_the_digest_cog_push_prints():
    """`cog push` prints the image by digest (repo@sha256:...); deploy's image check asks ECR for
    that digest (DescribeImages imageDigest), not for a tag named after it."""
    import boto3
    from moto import mock_aws

    from sdctl.execute.publish import missing_images

    with mock_aws():
        ecr = boto3.client("ecr", region_name="us-west-2")
        ecr.create_repository(repositoryName="acme/fox")
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                               "config": {"digest": "sha256:" + "1" * 64, "size": 1, "mediaType": "x"},
                               "layers": []})
        digest = ecr.put_image(repositoryName="acme/fox", imageManifest=manifest, imageTag="v1")["image"][
            "imageId"]["imageDigest"]
        registry = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
        there, gone = f"{registry}/acme/fox@{digest}", f"{registry}/acme/fox@sha256:{'2' * 64}"
        assert missing_images(ecr, [there, gone], "123456789012", "us-west-2") == [gone]


@pytest.mark.parametrize(("runtime", "says"), [
    ("{name: m, type: cog}", "runs your own image: set `image`"),
    ("{name: m, type: cog, image: r8.im/a/b, inputs: {guidance: guidance_scale}}",
     "inputs.guidance is not a text-to-image task field"),
    ("{name: m, type: cog, image: r8.im/a/b, inputs: {steps: 'num steps'}}", "is not an input name"),
    ("{name: m, type: sdwebui, inputs: {steps: num_inference_steps}}", "a sdwebui runtime takes none"),
])
def test_validate_checks_a_cog_runtimes_form_naming_the_field(tmp_path, runtime, says):
    """`sdctl validate` cannot reach the model: it checks the mapping's form (and that the image
    is named); the model's own inputs are checked by the agent at start."""
    from tests.helpers import cli

    (tmp_path / "sdctl.yaml").write_text(f"runtimes: [{runtime}]\n")
    r = cli("validate", cwd=tmp_path, check=False)
    assert r.returncode == 2 and says in r.stderr and "runtimes[0]" in r.stderr


def test_validate_accepts_a_cog_runtime_with_its_image_and_a_mapping(tmp_path):
    from tests.helpers import cli

    (tmp_path / "sdctl.yaml").write_text("runtimes: [{name: m, type: cog, image: r8.im/a/b, "
                                         "inputs: {negative_prompt: null, cfg_scale: guidance}}]\n")
    assert cli("validate", cwd=tmp_path).returncode == 0


@pytest.mark.e2e
def test_through_the_local_stack_progress_shows_and_a_cancel_stops_the_prediction(cog, tmp_path):
    """A long prediction through the local stack: the task's record shows step k of N from the
    model's step counter while it runs, and `sdctl tasks cancel` ends it `cancelled` within
    seconds (the agent calls Cog's /cancel), long before its 100 steps would have."""
    from tests.helpers import cli

    cwd = tmp_path / "stack"
    cwd.mkdir()
    (cwd / "sdctl.yaml").write_text("region: us-west-2\nruntimes:\n  - name: mycog\n    type: cog\n"
                                    "    image: r8.im/acme/fox-painter\n")
    state = os.environ.pop("SDCTL_STATE_DIR", None)
    try:
        cli("local", "up", "--detach", "--runtime-url", f"mycog={cog.url}", cwd=cwd)
        task = {"task": {"metadata": {"id": "long-cog", "runtime": "mycog", "tasktype": "text-to-image"},
                         "content": {"prompt": "slowly", "steps": 100, "width": 64, "height": 64}}}
        (cwd / "task.json").write_text(json.dumps(task))
        cli("submit", "task.json", "--local", cwd=cwd)
        deadline, seen = time.monotonic() + 30, None
        while seen is None:
            record = json.loads(cli("tasks", "get", "long-cog", "--local", "-o", "json", cwd=cwd).stdout)
            seen = record.get("progress")
            assert time.monotonic() < deadline and record["status"] in ("queued", "running"), record
            time.sleep(0.2)
        assert seen["steps"] == 100 and 1 <= seen["step"] < 100
        asked = time.monotonic()
        cli("tasks", "cancel", "long-cog", "--local", cwd=cwd)
        while json.loads(cli("tasks", "get", "long-cog", "--local", "-o", "json", cwd=cwd).stdout)["status"] != \
                "cancelled":
            assert time.monotonic() - asked < 10, "not cancelled within 10 s"
            time.sleep(0.2)
    finally:
        cli("local", "down", cwd=cwd, check=False)
        if state:
            os.environ["SDCTL_STATE_DIR"] = state


@pytest.mark.e2e
def test_through_the_local_stack_a_runtime_that_can_never_take_a_task_stops_its_agent_with_the_reason(
        cog, tmp_path):
    """Two cog runtimes: one whose model's setup failed, one whose `inputs` names an input the
    model lacks. Each agent stops (not a restart loop) and `sdctl local status` says why."""
    from tests.helpers import cli

    broken = CogServer(tmp_path / "broken", COG_TEST_SETUP_FAIL="1")
    cwd = tmp_path / "stack"
    cwd.mkdir()
    (cwd / "sdctl.yaml").write_text(
        "region: us-west-2\nruntimes:\n  - {name: broken, type: cog, image: r8.im/a/b}\n"
        "  - {name: mismapped, type: cog, image: r8.im/a/c, inputs: {cfg_scale: guidance_scale}}\n")
    state = os.environ.pop("SDCTL_STATE_DIR", None)
    try:
        assert broken.wait() == "SETUP_FAILED"
        cli("local", "up", "--detach", "--runtime-url", f"broken={broken.url}", "--runtime-url",
            f"mismapped={cog.url}", cwd=cwd)
        deadline = time.monotonic() + 60
        while True:
            status = json.loads(cli("local", "status", "-o", "json", cwd=cwd, check=False).stdout)
            stopped = {p["runtime"]: p["stopped"] for p in status["processes"] if p.get("stopped")}
            if len(stopped) == 2:
                break
            assert time.monotonic() < deadline, status["processes"]
            time.sleep(0.5)
        assert "SETUP_FAILED" in stopped["broken"] and "weights not found" in stopped["broken"]
        assert "inputs.cfg_scale names 'guidance_scale', an input the model lacks" in stopped["mismapped"]
        text = cli("local", "status", cwd=cwd, check=False).stdout
        assert "agent-broken-1 stopped:" in text
        restarts = {p["name"]: p["restarts"] for p in status["processes"] if p["role"] == "agent"}
        assert set(restarts.values()) == {0}  # not restarted
    finally:
        cli("local", "down", cwd=cwd, check=False)
        broken.stop()
        if state:
            os.environ["SDCTL_STATE_DIR"] = state
