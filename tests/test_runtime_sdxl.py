"""The built-in runtime serves SDXL models as well as SD 1.x/2.x, and the GPU benchmark runs.

The models are bench/pipelines.py's: SD 1.5 and SDXL architectures (block types, attention
layout, SDXL's two text encoders and pooled, time-conditioned embedding) at a few million
random parameters, written as diffusers folders the way `save_pretrained` writes a published
model. The runtime loads them as it loads a user's model folder.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys

import pytest
from PIL import Image
from starlette.testclient import TestClient

from tests.conftest import ROOT
from tests.helpers import assert_same_render


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory):
    from bench.pipelines import build

    folder = tmp_path_factory.mktemp("models") / "sdxl-tiny"
    build("sdxl", "tiny").save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def api(sdxl_folder):
    from sdctl.runtime.engine import Engine
    from sdctl.runtime.server import create_app

    with TestClient(create_app(Engine(str(sdxl_folder)))) as client:
        yield client


def images(r) -> list[Image.Image]:
    assert r.status_code == 200, r.text
    return [Image.open(io.BytesIO(base64.b64decode(i))) for i in r.json()["images"]]


def test_an_sdxl_folder_loads_as_sdxl_and_renders_txt2img_with_reproducible_seeds(api):
    body = {"prompt": "a red fox", "steps": 2, "width": 64, "height": 96, "seed": 3, "batch_size": 2}
    first = images(api.post("/sdapi/v1/txt2img", json=body))
    assert [im.size for im in first] == [(64, 96), (64, 96)]
    again = images(api.post("/sdapi/v1/txt2img", json={**body, "batch_size": 1}))
    assert_same_render(again[0], first[0])  # seed 3 alone gives the batch's first image
    assert "sdxl-tiny" in [m["model_name"] for m in api.get("/sdapi/v1/sd-models").json()]
    assert api.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("sdxl-tiny")


def test_sdxl_img2img_and_a_batch_of_tasks(api):
    init = Image.new("RGB", (64, 64), (200, 40, 40))
    buf = io.BytesIO()
    init.save(buf, format="PNG")
    r = api.post("/sdapi/v1/img2img", json={"prompt": "a red fox", "steps": 2, "width": 64, "height": 64, "seed": 1,
                                            "denoising_strength": 0.5,
                                            "init_images": [base64.b64encode(buf.getvalue()).decode()]})
    assert [im.size for im in images(r)] == [(64, 64)]
    r = api.post("/sdctl/v1/txt2img-batch", json={"requests": [
        {"prompt": p, "seed": i, "steps": 1, "width": 64, "height": 64} for i, p in enumerate(("a fox", "an owl"))]})
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 2


def test_an_sdxl_prompt_longer_than_its_window_is_refused_not_cut(api):
    r = api.post("/sdapi/v1/txt2img", json={"prompt": "fox " * 30, "steps": 1, "width": 64, "height": 64})
    assert r.status_code == 422
    assert "SDXL models take at most 75" in r.json()["detail"]
    ok = api.post("/sdapi/v1/txt2img", json={"prompt": "a fox", "steps": 1, "width": 64, "height": 64})
    assert ok.status_code == 200  # the refusal left the runtime ready for the next task
    assert api.get("/sdapi/v1/progress").json()["state"]["job"] == ""


def test_a_single_file_checkpoint_is_told_apart_by_its_tensor_names(tmp_path):
    """The names are those of the original (non-diffusers) checkpoints: SDXL's second text
    encoder under conditioner.embedders.1, SD 1.x's under cond_stage_model, SD 2.x's
    cross-attention keys 1024 wide (768 in SD 1.x), as diffusers' own inference reads them."""
    import torch
    from safetensors.torch import save_file

    from sdctl.runtime.models import _V2_KEY, single_file_kind

    save_file({"conditioner.embedders.1.model.ln_final.weight": torch.zeros(2)}, tmp_path / "xl.safetensors")
    save_file({"cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.zeros(2),
               _V2_KEY: torch.zeros(320, 768)}, tmp_path / "v1.safetensors")
    save_file({_V2_KEY: torch.zeros(320, 1024)}, tmp_path / "v2.safetensors")
    kinds = [single_file_kind(tmp_path / n) for n in ("xl.safetensors", "v1.safetensors", "v2.safetensors", "v1.ckpt")]
    assert kinds == ["xl_base", "v1", "v2", "v1"]


def test_a_single_file_without_its_configs_fails_to_start_with_the_reason(tmp_path):
    """The runtime image seeds the Hub cache with each type's configs (docker/runtime.Dockerfile);
    a runtime started without them, offline as in a pod, exits 1 with one log line that names
    the model, its type and the fix, instead of a Hub traceback."""
    import torch
    from safetensors.torch import save_file

    save_file({"cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.zeros(2)},
              tmp_path / "fox.safetensors")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "-m", "sdctl.runtime", "--model", str(tmp_path / "fox.safetensors"),
                        "--port", "0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    line = json.loads(next(x for x in r.stderr.splitlines() if x.startswith("{")))
    assert line["msg"] == "model failed to load"
    assert "'fox.safetensors' is a single-file v1 checkpoint" in line["error"]
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in line["error"]
    assert "python -m sdctl.runtime.hubconfigs" in line["error"]


def test_the_runtime_image_seeds_the_configs_where_its_user_reads_them():
    """No Docker here: the recipe's text. The seeding runs online (the image is offline by
    default), into the HF_HOME the runtime reads, readable by the non-root user it runs as,
    after the packages it needs are installed; the repositories are diffusers' own for each type."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_DEFAULT_PIPELINE_PATHS

    from sdctl.runtime.hubconfigs import REPOS

    text = (ROOT / "docker" / "runtime.Dockerfile").read_text()
    assert "HF_HOME=/opt/huggingface" in text and "HF_HUB_OFFLINE=1" in text
    run = text[text.index("pip3 install --no-cache-dir -r /tmp/runtime.txt"):text.index("useradd")]
    assert "HF_HUB_OFFLINE=0 python3 -m sdctl.runtime.hubconfigs" in run
    assert 'chmod -R a+rX "${HF_HOME}"' in run
    for kind, (repo, _) in REPOS.items():
        assert DIFFUSERS_DEFAULT_PIPELINE_PATHS[kind]["pretrained_model_name_or_path"] == repo


def test_the_gpu_benchmark_runs_at_small_sizes_and_prints_its_ratios(tmp_path):
    """bench/runtime_gpu.py as a GPU machine runs it, at the tiny scale on this CPU: every
    variant renders, through the runtime's HTTP server too, and the ratios are printed."""
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, "bench/runtime_gpu.py", "--scale", "tiny", "--size", "64", "--steps", "1",
                        "--rounds", "1", "--batches", "1,2", "--json", str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "runtime over HTTP / recipe in process, batch 1" in r.stdout
    assert "batch 2 gives" in r.stdout
    figures = json.loads(out.read_text())
    assert [x["kind"] for x in figures["results"]] == ["sd15", "sdxl"]
    assert all(s > 0 for x in figures["results"] for s in x["seconds_per_image"].values())
    assert any("sdctl runtime HTTP @ 2" in x["seconds_per_image"] for x in figures["results"])


def test_the_gpu_benchmark_builds_the_published_full_size_unets():
    """Counted on the meta device (shapes only, no memory): the published UNets have 859.5 M
    (SD 1.5, runwayml's unet/config.json) and 2,567 M (SDXL base 1.0) parameters, so a GPU
    figure from the bench is a figure for the real architectures."""
    import torch
    from diffusers import UNet2DConditionModel

    from bench.pipelines import SD15_UNET, SDXL_UNET

    with torch.device("meta"):
        counts = [sum(p.numel() for p in UNet2DConditionModel(**c).parameters()) for c in (SD15_UNET, SDXL_UNET)]
    assert [round(n / 1e6, 1) for n in counts] == [859.5, 2567.5]
