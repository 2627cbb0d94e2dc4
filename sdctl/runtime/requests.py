"""What an AUTOMATIC1111 request asks of the runtime, checked: its generation settings (sizes,
steps, seeds, sampler), the upscale of extra-single-image, and the PNG an image is sent as.
A request the runtime cannot serve raises RequestError (HTTP 422)."""

from __future__ import annotations

import io
import random

from PIL import Image

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


PER_REQUEST = ("prompt", "negative", "seed")


def _settings(req: dict) -> dict:
    """A request's generation settings, validated, with the seed drawn when it is -1."""
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
    return {"prompt": str(req.get("prompt", "")), "negative": str(req.get("negative_prompt", "") or ""),
            "steps": _int(req, "steps", 20, 1, 150), "cfg": _float(req, "cfg_scale", 7.0, 0.0, 30.0),
            "width": width, "height": height, "batch": batch, "n_iter": n_iter, "seed": seed, "sampler": sampler,
            "strength": _float(req, "denoising_strength", 0.75, 0.0, 1.0)}


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
