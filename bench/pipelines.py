"""Stable Diffusion 1.5 and SDXL pipelines of their published shapes, with random weights.

A render's speed depends on the networks' shapes, not on their weights' values, so a GPU
benchmark needs no hub download (the device machines reach nothing outside): the configs
below are those the published checkpoints ship (runwayml/stable-diffusion-v1-5 and
stabilityai/stable-diffusion-xl-base-1.0: unet/, vae/, text_encoder/, text_encoder_2/ and
scheduler/ config.json, the values that change the work done), and weights come from a
fixed seed. The tokenizer is sdctl's byte-level one (sdctl/runtime/models.py): same 77-token
window, no vocabulary files.

`scale="tiny"` keeps each architecture (block types, attention layout, SDXL's two encoders and
pooled, time-conditioned embedding) at a few million parameters, for the CPU smoke run in
`make test`; `scale="full"` is the published size (SD 1.5 about 1.07 B parameters, SDXL about
3.5 B).

    python bench/pipelines.py sd15|sdxl [--scale tiny] DIR   # writes a diffusers folder
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), use_linear_projection=True,
    cross_attention_dim=2048, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816, norm_num_groups=32)
VAE = dict(block_out_channels=(128, 256, 512, 512), latent_channels=4, layers_per_block=2, norm_num_groups=32,
           down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
              projection_dim=768, hidden_act="quick_gelu")
OPENCLIP_BIGG = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
                     projection_dim=1280, hidden_act="gelu")
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)

#: The same architectures at a few million parameters (what changes, and only that).
TINY = {
    "sd15_unet": dict(block_out_channels=(32, 64, 64, 64), cross_attention_dim=32, attention_head_dim=4,
                      norm_num_groups=16),
    "sdxl_unet": dict(block_out_channels=(32, 64, 64), transformer_layers_per_block=(1, 1, 2),
                      attention_head_dim=(2, 4, 4), cross_attention_dim=64, addition_time_embed_dim=8,
                      projection_class_embeddings_input_dim=32 + 6 * 8, norm_num_groups=16),
    "vae": dict(block_out_channels=(16, 16, 32, 32), layers_per_block=1, norm_num_groups=8),
    "clip_l": dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                   projection_dim=32),
    "bigg": dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                 projection_dim=32),
}


def _text_config(tokenizer, shape: dict):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id, **shape)


def build(kind: str, scale: str = "full", seed: int = 0):
    """A StableDiffusionPipeline (kind "sd15") or StableDiffusionXLPipeline ("sdxl"), in float32
    on the CPU, weights from `seed`."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        PNDMScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from sdctl.runtime.models import byte_tokenizer

    if kind not in ("sd15", "sdxl") or scale not in ("full", "tiny"):
        raise ValueError(f"kind must be sd15 or sdxl and scale full or tiny, not {kind!r}, {scale!r}")
    tiny = scale == "tiny"
    tokenizer = byte_tokenizer()
    torch.manual_seed(seed)
    vae_shape = {**VAE, **(TINY["vae"] if tiny else {})}
    clip_l = {**CLIP_L, **(TINY["clip_l"] if tiny else {})}
    if kind == "sd15":
        unet = UNet2DConditionModel(**{**SD15_UNET, **(TINY["sd15_unet"] if tiny else {})})
        return StableDiffusionPipeline(
            vae=AutoencoderKL(**vae_shape, scaling_factor=0.18215), text_encoder=CLIPTextModel(_text_config(
                tokenizer, clip_l)), tokenizer=tokenizer, unet=unet,
            scheduler=PNDMScheduler(**SCHEDULER, skip_prk_steps=True, set_alpha_to_one=False),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    bigg = {**OPENCLIP_BIGG, **(TINY["bigg"] if tiny else {})}
    unet = UNet2DConditionModel(**{**SDXL_UNET, **(TINY["sdxl_unet"] if tiny else {})})
    return StableDiffusionXLPipeline(
        vae=AutoencoderKL(**vae_shape, scaling_factor=0.13025, force_upcast=True),
        text_encoder=CLIPTextModel(_text_config(tokenizer, clip_l)),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(tokenizer, bigg)),
        tokenizer=tokenizer, tokenizer_2=byte_tokenizer(), unet=unet,
        scheduler=EulerDiscreteScheduler(**SCHEDULER, timestep_spacing="leading"))


def parameters(pipe) -> int:
    return sum(p.numel() for name in ("unet", "vae", "text_encoder", "text_encoder_2")
               if getattr(pipe, name, None) is not None for p in getattr(pipe, name).parameters())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=("sd15", "sdxl"))
    ap.add_argument("out", type=Path)
    ap.add_argument("--scale", choices=("full", "tiny"), default="full")
    args = ap.parse_args()
    pipe = build(args.kind, args.scale)
    pipe.save_pretrained(args.out, safe_serialization=True)
    print(f"{args.kind} ({args.scale}): {parameters(pipe) / 1e6:.1f} M parameters in {args.out}")


if __name__ == "__main__":
    main()
