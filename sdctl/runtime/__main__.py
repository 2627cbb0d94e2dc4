"""`python -m sdctl.runtime`: the built-in AUTOMATIC1111-compatible runtime, as the runtime
image runs it (no CLI libraries). The one wiring of the runtime: the image's entrypoint,
`sdctl runtime serve` and the local stack all start it here.

    python -m sdctl.runtime --model v1-5.safetensors --models-dir /models --port 7860

The chart sets SD_MODEL (a file or folder under SD_MODELS_DIR), SD_MODELS_DIR and SD_PORT,
as it does for every runtime type; MODEL, MODELS_DIR and PORT are read when those are unset.
"""

from __future__ import annotations

import argparse
import os


def _env(*names: str, default: str | None = None) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), default)


def model_path(model: str, models_dir: str | None) -> str:
    """'tiny', an absolute path, or a name under the models folder (as the chart gives it)."""
    if model == "tiny" or os.path.isabs(model) or not models_dir:
        return model
    return os.path.join(models_dir, model)


#: Library lines that say nothing an operator can act on, dropped from the runtime's log: the
#: image ships no torchvision on purpose (transformers then uses its PIL image processors, as
#: it says), and diffusers' float32 note with an empty module list.
NOISE = ("requires torchvision (not installed)", "should be kept in float32: []")


class _DropNoise:
    @staticmethod
    def filter(record) -> bool:
        text = record.getMessage()
        return not any(n in text for n in NOISE)


def quiet_library_noise() -> None:
    """A filter on the loggers that emit them (a logger's own filters see its records; the
    libraries create these loggers by name on import, so they get the same objects)."""
    import logging

    for name in ("transformers.utils.import_utils", "diffusers.models.modeling_utils"):
        logging.getLogger(name).addFilter(_DropNoise())


def main(argv: list[str] | None = None) -> None:
    quiet_library_noise()
    ap = argparse.ArgumentParser(prog="python -m sdctl.runtime")
    ap.add_argument("--model", default=_env("SD_MODEL", "MODEL", default="tiny"),
                    help="'tiny', a model file/folder, or its name under --models-dir (env SD_MODEL)")
    ap.add_argument("--models-dir", default=_env("SD_MODELS_DIR", "MODELS_DIR"),
                    help="folder of models tasks may switch to (env SD_MODELS_DIR)")
    ap.add_argument("--host", default=_env("HOST", default="0.0.0.0"))  # noqa: S104 - inside a pod
    ap.add_argument("--port", type=int, default=int(_env("SD_PORT", "PORT", default="7860")))
    args = ap.parse_args(argv)
    from sdctl.runtime.hubconfigs import ModelError
    from sdctl.runtime.server import serve

    try:
        serve(model_path(args.model, args.models_dir), args.host, args.port, args.models_dir)
    except (ModelError, FileNotFoundError) as e:  # the pod's log says why, in one line
        import json
        import sys

        print(json.dumps({"msg": "model failed to load", "error": str(e)}), file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
