"""How the built-in runtime runs its pipeline on the hardware it finds: the recipes diffusers
publishes for speed ("Speed up inference"), applied when the device can use them.

    CUDA   bfloat16 where the GPU supports it (Ampere and newer: A10G, L4, L40S), else float16;
           scaled-dot-product attention (PyTorch 2's fused kernels); channels_last for the
           UNet; torch.compile when SD_COMPILE=1 (its compilation happens in the warm-up,
           before the runtime says it is ready)
    CPU    float32 (half precision is slower there, or unsupported), SDPA, no compile

VAE tiling is switched on per request for images over 1024 px on a side (the decoder's
memory grows with the area; tiles bound it at a small cost in speed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

TILE_ABOVE = 1024


@dataclass(frozen=True)
class Plan:
    device: str
    dtype: str  # torch dtype name: float32, float16, bfloat16
    channels_last: bool
    compile: bool
    #: Why a requested compile is off, in words (None when nothing was given up).
    note: str | None = None

    def to_dict(self) -> dict:
        d = {"device": self.device, "dtype": self.dtype, "channels_last": self.channels_last,
             "compile": self.compile}
        return {**d, "note": self.note} if self.note else d


def plan(device: str, *, bf16: bool, compile_requested: bool | None = None,
         toolchain_missing: str | None = None) -> Plan:
    """What to do on `device` (pure: the caller says whether bfloat16 is supported and, from
    :func:`toolchain_missing`, what torch.compile would lack)."""
    if compile_requested is None:
        compile_requested = os.environ.get("SD_COMPILE", "").lower() in ("1", "true", "yes")
    if device.startswith("cuda"):
        dtype = "bfloat16" if bf16 else "float16"
        if compile_requested and toolchain_missing:
            return Plan(device, dtype, channels_last=True, compile=False,
                        note=f"compile requested but off: {toolchain_missing}")
        return Plan(device, dtype, channels_last=True, compile=compile_requested)
    return Plan(device, "float32", channels_last=False, compile=False)


def toolchain_missing() -> str | None:
    """What torch.compile's GPU code generation (Triton) needs at run time and this machine
    lacks: a C compiler (CC, else cc or gcc) and Python's headers, for the small launchers
    it builds for each kernel. None when both are there."""
    import shutil
    import sysconfig

    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler or not shutil.which(compiler):
        return "no C compiler (set CC, or install gcc); Triton builds a launcher for every kernel"
    headers = sysconfig.get_paths().get("include") or ""
    if not os.path.isfile(os.path.join(headers, "Python.h")):
        return f"no Python headers ({headers}/Python.h; install python3-dev)"
    return None


def apply(pipe, p: Plan):
    """Move the pipeline to the plan's device and dtype and apply its recipes; returns it."""
    import torch

    pipe = pipe.to(p.device, getattr(torch, p.dtype))
    try:
        from diffusers.models.attention_processor import AttnProcessor2_0

        pipe.unet.set_attn_processor(AttnProcessor2_0())
    except (ImportError, AttributeError):  # an older diffusers: its default is already SDPA
        pass
    if p.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
    if p.compile:
        pipe.unet = torch.compile(pipe.unet, mode="max-autotune", fullgraph=True)
    return pipe


def tile_for(pipe, width: int, height: int) -> None:
    """VAE tiling for large images only."""
    if max(width, height) > TILE_ABOVE:
        pipe.vae.enable_tiling()
    else:
        pipe.vae.disable_tiling()
