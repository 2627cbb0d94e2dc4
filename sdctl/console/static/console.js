// sdctl console: the playground's live line and the Live page's charts. No library, no CDN.
"use strict";
const csrf = () => document.querySelector('meta[name="csrf"]').content;

function line(record) {
  const s = record.status;
  if (s === "queued") {
    const q = record.queue || {};
    return `queued${q.position ? `, #${q.position} in line` : ""}${q.eta_seconds != null ? `, starts in ~${Math.round(q.eta_seconds)} s` : ""}`;
  }
  if (s === "running") {
    const p = record.progress;
    return p ? `running: step ${p.step} of ${p.steps} (${p.percent}%)` : "running";
  }
  return s === "unknown" ? "submitted" : s + (record.error ? `: ${record.error.message || record.error.code}` : "");
}

function snippets(answer) {
  const body = JSON.stringify(answer.request);
  const c = answer.request.task.content;
  return {
    curl: `curl -X POST '${answer.api_url}/v1alpha2' -H 'x-api-key: <your key>' -H 'Content-Type: application/json' -d '${body}'`,
    sdctl: `sdctl generate ${JSON.stringify(c.prompt)} --runtime ${answer.runtime} --steps ${c.steps} --width ${c.width} --height ${c.height} --seed ${c.seed} --count ${c.batch_size}`,
    python: `import httpx\nhttpx.post("${answer.api_url}/v1alpha2", headers={"x-api-key": "<your key>"},\n           json=${body})`,
  };
}

async function follow(id) {
  const out = document.getElementById("line"), images = document.getElementById("images");
  for (;;) {
    const r = await fetch(`/api/tasks/${encodeURIComponent(id)}`);
    const record = await r.json();
    out.textContent = `${id}: ${line(record)}`;
    out.dataset.status = record.status;
    if (["completed", "failed", "cancelled", "expired"].includes(record.status)) {
      images.replaceChildren(...(record.image_url || []).map((_, n) => {
        const img = document.createElement("img");
        img.src = `/images/${encodeURIComponent(id)}/${n}`;
        img.alt = `image ${n + 1} of ${id}`;
        return img;
      }));
      return;
    }
    await new Promise((done) => setTimeout(done, 1000));
  }
}

function playground() {
  const form = document.getElementById("play");
  if (!form) return;
  let copies = {};
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    const r = await fetch("/api/submit", {method: "POST", body: JSON.stringify(data),
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()}});
    const answer = await r.json();
    if (!r.ok) { document.getElementById("line").textContent = `refused: ${answer.error}`; return; }
    copies = snippets(answer);
    follow(answer.id);
  });
  document.querySelectorAll("[data-copy]").forEach((b) => b.addEventListener("click", () => {
    const text = copies[b.dataset.copy] || "";
    document.getElementById("snippet").textContent = text;
    if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
  }));
}

const SERIES = [["visible", "queued"], ["in_flight", "in flight"], ["dead_letter", "dead-lettered"]];

function chart(name, history) {
  const w = 480, h = 120, pad = 4;
  const points = history.map((s) => (s.runtimes || {})[name]).filter(Boolean);
  const top = Math.max(1, ...points.flatMap((p) => SERIES.map(([k]) => p[k] || 0)));
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("class", "chart");
  svg.dataset.runtime = name;
  SERIES.forEach(([key, label], i) => {
    const path = points.map((p, j) => `${j ? "L" : "M"}${pad + (j * (w - 2 * pad)) / Math.max(1, points.length - 1)},${h - pad - ((p[key] || 0) * (h - 2 * pad)) / top}`).join(" ");
    const el = document.createElementNS("http://www.w3.org/2000/svg", "path");
    el.setAttribute("d", path || `M0,${h - pad}`);
    el.setAttribute("class", `series s${i}`);
    el.dataset.last = points.length ? points[points.length - 1][key] || 0 : 0;
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = label;
    el.appendChild(title);
    svg.appendChild(el);
  });
  const figure = document.createElement("figure");
  const caption = document.createElement("figcaption");
  caption.textContent = `${name}: queued, in flight, dead-lettered (max ${top})`;
  figure.append(svg, caption);
  return figure;
}

function live() {
  const charts = document.getElementById("charts");
  if (!charts) return;
  const shown = (data) => {
    const {sample, history} = JSON.parse(data);
    charts.replaceChildren(...Object.keys(sample.runtimes || {}).map((name) => chart(name, history)));
    const table = document.getElementById("queues");
    for (const [name, r] of Object.entries(sample.runtimes || {})) {
      const row = [...table.rows].find((tr) => tr.cells[0] && tr.cells[0].textContent === name);
      if (row) [r.visible, r.in_flight, r.dead_letter].forEach((v, i) => { row.cells[i + 1].textContent = v; });
    }
  };
  if (window.SharedWorker) {  // one stream for all tabs (events-worker.js)
    const worker = new SharedWorker("/static/events-worker.js");
    worker.port.onmessage = (e) => shown(e.data);
    worker.port.start();
  } else {
    new EventSource("/events").onmessage = (e) => shown(e.data);
  }
}

document.addEventListener("DOMContentLoaded", () => { playground(); live(); });
