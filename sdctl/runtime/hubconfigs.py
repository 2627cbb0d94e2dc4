"""The configuration files a single-file checkpoint needs, kept in the runtime image.

A single `.safetensors` (or `.ckpt`) checkpoint holds weights only. To build a pipeline from
one, diffusers' `from_single_file` takes the matching published model's configs and tokenizer
files (a few megabytes: `model_index.json`, each component's `config.json`, the CLIP
tokenizers' vocab and merges) from the Hugging Face Hub, which a pod with `HF_HUB_OFFLINE=1`
(the runtime's default: no download at start) cannot reach. So the image build fetches them
once, without weights, into the Hub cache the runtime reads (`HF_HOME`), and diffusers finds
them there offline:

    python -m sdctl.runtime.hubconfigs        # docker/runtime.Dockerfile, at build time

A model type whose configs are missing fails to load with a `ModelError` that names the
file, its type and what to do, not a Hub traceback.
"""

from __future__ import annotations

import sys

#: What `from_single_file` asks the Hub for (diffusers' own pattern list): configs and
#: tokenizer files, never weights.
CONFIG_FILES = ["**/*.json", "*.json", "*.txt", "**/*.txt", "**/*.model"]

#: The model types sdctl's runtime serves from a single file, and the published repository
#: diffusers takes each one's configs from (single_file_utils.DIFFUSERS_DEFAULT_PIPELINE_PATHS).
#: `required`: the image build fails without them.
REPOS = {
    "v1": ("stable-diffusion-v1-5/stable-diffusion-v1-5", True),
    "xl_base": ("stabilityai/stable-diffusion-xl-base-1.0", True),
    "v2": ("stabilityai/stable-diffusion-2-1", False),
}


class ModelError(ValueError):
    """A model that cannot be loaded, with the reason in words."""


def seed() -> int:
    """Fetch every repository's config files into the Hub cache; returns the exit status."""
    from huggingface_hub import snapshot_download

    status = 0
    for kind, (repo, required) in REPOS.items():
        try:
            path = snapshot_download(repo, allow_patterns=CONFIG_FILES)
            print(f"{kind}: {repo} -> {path}", flush=True)
        except Exception as e:  # the Hub's errors have no common base worth naming
            print(f"{kind}: {repo} not fetched: {e}", file=sys.stderr, flush=True)
            if required:
                status = 1
    return status


def missing(path, kind: str, error: Exception) -> ModelError:
    """The error for a single file whose type's configs are not in this image's cache."""
    import os

    repo = REPOS.get(kind, ("a published diffusers model",))[0]
    where = os.environ.get("HF_HOME", "~/.cache/huggingface")
    return ModelError(
        f"model {os.path.basename(str(path))!r} is a single-file {kind} checkpoint, and the configs it needs "
        f"({repo}: configs and tokenizer, no weights) are not in this runtime's Hub cache ({where}) and "
        f"the runtime does not download at start. Use sdctl's runtime image (its build runs "
        f"`python -m sdctl.runtime.hubconfigs`), run that once where the runtime can reach the Hub, or "
        f"store the model as a diffusers folder. ({type(error).__name__}: {error})")


if __name__ == "__main__":
    sys.exit(seed())
