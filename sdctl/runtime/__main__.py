"""`python -m sdctl.runtime`: the built-in AUTOMATIC1111-compatible runtime, as the runtime
image runs it (no CLI libraries). `sdctl runtime serve` does the same.

    python -m sdctl.runtime --model /models/v1-5.safetensors --models-dir /models --port 7860
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m sdctl.runtime")
    ap.add_argument("--model", default=os.environ.get("MODEL", "tiny"),
                    help="'tiny' or a model file/folder (env MODEL)")
    ap.add_argument("--models-dir", default=os.environ.get("MODELS_DIR") or None,
                    help="folder of models tasks may switch to (env MODELS_DIR)")
    ap.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))  # noqa: S104 - inside a pod
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", "7860")))
    args = ap.parse_args()
    from sdctl.runtime.server import serve

    serve(args.model, args.host, args.port, args.models_dir)


if __name__ == "__main__":
    main()
