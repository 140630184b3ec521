// The endpoint dashboard: polls /dashboard/api/state every 2 s and draws plain SVG charts.
// Everything it needs is served by the endpoint; it loads nothing from anywhere else.
"use strict";

const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2"];
const W = 480, H = 160, PAD = {l: 42, r: 8, t: 8, b: 22};
let updates = 0;
let chosen = "";

function $(id) { return document.getElementById(id); }

function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmt(n, digits) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return n.toFixed(digits === undefined ? 0 : digits);
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

function seconds(s) {
  if (s === null || s === undefined) return "–";
  return s < 1 ? (s * 1000).toFixed(s < 0.01 ? 1 : 0) + " ms" : s.toFixed(2) + " s";
}

function short(s) {
  return s < 1 ? +(s * 1000).toPrecision(3) + "ms" : +s.toPrecision(3) + "s";
}

function clear(svg) { while (svg.firstChild) svg.removeChild(svg.firstChild); }

function frame(svg, ymax, label) {
  svg.appendChild(el("line", {x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b, class: "axis"}));
  svg.appendChild(el("line", {x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: H - PAD.b, class: "axis"}));
  for (const f of [0, 0.5, 1]) {
    const y = H - PAD.b - f * (H - PAD.t - PAD.b);
    svg.appendChild(el("text", {x: PAD.l - 4, y: y + 3, "text-anchor": "end"}, fmt(ymax * f, ymax < 10 ? 1 : 0)));
  }
  if (label) svg.appendChild(el("text", {x: PAD.l + 4, y: PAD.t + 8}, label));
}

function empty(svg, text) {
  clear(svg);
  svg.appendChild(el("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, text));
}

function lines(svg, t, series) {
  clear(svg);
  if (t.length < 2) { empty(svg, "collecting…"); return; }
  const ymax = Math.max(1, ...series.flatMap(s => s.values)) * 1.1;
  frame(svg, ymax);
  const t0 = t[0], t1 = t[t.length - 1];
  const x = v => PAD.l + (v - t0) / Math.max(1e-9, t1 - t0) * (W - PAD.l - PAD.r);
  const y = v => H - PAD.b - v / ymax * (H - PAD.t - PAD.b);
  series.forEach((s, i) => {
    const pts = s.values.map((v, j) => x(t[j]).toFixed(1) + "," + y(v).toFixed(1)).join(" ");
    svg.appendChild(el("polyline", {points: pts, fill: "none", stroke: COLORS[i], "stroke-width": 1.5, "data-series": s.name}));
    svg.appendChild(el("text", {x: W - PAD.r - 4, y: PAD.t + 10 + 12 * i, "text-anchor": "end", fill: COLORS[i]}, s.name));
  });
  const mins = Math.round((t1 - t0) / 60);
  svg.appendChild(el("text", {x: PAD.l, y: H - 6}, mins >= 1 ? `${mins} min ago` : `${Math.round(t1 - t0)} s ago`));
  svg.appendChild(el("text", {x: W - PAD.r, y: H - 6, "text-anchor": "end"}, "now"));
}

function bars(svg, items, emptyText) {
  clear(svg);
  if (!items.length) { empty(svg, emptyText); return; }
  const ymax = Math.max(1, ...items.map(i => i[1])) * 1.1;
  frame(svg, ymax);
  const slot = (W - PAD.l - PAD.r) / items.length;
  const bw = Math.min(slot * 0.8, 56);
  const every = Math.ceil(items.length / 8);  // at most 8 labels on the axis
  items.forEach(([label, v], i) => {
    const h = v / ymax * (H - PAD.t - PAD.b);
    const cx = PAD.l + (i + 0.5) * slot;
    svg.appendChild(el("rect", {x: cx - bw / 2, y: H - PAD.b - h, width: bw, height: Math.max(0, h), fill: COLORS[0], "data-label": label}));
    if (v > 0) svg.appendChild(el("text", {x: cx, y: H - PAD.b - h - 2, "text-anchor": "middle"}, fmt(v)));
    if (i % every === 0) svg.appendChild(el("text", {x: cx, y: H - 8, "text-anchor": "middle"}, String(label).slice(0, 16)));
  });
}

function render(s) {
  $("t-online").textContent = fmt(s.online);
  $("t-registered").textContent = fmt(s.registered);
  const h = s.history;
  const last = k => (h[k].length ? h[k][h[k].length - 1] : null);
  $("t-batches").textContent = fmt(last("batches_per_s"), 1);
  $("t-records").textContent = fmt(last("records_per_s"), 1);
  $("t-latency").textContent = seconds(s.latency.p50) + " / " + seconds(s.latency.p99);
  $("t-storage").textContent = bytes(s.storage_bytes);
  lines($("c-online"), h.t, [{name: "online", values: h.online}]);
  lines($("c-rates"), h.t, [{name: "batches/s", values: h.batches_per_s}, {name: "records/s", values: h.records_per_s}]);
  bars($("c-latency"), s.latency.buckets.map(([le, n]) => [le === null ? "more" : "≤" + short(le), n]), "no uploads yet");
  bars($("c-refusals"), Object.entries(s.refusals).filter(([, n]) => n > 0), "no refusals");
  bars($("c-versions"), Object.entries(s.versions).map(([v, n]) => ["v" + v, n]), "no devices online");
  renderReleases(s.releases || []);
  const conns = $("conns");
  conns.replaceChildren(...Object.entries(s.counters).map(([k, v]) => {
    const tr = document.createElement("tr");
    const a = document.createElement("td"); a.textContent = k.replaceAll("_", " ");
    const b = document.createElement("td"); b.textContent = fmt(v);
    tr.append(a, b);
    return tr;
  }));
  const sel = $("device");
  const names = s.devices;
  const have = Array.from(sel.options).map(o => o.value).slice(1);
  if (names.join("\n") !== have.join("\n")) {
    const keep = sel.value;
    sel.replaceChildren(sel.options[0], ...names.map(n => {
      const o = document.createElement("option");
      o.value = n; o.textContent = n + (s.online_devices.includes(n) ? " (online)" : "");
      return o;
    }));
    sel.value = names.includes(keep) ? keep : "";
  }
  // until someone chooses, follow the device that uploaded last
  if (!chosen && s.recent.length) { chosen = s.recent[0]; sel.value = chosen; }
}

const STATUSES = ["announced", "pulled", "live", "failed", "rolled_back"];

function renderReleases(releases) {
  // the chart: per release version (bundle), the devices live on it; several releases are
  // told apart by their id
  const many = releases.length > 1;
  const items = releases.flatMap(r => r.bundles.map(b =>
    [(many ? r.id + " " : "") + b.bundle, b.by_status.live || 0]));
  bars($("c-releases"), items, "no releases");
  const body = $("releases").tBodies[0];
  body.replaceChildren(...releases.flatMap(r => r.bundles.map(b => {
    const tr = document.createElement("tr");
    tr.dataset.release = r.id;
    const cells = [r.id, r.state, r.percent + " %", b.bundle, ...STATUSES.map(k => fmt(b.by_status[k] || 0))];
    for (const text of cells) {
      const td = document.createElement("td"); td.textContent = text; tr.appendChild(td);
    }
    return tr;
  })));
}

function renderRecords(data) {
  const body = $("records").tBodies[0];
  $("rec-note").textContent = data.records.length ? `newest ${data.records.length}` : "no records stored yet";
  body.replaceChildren(...data.records.map(r => {
    const tr = document.createElement("tr");
    const when = r.time === null ? "" : new Date(r.time).toISOString().replace("T", " ").replace("Z", "");
    for (const [text, cls] of [[new Date(r.received * 1000).toISOString().slice(11, 23), ""], [r.kind || "", ""],
                               [r.name || "", ""], [when, ""], [JSON.stringify(r.values), "v"]]) {
      const td = document.createElement("td");
      td.textContent = text; if (cls) td.className = cls;
      tr.appendChild(td);
    }
    return tr;
  }));
}

async function getJSON(url) {
  const r = await fetch(url, {credentials: "same-origin", cache: "no-store"});
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

async function tick() {
  const status = $("status");
  try {
    const s = await getJSON("/dashboard/api/state");
    render(s);
    if (chosen) renderRecords(await getJSON("/dashboard/api/records?limit=20&device=" + encodeURIComponent(chosen)));
    updates += 1;
    document.body.dataset.updates = String(updates);
    status.textContent = "live"; status.className = "status ok";
    $("updated").textContent = "Last update " + new Date().toLocaleTimeString() + ".";
  } catch (e) {
    status.textContent = "endpoint unreachable, retrying"; status.className = "status err";
  }
}

$("device").addEventListener("change", e => { chosen = e.target.value; tick(); });
tick();
setInterval(tick, 2000);
