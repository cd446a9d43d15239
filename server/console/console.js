// Quiver console: a single page over the HTTP/JSON API (POST /v1/<Service>/<Method>) and /metrics of the server
// that serves it. No library, nothing fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
let apiKey = sessionStorage.getItem("quiver-api-key") || "";

function showError(msg) {
  const e = $("error");
  e.textContent = msg;
  e.hidden = !msg;
}

async function api(method, body) {
  const headers = { "Content-Type": "application/json" };
  if (apiKey) headers["Authorization"] = "Bearer " + apiKey;
  const r = await fetch("/v1/" + method, { method: "POST", headers, body: JSON.stringify(body || {}) });
  const j = await r.json();
  if (!r.ok) {
    const msg = `${method}: ${j.status || r.status}: ${j.message || ""}`;
    showError(j.status === "UNAUTHENTICATED" || j.status === "PERMISSION_DENIED"
      ? msg + " (give an API key above)" : msg);
    throw new Error(msg);
  }
  showError("");
  return j;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function clear(tbody) {
  while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
}

// a Value of the JSON mapping as plain text
function valueText(v) {
  if (v === undefined || v === null) return "";
  if ("keywordValue" in v) return JSON.stringify(v.keywordValue);
  if ("intValue" in v) return v.intValue;
  if ("doubleValue" in v) return v.doubleValue;
  if ("boolValue" in v) return v.boolValue;
  if ("keywordsValue" in v) return JSON.stringify((v.keywordsValue.values || []));
  return JSON.stringify(v);
}

function attrsText(a) {
  return Object.entries(a || {}).map(([k, v]) => `${k}=${valueText(v)}`).join(", ");
}

// enum names without their type's prefix: METRIC_COSINE -> COSINE
const short = (e) => (e || "").replace(/^(METRIC|SEGMENT_STATE|INDEX_STATE|INDEX_KIND|FIELD_TYPE|STATE)_/, "");

// ---- collections ----
let collections = [];

async function loadCollections() {
  const r = await api("Quiver/ListCollections");
  collections = r.collections || [];
  const tb = $("collections").tBodies[0];
  clear(tb);
  for (const c of collections) {
    const tr = document.createElement("tr");
    tr.className = "clickable";
    tr.dataset.name = c.name;
    cell(tr, c.name);
    cell(tr, c.dim);
    cell(tr, short(c.metric));
    cell(tr, c.liveRows || "0");
    cell(tr, (c.segments || []).length);
    cell(tr, c.walBytes || "0");
    cell(tr, c.embeddingModel || "-");
    cell(tr, c.dynamicAttributes ? "fields + dynamic" : "fields");
    tr.onclick = () => describe(c.name);
    tb.appendChild(tr);
  }
  for (const sel of [$("search-collection"), $("points-collection")]) {
    const keep = sel.value;
    clear(sel);
    for (const c of collections) {
      const o = document.createElement("option");
      o.value = o.textContent = c.name;
      sel.appendChild(o);
    }
    if (keep) sel.value = keep;
  }
  const st = await api("Admin/Stats");
  const jt = $("jobs").tBodies[0];
  clear(jt);
  for (const j of st.compactions || []) {
    const tr = document.createElement("tr");
    cell(tr, j.id);
    cell(tr, j.collection);
    cell(tr, short(j.state));
    cell(tr, (j.inputSegments || []).join(" "));
    cell(tr, `${j.rowsIn || 0} / ${j.rowsOut || 0}`);
    cell(tr, Math.round((j.progress || 0) * 100) + "%");
    cell(tr, j.error || (j.waitingFor ? "waits for " + j.waitingFor : ""));
    jt.appendChild(tr);
  }
}

async function describe(name) {
  const r = await api("Quiver/DescribeCollection", { name });
  const c = r.collection;
  $("detail").hidden = false;
  $("detail-name").textContent = c.name;
  const fields = (c.fields || []).map((f) => `${f.name}: ${short(f.type)}`).join(", ");
  const ix = c.index || {};
  $("detail-schema").textContent = `dim ${c.dim}, ${short(c.metric)}, index ${short(ix.kind || "INDEX_KIND_HNSW")}` +
    ` (m ${ix.m || 16}, ef_construction ${ix.efConstruction || 200})` + (fields ? `; fields ${fields}` : "") +
    (c.embeddingModel ? `; model ${c.embeddingModel}` : "") + (c.dynamicAttributes ? "; dynamic attributes" : "");
  const tb = $("segments").tBodies[0];
  clear(tb);
  for (const s of c.segments || []) {
    const tr = document.createElement("tr");
    cell(tr, s.id);
    cell(tr, short(s.state));
    cell(tr, s.rows || 0);
    cell(tr, s.deletedRows || 0);
    cell(tr, s.bytes || 0);
    cell(tr, short(s.indexState));
    cell(tr, Math.round((s.indexProgress || 0) * 100) + "%");
    cell(tr, s.indexBytes || 0);
    tb.appendChild(tr);
  }
}

// ---- search ----
function filterRow() {
  const div = document.createElement("div");
  div.className = "cond";
  div.innerHTML = `<input class="f-field" placeholder="field"> <select class="f-op"><option>=</option>
    <option>&gt;=</option><option>&lt;=</option><option>in</option></select>
    <input class="f-value" placeholder="value (JSON: "en", 2020, true; in: ["a","b"])">
    <button type="button">x</button>`;
  div.querySelector("button").onclick = () => div.remove();
  $("filter-rows").appendChild(div);
}

function toValue(x) {
  if (typeof x === "boolean") return { boolValue: x };
  if (typeof x === "number") return Number.isInteger(x) ? { intValue: String(x) } : { doubleValue: x };
  return { keywordValue: String(x) };
}

function buildFilter() {
  const conds = [];
  for (const row of document.querySelectorAll("#filter-rows .cond")) {
    const field = row.querySelector(".f-field").value.trim();
    const op = row.querySelector(".f-op").value;
    const raw = row.querySelector(".f-value").value.trim();
    if (!field) continue;
    let v;
    try { v = JSON.parse(raw); } catch (e) { v = raw; }
    let cond;
    if (op === "=") cond = { field, eq: toValue(v) };
    else if (op === "in") cond = { field, anyOf: { values: (Array.isArray(v) ? v : [v]).map(toValue) } };
    else cond = { field, range: op === ">=" ? { gte: Number(v) } : { lte: Number(v) } };
    conds.push({ cond });
  }
  if (!conds.length) return undefined;
  return conds.length === 1 ? conds[0] : { all: { filters: conds } };
}

async function runSearch(ev) {
  ev.preventDefault();
  const collection = $("search-collection").value;
  const mode = document.querySelector("input[name=mode]:checked").value;
  const q = $("search-query").value;
  const req = { collection, k: Number($("search-k").value || 10), withAttributes: true, withText: true };
  if (mode === "text") req.text = q;
  else req.vector = q.replace(/[\[\]]/g, "").split(/[\s,]+/).filter((s) => s).map(Number);
  if ($("search-ef").value) req.params = { ef: Number($("search-ef").value) };
  const f = buildFilter();
  if (f) req.filter = f;
  const t0 = performance.now();
  const r = await api("Quiver/Search", req);
  $("search-took").textContent = `${(r.hits || []).length} hits in ${(performance.now() - t0).toFixed(1)} ms`;
  const tb = $("hits").tBodies[0];
  clear(tb);
  (r.hits || []).forEach((h, i) => {
    const tr = document.createElement("tr");
    cell(tr, i + 1);
    cell(tr, h.id);
    cell(tr, (h.score || 0).toFixed ? (h.score || 0).toFixed(4) : h.score);
    cell(tr, attrsText(h.attributes));
    cell(tr, (h.text || "").slice(0, 300), "text");
    tb.appendChild(tr);
  });
}

// ---- points ----
let cursor = "";

function showPoints(points) {
  const tb = $("points").tBodies[0];
  clear(tb);
  for (const p of points || []) {
    const tr = document.createElement("tr");
    cell(tr, p.id);
    cell(tr, attrsText(p.attributes));
    cell(tr, (p.text || "").slice(0, 300), "text");
    tb.appendChild(tr);
  }
}

async function scroll(from) {
  const r = await api("Quiver/Scroll", { collection: $("points-collection").value, limit: 50, cursor: from });
  showPoints(r.points);
  cursor = r.nextCursor || "";
  $("points-next").disabled = !cursor;
}

// ---- cluster ----
async function loadCluster() {
  const h = await api("Admin/Health");
  $("cluster-role").textContent = `role ${h.role}, version ${h.version}, ${short(h.status)}` +
    (h.reason ? ` (${h.reason})` : "");
  const tb = $("shards").tBodies[0];
  clear(tb);
  for (const s of h.shards || []) {
    const tr = document.createElement("tr");
    cell(tr, s.name);
    cell(tr, s.address);
    cell(tr, s.reachable ? "yes" : "no");
    cell(tr, s.state);
    cell(tr, s.consecutiveFailures || 0);
    cell(tr, s.inflight || 0);
    tb.appendChild(tr);
  }
  return h;
}

// ---- charts, from /metrics ----
const series = { qps: [], latency: [], ingest: [] };
let last = null;

function parseMetrics(text) {
  const m = { calls: 0, seconds: 0, rows: 0 };
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    const name = line.slice(0, sp), v = Number(line.slice(sp + 1));
    if (name.startsWith("quiver_request_duration_seconds_count")) m.calls += v;
    else if (name.startsWith("quiver_request_duration_seconds_sum")) m.seconds += v;
    else if (name === "quiver_rows_ingested_total") m.rows = v;
  }
  return m;
}

function draw(id, data) {
  const cv = $(id), g = cv.getContext("2d");
  g.clearRect(0, 0, cv.width, cv.height);
  const max = Math.max(1e-9, ...data);
  g.strokeStyle = "#2f6fdb";
  g.beginPath();
  data.forEach((v, i) => {
    const x = (i / Math.max(1, data.length - 1)) * (cv.width - 10) + 5;
    const y = cv.height - 5 - (v / max) * (cv.height - 25);
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke();
  g.fillStyle = "#1d2330";
  g.fillText(`max ${max.toFixed(2)}, now ${(data[data.length - 1] || 0).toFixed(2)}`, 8, 14);
}

async function sample() {
  const r = await fetch("/metrics");
  const m = parseMetrics(await r.text());
  const now = performance.now() / 1000;
  if (last) {
    const dt = Math.max(1e-3, now - last.t), calls = m.calls - last.calls;
    for (const [k, v] of [["qps", calls / dt], ["latency", calls ? ((m.seconds - last.seconds) / calls) * 1000 : 0],
                          ["ingest", (m.rows - last.rows) / dt]]) {
      series[k].push(v);
      if (series[k].length > 120) series[k].shift();
    }
    draw("chart-qps", series.qps);
    draw("chart-latency", series.latency);
    draw("chart-ingest", series.ingest);
  }
  last = { t: now, ...m };
}

// ---- pages ----
let timer = null;

async function show() {
  const page = (location.hash || "#collections").slice(1);
  for (const s of document.querySelectorAll(".page")) s.hidden = s.id !== "page-" + page;
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.id === "nav-" + page);
  clearInterval(timer);
  timer = null;
  try {
    if (page === "collections" || page === "search" || page === "points") await loadCollections();
    if (page === "cluster") await loadCluster();
    if (page === "charts") {
      await sample();
      timer = setInterval(() => sample().catch((e) => showError(String(e))), 2000);
    }
  } catch (e) {
    /* shown by api() */
  }
}

async function start() {
  $("apikey").value = apiKey;
  $("login").onsubmit = (ev) => {
    ev.preventDefault();
    apiKey = $("apikey").value.trim();
    sessionStorage.setItem("quiver-api-key", apiKey);
    start();
  };
  $("search-form").onsubmit = (ev) => runSearch(ev).catch(() => {});
  $("filter-add").onclick = filterRow;
  $("points-form").onsubmit = (ev) => { ev.preventDefault(); scroll("").catch(() => {}); };
  $("points-next").onclick = () => scroll(cursor).catch(() => {});
  $("points-get").onclick = () => api("Quiver/Get", { collection: $("points-collection").value,
                                                     ids: [$("points-id").value] })
    .then((r) => showPoints(r.points)).catch(() => {});
  window.onhashchange = show;
  try {
    const h = await api("Admin/Health");
    $("server").textContent = `${h.role} ${h.version}: ${short(h.status)}`;
  } catch (e) {
    $("server").textContent = "not signed in";
  }
  await show();
}

start();
