"""`sdctl gallery`: the page, rendered by a real headless browser (Debian's chromium), shows
the images; and it escapes what users typed."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from sdctl.execute.local.provision import create_tasks_table
from sdctl.operate import gallery, tasks

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (30, 60, 220)}


def chromium() -> str:
    path = os.environ.get("SDCTL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("chromium is not installed: `make tools` installs Debian's chromium (CI does this)")
    return path


def png(colour, size=512) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def results(aws):
    """Three completed tasks (solid-colour images, so the screenshot can be read), stored the
    way the agent stores them, and one still queued."""
    aws.s3.create_bucket(Bucket="out", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    create_tasks_table(aws.dynamodb, "tasks")
    for i, (name, colour) in enumerate(COLOURS.items()):
        key = f"output/g-{name}/g-{name}-1.png"
        aws.s3.put_object(Bucket="out", Key=key, Body=png(colour))
        aws.dynamodb.put_item(TableName="tasks", Item={
            "id": {"S": f"g-{name}"}, "status": {"S": "completed"}, "runtime": {"S": "sdruntime"},
            "created_at": {"S": f"2026-11-25T04:0{i}:00.000000Z"}, "prompt": {"S": f"a {name} square <b>bold</b>"},
            "seed": {"N": str(40 + i)}, "runtime_seconds": {"N": "1.25"},
            "image_url": {"L": [{"S": f"s3://out/{key}"}]}})
    aws.dynamodb.put_item(TableName="tasks", Item={"id": {"S": "g-later"}, "status": {"S": "queued"},
                                                   "created_at": {"S": "2026-11-25T04:09:00.000000Z"}})
    return aws


def test_the_page_holds_every_completed_image_and_escapes_prompts(results):
    rows = tasks.list_tasks(results.dynamodb, "tasks", status="completed")
    page = gallery.render(gallery.collect(rows, results.s3), title="test")
    assert page.count("<figure") == 3 and "g-later" not in page
    assert "a red square &lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    assert "seed 41" in page and "1.2 s" in page and "Signature=" in page  # full size: presigned
    assert "data:image/png;base64," in page and "http" not in page.split("<main>")[1].split('src="')[1][:10]


def test_a_headless_browser_shows_the_images(results, tmp_path):
    rows = tasks.list_tasks(results.dynamodb, "tasks", status="completed")
    page = tmp_path / "gallery.html"
    page.write_text(gallery.render(gallery.collect(rows, results.s3), title="sdctl gallery"))
    shot = tmp_path / "shot.png"
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,800",
                    f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 800)
    import numpy as np

    pixels = np.asarray(image).astype(int)
    counts = {name: int((np.abs(pixels - colour) <= 12).all(axis=2).sum()) for name, colour in COLOURS.items()}
    # each thumbnail is drawn at least ~250 x 250 pixels
    assert all(n > 40000 for n in counts.values()), counts
