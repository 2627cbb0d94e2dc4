"""A loaded diffusers pipeline that does one generation at a time (which pipeline: models.py)."""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from sdctl.runtime.models import TINY, is_sdxl, load_pipeline
from sdctl.runtime.prompts import chunked_embeds, token_count
from sdctl.runtime.requests import (  # noqa: F401 - RequestError and upscale: the server's too
    MAX_IMAGES,
    PER_REQUEST,
    SAMPLERS,
    RequestError,
    _png,
    _settings,
    upscale,
)


class Interrupted(Exception):
    pass


@dataclass
class Progress:
    job: str = ""
    job_count: int = 0
    job_no: int = 0
    sampling_step: int = 0
    sampling_steps: int = 0
    interrupted: bool = False
    started: float = 0.0
    last_seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def on_torch_thread(method):
    """Run the method on the engine's torch thread, whichever thread calls it."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if threading.current_thread() is self._torch_thread:
            return method(self, *args, **kwargs)
        return self.submit(method, self, *args, **kwargs).result()
    return wrapper


class Engine:
    """Holds the pipeline; serialises generations behind one lock.

    Everything that runs torch (load, warm-up, every render) runs on one thread of its own,
    through :meth:`submit`: torch's CPU kernels keep a pool of worker threads per calling
    thread, and two such pools on a few cores spin against each other. Loading on the main
    thread and rendering on a server's worker threads made a render on 2 cores 2-3x slower
    (bench/runtime_gpu.py: the runtime over HTTP against the same recipe in process)."""

    def __init__(self, model: str = TINY, *, models_dir: str | None = None, device: str | None = None,
                 warm_up: bool = True):
        started = time.monotonic()
        import torch

        from sdctl.runtime import accel

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        cuda = self.device.startswith("cuda")
        self.accel = accel.plan(self.device, bf16=cuda and torch.cuda.is_bf16_supported(),
                                toolchain_missing=accel.toolchain_missing() if cuda else None)
        #: How long each start phase took, in seconds (logged, and in /readyz).
        self.phases: dict[str, float] = {"import": round(time.monotonic() - started, 3)}
        self.models_dir = Path(models_dir) if models_dir else None
        self.lock = threading.Lock()
        self.progress = Progress()
        self._interrupt = False
        self.model = ""
        self.pipe = None
        self._torch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torch")
        self._torch_thread: threading.Thread | None = None
        self.submit(self._start, model, warm_up).result()

    def submit(self, fn, *args, **kwargs) -> Future:
        """Run `fn(*args)` on the engine's torch thread."""
        return self._torch.submit(fn, *args, **kwargs)

    def _start(self, model: str, warm_up: bool) -> None:
        self._torch_thread = threading.current_thread()
        t = time.monotonic()
        self.load(model)
        self.phases["model_load"] = round(time.monotonic() - t, 3)
        if warm_up:  # the first render pays for kernel choice (and compilation): not a task
            t = time.monotonic()
            side = self.warm_up_side()
            self.txt2img({"prompt": "warm-up", "steps": 1, "width": side, "height": side, "seed": 0})
            self.phases["warm_up"] = round(time.monotonic() - t, 3)

    def warm_up_side(self) -> int:
        """On a GPU, the model's native size (512 for SD 1.x, 768 for SD 2.x' v-models, 1024 for
        SDXL: its UNet's sample size times the VAE's scale): kernels are chosen, and a compiled
        UNet is compiled, per shape, so a warm-up at another size would leave that work to the
        first task. On a CPU 64 px: there is nothing to choose, only time to lose."""
        if not self.device.startswith("cuda"):
            return 64
        sample = getattr(getattr(self.pipe.unet, "config", None), "sample_size", None)
        scale = getattr(self.pipe, "vae_scale_factor", 8)
        return int(sample * scale) if isinstance(sample, int) else 512

    # -- models -------------------------------------------------------------------
    def available(self) -> list[str]:
        names = [TINY]
        if self.models_dir and self.models_dir.is_dir():
            for p in sorted(self.models_dir.iterdir()):
                if p.is_dir() and (p / "model_index.json").exists() or p.suffix in (".safetensors", ".ckpt"):
                    names.append(p.name)
        if self.model not in names:
            names.append(self.model)
        return names

    def resolve(self, name: str) -> str:
        bare = name.split(" [")[0]
        if bare == TINY or bare == self.model:
            return bare
        if self.models_dir and bare in self.available():
            return str(self.models_dir / bare)
        raise RequestError(f"model {name!r} not found; available: {', '.join(self.available())}")

    @on_torch_thread
    def load(self, model: str) -> None:
        with self.lock:
            from sdctl.runtime import accel

            pipe = accel.apply(load_pipeline(model), self.accel)
            pipe.set_progress_bar_config(disable=True)
            self.pipe = pipe
            self.model = Path(model).name if model != TINY else TINY
            self._base_scheduler = pipe.scheduler.config

    # -- generation -----------------------------------------------------------------
    def interrupt(self) -> None:
        self._interrupt = True

    @on_torch_thread
    def txt2img(self, req: dict) -> tuple[list[bytes], dict]:
        return self._generate(req, init_image=None)

    @on_torch_thread
    def img2img(self, req: dict, init_image: Image.Image) -> tuple[list[bytes], dict]:
        return self._generate(req, init_image=init_image)

    @on_torch_thread
    def txt2img_many(self, reqs: list[dict]) -> list[tuple[list[bytes], dict]]:
        """Several one-image requests that differ only in prompt, negative prompt and seed, in
        one pipeline call (the GPU's parallelism across tasks); one (images, info) per request,
        each byte-identical to what `txt2img` gives for it alone."""
        if not reqs:
            raise RequestError("requests must be a non-empty list")
        if len(reqs) > MAX_IMAGES:
            raise RequestError(f"at most {MAX_IMAGES} requests per batch")
        parsed = [_settings(r) for r in reqs]
        shared = {k: v for k, v in parsed[0].items() if k not in PER_REQUEST}
        for i, p in enumerate(parsed):
            if p["batch"] * p["n_iter"] != 1:
                raise RequestError(f"requests[{i}]: batch_size and n_iter must be 1 in a batch")
            if {k: v for k, v in p.items() if k not in PER_REQUEST} != shared:
                raise RequestError(f"requests[{i}]: settings differ from requests[0]; only prompt, "
                                   "negative_prompt and seed may differ")
        negatives = [p["negative"] for p in parsed]
        images = self._pipe([p["prompt"] for p in parsed], negatives if any(negatives) else None,
                            [p["seed"] for p in parsed], shared, None, job_count=1)
        return [([img], self._info(p, [p["seed"]], 1)) for p, img in zip(parsed, images, strict=True)]

    def _generate(self, req: dict, init_image: Image.Image | None) -> tuple[list[bytes], dict]:
        p = _settings(req)
        batch, count = p["batch"], p["batch"] * p["n_iter"]
        seeds = [p["seed"] + i for i in range(count)]
        images: list[bytes] = []
        # One pipeline call per batch of batch_size images (the hardware's parallelism);
        # a generator per image keeps every seed reproducible.
        for i in range(p["n_iter"]):
            batch_seeds = seeds[i * batch:(i + 1) * batch]
            images.extend(self._pipe(p["prompt"], p["negative"] or None, batch_seeds, p, init_image,
                                     job_count=p["n_iter"], job_no=i))
            if self._interrupt:
                break
        return images, self._info(p, seeds, len(images))

    def _pipe(self, prompt, negative, seeds: list[int], p: dict, init_image: Image.Image | None, *,
              job_count: int, job_no: int = 0) -> list[bytes]:
        """One pipeline call under the lock: a prompt (or one per seed) and a generator per seed."""
        import diffusers
        import torch

        if is_sdxl(self.pipe):
            window = self.pipe.tokenizer.model_max_length - 2
            longest = max(token_count(self.pipe, t or "") for t in
                          [*(prompt if isinstance(prompt, list) else [prompt]),
                           *(negative if isinstance(negative, list) else [negative])])
            if longest > window:
                raise RequestError(f"prompt is {longest} tokens; SDXL models take at most {window} (longer "
                                   "prompts are encoded in chunks for SD 1.x/2.x models only)")
        with self.lock:
            if job_no == 0:
                self._interrupt = False
            self.progress = Progress(job="img2img" if init_image else "txt2img", job_count=job_count, job_no=job_no,
                                     sampling_steps=p["steps"], started=time.monotonic())
            scheduler = getattr(diffusers, SAMPLERS[p["sampler"]]).from_config(self._base_scheduler)
            if init_image is None:
                pipe = self.pipe
                extra = {"width": p["width"], "height": p["height"]}
            else:
                cls = diffusers.StableDiffusionXLImg2ImgPipeline if is_sdxl(self.pipe) \
                    else diffusers.StableDiffusionImg2ImgPipeline
                pipe = cls(**self.pipe.components)
                pipe.set_progress_bar_config(disable=True)
                extra = {"image": init_image.convert("RGB").resize((p["width"], p["height"])),
                         "strength": p["strength"]}
            pipe.scheduler = scheduler
            from sdctl.runtime.accel import tile_for

            tile_for(pipe, p["width"], p["height"])
            per_prompt = 1 if isinstance(prompt, list) else len(seeds)
            prompts = prompt if isinstance(prompt, list) else [prompt]
            negatives = negative if isinstance(negative, list) else [negative or ""] * len(prompts)
            # SDXL (two encoders, a pooled embedding) is not chunked: a longer prompt is refused
            # before this call, never cut.
            embeds = None if is_sdxl(pipe) else chunked_embeds(pipe, prompts, negatives)  # None: all fit
            text = {"prompt": prompt, "negative_prompt": negative} if embeds is None else \
                {"prompt_embeds": embeds[0], "negative_prompt_embeds": embeds[1]}
            try:
                out = pipe(**text, num_inference_steps=p["steps"],
                           guidance_scale=p["cfg"], num_images_per_prompt=per_prompt,
                           generator=[torch.Generator("cpu").manual_seed(x) for x in seeds],
                           callback_on_step_end=self._on_step, **extra)
            finally:
                self.pipe.scheduler = scheduler.__class__.from_config(self._base_scheduler)
                self.progress.last_seconds = time.monotonic() - self.progress.started
                self.progress.job = ""
            return [] if self._interrupt else [_png(img) for img in out.images]

    def _info(self, p: dict, seeds: list[int], made: int) -> dict:
        return {
            "prompt": p["prompt"], "negative_prompt": p["negative"], "seed": p["seed"], "all_seeds": seeds[:made],
            "prompt_tokens": token_count(self.pipe, p["prompt"]),  # over 75: encoded in chunks, none cut
            "all_prompts": [p["prompt"]] * made, "steps": p["steps"], "cfg_scale": p["cfg"],
            "width": p["width"], "height": p["height"], "sampler_name": p["sampler"], "sd_model_name": self.model,
            "sd_model_hash": None, "index_of_first_image": 0, "interrupted": self._interrupt,
        }

    def _on_step(self, pipe, step, timestep, callback_kwargs):
        self.progress.sampling_step = step + 1
        if self._interrupt:
            pipe._interrupt = True
            self.progress.interrupted = True
        return callback_kwargs
