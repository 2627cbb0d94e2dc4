"""Seconds per image from plain diffusers and from sdctl's built-in runtime over HTTP, on the
same pipeline: what the runtime's recipes gain and what its HTTP layer costs.

The pipelines are SD 1.5 and SDXL of their published shapes with random weights
(bench/pipelines.py: no hub download; speed does not depend on the weights' values), written
once as a diffusers folder that the runtime loads as it would a model. Variants, all with the
runtime's default sampler (Euler), the same steps, size, guidance and one generator per image:

    diffusers fp32      the pipeline as diffusers builds it, float32 (its default attention)
    diffusers fp16      the same in float16 (CUDA only)
    sdctl recipe        the runtime's own plan (sdctl/runtime/accel.py) applied in this
                        process: bfloat16 where supported, else float16, SDPA, channels_last,
                        torch.compile with --compile; float32 on a CPU
    sdctl runtime HTTP  `python -m sdctl.runtime --model DIR` and POST /sdapi/v1/txt2img (its
                        JSON, PNG and base64 included), same plan

Rounds alternate between the variants so a noisy machine hits all alike; each figure is the
median over rounds, after a warm-up call per variant at the measured size (kernel choice,
compilation). It prints seconds per image and images per second at batch 1 and batch 4,
the runtime's overhead against the recipe it runs (goal: within 3 %), and batch 4's images/s
against batch 1's (goal on a GPU: at least 1.3x), with the device, driver and versions.

    python bench/runtime_gpu.py                                  # GPU: full size, sd15 512², sdxl 1024²
    python bench/runtime_gpu.py --scale tiny --size 64 --steps 2  # CPU smoke (make test runs it)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipelines import build, parameters  # noqa: E402

SIZES = {"sd15": 512, "sdxl": 1024}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def device_line() -> str:
    import diffusers
    import torch

    if not torch.cuda.is_available():
        return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), torch {torch.__version__}, " \
               f"diffusers {diffusers.__version__}"
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        driver = "unknown"
    return (f"{torch.cuda.get_device_name(0)}, driver {driver}, CUDA {torch.version.cuda}, torch {torch.__version__}, "
            f"diffusers {diffusers.__version__}")


class InProcess:
    """A pipeline in this process, moved to the device in one dtype (and the runtime's recipe)."""

    def __init__(self, name: str, folder: Path, device: str, *, dtype: str | None = None, recipe=None):
        import torch

        from sdctl.runtime.accel import apply
        from sdctl.runtime.models import load_pipeline

        self.name, self.device = name, device
        pipe = load_pipeline(str(folder))
        self.pipe = apply(pipe, recipe) if recipe is not None else pipe.to(device, getattr(torch, dtype))
        self.pipe.set_progress_bar_config(disable=True)

    def render(self, req: dict) -> int:
        import diffusers
        import torch

        pipe = self.pipe
        pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
        seeds = [req["seed"] + i for i in range(req["batch_size"])]
        out = pipe(prompt=req["prompt"], num_inference_steps=req["steps"], guidance_scale=req["cfg_scale"],
                   width=req["width"], height=req["height"], num_images_per_prompt=len(seeds),
                   generator=[torch.Generator("cpu").manual_seed(s) for s in seeds])
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return len(out.images)

    def close(self) -> None:
        del self.pipe


class OverHttp:
    """sdctl's runtime as its image runs it, loading the folder; a client POSTs txt2img."""

    def __init__(self, folder: Path, env: dict):
        import httpx

        self.name = "sdctl runtime HTTP"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "sdctl.runtime", "--model", str(folder), "--host",
                                      "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.client = httpx.Client(timeout=3600)
        deadline = time.monotonic() + 1800
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"the runtime exited {self.proc.returncode}:\n{self.log.read().decode()[-3000:]}")
            try:
                if self.client.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the runtime did not get ready in 30 minutes")
            time.sleep(0.2)

    def render(self, req: dict) -> int:
        r = self.client.post(f"{self.url}/sdapi/v1/txt2img", json={**req, "sampler_name": "Euler"})
        r.raise_for_status()
        images = r.json()["images"]
        assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
        return len(images)

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(60)


def measure(kind: str, args) -> dict:
    import torch

    from sdctl.runtime import accel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    size = args.size or SIZES[kind]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / kind
        built = build(kind, args.scale)
        count = parameters(built)
        built.save_pretrained(folder, safe_serialization=True)
        del built
        plan = accel.plan(device, bf16=device == "cuda" and torch.cuda.is_bf16_supported(),
                          compile_requested=args.compile,
                          toolchain_missing=accel.toolchain_missing() if device == "cuda" else None)
        if plan.note:
            print(plan.note)
        variants = [InProcess("diffusers fp32", folder, device, dtype="float32")]
        if device == "cuda":
            variants.append(InProcess("diffusers fp16", folder, device, dtype="float16"))
        variants.append(InProcess(f"sdctl recipe ({plan.dtype})", folder, device, recipe=plan))
        env = dict(os.environ, SD_COMPILE="1" if args.compile else "0", HF_HUB_OFFLINE="1")
        variants.append(OverHttp(folder, env))
        try:
            rows = {}
            for batch in args.batches:
                req = {"prompt": "a red fox in the snow, photograph", "steps": args.steps, "cfg_scale": 7.0,
                       "width": size, "height": size, "seed": 1, "batch_size": batch}
                times: dict[str, list[float]] = {v.name: [] for v in variants}
                for v in variants:
                    v.render(req)  # warm-up at this size
                for _ in range(args.rounds):
                    for v in variants:
                        started = time.perf_counter()
                        made = v.render(req)
                        times[v.name].append((time.perf_counter() - started) / made)
                for name, ts in times.items():
                    rows[(name, batch)] = statistics.median(ts)
        finally:
            for v in variants:
                v.close()
    names = [v.name for v in variants]
    return {"kind": kind, "size": size, "steps": args.steps, "parameters_m": round(count / 1e6, 1),
            "plan": plan.to_dict(), "names": names, "batches": args.batches,
            "seconds_per_image": {f"{n} @ {b}": round(s, 4) for (n, b), s in rows.items()}, "_rows": rows}


def report(result: dict) -> None:
    rows, names, batches = result["_rows"], result["names"], result["batches"]
    print(f"\n{result['kind']} ({result['parameters_m']} M parameters) at {result['size']}², {result['steps']} steps, "
          f"plan {result['plan']}")
    print(f"{'variant':28s} {'batch':>5s} {'s/image':>9s} {'images/s':>9s}")
    for name in names:
        for b in batches:
            s = rows[(name, b)]
            print(f"{name:28s} {b:5d} {s:9.3f} {1 / s:9.2f}")
    recipe, http = names[-2], names[-1]
    for b in batches:
        print(f"runtime over HTTP / recipe in process, batch {b}: {rows[(http, b)] / rows[(recipe, b)]:.3f} "
              f"(overhead {100 * (rows[(http, b)] / rows[(recipe, b)] - 1):+.1f} %; goal within 3 %)")
    print(f"recipe / diffusers fp32, batch {batches[0]}: {rows[(names[0], batches[0])] / rows[(recipe, batches[0])]:.2f}x "
          "images/s")
    if len(batches) > 1:
        lo, hi = batches[0], batches[-1]
        for name in (recipe, http):
            print(f"{name}: batch {hi} gives {rows[(name, lo)] / rows[(name, hi)]:.2f}x the images/s of batch {lo}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="sd15,sdxl")
    ap.add_argument("--scale", choices=("full", "tiny"), default="full")
    ap.add_argument("--size", type=int, default=0, help="image side (0: 512 for sd15, 1024 for sdxl)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="torch.compile in the recipe and the runtime")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    print(device_line())
    results = []
    for kind in args.models.split(","):
        result = measure(kind, args)
        report(result)
        results.append({k: v for k, v in result.items() if k != "_rows"})
    if args.json:
        args.json.write_text(json.dumps({"device": device_line(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
