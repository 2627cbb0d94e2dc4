"""`sdctl gallery`: one self-contained HTML page of recent results.

Thumbnails are embedded (data: URIs), so the page needs nothing beside it; each links to
the full-size image through a presigned S3 URL. `render` is pure (items in, HTML out).
"""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime

THUMB = 256
CSS = """
body{margin:0;font:14px/1.4 system-ui,sans-serif;background:#f6f6f4;color:#222}
header{padding:16px 24px;background:#1f2933;color:#fff}
header h1{margin:0;font-size:20px} header p{margin:4px 0 0;color:#cbd2d9}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:16px;padding:24px}
figure{margin:0;background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.15);overflow:hidden}
figure img{display:block;width:100%;aspect-ratio:1/1;object-fit:cover;background:#ddd}
figcaption{padding:8px 12px} .prompt{font-weight:600;margin-bottom:4px;word-break:break-word}
.meta{color:#616e7c;font-size:12px} .empty{padding:48px;text-align:center;color:#616e7c}
"""


def thumbnail(png: bytes, size: int = THUMB) -> bytes:
    """A smaller PNG for the grid (the image itself if Pillow is missing or it is small)."""
    try:
        from PIL import Image
    except ImportError:
        return png
    img = Image.open(io.BytesIO(png))
    if max(img.size) <= size:
        return png
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def render(items: list[dict], *, title: str, generated_at: datetime | None = None) -> str:
    """items: {id, prompt, seed, runtime, seconds, created_at, thumb (PNG bytes), full_url}."""
    generated_at = generated_at or datetime.now(UTC)
    esc = html.escape
    cards = []
    for it in items:
        src = "data:image/png;base64," + base64.b64encode(it["thumb"]).decode()
        seconds = f"{it['seconds']:.1f} s" if isinstance(it.get("seconds"), int | float) else "–"
        meta = " · ".join(x for x in (f"seed {it['seed']}" if it.get("seed") is not None else "",
                                      esc(str(it.get("runtime") or "")), seconds,
                                      esc(str(it.get("created_at") or ""))[:19].replace("T", " ")) if x)
        cards.append(
            f'<figure data-task="{esc(it["id"])}"><a href="{esc(it["full_url"])}" target="_blank" rel="noopener">'
            f'<img src="{src}" alt="{esc(it.get("prompt") or it["id"])}"></a>'
            f'<figcaption><div class="prompt">{esc(it.get("prompt") or "(no prompt)")}</div>'
            f'<div class="meta">{meta}</div><div class="meta">{esc(it["id"])}</div></figcaption></figure>')
    body = "\n".join(cards) or '<p class="empty">No completed tasks in this range.</p>'
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>'
            f'<body><header><h1>{esc(title)}</h1><p>{len(items)} image(s) · generated '
            f'{generated_at.strftime("%Y-%m-%d %H:%M")} UTC · full-size links expire in 7 days</p></header>'
            f"<main>\n{body}\n</main></body></html>\n")


def collect(tasks: list[dict], s3, *, expires: int = 7 * 86400, limit: int = 200) -> list[dict]:
    """For each completed task, each of its images: a thumbnail and a presigned full-size URL."""
    from sdctl.operate.client import parse_s3_url

    items = []
    for t in tasks:
        for url in t.get("image_url") or []:
            bucket, key = parse_s3_url(url)
            try:
                png = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                continue  # expired with its retention; the record outlives it briefly
            items.append({"id": t["id"], "prompt": t.get("prompt"), "seed": t.get("seed"),
                          "runtime": t.get("runtime"), "seconds": t.get("runtime_seconds"),
                          "created_at": t.get("created_at"), "thumb": thumbnail(png),
                          "full_url": s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                                                ExpiresIn=expires)})
            if len(items) >= limit:
                return items
    return items
