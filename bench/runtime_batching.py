"""Images per second from the built-in runtime (tiny model, CPU) at batch 4 against batch 1,
and for four different tasks' prompts in one call (the agent's BATCH_TASKS) against four calls.

Both run in the same process on the same engine, alternating, so the machine's noise hits
both alike; the ratio is the batching gain.

    python bench/runtime_batching.py [--size 64] [--steps 4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdctl.runtime.engine import Engine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    engine = Engine("tiny")
    req = {"prompt": "a red fox", "steps": args.steps, "width": args.size, "height": args.size, "seed": 1}
    engine.txt2img({**req, "batch_size": 4})  # warm-up
    tasks = [{**req, "prompt": p, "seed": i} for i, p in enumerate(("a red fox", "a blue whale", "a green frog",
                                                                   "a grey owl"))]
    spent = {1: 0.0, 4: 0.0, "tasks": 0.0}
    made = {1: 0, 4: 0, "tasks": 0}
    for _ in range(args.rounds):
        for batch in (1, 4):
            started = time.perf_counter()
            n = 0
            while n < 8:
                images, _ = engine.txt2img({**req, "batch_size": batch})
                n += len(images)
            spent[batch] += time.perf_counter() - started
            made[batch] += n
        started = time.perf_counter()
        for _ in range(2):
            made["tasks"] += sum(len(images) for images, _ in engine.txt2img_many(tasks))
        spent["tasks"] += time.perf_counter() - started
    rate = {b: made[b] / spent[b] for b in spent}
    print(f"{args.size}x{args.size}, {args.steps} steps, tiny model on {engine.device}")
    print(f"batch 1: {rate[1]:.1f} images/s   batch 4: {rate[4]:.1f} images/s   gain {rate[4] / rate[1]:.2f}x")
    print(f"4 tasks (different prompts) in one call: {rate['tasks']:.1f} images/s   "
          f"gain over one call each {rate['tasks'] / rate[1]:.2f}x")


if __name__ == "__main__":
    main()
