"""The built-in runtime loads a safetensors checkpoint without a second copy in memory.

A pipeline of sdctl's tiny components with a larger UNet (random weights, ~150 MB in
safetensors, built here from diffusers' own classes: no hub download) is saved as a diffusers
folder; a fresh process imports the runtime's loader, then loads the folder with it, and
reports how much its peak resident memory grew (VmHWM, reset just before the load, over the
VmRSS before it), with every weight touched once. The same measurement of a loader that keeps
a second copy of the UNet shows the instrument sees one: it must grow by well over the
weights, the runtime's loader by about one copy.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

MEASURE = """
import json, sys
from pathlib import Path
import diffusers, torch  # imported before the baseline
from sdctl.runtime.models import load_pipeline

def kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

before = kib("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from now
if sys.argv[2] == "runtime":
    pipe = load_pipeline(sys.argv[1])
else:  # a loader that keeps a second copy (what the test must be able to see)
    import copy
    pipe = load_pipeline(sys.argv[1])
    pipe.spare = copy.deepcopy(pipe.unet)
sum(float(p.sum()) for p in pipe.unet.parameters())  # touch every weight
size = sum(f.stat().st_size for f in Path(sys.argv[1]).rglob("*.safetensors"))
print(json.dumps({"growth": (kib("VmHWM:") - before) * 1024, "weights": size,
                  "unet_params": sum(p.numel() for p in pipe.unet.parameters())}))
"""


@pytest.fixture(scope="module")
def big_unet_folder(tmp_path_factory):
    from diffusers import UNet2DConditionModel

    from sdctl.runtime import models

    out = tmp_path_factory.mktemp("sd") / "pipeline"
    pipe = models.build_tiny_pipeline()
    pipe.unet = UNet2DConditionModel(
        block_out_channels=(96, 192, 384), layers_per_block=2, sample_size=32, cross_attention_dim=32,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
    pipe.save_pretrained(out, safe_serialization=True)
    return out


def measure(folder, how: str) -> dict:
    r = subprocess.run([sys.executable, "-c", MEASURE, str(folder), how], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_a_safetensors_pipeline_loads_with_at_most_one_copy_of_its_weights(big_unet_folder):
    ours, copying = measure(big_unet_folder, "runtime"), measure(big_unet_folder, "copying")
    assert ours["weights"] > 100 * 2**20, "the model is too small for the measurement to mean anything"
    assert ours["unet_params"] * 4 > 0.8 * ours["weights"]  # the weights really are in the loaded UNet
    mib = 2**20
    print(f"peak RSS grew {ours['growth'] / mib:.0f} MiB loading {ours['weights'] / mib:.0f} MiB of weights "
          f"with the runtime's loader, {copying['growth'] / mib:.0f} MiB with a second copy of the UNet")
    # the instrument sees a second copy when there is one ...
    assert copying["growth"] > ours["growth"] + 0.8 * ours["weights"]
    # ... and the runtime's loader holds one (plus the allocator's and the touch's slack)
    assert ours["growth"] < 1.6 * ours["weights"]
