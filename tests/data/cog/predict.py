"""A small Cog model for sdctl's tests: draws a PNG of the prompt's colour, printing a sampler's
step counter ("k/N") as it goes; `predict` tasks of the echo model answer text. Environment:
COG_TEST_SETUP_FAIL=1 fails setup; COG_TEST_STEP_SECONDS sets each step's time; each prediction
appends a line to COG_TEST_COUNT (a file) so a test can count how many ran."""

import hashlib
import io
import os
import time

from cog import BasePredictor, Input, Path


class Predictor(BasePredictor):
    def setup(self) -> None:
        if os.environ.get("COG_TEST_SETUP_FAIL") == "1":
            raise RuntimeError("weights not found: /src/weights/model.safetensors")

    def predict(self, prompt: str = Input(description="What to draw."),
                num_inference_steps: int = Input(default=4, ge=1, le=200),
                width: int = Input(default=64), height: int = Input(default=64),
                seed: int = Input(default=None)) -> Path:
        from PIL import Image

        count = os.environ.get("COG_TEST_COUNT")
        if count:
            with open(count, "a") as f:
                f.write(f"{prompt}\n")
        pause = float(os.environ.get("COG_TEST_STEP_SECONDS", "0.05"))
        for step in range(1, num_inference_steps + 1):
            print(f"{step}/{num_inference_steps}", flush=True)
            time.sleep(pause)
        rgb = tuple(hashlib.sha256(f"{prompt}/{seed}".encode()).digest()[:3])
        out = Path(f"/tmp/cog-test-{os.getpid()}-{time.monotonic_ns()}.png")
        buf = io.BytesIO()
        Image.new("RGB", (width, height), rgb).save(buf, format="PNG")
        out.write_bytes(buf.getvalue())
        return out
