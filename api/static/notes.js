// Notes on an experiment or a trial: a card with a text area, kept on the server
// (GET/PUT …/note). On a read-only server (katib ui) the note is shown, not editable.
"use strict";

async function mountNote(holder, url) {
  holder.innerHTML = `<h2><label for="note-text">Notes</label></h2>
    <textarea id="note-text" rows="3" placeholder="What you learned, what to try next…"></textarea>
    <div class="toolbar note-bar"><button type="button" id="note-save">Save note</button>
      <span id="note-meta" class="muted" role="status"></span></div>`;
  const text = $("#note-text", holder), save = $("#note-save", holder), meta = $("#note-meta", holder);
  const show = n => {
    meta.textContent = n.updatedAt ? `saved ${new Date(n.updatedAt * 1000).toLocaleString()}${n.author ? ` by ${n.author}` : ""}` : "";
    text.readOnly = !!n.readOnly; save.hidden = !!n.readOnly;
    if (n.readOnly && !n.text) text.placeholder = "No notes (this server is read-only)";
  };
  const note = await api(url);
  text.value = note.text; show(note);
  text.oninput = () => { meta.textContent = "not saved yet"; };
  save.onclick = async () => {
    try {
      show(await api(url, { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text: text.value }) }));
      toast("note saved");
    } catch (e) { meta.textContent = e.message; }
  };
}
