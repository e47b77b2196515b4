"""Notes on experiments and trials, a trial's YAML and stopping one trial (the viewer's;
issue 15): notes stored in the database, one per subject, removed with what they are
about; a read-only server (``katib ui``) shows them and refuses every change. Roles: the
tenancy matrix."""

from __future__ import annotations

import sqlalchemy as sa
import yaml

from katib.store import MAX_NOTE_CHARS
from tests.api_tests.conftest import LiveServer
from tests.conftest import experiment


def test_notes_and_a_trials_yaml(sqlite_store, tmp_path):
    base = "/api/v1/namespaces/default"
    with LiveServer(sqlite_store, tmp_path) as live:
        c = live.client
        assert c.post(f"{base}/experiments", json=experiment(name="noted", maxTrialCount=1, parallelTrialCount=1)).status_code == 201
        live.wait_for("default", "noted")
        trial = c.get(f"{base}/experiments/noted/trials").json()["items"][0]["metadata"]["name"]

        doc = yaml.safe_load(c.get(f"{base}/trials/{trial}/yaml").text)
        assert doc["kind"] == "Trial" and doc["metadata"]["name"] == trial
        assert doc["status"]["conditions"][-1]["type"] == "Succeeded"

        exp_note, trial_note = f"{base}/experiments/noted/note", f"{base}/trials/{trial}/note"
        assert c.get(exp_note).json() == {"text": "", "author": None, "updatedAt": None, "readOnly": False}
        saved = c.put(exp_note, json={"text": "lr above 0.1 diverges"}).json()
        assert saved["text"] == "lr above 0.1 diverges" and saved["updatedAt"] > 0
        assert c.put(trial_note, json={"text": "the best one: rerun with 3 seeds"}).status_code == 200
        assert c.get(exp_note).json()["text"] == "lr above 0.1 diverges"  # each subject its own note
        assert c.get(trial_note).json()["text"] == "the best one: rerun with 3 seeds"
        assert c.put(exp_note, json={"text": "edited"}).json()["text"] == "edited"  # one note, replaced
        with sqlite_store._read() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM notes")).scalar() == 2

        # Bad input: a clear error naming the field and the rule.
        r = c.put(exp_note, json={"text": "x" * (MAX_NOTE_CHARS + 1)})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "text"
        assert f"at most {MAX_NOTE_CHARS} characters" in r.json()["errors"][0]["message"]
        assert c.put(exp_note, json={"text": "x", "colour": "red"}).status_code == 422
        assert c.put(f"{base}/experiments/nothing/note", json={"text": "x"}).status_code == 404
        assert c.get(f"{base}/trials/nothing-1/note").status_code == 404
        # Stopping one trial: only a running one (the browser test stops a running one).
        r = c.post(f"{base}/trials/{trial}/stop")
        assert r.status_code == 409 and "only a running trial can be stopped" in r.json()["message"]

    # katib ui: the notes are shown, and cannot be changed.
    with LiveServer(sqlite_store, tmp_path, read_only=True) as ui:
        shown = ui.client.get(exp_note).json()
        assert shown["text"] == "edited" and shown["readOnly"] is True
        assert ui.client.put(exp_note, json={"text": "changed"}).status_code == 405
        assert ui.client.get(exp_note).json()["text"] == "edited"
        assert ui.client.post(f"{base}/trials/{trial}/stop").status_code == 405

    with LiveServer(sqlite_store, tmp_path) as live:
        assert live.client.put(trial_note, json={"text": "  "}).json()["text"] == ""  # blank removes it
        assert live.client.get(trial_note).json()["updatedAt"] is None
        # Deleting the experiment deletes its notes (and its trials').
        assert live.client.put(trial_note, json={"text": "again"}).status_code == 200
        assert live.client.delete(f"{base}/experiments/noted").status_code == 200
        with sqlite_store._read() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM notes")).scalar() == 0
