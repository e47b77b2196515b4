// Run before the rest (a tiny blocking script: `async`, it sometimes ran after app.js and the
// page asked again; the browser's preload scanner fetches the deferred scripts meanwhile):
// on an experiment's page, the summary request starts now, while ECharts and the viewer's
// scripts are still loading; app.js's api() takes its answer for the first summary it asks
// for (the same path, a plain GET).
(() => {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  if (parts[0] !== "e" || parts.length < 3) return;
  let ns, name;
  try { ns = decodeURIComponent(parts[1]); name = decodeURIComponent(parts[2]); } catch (_) { return; }
  const path = `/api/v1/namespaces/${encodeURIComponent(ns)}/experiments/${encodeURIComponent(name)}/summary`;
  const headers = {};
  const token = localStorage.getItem("katibToken");
  if (token) headers.Authorization = `Bearer ${token}`;
  window.__katibPrefetch = { path, response: fetch(path, { headers }) };
})();
