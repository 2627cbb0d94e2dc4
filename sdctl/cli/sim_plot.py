"""The simulation's timeline as a PNG (matplotlib) and a self-contained HTML page."""

from __future__ import annotations

import base64
import html as h
import io
import json


def timeline_png(timeline: dict, *, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    cols = timeline["columns"]
    rows = timeline["rows"] or [[0] * len(cols)]
    series = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    hours = [t / 3600 for t in series["t"]]
    fig = Figure(figsize=(10, 5), dpi=100)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(hours, series["queued"], label="queued", color="tab:red", linewidth=1)
    top.plot(hours, series["busy"], label="in flight", color="tab:orange", linewidth=1)
    top.set_ylabel("tasks")
    top.legend(loc="upper right")
    top.set_title(title)
    bottom.step(hours, series["replicas"], where="post", label="desired replicas", color="tab:blue", linewidth=1)
    bottom.step(hours, series["ready"], where="post", label="ready replicas", color="tab:green", linewidth=1)
    bottom.step(hours, series["nodes"], where="post", label="GPU nodes", color="tab:gray", linewidth=1,
                linestyle="--")
    bottom.set_ylabel("count")
    bottom.set_xlabel("hours")
    bottom.legend(loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def page(report: dict, png: bytes) -> str:
    knobs = "".join(f"<tr><td>{h.escape(r['knob'])}</td><td>{h.escape(str(r['value']))}</td>"
                    f"<td>{h.escape(r['source'])}</td></tr>" for r in report["knobs"])
    body = {k: v for k, v in report.items() if k != "knobs"}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sdctl simulate: {h.escape(report['runtime'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}}td,th{{padding:2px 8px;text-align:left}}
pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style></head><body>
<h1>sdctl simulate: {h.escape(report['runtime'])} on {h.escape(report['instance'])}</h1>
<img alt="queue depth, replicas and nodes over time" src="data:image/png;base64,{base64.b64encode(png).decode()}">
<h2>Results</h2><pre>{h.escape(json.dumps(body, indent=2, default=str))}</pre>
<h2>What was modelled</h2><table><tr><th>knob</th><th>value</th><th>from</th></tr>{knobs}</table>
</body></html>
"""
