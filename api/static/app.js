// katib's web viewer: a static page over the REST API, no build step. Routes (in the hash):
//   #/                      experiments        #/new                  submit
//   #/e/<ns>/<experiment>   an experiment      #/t/<ns>/<trial>       a trial
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const STATES = ["Created", "Running", "Succeeded", "Failed", "Killed", "EarlyStopped", "MetricsUnavailable"];
let cleanup = [];   // what the current page must undo when another is shown

// -- plumbing ----------------------------------------------------------------------------

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function h(html) { const t = document.createElement("template"); t.innerHTML = html.trim(); return t.content.firstElementChild; }
function toast(text) { const t = $("#toast"); t.textContent = text; t.hidden = false; clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 4000); }
// Numbers to six significant digits (0.0631860 → 0.063186, 1234567.8 → 1.23457e+6):
// seventeen digits say nothing more and wrap mid-number. Numeric text is read as a number.
function fmt(v) {
  if (v === null || v === undefined || v === "") return "";
  if (typeof v === "string" && v.trim() !== "" && isFinite(+v)) v = +v;
  if (typeof v === "number") {
    if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
    return Math.abs(v) >= 1e6 || (Math.abs(v) < 1e-4 && v !== 0) ? v.toExponential(5).replace(/\.?0+e/, "e") : String(+v.toPrecision(6));
  }
  return String(v);
}
function age(ts) {
  if (!ts) return "";
  const s = (Date.now() - Date.parse(ts)) / 1000;
  return s < 90 ? `${Math.round(s)}s` : s < 5400 ? `${Math.round(s / 60)}m` : s < 172800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`;
}
// A sortable column header: a button inside the <th> (keyboard-operable, announced), with
// aria-sort on the <th>. Handlers find the column with closest("th[data-k]").
function sortHeader(key, label, sort, asc) {
  const on = sort === key;
  return `<th data-k="${esc(key)}" scope="col" class="${on ? "sorted" + (asc ? " asc" : "") : ""}" aria-sort="${on ? (asc ? "ascending" : "descending") : "none"}"><button type="button" class="sort">${esc(label)}</button></th>`;
}
function sortKey(e) { const th = e.target.closest && e.target.closest("th[data-k]"); return th ? th.dataset.k : null; }
function stateBadge(s) { return `<span class="state ${esc(s)}">${esc(s)}</span>`; }

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const token = localStorage.getItem("katibToken");
  if (token) headers.Authorization = `Bearer ${token}`;
  const early = window.__katibPrefetch;  // prefetch.js's request, started before the scripts loaded
  const taken = early && early.path === path && !options.method;
  if (taken) { window.__katibPrefetch = null; window.__katibPrefetched = (window.__katibPrefetched || 0) + 1; }
  const res = taken ? await early.response : await fetch(path, { ...options, headers });
  if (res.status === 401) { $("#auth").hidden = false; throw new Error("this server needs an API token (top right)"); }
  const text = await res.text();
  let body = text;
  try { body = text ? JSON.parse(text) : null; } catch (_) { /* plain text */ }
  if (!res.ok) { const e = new Error((body && body.message) || `${res.status} ${res.statusText}`); e.body = body; e.status = res.status; throw e; }
  return ownColumns(body);
}
// A map keyed by names a user chose (parameters, metrics): no inherited keys, so a metric
// named "constructor" or "toString" is looked up as itself, and "__proto__" is a key, not
// the prototype (a trial page once wrote min, max and latest onto Object.prototype).
function dict(entries) { return Object.assign(Object.create(null), entries || {}); }
function ownColumns(body) {
  if (body && body.columns && typeof body.columns === "object") {
    body.columns.params = dict(body.columns.params);
    body.columns.metrics = dict(body.columns.metrics);
  }
  return body;
}
// Every item of a list the server answers a page at a time (each page names the next in
// metadata.continue): the experiment lists page by count and by bytes.
async function listAll(path) {
  const sep = path.includes("?") ? "&" : "?";
  let data = await api(path);
  const items = [...data.items];
  for (let token = (data.metadata || {}).continue; token; token = (data.metadata || {}).continue) {
    data = await api(`${path}${sep}continue=${encodeURIComponent(token)}`);
    items.push(...data.items);
  }
  return { ...data, items };
}

// Dark mode: the system's choice (prefers-color-scheme) unless the header's toggle picked
// light or dark (kept in localStorage). Charts take a matching ECharts theme.
const THEMES = ["auto", "light", "dark"];
function applyTheme() {
  const t = localStorage.getItem("katibTheme") || "auto", root = document.documentElement;
  if (t === "auto") delete root.dataset.theme; else root.dataset.theme = t;
  const b = $("#theme");
  if (b) { b.textContent = `Theme: ${t}`; b.setAttribute("aria-label", `Colour theme: ${t} (change)`); }
}
function isDark() {
  const t = document.documentElement.dataset.theme;
  return t ? t === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
}
function darkTheme() {
  if (darkTheme.done) return;
  const fg = "#e3e7ef", muted = "#a3abbb", line = "#343b4a";
  const axis = { axisLine: { lineStyle: { color: muted } }, axisTick: { lineStyle: { color: muted } }, axisLabel: { color: muted },
    splitLine: { lineStyle: { color: line } }, nameTextStyle: { color: muted } };
  echarts.registerTheme("katib-dark", { backgroundColor: "transparent", textStyle: { color: fg }, legend: { textStyle: { color: fg } },
    visualMap: { textStyle: { color: fg } }, categoryAxis: axis, valueAxis: axis, logAxis: axis, timeAxis: axis });
  darkTheme.done = true;
}
applyTheme();

function chart(el) {
  if (isDark()) darkTheme();
  const c = echarts.init(el, isDark() ? "katib-dark" : null, { renderer: "canvas" });
  const resize = () => c.resize();
  window.addEventListener("resize", resize);
  cleanup.push(() => { window.removeEventListener("resize", resize); c.dispose(); });
  return c;
}

// Draw an option from plots.js, or say (in the note) why there is nothing to draw.
function plot(c, note, option) {
  const el = $(note);
  if (typeof option === "string") { c.clear(); if (el) el.textContent = option; return; }
  if (el) el.textContent = "";
  c.setOption(option, true);
}

// The newest true condition, the last in Katib's order (katib.controller.experiment_phase).
function phaseOf(status) {
  const conds = (status.conditions || []).filter(c => c.status === "True" && ["Created", "Running", "Restarting", "Succeeded", "Failed"].includes(c.type));
  return conds.length ? conds[conds.length - 1].type : "Unknown";
}
// One value per metric of a trial, on every screen: the one its metric strategy picks
// (Katib's metricStrategies; by default min when minimizing, max when maximizing), as
// katib.controller.metric_strategies / shown_value do on the server.
function strategiesOf(objective) {
  const o = objective || {}, fallback = { minimize: "min", maximize: "max" }[o.type] || "latest", out = dict();
  for (const n of [o.objectiveMetricName, ...(o.additionalMetricNames || []), ...(o.additionalObjectives || []).map(a => a.metricName),
                   ...(o.constraints || []).map(c => c.metricName)]) if (n) out[n] = fallback;
  for (const s of o.metricStrategies || []) if (s.name && s.value) out[s.name] = s.value;
  return out;
}
// A min or max that is "unavailable" (a text metric: no number reported) falls back to the
// latest value, as Katib picks it (katib.controller.strategy_value).
function shownValue(m, strategies) {
  const k = (strategies || dict())[m.name] || "latest", v = m[k];
  return (k === "min" || k === "max") && v === "unavailable" ? m.latest : v;
}
// A metric's value under its strategy, with the other two in grey.
function metricText(m, strategies) {
  const k = (strategies || {})[m.name] || "latest", v = shownValue(m, strategies);
  // One value reported, or a text metric (a DARTS genotype: min and max unavailable): the
  // value alone, as `katib run` prints it.
  const one = m.min === m.max && (m.max === m.latest || m.max === "unavailable");
  return `<b title="${esc(v)}">${esc(fmt(v))}</b>` + (one ? "" : ` <span class="muted">(${esc(k)}; latest ${esc(fmt(m.latest))}, min ${esc(fmt(m.min))}, max ${esc(fmt(m.max))})</span>`);
}
function reasonOf(status) {
  const conds = (status.conditions || []).filter(c => c.status === "True");
  return conds.length ? conds[conds.length - 1].reason : "";
}
// The phase every screen shows (katib.views.shown_phase): Stopped for an unfinished
// experiment that no controller runs; an outside loop (ask and tell) needs none.
const STOPPED_REASON = "no controller runs it";
function shownPhase(status, active, spec) {
  const p = phaseOf(status || {});
  return ["Created", "Running", "Restarting"].includes(p) && active === false && (spec || {}).executor !== "external" ? "Stopped" : p;
}
// Why a failed experiment failed: its condition's message and the trial that failed last.
// Requests, limits or the devices a trial ran on, as a line ("cpu 1, memory 2Gi, gpus 0"):
// what is unset, zero or empty left out; nothing at all is "none".
function resourceText(r) {
  const parts = Object.entries(r || {}).filter(([, v]) => v !== null && v !== undefined && v !== 0 && v !== "" && !(Array.isArray(v) && !v.length))
    .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(" ") : v}`);
  return parts.length ? parts.join(", ") : "none";
}

function failureHtml(status, last, ns) {
  const cond = ((status || {}).conditions || []).find(c => c.type === "Failed" && c.status === "True") || {};
  const trial = last ? `<a href="#/t/${encodeURIComponent(ns)}/${encodeURIComponent(last.trial)}">${esc(last.trial)}</a>` : "";
  return `<span class="cause">${esc(cond.message || "")}</span>` +
    (last ? `<span class="last">last failure: ${trial} ${esc(last.state)}${last.reason ? ` (${esc(last.reason)})` : ""}: ${esc(last.message)}</span>` : "");
}

// -- router ------------------------------------------------------------------------------

let shownPage = 0;  // which route() drew the page: a page left behind must not overwrite it
async function route() {
  cleanup.forEach(f => { try { f(); } catch (_) { /* gone */ } });
  cleanup = [];
  const mine = ++shownPage;
  window.__katibReady = false;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const view = $("#view");
  try {
    if (parts[0] === "new") await submitPage(view);
    else if (parts[0] === "e" && parts.length >= 3) await experimentPage(view, parts[1], parts[2]);
    else if (parts[0] === "t" && parts.length >= 3) await trialPage(view, parts[1], parts[2]);
    else if (parts[0] === "compare") await comparePage(view, parts.slice(1));
    else await listPage(view);
  } catch (e) {
    if (mine !== shownPage) return;  // that page was left before it failed
    view.innerHTML = `<div class="card"><h2>Could not load this page</h2><p class="muted">${esc(e.message)}</p></div>`;
  }
}
window.addEventListener("hashchange", () => { window.__katibPrefetch = null; route(); });  // for the first page only
window.addEventListener("DOMContentLoaded", () => {
  applyTheme();
  $("#theme").onclick = () => {  // auto → light → dark → auto; the page redraws its charts
    const t = localStorage.getItem("katibTheme") || "auto";
    localStorage.setItem("katibTheme", THEMES[(THEMES.indexOf(t) + 1) % THEMES.length]);
    applyTheme(); route();
  };
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => { if (!document.documentElement.dataset.theme) route(); });
  $("#save-token").onclick = () => { localStorage.setItem("katibToken", $("#token").value.trim()); $("#auth").hidden = true; route(); };
  route();
});

// -- experiments list --------------------------------------------------------------------

async function listPage(view) {
  const ui = { ns: localStorage.getItem("katibNamespace") || "", filter: "", sort: "age", asc: true };
  view.innerHTML = `
    <div class="toolbar">
      <h1 style="margin-right:auto">Experiments</h1>
      <label>Namespace <select id="ns"><option value="">all</option></select></label>
      <input id="filter" placeholder="filter by name, status, algorithm" aria-label="Filter experiments by name, status or algorithm" size="30">
      <button id="compare-selected" disabled>Compare selected</button>
      <a href="#/new"><button class="primary">Submit…</button></a>
    </div>
    <div class="card scroll-x" tabindex="0" role="region" aria-label="experiments"><table id="experiments"><thead><tr><th scope="col"><span class="sr-only">Compare</span></th>
      ${[["name", "Name"], ["namespace", "Namespace"], ["status", "Status"], ["algorithm", "Algorithm"], ["progress", "Progress"],
         ["trials", "Trials"], ["best", "Best"], ["age", "Age"]].map(([k, l]) => sortHeader(k, l, ui.sort, ui.asc)).join("")}
      <th scope="col"><span class="sr-only">Actions</span></th></tr></thead><tbody></tbody></table>
      <p id="empty" class="muted" hidden>No experiments yet. <a href="#/new">Submit one</a>, or run <code>katib run examples/random.yaml</code>.</p>
    </div>`;
  let rows = [], readOnly = false;
  const picked = new Set();  // experiments to compare, "namespace/name"
  const draw = () => {
    const f = ui.filter.toLowerCase();
    let shown = rows.filter(r => (!ui.ns || r.namespace === ui.ns) && (!f || `${r.name} ${r.status} ${r.reason} ${r.algorithm}`.toLowerCase().includes(f)));
    const key = ui.sort;
    shown.sort((a, b) => {
      const x = key === "age" ? -a.created : a[key], y = key === "age" ? -b.created : b[key];
      return (x > y ? 1 : x < y ? -1 : 0) * (ui.asc ? 1 : -1);
    });
    $("#experiments tbody").innerHTML = shown.map(r => `
      <tr data-ns="${esc(r.namespace)}" data-name="${esc(r.name)}">
        <td><input type="checkbox" data-compare="${esc(r.namespace)}/${esc(r.name)}" aria-label="compare ${esc(r.name)}"${picked.has(`${r.namespace}/${r.name}`) ? " checked" : ""}></td>
        <td><a href="#/e/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}">${esc(r.name)}</a></td>
        <td>${esc(r.namespace)}</td>
        <td>${stateBadge(r.status)} <span class="muted">${esc(r.reason)}</span>
          ${r.status === "Failed" ? `<div class="why">${failureHtml(r.raw, r.lastFailure, r.namespace)}</div>` : ""}</td>
        <td>${esc(r.algorithm)}</td>
        <td class="progress" title="trials ended of maxTrialCount"><progress value="${r.done}" max="${r.budget || r.trials || 1}"
          aria-label="${esc(r.name)}: ${r.done} of ${r.budget || r.trials} trials ended"></progress> ${r.done}&thinsp;/&thinsp;${esc(r.budget || r.trials)}</td>
        <td title="running / succeeded / failed / early stopped">${r.counts}</td>
        <td class="num">${esc(fmt(r.best))}</td>
        <td>${esc(age(r.createdAt))}</td>
        <td>${r.stoppable ? '<button data-act="stop">Stop</button>' : ""}${r.resumable ? '<button data-act="resume">Resume</button>' : ""}
            ${readOnly || (r.active && !r.stoppable) ? "" : '<button data-act="delete" class="danger">Delete</button>'}</td>
      </tr>`).join("");
    $("#empty").hidden = rows.length > 0;
    view.querySelectorAll("#experiments th[data-k]").forEach(th => {
      const on = th.dataset.k === ui.sort;
      th.classList.toggle("sorted", on); th.classList.toggle("asc", on && ui.asc);
      th.setAttribute("aria-sort", on ? (ui.asc ? "ascending" : "descending") : "none");
    });
  };
  const load = async () => {
    const data = await listAll("/api/v1/experiments?brief=true");  // what the table shows of each spec
    readOnly = !!data.readOnly;
    rows = data.items.map(e => {
      const s = e.status || {}, spec = e.spec || {};
      const best = ((s.currentOptimalTrial || {}).observation || {}).metrics || [];
      const objective = (spec.objective || {}).objectiveMetricName;
      const m = best.find(x => x.name === objective), v = m ? shownValue(m, strategiesOf(spec.objective)) : "";
      const status = shownPhase(s, e.active, spec);
      const done = (s.trials || 0) - (s.trialsRunning || 0) - (s.trialsPending || 0);
      return {
        name: e.metadata.name, namespace: e.metadata.namespace, active: e.active, stoppable: !!e.stoppable,
        resumable: !!e.resumable, raw: s, lastFailure: e.lastFailure, done, budget: spec.maxTrialCount,
        progress: spec.maxTrialCount ? done / spec.maxTrialCount : 0,
        status, reason: status === "Stopped" ? STOPPED_REASON : reasonOf(s),
        algorithm: (spec.algorithm || {}).algorithmName || "", createdAt: e.metadata.creationTimestamp,
        created: Date.parse(e.metadata.creationTimestamp) || 0, trials: s.trials || 0,
        counts: `${s.trialsRunning || 0} / ${s.trialsSucceeded || 0} / ${s.trialsFailed || 0} / ${s.trialsEarlyStopped || 0}`,
        best: m ? (isNaN(+v) ? v : +v) : "",
      };
    });
    const namespaces = [...new Set(rows.map(r => r.namespace))].sort();
    const sel = $("#ns");
    sel.innerHTML = `<option value="">all</option>` + namespaces.map(n => `<option ${n === ui.ns ? "selected" : ""}>${esc(n)}</option>`).join("");
    draw();
  };
  $("#ns").onchange = e => { ui.ns = e.target.value; localStorage.setItem("katibNamespace", ui.ns); draw(); };
  $("#filter").oninput = e => { ui.filter = e.target.value; draw(); };
  view.querySelector("thead").onclick = e => {
    const k = sortKey(e); if (!k) return;
    ui.asc = ui.sort === k ? !ui.asc : true; ui.sort = k; draw();
  };
  $("#experiments tbody").onchange = e => {
    const key = e.target.dataset.compare; if (!key) return;
    if (e.target.checked) picked.add(key); else picked.delete(key);
    $("#compare-selected").disabled = picked.size < 2;
    $("#compare-selected").textContent = picked.size ? `Compare ${picked.size}` : "Compare selected";
  };
  $("#compare-selected").onclick = () => { location.hash = compareHash([...picked]); };
  $("#experiments tbody").onclick = async e => {
    const act = e.target.dataset.act; if (!act) return;
    const tr = e.target.closest("tr"), ns = tr.dataset.ns, name = tr.dataset.name;
    const base = `/api/v1/namespaces/${encodeURIComponent(ns)}/experiments/${encodeURIComponent(name)}`;
    try {
      if (act === "delete") { if (!confirm(`Delete experiment ${name}, its trials and logs?`)) return; await api(base, { method: "DELETE" }); }
      else await api(`${base}/${act}`, { method: "POST" });
      toast(`${name}: ${act}`); await load();
    } catch (err) { toast(err.message); }
  };
  await load();
  const timer = setInterval(() => load().catch(() => {}), 3000);
  cleanup.push(() => clearInterval(timer));
  window.__katibReady = true;
}

// -- experiment page ---------------------------------------------------------------------

async function experimentPage(view, ns, name) {
  const base = `/api/v1/namespaces/${encodeURIComponent(ns)}/experiments/${encodeURIComponent(name)}`;
  view.innerHTML = `
    <div class="toolbar">
      <div style="margin-right:auto"><h1 id="title">${esc(name)}</h1><div id="subtitle" class="muted"></div></div>
      <button id="stop">Stop</button><button id="resume">Resume</button>
      <button id="budget-edit">Edit budget</button><button id="clone" title="A new experiment from this one's YAML, to edit">Clone…</button><button id="csv">Export CSV</button>
    </div>
    <form id="budget" class="card toolbar" hidden>
      <label>maxTrialCount <input name="maxTrialCount" type="number" min="1" style="width:90px"></label>
      <label>parallelTrialCount <input name="parallelTrialCount" type="number" min="1" style="width:90px"></label>
      <label>maxFailedTrialCount <input name="maxFailedTrialCount" type="number" min="0" style="width:90px"></label>
      <button class="primary">Save</button>
    </form>
    <div class="card failure" id="failure" hidden></div>
    <div class="row">
      <div style="flex:0 1 360px; min-width:0"><div class="card" id="best"></div><div class="card" id="note"></div></div>
      <div class="card grow"><div class="toolbar"><h2 style="margin:0 auto 0 0">Optimisation history</h2>
        <label>y axis <select id="history-y"><option value="value">linear</option><option value="log">log</option></select></label>
        <label>x axis <select id="history-x"><option value="trial">trial number</option><option value="time">time ended</option></select></label></div>
        <p id="history-note" class="muted" role="status"></p><div id="history" class="chart"></div></div>
    </div>
    <div class="tabs" id="tabs" role="tablist" aria-label="Views of the experiment">
      ${[["trials", "Trials"], ["importance", "Importance &amp; slices"], ["curves", "Learning curves"], ["plots", "Contour, rank, EDF, timeline"], ["pareto", "Pareto front"], ["yaml", "YAML"]]
        .map(([k, label]) => `<button type="button" role="tab" id="tab-${k}" data-tab="${k}" aria-controls="pane-${k}"
          aria-selected="${k === "trials"}" tabindex="${k === "trials" ? 0 : -1}" class="${k === "trials" ? "on" : ""}"${k === "pareto" ? " hidden" : ""}>${label}</button>`).join("")}
    </div>
    <section data-pane="trials" id="pane-trials" role="tabpanel" aria-labelledby="tab-trials" tabindex="0">
      <div class="card"><h2>Parallel coordinates <span class="muted" id="brush-note">(drag along an axis to filter the table)</span></h2>
        <div id="parallel" class="chart"></div></div>
      <div class="card">
        <div class="toolbar"><h2 style="margin:0 auto 0 0">Trials <span id="count" class="muted"></span></h2>
          <select id="state-filter" aria-label="Show trials of this state"><option value="">every state</option>${STATES.map(s => `<option>${s}</option>`).join("")}</select>
          <input id="trial-filter" placeholder="filter: name, or lr>0.01" aria-label="Filter trials by name, or by an expression such as lr>0.01" size="24">
          <button id="clear-brush" hidden>Clear brush</button></div>
        <div class="scroll"><table id="trials"><thead></thead><tbody></tbody></table></div>
        <div class="pager"><button id="prev">‹ Prev</button><span id="page" class="muted"></span><button id="next">Next ›</button></div>
      </div>
    </section>
    <section data-pane="importance" id="pane-importance" role="tabpanel" aria-labelledby="tab-importance" tabindex="0" hidden>
      <div class="card"><h2>Parameter importance (fANOVA)</h2><p id="importance-state" class="muted" role="status"></p><div id="importance" class="chart small"></div></div>
      <div class="card"><h2>Slices: objective against each parameter</h2><div id="slices" class="row"></div></div>
    </section>
    <section data-pane="curves" id="pane-curves" role="tabpanel" aria-labelledby="tab-curves" tabindex="0" hidden><div class="card"><h2>Intermediate values <span id="curves-note" class="muted"></span></h2><div id="curves" class="chart" style="height:420px"></div></div></section>
    <section data-pane="plots" id="pane-plots" role="tabpanel" aria-labelledby="tab-plots" tabindex="0" hidden>
      <div class="card"><div class="toolbar"><h2 style="margin:0 auto 0 0">Contour and rank</h2>
        <label>x <select id="plot-x"></select></label><label>y <select id="plot-y"></select></label></div>
        <div class="row"><div class="grow"><h2>Contour <span class="muted">(the objective, interpolated)</span></h2><p id="contour-note" class="muted" role="status"></p><div id="contour" class="chart"></div></div>
          <div class="grow"><h2>Rank <span class="muted">(trials coloured by the objective's rank)</span></h2><p id="rank-note" class="muted" role="status"></p><div id="rank" class="chart"></div></div></div></div>
      <div class="row"><div class="card grow"><h2>Empirical distribution (EDF)</h2><p id="edf-note" class="muted" role="status"></p><div id="edf" class="chart"></div></div>
        <div class="card grow"><h2>Timeline</h2><p id="timeline-note" class="muted" role="status"></p><div id="timeline" class="chart"></div></div></div>
    </section>
    <section data-pane="pareto" id="pane-pareto" role="tabpanel" aria-labelledby="tab-pareto" tabindex="0" hidden><div class="card">
      <div class="toolbar"><h2 style="margin:0 auto 0 0">Pareto front</h2>
        <label>x <select id="pareto-a"></select></label><label>y <select id="pareto-b"></select></label></div>
      <p id="pareto-note" class="muted" role="status"></p><div id="pareto" class="chart"></div></div></section>
    <section data-pane="yaml" id="pane-yaml" role="tabpanel" aria-labelledby="tab-yaml" tabindex="0" hidden><div class="card"><pre id="yaml" tabindex="0">…</pre></div></section>`;

  const ui = { sort: null, asc: true, page: 0, size: 50, state: "", text: "", brush: {}, tab: "trials", drawn: {} };
  let S = null;           // the summary
  let order = [];         // trial indexes in table order
  const charts = { history: chart($("#history")), parallel: chart($("#parallel")) };

  const col = (key) => key === "name" ? S.columns.name : key === "state" ? S.columns.state : key === "duration" ? S.columns.duration
    : key.startsWith("p:") ? S.columns.params[key.slice(2)] : S.columns.metrics[key.slice(2)];
  const objective = () => S.columns.metrics[S.objective.name] || [];

  function textFilter(i) {
    const t = ui.text.trim();
    if (!t) return true;
    const m = t.match(/^([\w.-]+)\s*(<=|>=|<|>|=)\s*(.+)$/);
    if (m) {
      const key = S.columns.params[m[1]] ? "p:" + m[1] : S.columns.metrics[m[1]] ? "m:" + m[1] : null;
      if (!key) return false;
      const v = col(key)[i], w = isNaN(+m[3]) ? m[3] : +m[3];
      return m[2] === "<" ? v < w : m[2] === ">" ? v > w : m[2] === "<=" ? v <= w : m[2] === ">=" ? v >= w : String(v) === String(w);
    }
    return S.columns.name[i].includes(t);
  }
  function brushFilter(i) {
    for (const [dim, intervals] of Object.entries(ui.brush)) {
      if (!intervals.length) continue;
      const v = dimValue(dim, i);
      if (v === null || v === undefined || !intervals.some(([a, b]) => v >= a && v <= b)) return false;
    }
    return true;
  }
  function dimValue(dim, i) {  // the value a parallel axis plots for trial i
    const d = dims()[dim];
    const v = d.key.startsWith("p:") ? S.columns.params[d.key.slice(2)][i] : S.columns.metrics[d.key.slice(2)][i];
    return d.categories ? d.categories.indexOf(String(v)) : v;
  }
  function dims() {
    if (dims.cache && dims.cache.S === S) return dims.cache.list;
    const list = S.parameters.map(p => {
      const values = S.columns.params[p.name];
      const numeric = values.every(v => v === null || typeof v === "number") && p.type !== "categorical";
      const log = numeric && ["logUniform", "logNormal"].includes((p.feasibleSpace || {}).distribution);
      return { key: "p:" + p.name, name: p.name, log, categories: numeric ? null : [...new Set(values.map(String))].sort() };
    });
    list.push({ key: "m:" + S.objective.name, name: S.objective.name, categories: null });
    dims.cache = { S, list };
    return list;
  }

  function drawTable() {
    const n = S.columns.name.length;
    const rows = [];
    for (let i = 0; i < n; i++) if ((!ui.state || S.columns.state[i] === ui.state) && textFilter(i) && brushFilter(i)) rows.push(i);
    if (ui.sort) {
      const c = col(ui.sort), dir = ui.asc ? 1 : -1;
      rows.sort((a, b) => { const x = c[a], y = c[b]; if (x === null) return 1; if (y === null) return -1; return (x > y ? 1 : x < y ? -1 : 0) * dir; });
    } else rows.reverse();  // newest first
    order = rows;
    const pages = Math.max(1, Math.ceil(rows.length / ui.size));
    ui.page = Math.min(ui.page, pages - 1);
    const params = Object.keys(S.columns.params), metrics = S.metrics;
    const head = [["name", "Trial"], ["state", "State"], ...params.map(p => ["p:" + p, p]), ...metrics.map(m => ["m:" + m, m]), ["duration", "Seconds"]];
    $("#trials thead").innerHTML = `<tr>${head.map(([k, label]) => sortHeader(k, label, ui.sort, ui.asc)).join("")}</tr>`;
    const slice = rows.slice(ui.page * ui.size, (ui.page + 1) * ui.size);
    $("#trials tbody").innerHTML = slice.map(i => `<tr>
      <td><a href="#/t/${encodeURIComponent(ns)}/${encodeURIComponent(S.columns.name[i])}">${esc(S.columns.name[i])}</a></td>
      <td>${stateBadge(S.columns.state[i])}</td>
      ${params.map(p => `<td class="num">${esc(fmt(S.columns.params[p][i]))}</td>`).join("")}
      ${metrics.map(m => `<td class="num">${esc(fmt(S.columns.metrics[m][i]))}</td>`).join("")}
      <td class="num">${esc(fmt(S.columns.duration[i]))}</td></tr>`).join("");
    $("#count").textContent = `${rows.length} of ${n}`;
    $("#page").textContent = `page ${ui.page + 1} of ${pages}`;
    $("#prev").disabled = ui.page === 0; $("#next").disabled = ui.page >= pages - 1;
    $("#clear-brush").hidden = !Object.values(ui.brush).some(v => v.length);
  }

  function drawHeader() {
    const s = S.status || {};
    const shown = shownPhase(s, S.active, { executor: S.executor }), stopped = shown === "Stopped";
    $("#subtitle").innerHTML = `${stateBadge(shown)} ${esc(stopped ? STOPPED_REASON + (S.resumable ? "; Resume carries on" : "") : reasonOf(s))} · ${esc(S.algorithm.algorithmName || "")} · ` +
      `${s.trials || 0} trials: ${s.trialsRunning || 0} running, ${s.trialsSucceeded || 0} succeeded, ${s.trialsFailed || 0} failed, ` +
      `${s.trialsEarlyStopped || 0} early stopped` +
      // Katib's other ends, when there are any: the counts add up to the trials.
      (s.trialsKilled ? `, ${s.trialsKilled} killed` : "") +
      (s.trialMetricsUnavailable ? `, ${s.trialMetricsUnavailable} without a result` : "") +
      ` · budget ${esc(S.budget.maxTrialCount)} (parallel ${esc(S.budget.parallelTrialCount)})`;
    const best = s.currentOptimalTrial || {};
    const metrics = ((best.observation || {}).metrics || []);
    $("#best").innerHTML = best.bestTrialName ? `
      <h2>Best trial</h2>
      <p><a href="#/t/${encodeURIComponent(ns)}/${encodeURIComponent(best.bestTrialName)}">${esc(best.bestTrialName)}</a></p>
      <dl class="kv">${(best.parameterAssignments || []).map(a => `<dt>${esc(a.name)}</dt><dd title="${esc(a.value)}">${esc(fmt(a.value))}</dd>`).join("")}
      ${metrics.map(m => `<dt>${esc(m.name)}</dt><dd>${metricText(m, S.strategies)}</dd>`).join("")}</dl>`
      : `<h2>Best trial</h2><p class="muted">No trial has reported ${esc(S.objective.name)}${["Succeeded", "Failed"].includes(shown) ? "" : " yet"}.</p>`;
    const form = $("#budget");
    for (const k of ["maxTrialCount", "parallelTrialCount", "maxFailedTrialCount"]) if (document.activeElement !== form[k]) form[k].value = S.budget[k] ?? "";
    $("#tabs [data-tab=pareto]").hidden = S.metrics.length < 2;
    $("#stop").hidden = !S.stoppable; $("#resume").hidden = !S.resumable;
    // Katib restarts an ended experiment only where it reached its trial budget and its
    // resumePolicy is not Never: anywhere else every edit is refused, so none is offered.
    const restartable = shown === "Succeeded" && reasonOf(s) === "ExperimentMaxTrialsReached" && S.resumePolicy !== "Never";
    $("#budget-edit").hidden = !!S.readOnly || (["Succeeded", "Failed"].includes(shown) && !restartable);
    if ($("#budget-edit").hidden) $("#budget").hidden = true;
    $("#failure").hidden = shown !== "Failed";
    if (shown === "Failed") $("#failure").innerHTML = `<h2>Why it failed</h2>${failureHtml(s, S.lastFailure, ns)}`;
  }

  function drawHistory() {
    plot(charts.history, "#history-note", historyOption(S, { y: $("#history-y").value, x: $("#history-x").value }));
  }

  function drawParallel() {
    const D = dims(), y = objective(), n = y.length;
    let idx = [];
    for (let i = 0; i < n; i++) if (typeof y[i] === "number") idx.push(i);
    const limit = 1000;
    if (idx.length > limit) {  // draw a sample (the best quarter and an even spread); brushing filters every trial
      const sorted = [...idx].sort((a, b) => (S.objective.maximize ? y[b] - y[a] : y[a] - y[b]));
      const keep = new Set(sorted.slice(0, limit / 4));
      const step = idx.length / (limit - keep.size);
      for (let k = 0; keep.size < limit && k * step < idx.length; k++) keep.add(idx[Math.floor(k * step)]);
      idx = [...keep];
      $("#brush-note").textContent = `(${limit} of ${n} trials drawn; drag along an axis to filter the table)`;
    }
    const data = idx.map(i => D.map((d, k) => dimValue(k, i)));
    const [lo, hi] = extent(y.filter(v => typeof v === "number"));
    charts.parallel.setOption({
      animation: false,
      parallel: { left: 50, right: 80, top: 40, bottom: 30 },
      parallelAxis: D.map((d, k) => d.categories
        ? { dim: k, id: "ax" + k, name: d.name, type: "category", data: d.categories }
        : { dim: k, id: "ax" + k, name: d.name, type: d.log ? "log" : "value", scale: true }),
      visualMap: lo <= hi ? { show: true, dimension: D.length - 1, min: lo, max: hi, right: 0, top: "middle",
        itemHeight: 150, inRange: { color: S.objective.maximize ? ["#c8d6f0", "#2f6fde", "#102a66"] : ["#102a66", "#2f6fde", "#c8d6f0"] } } : undefined,
      series: [{ type: "parallel", lineStyle: { width: 1, opacity: 0.45 }, progressive: 0, data }],
    }, true);
  }

  charts.parallel.on("axisareaselected", () => {
    // Every axis' active intervals (in the axis' own values; category axes in indexes).
    const brush = {};
    const model = charts.parallel.getModel();
    dims().forEach((d, k) => {
      const axis = model.getComponent("parallelAxis", k);
      const intervals = axis && axis.activeIntervals ? axis.activeIntervals : [];
      if (intervals.length) brush[k] = intervals.map(([a, b]) => [Math.min(a, b), Math.max(a, b)]);
    });
    ui.brush = brush; ui.page = 0; drawTable();
  });

  function drawImportance() {
    const c = ui.drawn.importance || (ui.drawn.importance = chart($("#importance")));
    const note = $("#importance-state");
    // The first computation can take seconds: say so rather than show an empty card.
    if (!ui.drawn.importanceShown) note.textContent = "Computing importance (fANOVA over the finished trials)…";
    api(`${base}/importance`).then(imp => {
      const names = Object.keys(imp).reverse();
      ui.drawn.importanceShown = true;
      note.textContent = names.length ? "" : "Not enough finished trials yet: importance needs at least two.";
      c.setOption({ animation: false, grid: { left: 120, right: 30, top: 10, bottom: 30 }, xAxis: { type: "value", max: 1 },
        yAxis: { type: "category", data: names }, series: [{ type: "bar", data: names.map(k => +imp[k].toFixed(4)), label: { show: true, position: "right" } }] }, true);
    }).catch(e => { note.textContent = `Importance could not be computed: ${e.message}`; });
    const holder = $("#slices");
    if (!ui.drawn.slices) { ui.drawn.slices = dict(); }
    const y = objective();
    S.parameters.forEach(p => {
      let c2 = ui.drawn.slices[p.name];
      if (!c2) { const el = h(`<div class="card grow" style="flex-basis:320px"><h2>${esc(p.name)}</h2><div class="chart small"></div></div>`); holder.appendChild(el); c2 = ui.drawn.slices[p.name] = chart($(".chart", el)); }
      const xs = S.columns.params[p.name], pts = [];
      for (let i = 0; i < y.length; i++) if (typeof y[i] === "number" && xs[i] !== null) pts.push([xs[i], y[i]]);
      const categorical = pts.some(q => typeof q[0] !== "number");
      const log = (p.feasibleSpace || {}).distribution === "logUniform";
      c2.setOption({ animation: false, grid: { left: 55, right: 15, top: 10, bottom: 30 },
        xAxis: categorical ? { type: "category", data: [...new Set(pts.map(q => String(q[0])))] } : { type: log ? "log" : "value", scale: true },
        yAxis: { type: "value", scale: true }, tooltip: {},
        series: [{ type: "scatter", symbolSize: 5, large: pts.length > 2000, data: categorical ? pts.map(q => [String(q[0]), q[1]]) : pts, itemStyle: { opacity: 0.6 } }] }, true);
    });
  }

  function drawCurves() {
    const c = ui.drawn.curves || (ui.drawn.curves = chart($("#curves")));
    const stopped = S.curves.filter(k => k.state === "EarlyStopped").length;
    $("#curves-note").textContent = `${S.curves.length} trials shown (the best and the latest), ${stopped} early stopped (dashed, red)`;
    c.setOption({ animation: false, grid: { left: 60, right: 20, top: 20, bottom: 40 }, tooltip: { trigger: "item", formatter: p => `${esc(p.seriesName)}: ${fmt(p.value[1])} at ${esc(p.value[0])}` },
      xAxis: { type: "value", name: "report", nameLocation: "middle", nameGap: 25, min: 1, minInterval: 1 }, yAxis: { type: "value", scale: true, name: S.objective.name },
      series: S.curves.map(k => ({ name: k.name, type: "line", showSymbol: false, data: k.points,
        lineStyle: { width: 1.2, type: k.state === "EarlyStopped" ? "dashed" : "solid", color: k.state === "EarlyStopped" ? "#c8342b" : undefined, opacity: 0.8 },
        endLabel: { show: k.state === "EarlyStopped", formatter: "stopped", color: "#c8342b", fontSize: 10 } })) }, true);
  }

  // Fill a select with choices once (keeping what is chosen); returns its value.
  function choices(sel, names, fallback) {
    const el = $(sel);
    if (el.dataset.names !== names.join("\n")) {
      const keep = el.value || fallback;
      el.innerHTML = names.map(n => `<option${n === keep ? " selected" : ""}>${esc(n)}</option>`).join("");
      el.dataset.names = names.join("\n");
    }
    return el.value;
  }
  const lazy = id => ui.drawn[id] || (ui.drawn[id] = chart($("#" + id)));

  function drawPlots() {
    const names = S.parameters.map(p => p.name);
    const x = choices("#plot-x", names, names[0]), y = choices("#plot-y", names, names[1]);
    plot(lazy("contour"), "#contour-note", contourOption(S, x, y));
    plot(lazy("rank"), "#rank-note", rankOption(S, x, y));
    plot(lazy("edf"), "#edf-note", edfOption([S]));
    plot(lazy("timeline"), "#timeline-note", timelineOption(S));
  }

  function drawPareto() {
    // Any two metrics; the additional objectives' directions, else the objective's.
    const first = choices("#pareto-a", S.metrics, S.objective.name);
    const second = choices("#pareto-b", S.metrics, ((S.objective.additional || [])[0] || {}).metricName || S.metrics[1]);
    plot(lazy("pareto"), "#pareto-note", paretoOption(S, first, second, metricDirections(S)));
  }

  function drawTab() {
    view.querySelectorAll("[data-pane]").forEach(p => { p.hidden = p.dataset.pane !== ui.tab; });
    view.querySelectorAll("#tabs button").forEach(b => {
      const on = b.dataset.tab === ui.tab;
      b.classList.toggle("on", on); b.setAttribute("aria-selected", String(on)); b.tabIndex = on ? 0 : -1;
    });
    if (ui.tab === "importance") drawImportance();
    if (ui.tab === "curves") drawCurves();
    if (ui.tab === "pareto") drawPareto();
    if (ui.tab === "plots") drawPlots();
    if (ui.tab === "yaml") api(`${base}/yaml`).then(t => { $("#yaml").textContent = t; });
    if (ui.tab === "trials") { charts.parallel.resize(); }
  }

  function merge(delta) {
    // Fold the trials written since the last answer into the columns held (by name).
    const index = new Map(S.columns.name.map((n, i) => [n, i]));
    const C = S.columns, D = delta.columns;
    D.name.forEach((n, j) => {
      let i = index.get(n);
      if (i === undefined) { i = C.name.length; index.set(n, i); }
      C.name[i] = n; C.state[i] = D.state[j]; C.created[i] = D.created[j]; C.duration[i] = D.duration[j];
      if (C.started) C.started[i] = (D.started || [])[j] ?? null;
      for (const p of Object.keys(C.params)) C.params[p][i] = (D.params[p] || [])[j] ?? null;
      for (const m of Object.keys(C.metrics)) C.metrics[m][i] = (D.metrics[m] || [])[j] ?? null;
    });
    S = { ...S, status: delta.status, budget: delta.budget, active: delta.active, now: delta.now, columns: C,
          stoppable: delta.stoppable, resumable: delta.resumable, readOnly: delta.readOnly, lastFailure: delta.lastFailure };
    return D.name.length;
  }

  async function load(first) {
    // The first load and every tenth refresh take it all (with fresh learning curves);
    // the others only the trials written since.
    if (first || !S || (ui.refreshes = (ui.refreshes || 0) + 1) % 10 === 0 || ui.tab === "curves") {
      S = await api(`${base}/summary`);
    } else {
      merge(await api(`${base}/summary?since=${S.now}`));
    }
    window.__katibLoads = (window.__katibLoads || 0) + 1;
    drawHeader(); drawHistory(); drawTable();
    if (first || ui.tab === "trials") drawParallel();
    if (!first && ui.tab !== "trials") drawTab();
  }

  $("#tabs").onclick = e => { if (e.target.dataset.tab) { ui.tab = e.target.dataset.tab; drawTab(); } };
  $("#tabs").onkeydown = e => {  // arrow keys move between tabs (WAI-ARIA tabs pattern)
    const tabs = [...view.querySelectorAll("#tabs button:not([hidden])")], i = tabs.findIndex(b => b.dataset.tab === ui.tab);
    const j = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (j === undefined) return;
    e.preventDefault();
    const next = tabs[(j + tabs.length) % tabs.length];
    ui.tab = next.dataset.tab; drawTab(); next.focus();
  };
  $("#trials thead").onclick = e => {
    const k = sortKey(e); if (!k) return;
    ui.asc = ui.sort === k ? !ui.asc : true; ui.sort = k; drawTable();
  };
  $("#history-y").onchange = $("#history-x").onchange = drawHistory;
  $("#plot-x").onchange = $("#plot-y").onchange = drawPlots;
  $("#pareto-a").onchange = $("#pareto-b").onchange = drawPareto;
  $("#prev").onclick = () => { ui.page--; drawTable(); };
  $("#next").onclick = () => { ui.page++; drawTable(); };
  $("#state-filter").onchange = e => { ui.state = e.target.value; ui.page = 0; drawTable(); };
  $("#trial-filter").oninput = e => { ui.text = e.target.value; ui.page = 0; drawTable(); };
  $("#clear-brush").onclick = () => { ui.brush = {}; drawParallel(); drawTable(); };
  $("#stop").onclick = () => api(`${base}/stop`, { method: "POST" }).then(() => { toast("stopped"); load(); }, e => toast(e.message));
  $("#resume").onclick = () => api(`${base}/resume`, { method: "POST" }).then(() => { toast("resumed"); load(); }, e => toast(e.message));
  $("#budget-edit").onclick = () => { $("#budget").hidden = !$("#budget").hidden; };
  $("#clone").onclick = async () => {  // its YAML, under the first free name, on the Submit page
    try {
      const [text, all] = await Promise.all([api(`${base}/yaml`), listAll("/api/v1/experiments?brief=true")]);
      const taken = new Set(all.items.filter(e => e.metadata.namespace === ns).map(e => e.metadata.name));
      let k = 2;
      while (taken.has(`${name}-${k}`)) k++;
      sessionStorage.setItem("katibClone", cloneYaml(text, `${name}-${k}`));
      location.hash = "#/new";
    } catch (e) { toast(e.message); }
  };
  $("#budget").onsubmit = async e => {
    e.preventDefault();
    const f = e.target, body = {};
    for (const k of ["maxTrialCount", "parallelTrialCount", "maxFailedTrialCount"]) if (f[k].value !== "") body[k] = +f[k].value;
    try { await api(`${base}/budget`, { method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }); toast("budget saved"); f.hidden = true; load(); }
    catch (err) { toast(err.message); }
  };
  $("#csv").onclick = () => {
    const params = Object.keys(S.columns.params), head = ["trial", "state", ...params, ...S.metrics, "seconds"];
    // A cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first: a categorical
    // value or a text metric is any string) starts with ' (OWASP's rule); a number is a number.
    const q = v => {
      let s = v === null || v === undefined ? "" : String(v);
      if (typeof v !== "number" && /^[=+\-@\t\r]/.test(s)) s = "'" + s;
      return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
    };
    const lines = [head.map(q).join(",")];
    for (const i of order) lines.push([S.columns.name[i], S.columns.state[i], ...params.map(p => S.columns.params[p][i]), ...S.metrics.map(m => S.columns.metrics[m][i]), S.columns.duration[i]].map(q).join(","));
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
    a.download = `${name}-trials.csv`; a.click();
  };

  await Promise.all([load(true), mountNote($("#note"), `${base}/note`)]);  // side by side, not one after the other
  window.__katibPrefetch = null;  // for this first load only: a later full refresh asks afresh
  window.__katibReady = true;

  // Live updates while it runs: server-sent events, then a debounced refresh.
  let pending = null;
  const refresh = () => { if (!pending) pending = setTimeout(() => { pending = null; load().catch(() => {}); }, 1500); };
  if (!localStorage.getItem("katibToken")) {
    const es = new EventSource(`/api/v1/events?namespace=${encodeURIComponent(ns)}&experiment=${encodeURIComponent(name)}`);
    // A stop from elsewhere (the API, the CLI, another tab) and an outside loop's ask and tell change it too.
    ["launched", "finished", "ended", "metrics", "started", "stopping", "stopped", "error", "asked", "told"]
      .forEach(t => es.addEventListener(t, refresh));
    cleanup.push(() => es.close());
  } else {
    const timer = setInterval(refresh, 5000);
    cleanup.push(() => clearInterval(timer));
  }
  cleanup.push(() => clearTimeout(pending));
}

// -- trial page --------------------------------------------------------------------------

const RETRIED_AS = "katib.kubeflow.org/retried-as", RETRY_OF = "katib.kubeflow.org/retry-of";
// Offered only where the server can do it: an ended, unsuccessful trial not retried yet, of
// a running experiment whose algorithm does not plan its trials by name.
function retryable(state, t, exp) {
  const ended = (exp.status.conditions || []).some(c => (c.type === "Succeeded" || c.type === "Failed") && c.status === "True");
  const planned = ["hyperband", "pbt"].includes((exp.spec.algorithm || {}).algorithmName);
  return ["Failed", "Killed", "EarlyStopped", "MetricsUnavailable"].includes(state) && !ended && !planned
    && !(t.metadata.labels || {})[RETRIED_AS];
}
function retryLinks(ns, labels) {
  const link = n => `<a href="#/t/${encodeURIComponent(ns)}/${encodeURIComponent(n)}">${esc(n)}</a>`;
  const as = labels[RETRIED_AS], of = labels[RETRY_OF];
  return (of ? ` · a retry of ${link(of)}` : "") + (as === "requested" ? " · its retry runs next" : as ? ` · retried as ${link(as)}` : "");
}

async function trialPage(view, ns, name) {
  const base = `/api/v1/namespaces/${encodeURIComponent(ns)}/trials/${encodeURIComponent(name)}`;
  let t = await api(base);
  const experiment = (t.metadata.ownerReferences || [{}])[0].name;
  const exp = await api(`/api/v1/namespaces/${encodeURIComponent(ns)}/experiments/${encodeURIComponent(experiment)}`);
  const tt = exp.spec.trialTemplate || {};
  const strategies = strategiesOf(exp.spec.objective);
  const containers = [];
  (function walk(o) { if (o && typeof o === "object") { if (Array.isArray(o.containers)) containers.push(...o.containers); Object.values(o).forEach(walk); } })(tt.trialSpec);
  const primary = containers.find(c => c.name === tt.primaryContainerName) || {};
  const stateOf = tr => (tr.status.conditions || []).filter(c => c.status === "True").map(c => c.type).pop() || "Created";
  const live = st => st === "Running" || st === "Created";
  let state = stateOf(t), readOnly = false;
  view.innerHTML = `
    <div class="toolbar"><div style="margin-right:auto"><h1>${esc(name)}</h1>
      <div class="muted"><span id="trial-state">${stateBadge(state)}</span> of <a href="#/e/${encodeURIComponent(ns)}/${encodeURIComponent(experiment)}">${esc(experiment)}</a>${retryLinks(ns, t.metadata.labels || {})}</div></div>
      <button id="stop-trial" hidden title="Stop this trial: it ends EarlyStopped, the experiment carries on">Stop trial</button>
      <button id="retry-trial" hidden title="Run this trial's parameters again as a new trial, before the algorithm's next one; it uses one trial of the budget">Retry trial</button></div>
    <div class="row">
      <div class="card" style="flex:0 1 380px"><h2>Parameters</h2><dl class="kv" id="params">${(t.spec.parameterAssignments || []).map(a => `<dt>${esc(a.name)}</dt><dd title="${esc(a.value)}">${esc(fmt(a.value))}</dd>`).join("")}</dl>
        <h2 style="margin-top:14px">Metrics</h2><dl class="kv" id="metrics"></dl>
        <h2 style="margin-top:14px">Resources</h2><dl class="kv">
          <dt>requests</dt><dd>${esc(resourceText((primary.resources || {}).requests))}</dd>
          <dt>limits</dt><dd>${esc(resourceText((primary.resources || {}).limits))}</dd>
          <dt>devices</dt><dd id="devices"></dd>
          <dt>started</dt><dd id="started"></dd><dt>completed</dt><dd id="completed"></dd></dl></div>
      <div class="card grow"><h2>Metrics over time</h2><div id="series" class="chart"></div><p id="series-note" class="muted" hidden></p></div>
    </div>
    <div class="card scroll-x" tabindex="0" role="region" aria-label="the trial's conditions"><h2>Conditions</h2><table><thead><tr><th scope="col">Type</th><th scope="col">Status</th><th scope="col">Reason</th><th scope="col">Message</th><th scope="col">Last transition</th></tr></thead>
      <tbody id="conditions"></tbody></table></div>
    <div class="card"><div class="toolbar"><h2 style="margin:0 auto 0 0">Log</h2>
      <label>last <input id="tail" type="number" value="200" min="1" style="width:80px"> lines</label>
      <label><input id="follow" type="checkbox" ${live(state) ? "checked" : ""}> follow</label></div>
      <pre id="log" tabindex="0" aria-label="the trial's log">…</pre></div>
    <div class="row"><div class="card grow" id="note"></div>
      <div class="card grow"><h2>YAML</h2><pre id="trial-yaml" tabindex="0" aria-label="the trial's YAML">…</pre></div></div>`;
  const series = chart($("#series"));
  // Its reports: the last REPORTS of them at first (a trial may print millions), then only
  // what was reported since the last fetch (the answer's metadata.resume), the window kept
  // to the last REPORTS; "showing the last N of M" says when it holds fewer than all.
  const REPORTS = 5000, reports = { logs: [], earlier: 0, resume: null };
  const fetchReports = async () => {
    const path = `${base}/observations`;
    let page = reports.resume === null ? null
      : await api(`${path}?continue=${encodeURIComponent(reports.resume)}`).catch(() => null);
    if (page && !(page.metadata || {}).continue) reports.logs = reports.logs.concat(page.metricLogs);
    else {  // the first time, more than a page new since, or a token refused: the log's end again
      page = await api(`${path}?tail=${REPORTS}`);
      reports.logs = page.metricLogs; reports.earlier = (page.metadata || {}).earlierItemCount || 0;
    }
    reports.resume = (page.metadata || {}).resume || null;
    if (reports.logs.length > REPORTS) { reports.earlier += reports.logs.length - REPORTS; reports.logs = reports.logs.slice(-REPORTS); }
    return { metricLogs: reports.logs };
  };
  // Everything that changes while the trial runs: state, metrics, conditions, the chart.
  const draw = obs => {
    $("#trial-state").innerHTML = stateBadge(state);
    $("#stop-trial").hidden = state !== "Running" || readOnly;
    $("#retry-trial").hidden = !retryable(state, t, exp) || readOnly;
    // A running trial has no observation in its status yet: its reports so far stand in.
    const reported = dict();
    for (const l of obs.metricLogs) {
      const m = (reported[l.metric.name] = reported[l.metric.name] || { name: l.metric.name, min: null, max: null, latest: null });
      const v = +l.metric.value;
      m.latest = l.metric.value;
      if (!isNaN(v)) { m.min = m.min === null ? v : Math.min(m.min, v); m.max = m.max === null ? v : Math.max(m.max, v); }
    }
    const metrics = ((t.status.observation || {}).metrics) || Object.values(reported);
    $("#metrics").innerHTML = metrics.map(m => `<dt>${esc(m.name)}</dt><dd>${metricText(m, strategies)}</dd>`).join("") ||
      `<dt class="muted">metrics</dt><dd class="muted">none reported${["Running", "Created"].includes(state) ? " yet" : ""}</dd>`;
    $("#devices").textContent = resourceText(t.status.devices);
    $("#started").textContent = t.status.startTime || ""; $("#completed").textContent = t.status.completionTime || "";
    $("#conditions").innerHTML = (t.status.conditions || []).map(c => `<tr><td>${esc(c.type)}</td><td>${esc(c.status)}</td><td>${esc(c.reason)}</td><td style="white-space:normal">${esc(c.message)}</td><td>${esc(c.lastTransitionTime)}</td></tr>`).join("");
    const byMetric = dict();
    for (const l of obs.metricLogs) {
      const v = +l.metric.value, pts = (byMetric[l.metric.name] = byMetric[l.metric.name] || []);
      if (!isNaN(v)) pts.push([pts.length + 1, v]);
    }
    const shown = obs.metricLogs.length;
    $("#series-note").hidden = !reports.earlier;
    $("#series-note").textContent = reports.earlier ? `showing the last ${shown.toLocaleString()} of ${(shown + reports.earlier).toLocaleString()} reports` : "";
    series.setOption({ animation: false, legend: { top: 0 }, grid: { left: 60, right: 20, top: 30, bottom: 40 }, tooltip: { trigger: "axis" },
      xAxis: { type: "value", name: "report", nameLocation: "middle", nameGap: 25, min: 1, minInterval: 1 }, yAxis: { type: "value", scale: true },
      series: Object.entries(byMetric).map(([k, pts]) => ({ name: k, type: "line", showSymbol: pts.length < 60, data: pts })) }, true);
  };
  draw(await fetchReports());
  const loadLog = async () => {
    const text = await api(`${base}/log?tail=${Math.max(1, +$("#tail").value || 200)}`);
    const pre = $("#log"), atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
    pre.textContent = text || "(no output yet)";
    if (atEnd || $("#follow").checked) pre.scrollTop = pre.scrollHeight;
  };
  $("#tail").onchange = loadLog;
  await loadLog();
  const loadYaml = () => api(`${base}/yaml`).then(text => { $("#trial-yaml").textContent = text; });
  const note = await Promise.all([mountNote($("#note"), `${base}/note`), loadYaml()]);
  readOnly = !!(note[0] || {}).readOnly; $("#stop-trial").hidden = state !== "Running" || readOnly;
  $("#retry-trial").hidden = !retryable(state, t, exp) || readOnly;
  $("#retry-trial").onclick = () => api(`${base}/retry`, { method: "POST" })
    .then(() => { toast(`${name}: its retry runs next`); $("#retry-trial").hidden = true; }, e => toast(e.message));
  $("#stop-trial").onclick = () => api(`${base}/stop`, { method: "POST" })
    .then(() => { toast(`${name}: stopping`); $("#stop-trial").disabled = true; }, e => toast(e.message));
  const timer = setInterval(() => { if ($("#follow") && $("#follow").checked) loadLog().catch(() => {}); }, 1000);
  cleanup.push(() => clearInterval(timer));
  // While it runs, its metrics follow as its log does (and once more when it ends).
  let busy = false;
  const metricsTimer = setInterval(async () => {
    if (!live(state) || busy) return;
    busy = true;
    try {
      const [fresh, obs] = await Promise.all([api(base), fetchReports()]);
      t = fresh; state = stateOf(t); draw(obs);
      if (!live(state)) loadYaml();  // once more, with its final status
      window.__katibTrialRefreshes = (window.__katibTrialRefreshes || 0) + 1;
    } catch (_) { /* the next tick tries again */ } finally { busy = false; }
  }, 1500);
  cleanup.push(() => clearInterval(metricsTimer));
  window.__katibReady = true;
}

// -- submit ------------------------------------------------------------------------------

// The short form's default command: a trial that runs anywhere (no file needed) and
// reports the objective, so the form's first experiment works as written.
const QUICK_COMMAND = `python3 -c "import math; lr = \${trialParameters.lr}; print(f'accuracy={1 - abs(math.log10(lr) + 2) / 3}')"`;

// A command line split as a shell would (quotes group words; no variables, no escapes).
function shellWords(text) {
  const words = [];
  let word = null, quote = null;
  for (const ch of text) {
    if (quote) { if (ch === quote) quote = null; else word += ch; }
    else if (ch === '"' || ch === "'") { quote = ch; word = word ?? ""; }
    else if (/\s/.test(ch)) { if (word !== null) { words.push(word); word = null; } }
    else word = (word ?? "") + ch;
  }
  if (word !== null) words.push(word);
  return words;
}

// The line of a field path (spec.parameters[0].feasibleSpace.min) in YAML text, or -1.
function lineOf(lines, path) {
  const segs = path.replace(/\[(\d+)\]/g, ".$1").split(".").filter(Boolean);
  let start = 0, indent = -1, found = -1;
  const ind = l => l.search(/\S/);
  for (const seg of segs) {
    let hit = -1, nextIndent = indent;
    if (/^\d+$/.test(seg)) {
      let n = -1, itemIndent = null;
      for (let i = start; i < lines.length; i++) {
        const l = lines[i], d = ind(l);
        if (d < 0 || l.trim().startsWith("#")) continue;
        if (i > start && d <= indent && !(d === itemIndent && l.trim().startsWith("- "))) break;
        const m = l.match(/^(\s*)- /);
        if (m && (itemIndent === null || m[1].length === itemIndent) && m[1].length >= indent) {
          itemIndent = m[1].length; n++;
          if (n === +seg) { hit = i; nextIndent = m[1].length; break; }
        }
      }
    } else {
      const re = new RegExp("^(\\s*(?:- )?)" + seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "\\s*:");
      for (let i = start; i < lines.length; i++) {
        const l = lines[i], d = ind(l);
        if (d < 0 || l.trim().startsWith("#")) continue;
        const m = l.match(re);
        const keyIndent = m ? m[1].length : d;
        if (i > start && keyIndent <= indent && !m) { if (d <= indent) break; }
        if (m && keyIndent > indent) { hit = i; nextIndent = keyIndent; break; }
        if (i > start && d <= indent) break;
      }
    }
    if (hit < 0) break;
    found = hit; start = hit; indent = nextIndent;
    if (!/^\d+$/.test(seg)) start = hit + 1;
  }
  return found;
}

// An experiment's YAML (GET …/yaml) as a new experiment's: another name, and none of
// what the server set on the first (uid, creation time, resource version).
function cloneYaml(text, name) {
  const lines = text.split("\n"), out = [];
  let inMeta = false;
  for (const l of lines) {
    if (/^\S/.test(l)) inMeta = /^metadata:\s*$/.test(l);
    if (inMeta && /^  (uid|creationTimestamp|resourceVersion|generation):/.test(l)) continue;
    out.push(inMeta && /^  name:/.test(l) ? `  name: ${name}` : l);
  }
  return out.join("\n");
}

async function submitPage(view) {
  view.innerHTML = `
    <div class="toolbar"><h1 style="margin-right:auto">Submit an experiment</h1>
      <label>Namespace <input id="namespace" value="default" size="12"></label>
      <button id="create" class="primary">Create</button></div>
    <div class="row">
      <div class="card" style="flex:0 1 360px">
        <h2>The common case</h2>
        <form id="quick" class="form-grid">
          <label for="q-name">Name</label><input id="q-name" name="name" value="my-experiment">
          <label for="q-metric">Objective</label><span><input id="q-metric" name="metric" value="accuracy" size="12">
            <select name="type" aria-label="objective type"><option>maximize</option><option>minimize</option></select></span>
          <label for="q-algorithm">Algorithm</label><select id="q-algorithm" name="algorithm">${["auto", "tpe", "multivariate-tpe", "random", "grid", "sobol", "cmaes", "bayesianoptimization", "hyperband"].map(a => `<option>${a}</option>`).join("")}</select>
          <label for="q-max">Trials</label><span><input id="q-max" name="max" type="number" value="12" style="width:70px">
            <label for="q-parallel">parallel</label> <input id="q-parallel" name="parallel" type="number" value="2" style="width:60px"></span>
          <label for="q-failed">Failures allowed</label><input id="q-failed" name="failed" type="number" value="3" style="width:70px">
          <span id="q-params">Parameters</span><div id="params" role="group" aria-labelledby="q-params"></div>
          <span></span><button type="button" id="add-param">+ parameter</button>
          <label for="q-command">Command</label><input id="q-command" name="command" value="${esc(QUICK_COMMAND)}">
          <span></span><button class="primary">Write YAML</button>
        </form>
        <p class="muted">The form writes the YAML; edit it freely. Errors are checked as you type, without creating anything.</p>
      </div>
      <div class="grow">
        <div class="editor" id="editor"></div>
        <ul class="errors" id="errors"></ul><p id="ok" class="muted"></p>
      </div>
    </div>`;
  const ed = await yamlEditor($("#editor"), "The experiment's YAML");
  const cloned = sessionStorage.getItem("katibClone");
  sessionStorage.removeItem("katibClone");
  let written = null;  // the YAML the form wrote last: what it may replace without asking
  const addParam = (p = { name: "lr", type: "double", min: "0.001", max: "0.1", log: true }) => {
    $("#params").appendChild(h(`<div class="param-row"><input placeholder="name" value="${esc(p.name)}">
      <select><option ${p.type === "double" ? "selected" : ""}>double</option><option ${p.type === "int" ? "selected" : ""}>int</option><option ${p.type === "categorical" ? "selected" : ""}>categorical</option></select>
      <input placeholder="min or a,b,c" value="${esc(p.min)}"><input placeholder="max" value="${esc(p.max)}">
      <label class="muted" title="sample on a log scale (distribution: logUniform)"><input type="checkbox" ${p.log ? "checked" : ""}> log</label></div>`));
    const [n, t, a, b, lg] = $("#params").lastElementChild.querySelectorAll("input,select");
    n.setAttribute("aria-label", "parameter name"); t.setAttribute("aria-label", "parameter type");
    a.setAttribute("aria-label", "minimum, or the values of a categorical parameter (a,b,c)"); b.setAttribute("aria-label", "maximum");
    lg.setAttribute("aria-label", "log scale");
  };
  addParam();
  $("#add-param").onclick = () => addParam({ name: "", type: "int", min: "1", max: "4", log: false });
  const write = () => {
    const f = $("#quick"), ns = $("#namespace").value || "default";
    const params = [...$("#params").children].map(r => { const [n, t, a, b, lg] = r.querySelectorAll("input,select"); return { name: n.value, type: t.value, a: a.value, b: b.value, log: lg.checked }; }).filter(p => p.name);
    // Every value written as a JSON string or number (JSON is YAML): whatever is typed,
    // the YAML stays well formed and the server's check names the field that is wrong.
    const q = JSON.stringify, n = v => (v.trim() !== "" && !isNaN(+v) ? String(+v) : q(v));
    const yamlParams = params.map(p => p.type === "categorical"
      ? `    - name: ${q(p.name)}\n      parameterType: categorical\n      feasibleSpace:\n        list: [${p.a.split(",").map(s => q(s.trim())).join(", ")}]`
      : `    - name: ${q(p.name)}\n      parameterType: ${q(p.type)}\n      feasibleSpace:\n        min: ${q(p.a)}\n        max: ${q(p.b)}${p.log ? "\n        distribution: logUniform" : ""}`).join("\n");
    const cmd = shellWords(f.command.value).map(s => q(s)).join(", ");
    ed.set(`apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata:\n  namespace: ${q(ns)}\n  name: ${q(f.name.value)}\nspec:\n  objective:\n    type: ${q(f.type.value)}\n    objectiveMetricName: ${q(f.metric.value)}\n  algorithm:\n    algorithmName: ${q(f.algorithm.value)}\n  parallelTrialCount: ${n(f.parallel.value)}\n  maxTrialCount: ${n(f.max.value)}${f.failed.value.trim() !== "" ? `\n  maxFailedTrialCount: ${n(f.failed.value)}` : ""}\n  parameters:${yamlParams ? "\n" + yamlParams : " []"}\n  trialTemplate:\n    primaryContainerName: training\n    trialParameters:${params.length ? "\n" + params.map(p => `      - name: ${q(p.name)}\n        reference: ${q(p.name)}`).join("\n") : " []"}\n    trialSpec:\n      apiVersion: batch/v1\n      kind: Job\n      spec:\n        template:\n          spec:\n            restartPolicy: Never\n            containers:\n              - name: training\n                image: python:3.11\n                command: [${cmd}]\n`);
    written = ed.get();
  };
  if (cloned) ed.set(cloned); else write();  // the starting YAML is what the form says
  $("#quick").onsubmit = e => {
    e.preventDefault();
    // The form writes the whole YAML: edits made in the editor (and what the form has no
    // field for) would be lost, so it asks first.
    if (ed.get() !== written && !confirm("The form writes the whole YAML: the editor's own changes (and any field the form does not have) are replaced. Write it?")) return;
    write();
    check();
  };
  const namespace = () => { const m = ed.get().match(/^metadata:\s*\n(?:[ \t]+.*\n)*?[ \t]+namespace:\s*(\S+)/m); return (m && m[1].replace(/["']/g, "")) || $("#namespace").value || "default"; };
  const lines = () => ed.get().split("\n");
  const paint = (errors) => {
    const L = lines();
    const marks = new Map();
    for (const e of errors) { const i = lineOf(L, e.field || ""); (marks.get(i) || marks.set(i, []).get(i)).push(e); }
    ed.mark(marks);
    $("#errors").innerHTML = errors.map(e => `<li>${e.field ? `<code>${esc(e.field)}</code>: ` : ""}${esc(e.message)}</li>`).join("");
  };
  let seq = 0;
  const check = async () => {
    const mine = ++seq;
    $("#namespace").value = namespace();
    try {
      await api(`/api/v1/namespaces/${encodeURIComponent(namespace())}/experiments?dryRun=true`, { method: "POST", headers: { "Content-Type": "application/yaml" }, body: ed.get() });
      if (mine !== seq) return;
      paint([]); $("#ok").textContent = "Valid: ready to create."; $("#create").disabled = false;
    } catch (e) {
      if (mine !== seq) return;
      refused(e);
    }
  };
  // A 422 lists the fields; a 409 is the name, taken: either way Create waits for an edit.
  const refused = e => {
    const errors = (e.body && e.body.errors) ||
      [e.status === 409 ? { field: "metadata.name", message: `${e.message}: choose another name` } : { field: "", message: e.message }];
    paint(errors); $("#ok").textContent = ""; $("#create").disabled = e.status === 422 || e.status === 409;
  };
  let timer = null;
  ed.onChange(() => { paint([]); clearTimeout(timer); timer = setTimeout(check, 350); });
  // Leaving the page: a pending check and one in flight (its answer would paint a page gone).
  cleanup.push(() => { clearTimeout(timer); seq++; });
  $("#create").onclick = async () => {
    try {
      const ns = namespace();
      const created = await api(`/api/v1/namespaces/${encodeURIComponent(ns)}/experiments`, { method: "POST", headers: { "Content-Type": "application/yaml" }, body: ed.get() });
      toast(`created ${created.metadata.name}`);
      location.hash = `#/e/${encodeURIComponent(ns)}/${encodeURIComponent(created.metadata.name)}`;
    } catch (e) { refused(e); }
  };
  paint([]);
  await check();
  window.__katibReady = true;
}
