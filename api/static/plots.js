// The experiment page's plots as ECharts options, built from the summary's columns (S):
// optimisation history (linear or log y; by trial or by time), contour, rank, EDF, timeline
// and a Pareto front over any two metrics. Each function returns an option object, or a
// string saying why there is nothing to draw; app.js owns the charts and the controls.
"use strict";

const PLOT_STATE_COLORS = { Succeeded: "#1a8a4a", Failed: "#c8342b", MetricsUnavailable: "#c8342b", Running: "#2f6fde",
  Created: "#2f6fde", EarlyStopped: "#8a4fd1", Killed: "#8a4fd1" };
const plotNum = v => typeof v === "number" && isFinite(v);
// [min, max] of numbers, by a loop: Math.min(...values) overflows the stack at a few
// hundred thousand values.
function extent(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}
const plotFmt = v => (typeof fmt === "function" ? fmt(v) : String(v));
// When trial i ended (or started, or was created), in ms since the epoch.
function plotEnded(S, i) {
  const C = S.columns, start = (C.started || [])[i] ?? C.created[i], d = C.duration[i];
  return (plotNum(d) && plotNum(start) ? start + d : start) * 1000;
}
// The text colour ECharts should use, from the page's CSS (dark mode changes it).
function plotInk() {
  const css = getComputedStyle(document.documentElement);
  return { fg: css.getPropertyValue("--fg").trim() || "#1d2330", muted: css.getPropertyValue("--muted").trim() || "#5a6172",
    line: css.getPropertyValue("--line").trim() || "#dde1e8" };
}
function plotBase() {
  const ink = plotInk();
  return { animation: false, textStyle: { color: ink.fg }, legend: { top: 0, textStyle: { color: ink.fg } } };
}
function plotAxis(extra) {
  const ink = plotInk();
  return { axisLabel: { color: ink.muted, hideOverlap: true }, nameTextStyle: { color: ink.muted },
    splitLine: { lineStyle: { color: ink.line } }, axisLine: { lineStyle: { color: ink.muted } }, ...extra };
}

const LARGE_AT = 300;
// Whether trial i's value can be a result, as the server's currentOptimalTrial and
// paretoFront take them: the trial succeeded (or was stopped early: its value counts, as
// Katib's does) and meets every constraint of spec.objective.constraints.
function plotCounts(S, i) {
  const state = S.columns.state[i];
  if (state !== "Succeeded" && state !== "EarlyStopped") return false;
  for (const c of S.objective.constraints || []) {
    const v = (S.columns.metrics[c.metricName] || [])[i];
    if (!plotNum(v) || (c.min != null && v < Number(c.min)) || (c.max != null && v > Number(c.max))) return false;
  }
  return true;
}

// Optimisation history. opts.y: "value" | "log"; opts.x: "trial" | "time".
function historyOption(S, opts) {
  const y = S.columns.metrics[S.objective.name] || [], states = S.columns.state, time = opts.x === "time";
  let idx = [];
  for (let i = 0; i < y.length; i++) if (plotNum(y[i])) idx.push(i);
  // Nothing to draw (every trial failed, or the objective is text: a DARTS genotype): say so.
  if (!idx.length) return `No trial has a number for ${S.objective.name} to plot.`;
  const log = opts.y === "log";
  if (log && idx.some(i => y[i] <= 0)) return `A log scale needs positive values: ${S.objective.name} has values ≤ 0.`;
  if (time) idx.sort((a, b) => plotEnded(S, a) - plotEnded(S, b));
  const at = i => (time ? plotEnded(S, i) : i + 1);
  const byState = {}, bestLine = [];  // per state: the trials' indexes
  let best = null;
  for (const i of idx) {
    const v = y[i];
    (byState[states[i]] = byState[states[i]] || []).push(i);
    if (plotCounts(S, i) && (best === null || (S.objective.maximize ? v > best : v < best))) best = v;
    // A step line needs only the points where the best changes (and the last one).
    if (best !== null && (!bestLine.length || bestLine[bestLine.length - 1][1] !== best)) bestLine.push([at(i), best]);
  }
  if (bestLine.length && idx.length) bestLine.push([at(idx[idx.length - 1]), best]);
  // Past LARGE_AT points a state's series is drawn in ECharts' large mode (one path, no
  // element per point: a thousand circles as elements cost a quarter of a second), and
  // then every state gets squares, so that the legend and the points agree.
  const squares = Object.values(byState).some(trials => trials.length > LARGE_AT);
  const ink = plotInk();
  return { ...plotBase(), grid: { left: 60, right: 20, top: 30, bottom: 40 },
    tooltip: { trigger: "item", formatter: p => {
      const i = (byState[p.seriesName] || [])[p.dataIndex];
      return `${esc(i === undefined ? p.seriesName : S.columns.name[i])}: ${plotFmt(p.value[1])}`;
    } },
    xAxis: plotAxis(time ? { type: "time", name: "ended", nameLocation: "middle", nameGap: 25 }
      : { type: "value", name: "trial", nameLocation: "middle", nameGap: 25, min: 1, minInterval: 1 }),
    yAxis: plotAxis({ type: log ? "log" : "value", scale: true, name: S.objective.name }),
    series: [
      // One series per state: the legend's colour is the points' colour.
      // A large one (100,000 trials) as one flat typed array of x, y pairs, drawn in
      // ECharts' large mode: no array per point to make, ingest and collect.
      ...Object.entries(byState).map(([state, trials]) => {
        const large = trials.length > LARGE_AT;
        let data;
        if (large) {
          data = new Float64Array(trials.length * 2);
          trials.forEach((i, k) => { data[2 * k] = at(i); data[2 * k + 1] = y[i]; });
        } else data = trials.map(i => [at(i), y[i]]);
        // Squares once any state is large: a canvas fills 100,000 of them several times faster than arcs.
        return { name: state, type: "scatter", large, largeThreshold: LARGE_AT, symbol: squares ? "rect" : "circle", symbolSize: squares ? 4 : 5, data,
          dimensions: ["x", "y"], itemStyle: { color: PLOT_STATE_COLORS[state] || "#888", opacity: 0.75 } };
      }),
      { name: "best so far", type: "line", step: "end", showSymbol: false, data: bestLine, lineStyle: { width: 2, color: ink.fg }, itemStyle: { color: ink.fg } },
    ] };
}

// Axis descriptions for a parameter: numeric (maybe log) or categorical.
function plotParam(S, name) {
  const p = S.parameters.find(q => q.name === name) || {}, values = S.columns.params[name] || [];
  const numeric = p.type !== "categorical" && values.every(v => v === null || plotNum(v));
  const log = numeric && ["logUniform", "logNormal"].includes((p.feasibleSpace || {}).distribution) && values.every(v => v === null || v > 0);
  return { name, values, numeric, log, categories: numeric ? null : [...new Set(values.filter(v => v !== null).map(String))].sort() };
}
// The trials with a numeric objective and both parameters set (at most `limit`, evenly spread).
function plotTrials(S, params, limit) {
  const y = S.columns.metrics[S.objective.name] || [], idx = [];
  for (let i = 0; i < y.length; i++) if (plotNum(y[i]) && params.every(p => p.values[i] !== null && p.values[i] !== undefined)) idx.push(i);
  if (idx.length <= limit) return idx;
  const step = idx.length / limit;
  return Array.from({ length: limit }, (_, k) => idx[Math.floor(k * step)]);
}

// Contour: the objective interpolated (inverse-distance weights) over a grid of two
// parameters, drawn as an ECharts heatmap, with the trials on top.
function contourOption(S, xName, yName, cells = 24) {
  if (!xName || !yName || xName === yName) return "Choose two different parameters.";
  const P = [plotParam(S, xName), plotParam(S, yName)], idx = plotTrials(S, P, 3000), obj = S.columns.metrics[S.objective.name];
  if (idx.length < 2) return "Not enough trials with a value yet: a contour needs at least two.";
  // Each axis: its bins (centres) and where a value falls, as a fractional bin index.
  const axes = P.map(p => {
    if (!p.numeric) return { labels: p.categories, pos: v => p.categories.indexOf(String(v)) };
    const f = p.log ? Math.log10 : v => v, nums = idx.map(i => f(p.values[i]));
    let lo = Math.min(...nums), hi = Math.max(...nums);
    if (hi === lo) { lo -= 0.5; hi += 0.5; }
    const w = (hi - lo) / cells, inv = p.log ? v => 10 ** v : v => v;
    return { labels: Array.from({ length: cells }, (_, k) => plotFmt(+inv(lo + (k + 0.5) * w).toPrecision(3))), pos: v => (f(v) - lo) / w - 0.5 };
  });
  const pts = idx.map(i => [axes[0].pos(P[0].values[i]), axes[1].pos(P[1].values[i]), obj[i], S.columns.name[i]]);
  const nx = axes[0].labels.length, ny = axes[1].labels.length, grid = [];
  const sx = Math.max(1, nx - 1), sy = Math.max(1, ny - 1);
  for (let a = 0; a < nx; a++) for (let b = 0; b < ny; b++) {
    let num = 0, den = 0, exact = null;
    for (const [x, y, v] of pts) {
      const d2 = ((x - a) / sx) ** 2 + ((y - b) / sy) ** 2;
      if (d2 < 1e-12) { exact = v; break; }
      const w = 1 / (d2 * d2); num += w * v; den += w;
    }
    grid.push([a, b, exact ?? num / den]);
  }
  const values = pts.map(p => p[2]), ink = plotInk();
  return { ...plotBase(), grid: { left: 70, right: 90, top: 20, bottom: 50 },
    tooltip: { formatter: p => (p.seriesType === "scatter" ? `${esc(p.value[3])}: ${plotFmt(p.value[2])}` : `≈ ${plotFmt(p.value[2])}`) },
    xAxis: plotAxis({ type: "category", data: axes[0].labels, name: xName, nameLocation: "middle", nameGap: 30, splitArea: { show: false } }),
    yAxis: plotAxis({ type: "category", data: axes[1].labels, name: yName, splitArea: { show: false } }),
    visualMap: { min: Math.min(...values), max: Math.max(...values), precision: 3, calculable: true, right: 0, top: "middle", itemHeight: 140, seriesIndex: 0,
      textStyle: { color: ink.fg }, inRange: { color: S.objective.maximize ? ["#c8d6f0", "#2f6fde", "#102a66"] : ["#102a66", "#2f6fde", "#c8d6f0"] } },
    series: [{ name: "objective", type: "heatmap", data: grid, progressive: 0 },
      { name: "trials", type: "scatter", data: pts, symbolSize: 6, itemStyle: { color: "#fff", borderColor: "#1d2330", borderWidth: 1 } }] };
}

// Rank: trials over two parameters, coloured by the objective's rank (best = 0).
function rankOption(S, xName, yName) {
  if (!xName || !yName || xName === yName) return "Choose two different parameters.";
  const P = [plotParam(S, xName), plotParam(S, yName)], idx = plotTrials(S, P, 5000), obj = S.columns.metrics[S.objective.name];
  if (!idx.length) return "No trial has a value yet.";
  const sorted = [...idx].sort((a, b) => (S.objective.maximize ? obj[b] - obj[a] : obj[a] - obj[b]));
  const rank = new Map(sorted.map((i, k) => [i, sorted.length > 1 ? k / (sorted.length - 1) : 0]));
  const axis = (p, name) => plotAxis(p.numeric ? { type: p.log ? "log" : "value", scale: true, name, nameLocation: "middle", nameGap: 30 }
    : { type: "category", data: p.categories, name, nameLocation: "middle", nameGap: 30 });
  const val = (p, i) => (p.numeric ? p.values[i] : String(p.values[i]));
  const ink = plotInk();
  return { ...plotBase(), grid: { left: 70, right: 90, top: 20, bottom: 50 },
    tooltip: { formatter: p => `${esc(p.value[4])}: ${plotFmt(p.value[3])} (rank ${Math.round(p.value[2] * (sorted.length - 1)) + 1} of ${sorted.length})` },
    xAxis: axis(P[0], xName), yAxis: { ...axis(P[1], yName), nameLocation: "end", nameGap: 10 },
    visualMap: { min: 0, max: 1, dimension: 2, right: 0, top: "middle", itemHeight: 140, text: ["worst", "best"], textStyle: { color: ink.fg },
      inRange: { color: ["#1a8a4a", "#e0c341", "#c8342b"] } },
    series: [{ type: "scatter", symbolSize: 7, large: idx.length > 2000, data: idx.map(i => [val(P[0], i), val(P[1], i), rank.get(i), obj[i], S.columns.name[i]]) }] };
}

// Empirical distribution function of the objective, one line per summary (several
// experiments compare on one chart).
function edfOption(list) {
  const series = [];
  for (const S of list) {
    const v = (S.columns.metrics[S.objective.name] || []).filter(plotNum).sort((a, b) => a - b);
    if (v.length) series.push({ name: list.length > 1 ? `${S.namespace}/${S.name}` : S.objective.name, type: "line", step: "end", showSymbol: false,
      data: v.map((x, k) => [x, (k + 1) / v.length]) });
  }
  if (!series.length) return "No trial has a value yet.";
  return { ...plotBase(), grid: { left: 60, right: 20, top: 30, bottom: 40 }, tooltip: { trigger: "axis" },
    xAxis: plotAxis({ type: "value", scale: true, name: list[0].objective.name, nameLocation: "middle", nameGap: 25 }),
    yAxis: plotAxis({ type: "value", min: 0, max: 1, name: "fraction of trials ≤ x" }), series };
}

// Timeline: each trial a bar from its start to its end (now, while it runs), by state.
function timelineOption(S) {
  const C = S.columns, byState = {}, now = (S.now || Date.now() / 1000) * 1000;
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < C.name.length; i++) {
    const start = ((C.started || [])[i] ?? C.created[i]) * 1000;
    const end = Math.max(start + 1, plotNum(C.duration[i]) ? start + C.duration[i] * 1000 : ["Running", "Created"].includes(C.state[i]) ? now : start);
    lo = Math.min(lo, start); hi = Math.max(hi, end);
    (byState[C.state[i]] = byState[C.state[i]] || []).push({ name: C.name[i], coords: [[start, i + 1], [end, i + 1]] });
  }
  if (!C.name.length) return "No trials yet.";
  const pad = Math.max(1, (hi - lo) * 0.02);
  return { ...plotBase(), grid: { left: 60, right: 20, top: 30, bottom: 40 },
    tooltip: { trigger: "item", formatter: p => `${esc(p.name)}: ${plotFmt((p.data.coords[1][0] - p.data.coords[0][0]) / 1000)} s` },
    xAxis: plotAxis({ type: "time", min: lo - pad, max: hi + pad }),  // a lines series does not set the axis' extent
    yAxis: plotAxis({ type: "value", name: "trial", min: 0, max: C.name.length + 1, minInterval: 1, inverse: true }),
    series: Object.entries(byState).map(([state, data]) => ({ name: state, type: "lines", coordinateSystem: "cartesian2d", polyline: false,
      large: data.length > 2000, data, lineStyle: { width: 4, opacity: 0.9, color: PLOT_STATE_COLORS[state] || "#888" },
      itemStyle: { color: PLOT_STATE_COLORS[state] || "#888" } })) };
}

// The direction of each metric: the objective's, an additional objective's, else the
// objective's (a metric that is not an objective is read as the objective is).
function metricDirections(S) {
  const out = Object.create(null);  // keyed by metric names: no inherited keys
  for (const m of S.metrics) out[m] = S.objective.maximize ? "maximize" : "minimize";
  for (const a of S.objective.additional || []) if (a.metricName) out[a.metricName] = a.type || out[a.metricName];
  return out;
}
// The trials that reported both metrics (idx), and the front: those among them that can be
// a result (counts(i): plotCounts) and that no other such trial beats on both metrics, each
// in its own direction, in order along the first metric.
function paretoFront(a, b, maxA, maxB, counts = () => true) {
  const idx = [];
  for (let i = 0; i < a.length; i++) if (plotNum(a[i]) && plotNum(b[i])) idx.push(i);
  const sa = maxA ? -1 : 1, sb = maxB ? -1 : 1;
  idx.sort((i, j) => sa * (a[i] - a[j]) || sb * (b[i] - b[j]));
  const front = [];
  let bestB = Infinity;
  for (const i of idx) if (counts(i) && sb * b[i] < bestB) { bestB = sb * b[i]; front.push(i); }
  return { idx, front };
}
function paretoOption(S, first, second, dirs) {
  if (!first || !second || first === second) return "Choose two different metrics.";
  const a = S.columns.metrics[first] || [], b = S.columns.metrics[second] || [];
  const { idx, front } = paretoFront(a, b, dirs[first] === "maximize", dirs[second] === "maximize", i => plotCounts(S, i));
  if (!idx.length) return "No trial has reported both metrics yet.";
  const on = new Set(front), pt = i => [a[i], b[i], S.columns.name[i]];
  return { ...plotBase(), grid: { left: 60, right: 20, top: 30, bottom: 40 },
    tooltip: { formatter: p => `${esc(p.value[2])}: ${plotFmt(p.value[0])}, ${plotFmt(p.value[1])}` },
    xAxis: plotAxis({ type: "value", scale: true, name: `${first} (${dirs[first]})`, nameLocation: "middle", nameGap: 25 }),
    yAxis: plotAxis({ type: "value", scale: true, name: `${second} (${dirs[second]})` }),
    series: [{ name: "trials", type: "scatter", data: idx.filter(i => !on.has(i)).map(pt), itemStyle: { color: "#9aa6bd" } },
      { name: "Pareto front", type: "line", step: "end", data: front.map(pt), symbolSize: 8, itemStyle: { color: "#c8342b" }, lineStyle: { color: "#c8342b" } }] };
}

// Several experiments on one chart: each one's best value so far against its trial number.
function compareOption(list) {
  const series = [];
  for (const S of list) {
    const y = S.columns.metrics[S.objective.name] || [], pts = [];
    let best = null;
    for (let i = 0; i < y.length; i++) {
      if (plotNum(y[i]) && plotCounts(S, i) && (best === null || (S.objective.maximize ? y[i] > best : y[i] < best))) best = y[i];
      if (best !== null) pts.push([i + 1, best]);
    }
    series.push({ name: `${S.namespace}/${S.name}`, type: "line", step: "end", showSymbol: false, data: pts });
  }
  return { ...plotBase(), grid: { left: 60, right: 20, top: 40, bottom: 40 }, tooltip: { trigger: "axis" },
    xAxis: plotAxis({ type: "value", name: "trial", nameLocation: "middle", nameGap: 25, min: 1, minInterval: 1 }),
    yAxis: plotAxis({ type: "value", scale: true, name: `best ${[...new Set(list.map(S => S.objective.name))].join(" / ")} so far` }), series };
}
