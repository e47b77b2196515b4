// Several experiments on one chart (#/compare/<ns>/<name>/<ns>/<name>…): each one's best
// value so far against the trial number, their objectives' distributions (EDF), and a
// table of each one's best. Chosen with the check boxes of the experiments list.
"use strict";

function compareHash(keys) {
  return "#/compare/" + keys.map(k => k.split("/").map(encodeURIComponent).join("/")).join("/");
}

async function comparePage(view, parts) {
  const pairs = [];
  for (let i = 0; i + 1 < parts.length; i += 2) pairs.push([parts[i], parts[i + 1]]);
  view.innerHTML = `
    <div class="toolbar"><h1 style="margin-right:auto">Compare ${pairs.length} experiments</h1><a href="#/">Choose others</a></div>
    <div class="card scroll"><table id="compare-table"><thead><tr><th scope="col">Experiment</th><th scope="col">Status</th>
      <th scope="col">Algorithm</th><th scope="col">Objective</th><th scope="col">Trials</th><th scope="col">Best</th></tr></thead><tbody></tbody></table></div>
    <div class="row"><div class="card grow"><h2>Best value so far</h2><p id="compare-note" class="muted" role="status"></p><div id="compare" class="chart"></div></div>
      <div class="card grow"><h2>Empirical distribution (EDF)</h2><p id="compare-edf-note" class="muted" role="status"></p><div id="compare-edf" class="chart"></div></div></div>`;
  if (pairs.length < 1) { $("#compare-note").textContent = "Choose experiments on the list (their check boxes), then Compare."; window.__katibReady = true; return; }
  const list = await Promise.all(pairs.map(([ns, n]) =>
    api(`/api/v1/namespaces/${encodeURIComponent(ns)}/experiments/${encodeURIComponent(n)}/summary?curves=0`)));
  $("#compare-table tbody").innerHTML = list.map(S => {
    const y = (S.columns.metrics[S.objective.name] || []).filter((v, i) => plotNum(v) && plotCounts(S, i));
    const best = y.length ? extent(y)[S.objective.maximize ? 1 : 0] : "";
    return `<tr><td><a href="#/e/${encodeURIComponent(S.namespace)}/${encodeURIComponent(S.name)}">${esc(S.namespace)}/${esc(S.name)}</a></td>
      <td>${stateBadge(shownPhase(S.status, S.active, { executor: S.executor }))}</td><td>${esc(S.algorithm.algorithmName || "")}</td>
      <td>${esc(S.objective.maximize ? "maximize" : "minimize")} ${esc(S.objective.name)}</td><td class="num">${S.columns.name.length}</td>
      <td class="num" title="${esc(best)}">${esc(fmt(best))}</td></tr>`;
  }).join("");
  const objectives = [...new Set(list.map(S => S.objective.name))];
  plot(chart($("#compare")), "#compare-note", compareOption(list));
  if (objectives.length > 1) $("#compare-note").textContent = `These experiments optimise different metrics (${objectives.join(", ")}): one axis holds them all.`;
  plot(chart($("#compare-edf")), "#compare-edf-note", edfOption(list));
  window.__katibReady = true;
}
