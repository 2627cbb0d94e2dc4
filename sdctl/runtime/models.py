"""Which diffusers pipeline a model name means.

`tiny` builds a small, randomly initialised Stable Diffusion pipeline entirely offline
(no hub): weights come from a fixed seed, so the same prompt and seed give the same bytes.
Any other name is a local diffusers folder or a single-file checkpoint, of Stable Diffusion
1.x/2.x or SDXL: a folder says which in its model_index.json, a single file by its tensors'
names (SDXL's second text encoder lives under `conditioner.embedders.1`).
"""

from __future__ import annotations

import json
from pathlib import Path

TINY = "tiny"


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


def byte_tokenizer():
    """A CLIP tokenizer over bytes (no vocabulary files, no hub): every character a token, 77
    tokens a window, as CLIP's. Speed does not depend on which tokenizer made the ids."""
    from transformers import CLIPTokenizer

    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    bos, eos = "<|startoftext|>", "<|endoftext|>"
    vocab[bos] = len(vocab)
    vocab[eos] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_tiny_pipeline(seed: int = 0):
    """A 4-block-VAE SD pipeline with ~4M random parameters and a byte-level tokenizer."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = byte_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=5, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id))
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


def is_sdxl(pipe) -> bool:
    """SDXL pipelines carry a second text encoder (and pooled text embeddings)."""
    return getattr(pipe, "text_encoder_2", None) is not None


#: A tensor only SD 2.x checkpoints give a 1024-wide cross-attention key (SD 1.x: 768), the
#: one diffusers' own type inference reads (single_file_utils.infer_diffusers_model_type).
_V2_KEY = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"


def single_file_kind(path: Path) -> str:
    """`xl_base`, `v2` or `v1` (diffusers' names, hubconfigs.REPOS), from the tensor names and
    one shape of an original (non-diffusers) checkpoint, read without loading its weights:
    SDXL's second text encoder sits under conditioner.embedders.1."""
    if path.suffix != ".safetensors":
        return "v1"  # a pickled .ckpt cannot be listed without loading it: taken as SD 1.x
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        if any(k.startswith("conditioner.embedders.1.") for k in keys):
            return "xl_base"
        if _V2_KEY in keys and f.get_slice(_V2_KEY).get_shape()[-1] == 1024:
            return "v2"
    return "v1"


def _from_single_file(path: Path):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    from sdctl.runtime.hubconfigs import missing

    kind = single_file_kind(path)
    try:
        if kind == "xl_base":
            return StableDiffusionXLPipeline.from_single_file(path, local_files_only=True)
        return StableDiffusionPipeline.from_single_file(
            path, local_files_only=True, safety_checker=None, requires_safety_checker=False)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError) as e:
        raise missing(path, kind, e) from None


def load_pipeline(model: str):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if model == TINY:
        return build_tiny_pipeline()
    path = Path(model)
    if path.is_dir():
        index = json.loads((path / "model_index.json").read_text()) if (path / "model_index.json").is_file() else {}
        cls = StableDiffusionXLPipeline if index.get("_class_name", "").startswith("StableDiffusionXL") \
            else StableDiffusionPipeline
        extra = {} if cls is StableDiffusionXLPipeline else {"safety_checker": None, "requires_safety_checker": False}
        return cls.from_pretrained(path, local_files_only=True, **extra)
    if path.is_file():
        return _from_single_file(path)
    raise FileNotFoundError(f"model {model!r} is neither 'tiny' nor a local folder or file")
