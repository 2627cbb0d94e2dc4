"""The console's pages as plain HTML: every list and task page reads without JavaScript (its
actions are forms); the playground's live line and the charts need /static/console.js."""

from __future__ import annotations

import json
from html import escape

NAV = (("/", "Playground"), ("/live", "Live"), ("/tasks", "Tasks"), ("/cost", "Cost"))


def page(title: str, body: str, *, csrf: str, stack: str, where: str) -> str:
    nav = " ".join(f'<a href="{href}">{escape(name)}</a>' for href, name in NAV)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · sdctl</title>'
            f'<meta name="csrf" content="{escape(csrf)}"><link rel="stylesheet" href="/static/console.css">'
            f'<script src="/static/console.js" defer></script></head><body>'
            f'<header><b>sdctl</b> {escape(stack)} <span class="where">{escape(where)}</span><nav>{nav}</nav>'
            f'</header><main><h1>{escape(title)}</h1>{body}</main></body></html>')


def hidden_csrf(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(csrf)}">'


def playground(runtimes: list[str]) -> str:
    options = "".join(f"<option>{escape(r)}</option>" for r in runtimes)
    return f"""
<form id="play" class="play">
  <label>Prompt <textarea name="prompt" required>a red fox in the snow</textarea></label>
  <label>Negative prompt <input name="negative" value=""></label>
  <div class="row">
    <label>Width <input name="width" type="number" value="512" min="64" max="2048" step="8"></label>
    <label>Height <input name="height" type="number" value="512" min="64" max="2048" step="8"></label>
    <label>Steps <input name="steps" type="number" value="20" min="1" max="150"></label>
    <label>Seed <input name="seed" type="number" value="-1" min="-1"></label>
    <label>Count <input name="count" type="number" value="1" min="1" max="16"></label>
  </div>
  <div class="row">
    <label>Runtime <select name="runtime">{options}</select></label>
    <label>Priority <select name="priority"><option>normal</option><option>high</option><option>low</option>
    </select></label>
    <button type="submit">Generate</button>
  </div>
</form>
<p id="line" class="line" aria-live="polite"></p>
<div id="images" class="images"></div>
<details id="copy"><summary>Copy this request</summary>
  <button data-copy="curl">as curl</button> <button data-copy="sdctl">as an sdctl command</button>
  <button data-copy="python">as Python</button><pre id="snippet"></pre></details>
<noscript><p>The playground needs JavaScript; `sdctl generate` does the same from a terminal.</p></noscript>"""


def live(sample: dict | None, error: str | None, local: bool) -> str:
    rows = ""
    for name, r in ((sample or {}).get("runtimes") or {}).items():
        rows += (f"<tr><td>{escape(name)}</td><td>{r['visible']}</td><td>{r['in_flight']}</td>"
                 f"<td>{r['dead_letter']}</td><td>{_s(r.get('oldest_age_s'))}</td>"
                 f"<td>{_n(r.get('arrivals_per_min'))}</td><td>{_n(r.get('completions_per_min'))}</td></tr>")
    procs = ""
    if local:
        procs = ("<h2>Processes</h2><table id=\"processes\"><tr><th>name</th><th>state</th><th>pid</th>"
                 "<th>restarts</th><th>url</th></tr>") + "".join(
            f"<tr><td>{escape(str(p.get('name')))}</td><td>{'up' if p.get('alive') else 'down'}</td>"
            f"<td>{escape(str(p.get('pid', '')))}</td><td>{escape(str(p.get('restarts', 0)))}</td>"
            f"<td>{escape(str(p.get('url') or ''))}</td></tr>" for p in (sample or {}).get("processes") or []) \
            + "</table>"
    warn = f'<p class="error">{escape(error)}</p>' if error else ""
    if (sample or {}).get("scale") or (sample or {}).get("scale_error"):
        procs = _chains(sample) + procs
    return (f"{warn}<table id=\"queues\"><tr><th>runtime</th><th>queued</th><th>in flight</th><th>dead-lettered</th>"
            f"<th>oldest</th><th>arrivals/min</th><th>completions/min</th></tr>{rows}</table>"
            '<div id="charts" class="charts"></div>' + procs)


def _chains(sample: dict) -> str:
    """On AWS: what `sdctl scale status` shows, per runtime."""
    if sample.get("scale_error"):
        return f'<h2>Scaling</h2><p class="error">cluster not read: {escape(sample["scale_error"])}</p>'
    rows = "".join(
        f"<tr><td>{escape(c['runtime'])}</td>"
        f"<td>{escape(str((c.get('deployment') or {}).get('ready', '–')))}/"
        f"{escape(str((c.get('deployment') or {}).get('desired', '–')))}</td>"
        f"<td>{c['pods']['running']}</td><td>{len(c['pods']['pending'])}</td><td>{len(c['nodeclaims'])}</td>"
        f"<td>{len(c['nodes'])}</td><td>{escape(c['verdict'])}</td></tr>" for c in sample["scale"])
    return ('<h2>Scaling</h2><table id="scale"><tr><th>runtime</th><th>replicas ready/desired</th><th>pods running'
            '</th><th>pending</th><th>NodeClaims</th><th>nodes</th><th>verdict</th></tr>' + rows + "</table>")


def tasks(items: list[dict], filters: dict) -> str:
    def opt(name, values):
        chosen = filters.get(name) or ""
        return f'<select name="{name}"><option value="">any {name}</option>' + "".join(
            f'<option{" selected" if v == chosen else ""}>{escape(v)}</option>' for v in values) + "</select>"

    head = (f'<form method="get" class="row">{opt("status", ["queued", "running", "completed", "failed", "cancelled", "expired"])}'
            f'<input name="client" placeholder="client" value="{escape(filters.get("client") or "")}">'
            f'<input name="runtime" placeholder="runtime" value="{escape(filters.get("runtime") or "")}">'
            f'<input name="since" placeholder="since (15m, 2h, 7d)" value="{escape(filters.get("since") or "")}">'
            '<button>Filter</button></form>')
    rows = "".join(f'<tr><td><a href="/tasks/{escape(t["id"])}">{escape(t["id"])}</a></td>'
                   f'<td class="s-{escape(str(t.get("status")))}">{escape(str(t.get("status")))}</td>'
                   f'<td>{escape(str(t.get("runtime", "")))}</td><td>{escape(str(t.get("client", "")))}</td>'
                   f'<td>{escape(str(t.get("created_at", ""))[:19])}</td>'
                   f'<td>{escape(str(t.get("prompt", ""))[:60])}</td></tr>' for t in items)
    return (head + '<table id="tasks"><tr><th>id</th><th>status</th><th>runtime</th><th>client</th><th>created</th>'
            f"<th>prompt</th></tr>{rows}</table>")


def task(record: dict, csrf: str, deliveries: list[dict]) -> str:
    tid = escape(record["id"])
    times = "".join(f"<tr><th>{k}</th><td>{escape(str(record[k]))}</td></tr>"
                    for k in ("status", "created_at", "started_at", "finished_at", "attempts", "runtime_seconds",
                              "gpu_seconds", "cost_usd", "seed", "model", "client", "priority", "deadline")
                    if record.get(k) not in (None, ""))
    images = "".join(f'<a href="/images/{tid}/{n}"><img src="/images/{tid}/{n}" alt="image {n + 1}"></a>'
                     for n in range(len(record.get("image_url") or [])))
    error = f'<p class="error">{escape(json.dumps(record["error"]))}</p>' if record.get("error") else ""
    actions = (f'<form method="post" action="/tasks/{tid}/cancel">{hidden_csrf(csrf)}<button id="cancel">Cancel'
               f'</button></form>' if record.get("status") in ("queued", "running") else "")
    actions += f'<form method="post" action="/tasks/{tid}/again">{hidden_csrf(csrf)}<button>Submit again</button></form>'
    hooks = "".join(f"<tr><td>{escape(str(d.get('type', '')))}</td><td>{escape(str(d.get('url', '')))}</td>"
                    f"<td>{escape(str(d.get('reason', '')))}</td><td>{escape(str(d.get('attempts', '')))}</td>"
                    f'<td><form method="post" action="/webhooks/replay">{hidden_csrf(csrf)}'
                    f'<input type="hidden" name="id" value="{escape(str(d.get("id", "")))}">'
                    f"<button>Replay</button></form></td></tr>" for d in deliveries)
    hooks = ('<h2>Undelivered webhooks</h2><table id="undelivered"><tr><th>event</th><th>url</th><th>why</th>'
             f"<th>attempts</th><th></th></tr>{hooks}</table>") if hooks else ""
    params = escape(json.dumps({k: record.get(k) for k in ("prompt", "runtime", "tasktype", "prefix")}, indent=1))
    return (f'<div class="row">{actions}</div>{error}<table class="kv" id="record" data-status="'
            f'{escape(str(record.get("status")))}">{times}</table><h2>Parameters</h2><pre>{params}</pre>'
            f'<div class="images">{images}</div>{hooks}')


def cost(measured: dict | None, estimate: dict) -> str:
    m = "no priced task recorded yet" if not measured or measured.get("cost_usd_per_image") is None else \
        f"${measured['cost_usd_per_image']:.6f} per image over {measured.get('priced_tasks')} task(s)"
    return (f'<table class="kv"><tr><th>recorded this month</th><td id="measured">{escape(m)}</td></tr>'
            f'<tr><th>the config\'s estimate</th><td id="estimate">${estimate["per_image"]:.6f} per image '
            f'(${estimate["total"]:,.2f} a month for {estimate.get("images", 0):,} images)</td></tr></table>')


def _s(v) -> str:
    return "–" if v is None else f"{v:.0f} s"


def _n(v) -> str:
    return "–" if v is None else f"{v:.1f}"
