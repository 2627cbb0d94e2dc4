"""The built-in runtime speaks the AUTOMATIC1111 API on a real (tiny, offline) diffusers pipeline."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image
from starlette.testclient import TestClient

from tests.helpers import assert_same_render


@pytest.fixture(scope="module")
def api(tiny_engine):
    from sdctl.runtime.server import create_app

    with TestClient(create_app(tiny_engine)) as client:
        yield client


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def txt2img(api, **kw):
    body = {"prompt": "a red fox", "steps": 2, "width": 64, "height": 64, "seed": 7}
    body.update(kw)
    return api.post("/sdapi/v1/txt2img", json=body)


def test_txt2img_returns_pngs_of_the_requested_size_and_info(api):
    r = txt2img(api, width=96, height=64, batch_size=2)
    assert r.status_code == 200
    data = r.json()
    assert len(data["images"]) == 2
    assert all(decode(i).size == (96, 64) for i in data["images"])
    info = json.loads(data["info"])
    assert info["seed"] == 7 and info["all_seeds"] == [7, 8]
    assert info["sd_model_name"] == "tiny"
    assert data["parameters"]["prompt"] == "a red fox"


def test_same_prompt_and_seed_give_the_same_bytes_and_others_differ(api):
    a = txt2img(api).json()["images"][0]
    b = txt2img(api).json()["images"][0]
    other_seed = txt2img(api, seed=8).json()["images"][0]
    other_prompt = txt2img(api, prompt="a blue whale").json()["images"][0]
    assert a == b
    assert len({a, other_seed, other_prompt}) == 3


def test_random_seed_is_reported(api):
    info = json.loads(txt2img(api, seed=-1).json()["info"])
    assert 0 <= info["seed"] < 2**32


def test_samplers(api):
    assert txt2img(api, sampler_name="Euler a").status_code == 200
    r = txt2img(api, sampler_name="Nope")
    assert r.status_code == 422 and "Nope" in r.json()["detail"]


@pytest.mark.parametrize("kw,word", [({"width": 65}, "multiples of 8"), ({"steps": 0}, "steps"),
                                     ({"seed": "x"}, "seed"), ({"batch_size": 99}, "batch_size")])
def test_bad_requests_are_422_with_a_reason(api, kw, word):
    r = txt2img(api, **kw)
    assert r.status_code == 422
    assert word in r.json()["detail"]


def test_img2img_and_extra_single_image(api):
    src = txt2img(api).json()["images"][0]
    r = api.post("/sdapi/v1/img2img", json={"prompt": "x", "init_images": [src], "steps": 4, "width": 64,
                                            "height": 64, "seed": 1, "denoising_strength": 0.5})
    assert r.status_code == 200 and decode(r.json()["images"][0]).size == (64, 64)
    r = api.post("/sdapi/v1/extra-single-image", json={"image": src, "upscaling_resize": 2})
    assert r.status_code == 200 and decode(r.json()["image"]).size == (128, 128)
    r = api.post("/sdapi/v1/img2img", json={"prompt": "x", "init_images": ["not an image"]})
    assert r.status_code == 422 and "init_images[0]" in r.json()["detail"]


def test_options_models_progress_memory(api):
    assert api.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == "tiny"
    assert [m["title"] for m in api.get("/sdapi/v1/sd-models").json()] == ["tiny"]
    assert api.post("/sdapi/v1/options", json={"sd_model_checkpoint": "tiny"}).json() is None
    r = api.post("/sdapi/v1/options", json={"sd_model_checkpoint": "sdxl.safetensors"})
    assert r.status_code == 422 and "not found" in r.json()["detail"]
    p = api.get("/sdapi/v1/progress").json()
    assert p["state"]["job"] == "" and p["progress"] == 0
    assert api.get("/sdapi/v1/memory").json()["ram"]["total"] > 0
    assert api.get("/sdapi/v1/nothing").status_code == 404


def test_a_batch_is_one_call_yet_every_image_is_reproducible(api, tiny_engine):
    first = txt2img(api, batch_size=3, n_iter=2).json()
    again = txt2img(api, batch_size=3, n_iter=2).json()
    assert len(first["images"]) == 6 and first["images"] == again["images"]
    assert len(set(first["images"])) == 6  # six different seeds, six different images
    assert json.loads(first["info"])["all_seeds"] == [7, 8, 9, 10, 11, 12]


def test_tasks_batched_into_one_pipeline_call_come_back_as_each_alone(api, tiny_engine):
    """sdctl's /sdctl/v1/txt2img-batch: different prompts and seeds, one pipeline call, and
    each request gets the image txt2img gives it alone (compared pixel by pixel: batched CPU
    matmuls may differ in the last bit, so within RENDER_TOLERANCE)."""
    from unittest import mock

    reqs = [{"prompt": p, "steps": 2, "width": 64, "height": 64, "seed": s}
            for p, s in (("a red fox", 7), ("a blue whale", 3), ("a green frog", 11))]
    alone = [txt2img(api, **r).json()["images"][0] for r in reqs]
    calls = []
    pipe = tiny_engine.pipe
    with mock.patch.object(tiny_engine, "pipe", side_effect=lambda *a, **kw: calls.append(kw["prompt"]) or
                           pipe(*a, **kw), wraps=pipe) as wrapped:
        wrapped.components, wrapped.scheduler = pipe.components, pipe.scheduler
        wrapped.tokenizer, wrapped.text_encoder = pipe.tokenizer, pipe.text_encoder
        r = api.post("/sdctl/v1/txt2img-batch", json={"requests": reqs})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert calls == [[q["prompt"] for q in reqs]]  # one call, every prompt
    for req, result, single in zip(reqs, results, alone, strict=True):
        assert json.loads(result["info"])["seed"] == req["seed"] and result["parameters"]["prompt"] == req["prompt"]
        assert_same_render(decode(result["images"][0]), decode(single))


@pytest.mark.parametrize("reqs,word", [
    ([{"prompt": "a", "steps": 2}, {"prompt": "b", "steps": 3}], "settings differ from requests[0]"),
    ([{"prompt": "a", "batch_size": 2}], "batch_size and n_iter must be 1"),
    ([], "non-empty"),
    ("nope", "must be a list"),
])
def test_a_batch_with_mixed_settings_is_refused_naming_the_request(api, reqs, word):
    r = api.post("/sdctl/v1/txt2img-batch", json={"requests": reqs})
    assert r.status_code == 422 and word in r.json()["detail"]


def test_a_prompt_longer_than_clips_window_is_read_to_its_end(api):
    """AUTOMATIC1111 reads long prompts in chunks of 75 tokens; so does the built-in runtime.
    The tiny model's tokenizer makes a token of each character but spaces: two prompts that
    differ only after their 80th token must make different images (cut at 77, they did not)."""
    head = "a red fox in a snowy forest at dawn, soft light, detailed fur, wide shot, mist, pine trees, golden hour, "
    assert len(head.replace(" ", "")) > 77
    one = txt2img(api, prompt=head + "with a crow").json()
    other = txt2img(api, prompt=head + "with a hare").json()
    assert one["images"][0] != other["images"][0]
    info = json.loads(one["info"])
    assert info["prompt_tokens"] == len((head + "with a crow").replace(" ", ""))
    again = txt2img(api, prompt=head + "with a crow", negative_prompt="blurry").json()
    assert again["images"][0] != one["images"][0]  # a short negative prompt is padded to the same chunks
    short = txt2img(api).json()  # a prompt that fits is encoded as before (the pipeline's own way)
    assert json.loads(short["info"])["prompt_tokens"] == len("aredfox")


def test_the_runtime_reports_its_start_phases_and_how_it_runs(api, tiny_engine):
    """/readyz: ready only once loaded and warmed up, with each phase's seconds (a cold start's
    budget, as `sdctl scale status` and the logs show it) and the device recipe."""
    body = api.get("/readyz").json()
    assert body["status"] == "ready" and set(body["start_seconds"]) == {"import", "model_load", "warm_up"}
    assert all(v >= 0 for v in body["start_seconds"].values())
    assert body["accel"] == {"device": "cpu", "dtype": "float32", "channels_last": False, "compile": False}
    assert next(tiny_engine.pipe.unet.parameters()).dtype.__repr__() == "torch.float32"


@pytest.mark.parametrize("device,bf16,compile_,expected", [
    ("cuda", True, False, ("bfloat16", True, False)),   # A10G, L4, L40S
    ("cuda", False, True, ("float16", True, True)),     # T4 (g4dn), with SD_COMPILE=1
    ("cpu", False, True, ("float32", False, False)),    # compile and half precision only on a GPU
])
def test_the_pipeline_recipe_follows_the_device(device, bf16, compile_, expected):
    from sdctl.runtime import accel

    p = accel.plan(device, bf16=bf16, compile_requested=compile_)
    assert (p.dtype, p.channels_last, p.compile) == expected


def test_a_compile_the_machine_cannot_do_is_turned_off_with_the_reason(monkeypatch, tmp_path):
    """torch.compile's GPU code (Triton) builds a C launcher per kernel at run time: without a
    compiler or Python's headers the first render would fail, so the plan runs uncompiled and
    says why (in /readyz and the start log) instead of crash-looping the pod."""
    from sdctl.runtime import accel

    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    assert "no C compiler" in accel.toolchain_missing()
    p = accel.plan("cuda", bf16=True, compile_requested=True, toolchain_missing=accel.toolchain_missing())
    assert (p.dtype, p.compile) == ("bfloat16", False)
    assert p.to_dict()["note"].startswith("compile requested but off: no C compiler")
    cc = tmp_path / "cc"
    cc.write_text("#!/bin/sh\n")
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    monkeypatch.setattr("sysconfig.get_paths", lambda: {"include": str(tmp_path / "include")})
    assert "no Python headers" in accel.toolchain_missing()
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "Python.h").write_text("")
    assert accel.toolchain_missing() is None
    assert accel.plan("cuda", bf16=True, compile_requested=True, toolchain_missing=None).compile is True


def test_on_a_gpu_the_warm_up_renders_at_the_models_native_size():
    """A compiled UNet is compiled per input shape, and kernels are chosen per shape, so the
    warm-up renders at the size tasks ask for by default: the UNet's sample size times the
    VAE's scale, as diffusers' pipelines compute their default. (No GPU here: the engine's
    attributes as a CUDA engine would hold them, with the published configs' sample sizes.)"""
    from types import SimpleNamespace

    from sdctl.runtime.engine import Engine

    def engine(device, sample):
        unet = SimpleNamespace(config=SimpleNamespace(sample_size=sample))
        return SimpleNamespace(device=device, pipe=SimpleNamespace(unet=unet, vae_scale_factor=8))

    assert Engine.warm_up_side(engine("cuda", 64)) == 512     # SD 1.5
    assert Engine.warm_up_side(engine("cuda", 96)) == 768     # SD 2.1 (768-v)
    assert Engine.warm_up_side(engine("cuda", 128)) == 1024   # SDXL
    assert Engine.warm_up_side(engine("cpu", 128)) == 64


def test_large_images_decode_in_tiles(api, tiny_engine):
    from sdctl.runtime import accel

    accel.tile_for(tiny_engine.pipe, 1536, 512)
    assert tiny_engine.pipe.vae.use_tiling is True
    txt2img(api)  # a small one switches tiling off again
    assert tiny_engine.pipe.vae.use_tiling is False
