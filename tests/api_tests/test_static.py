"""The viewer's static files are compressed once, not at every request, and still answer
as static files do: 304 for a known version, ranges and clients without gzip plainly."""

from __future__ import annotations

import gzip
import shutil

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

import api._static as static  # noqa: E402
from api import create_app  # noqa: E402
from api.routes import viewer  # noqa: E402


@pytest.fixture
def client(sqlite_store, tmp_path, monkeypatch):
    # A copy of the static folder, so a file can be edited under the running app.
    folder = tmp_path / "static"
    shutil.copytree(viewer.STATIC, folder)
    monkeypatch.setattr(viewer, "STATIC", folder)
    app = create_app(sqlite_store, tmp_path / "runs", tmp_path, resume=False)
    with TestClient(app, base_url="http://localhost") as c:
        c.folder = folder  # type: ignore[attr-defined]
        yield c


def test_a_file_is_compressed_once_and_again_when_it_changes(client, monkeypatch):
    made = []
    real = gzip.compress
    monkeypatch.setattr(static.gzip, "compress", lambda data, **kw: made.append(len(data)) or real(data, **kw))
    path = "/ui/vendor/echarts-6.1.0-katib.min.js"
    original = (client.folder / "vendor" / "echarts-6.1.0-katib.min.js").read_bytes()
    for _ in range(3):
        r = client.get(path, headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
        assert r.headers["vary"] == "Accept-Encoding" and r.headers["content-type"].startswith("text/javascript")
        assert r.content == original  # the client unpacks it
    assert made == [len(original)], "compressed at every request"
    app_js = client.folder / "app.js"
    app_js.write_text(app_js.read_text() + "\n// edited\n")
    assert client.get("/ui/app.js").text.endswith("// edited\n")
    assert len(made) == 2


def test_it_still_answers_as_a_static_file(client):
    path = "/ui/app.js"
    first = client.get(path, headers={"Accept-Encoding": "gzip"})
    etag = first.headers["etag"]
    assert client.get(path, headers={"If-None-Match": etag, "Accept-Encoding": "gzip"}).status_code == 304
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == first.content
    ranged = client.get(path, headers={"Range": "bytes=0-9", "Accept-Encoding": "gzip"})
    assert ranged.status_code == 206 and ranged.content == first.content[:10]
    small = client.get("/ui/prefetch.js", headers={"Accept-Encoding": "gzip"})  # under 4 KiB: as it is
    assert small.status_code == 200 and "content-encoding" not in small.headers
    assert client.get("/ui/../api/_static.py").status_code == 404
    assert client.get("/ui/missing.js").status_code == 404
