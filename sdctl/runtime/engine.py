"""A loaded diffusers pipeline that does one generation at a time.

`tiny` builds a small, randomly initialised Stable Diffusion pipeline entirely offline
(no hub): weights come from a fixed seed, so the same prompt and seed give the same bytes.
Any other name is a local diffusers folder or a single-file checkpoint.
"""

from __future__ import annotations

import io
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

TINY = "tiny"
SAMPLERS = {
    "Euler": "EulerDiscreteScheduler",
    "Euler a": "EulerAncestralDiscreteScheduler",
    "DDIM": "DDIMScheduler",
    "DPM++ 2M": "DPMSolverMultistepScheduler",
    "PNDM": "PNDMScheduler",
    "LMS": "LMSDiscreteScheduler",
}
MAX_SIDE = 2048
MAX_IMAGES = 16


class RequestError(ValueError):
    """A request the runtime cannot serve (the caller's fault): HTTP 422."""


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


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def build_tiny_pipeline(seed: int = 0):
    """A 4-block-VAE SD pipeline with ~4M random parameters and a byte-level tokenizer."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    bos, eos = "<|startoftext|>", "<|endoftext|>"
    vocab[bos] = len(vocab)
    vocab[eos] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=5, max_position_embeddings=77,
        bos_token_id=vocab[bos], eos_token_id=vocab[eos], pad_token_id=vocab[eos]))
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32)
    vae = AutoencoderKL(
        block_out_channels=[32, 32, 64, 64], latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", steps_offset=1)
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def load_pipeline(model: str):
    from diffusers import StableDiffusionPipeline

    if model == TINY:
        return build_tiny_pipeline()
    path = Path(model)
    if path.is_dir():
        return StableDiffusionPipeline.from_pretrained(
            path, local_files_only=True, safety_checker=None, requires_safety_checker=False)
    if path.is_file():
        return StableDiffusionPipeline.from_single_file(
            path, local_files_only=True, safety_checker=None, requires_safety_checker=False)
    raise FileNotFoundError(f"model {model!r} is neither 'tiny' nor a local folder or file")


class Engine:
    """Holds the pipeline; serialises generations behind one lock."""

    def __init__(self, model: str = TINY, *, models_dir: str | None = None, device: str | None = None):
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.models_dir = Path(models_dir) if models_dir else None
        self.lock = threading.Lock()
        self.progress = Progress()
        self._interrupt = False
        self.model = ""
        self.pipe = None
        self.load(model)

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

    def load(self, model: str) -> None:
        with self.lock:
            pipe = load_pipeline(model).to(self.device)
            pipe.set_progress_bar_config(disable=True)
            self.pipe = pipe
            self.model = Path(model).name if model != TINY else TINY
            self._base_scheduler = pipe.scheduler.config

    # -- generation -----------------------------------------------------------------
    def interrupt(self) -> None:
        self._interrupt = True

    def txt2img(self, req: dict) -> tuple[list[bytes], dict]:
        return self._generate(req, init_image=None)

    def img2img(self, req: dict, init_image: Image.Image) -> tuple[list[bytes], dict]:
        return self._generate(req, init_image=init_image)

    def _generate(self, req: dict, init_image: Image.Image | None) -> tuple[list[bytes], dict]:
        import torch

        prompt = str(req.get("prompt", ""))
        negative = str(req.get("negative_prompt", "") or "")
        steps = _int(req, "steps", 20, 1, 150)
        cfg = _float(req, "cfg_scale", 7.0, 0.0, 30.0)
        width = _int(req, "width", 512, 8, MAX_SIDE)
        height = _int(req, "height", 512, 8, MAX_SIDE)
        if width % 8 or height % 8:
            raise RequestError("width and height must be multiples of 8")
        batch = _int(req, "batch_size", 1, 1, MAX_IMAGES)
        n_iter = _int(req, "n_iter", 1, 1, MAX_IMAGES)
        if batch * n_iter > MAX_IMAGES:
            raise RequestError(f"batch_size x n_iter must be at most {MAX_IMAGES}")
        seed = _int(req, "seed", -1, -1, 2**32 - 1)
        if seed == -1:
            seed = random.randint(0, 2**32 - 1)
        sampler = req.get("sampler_name") or req.get("sampler_index") or "Euler"
        if sampler not in SAMPLERS:
            raise RequestError(f"sampler {sampler!r} unknown; available: {', '.join(SAMPLERS)}")
        strength = _float(req, "denoising_strength", 0.75, 0.0, 1.0)
        count = batch * n_iter

        with self.lock:
            import diffusers

            self._interrupt = False
            self.progress = Progress(job="img2img" if init_image else "txt2img", job_count=n_iter,
                                     sampling_steps=steps, started=time.monotonic())
            scheduler = getattr(diffusers, SAMPLERS[sampler]).from_config(self._base_scheduler)
            if init_image is None:
                pipe = self.pipe
                extra = {"width": width, "height": height}
            else:
                pipe = diffusers.StableDiffusionImg2ImgPipeline(**self.pipe.components)
                pipe.set_progress_bar_config(disable=True)
                extra = {"image": init_image.convert("RGB").resize((width, height)), "strength": strength}
            pipe.scheduler = scheduler
            images: list[bytes] = []
            seeds = [seed + i for i in range(count)]
            try:
                # One pipeline call per batch of batch_size images (the hardware's parallelism);
                # a generator per image keeps every seed reproducible.
                for i in range(n_iter):
                    self.progress.job_no = i
                    batch_seeds = seeds[i * batch:(i + 1) * batch]
                    out = pipe(
                        prompt, negative_prompt=negative or None, num_inference_steps=steps,
                        guidance_scale=cfg, num_images_per_prompt=len(batch_seeds),
                        generator=[torch.Generator("cpu").manual_seed(x) for x in batch_seeds],
                        callback_on_step_end=self._on_step, **extra)
                    if self._interrupt:
                        break
                    images.extend(_png(img) for img in out.images)
            finally:
                self.pipe.scheduler = scheduler.__class__.from_config(self._base_scheduler)
                self.progress.last_seconds = time.monotonic() - self.progress.started
                self.progress.job = ""
        info = {
            "prompt": prompt, "negative_prompt": negative, "seed": seed, "all_seeds": seeds[: len(images)],
            "all_prompts": [prompt] * len(images), "steps": steps, "cfg_scale": cfg, "width": width,
            "height": height, "sampler_name": sampler, "sd_model_name": self.model,
            "sd_model_hash": None, "index_of_first_image": 0, "interrupted": self._interrupt,
        }
        return images, info

    def _on_step(self, pipe, step, timestep, callback_kwargs):
        self.progress.sampling_step = step + 1
        if self._interrupt:
            pipe._interrupt = True
            self.progress.interrupted = True
        return callback_kwargs


def upscale(image: Image.Image, req: dict) -> Image.Image:
    """extra-single-image: resize by a factor (mode 0) or to a size (mode 1), Lanczos."""
    mode = _int(req, "resize_mode", 0, 0, 1)
    if mode == 0:
        factor = _float(req, "upscaling_resize", 2.0, 0.1, 8.0)
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    else:
        size = (_int(req, "upscaling_resize_w", 512, 1, 8192), _int(req, "upscaling_resize_h", 512, 1, 8192))
    if size[0] * size[1] > 8192 * 8192:
        raise RequestError("requested size is too large")
    return image.resize(size, Image.Resampling.LANCZOS)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _int(req: dict, key: str, default: int, lo: int, hi: int) -> int:
    value = req.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise RequestError(f"{key} must be an integer")
    if not lo <= value <= hi:
        raise RequestError(f"{key} must be between {lo} and {hi}")
    return int(value)


def _float(req: dict, key: str, default: float, lo: float, hi: float) -> float:
    value = req.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"{key} must be a number")
    if not lo <= value <= hi:
        raise RequestError(f"{key} must be between {lo} and {hi}")
    return float(value)
