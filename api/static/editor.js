// The Submit page's YAML editor: Ace (vendored, api/static/vendor/ace-*.min.js, BSD
// licence), loaded on the first visit to that page only. Syntax colours, line numbers,
// and the server's errors inline: a marker on the line, an annotation in the gutter, and
// the message in a line widget under the line.
"use strict";

const ACE = "/ui/vendor/ace-1.45.2.min.js";

function loadAce() {
  if (loadAce.promise) return loadAce.promise;
  loadAce.promise = new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = ACE;
    s.onload = () => {
      const v = "/ui/vendor/ace-", end = "-1.45.2.min.js";
      ace.config.setModuleUrl("ace/mode/yaml", `${v}mode-yaml${end}`);
      ace.config.setModuleUrl("ace/theme/tomorrow", `${v}theme-tomorrow${end}`);
      ace.config.setModuleUrl("ace/theme/tomorrow_night", `${v}theme-tomorrow_night${end}`);
      resolve(window.ace);
    };
    s.onerror = () => { loadAce.promise = null; reject(new Error("the editor could not be loaded")); };
    document.head.appendChild(s);
  });
  return loadAce.promise;
}

// An editor in `host`: { get(), set(text), onChange(fn), mark(Map row → [{message}]) }.
async function yamlEditor(host, label) {
  const ace = await loadAce();
  const editor = ace.edit(host, {
    mode: "ace/mode/yaml", theme: isDark() ? "ace/theme/tomorrow_night" : "ace/theme/tomorrow",
    useWorker: false, tabSize: 2, useSoftTabs: true, showPrintMargin: false, fontSize: 13, scrollPastEnd: 0.2,
  });
  editor.textInput.getElement().setAttribute("aria-label", label);
  const session = editor.session, Range = ace.require("ace/range").Range;
  const LineWidgets = ace.require("ace/line_widgets").LineWidgets;
  if (!session.widgetManager) { session.widgetManager = new LineWidgets(session); session.widgetManager.attach(editor); }
  let widgets = [], markers = [];
  window.katibEditor = editor;  // for the browser tests
  cleanup.push(() => { editor.destroy(); if (window.katibEditor === editor) window.katibEditor = null; });
  return {
    get: () => editor.getValue(),
    set: text => { editor.setValue(text, -1); },
    onChange: fn => editor.on("change", fn),
    mark(marks) {
      widgets.forEach(w => session.widgetManager.removeLineWidget(w));
      markers.forEach(id => session.removeMarker(id));
      widgets = []; markers = [];
      const annotations = [];
      for (const [row, errors] of marks) {
        if (row < 0) continue;
        const text = errors.map(e => e.message).join("; ");
        annotations.push({ row, column: 0, text, type: "error" });
        markers.push(session.addMarker(new Range(row, 0, row, Infinity), "err-line", "fullLine"));
        const el = document.createElement("div");
        el.className = "err-widget"; el.textContent = `▲ ${text}`;
        const w = { row, fixedWidth: true, coverGutter: false, el };
        session.widgetManager.addLineWidget(w);
        widgets.push(w);
      }
      session.setAnnotations(annotations);
    },
  };
}
