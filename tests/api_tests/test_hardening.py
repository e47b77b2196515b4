"""Issue 19: a hostile web page and a hostile client against `katib server` and `katib ui`
without --auth. No drive-by request runs a trial, no name escapes its folder, no
malformed request answers 5xx."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.api_tests.conftest import LiveServer
from tests.conftest import experiment, python_command


def _evil(marker: Path, name: str = "evil") -> dict:
    code = f"open({str(marker)!r}, 'w').write('pwned'); print('loss=0.1')"
    return experiment(name=name, maxTrialCount=1, parallelTrialCount=1, command=python_command(code))


def _raw(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
    """A request sent as written: no client-side normalisation of ``..`` or of headers."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.putrequest(method, path, skip_host="host" in {k.lower() for k in (headers or {})})
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(body or b"")))
    conn.endheaders(body)
    response = conn.getresponse()
    text = response.read().decode(errors="replace")
    conn.close()
    return response.status, text


@pytest.fixture(params=["server", "ui"])
def target(request, sqlite_store, tmp_path):
    with LiveServer(sqlite_store, tmp_path, read_only=request.param == "ui") as server:
        server.kind = request.param
        yield server


def test_a_drive_by_page_runs_nothing(target, tmp_path):
    marker = tmp_path / "pwned"
    doc = json.dumps(_evil(marker)).encode()
    url = "/api/v1/namespaces/default/experiments"
    origin = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    attempts = [
        # a "simple" cross-site POST: text/plain needs no preflight
        ({**origin, "Content-Type": "text/plain"}, doc),
        # a form POST
        ({**origin, "Content-Type": "application/x-www-form-urlencoded"}, b"x=" + doc),
        ({**origin, "Content-Type": "multipart/form-data; boundary=x"}, doc),
        # JSON from a foreign origin (a preflight would be refused: no CORS headers)
        ({**origin, "Content-Type": "application/json"}, doc),
        # another port on localhost is same-site, not same-origin
        ({"Origin": "http://localhost:1", "Sec-Fetch-Site": "same-site", "Content-Type": "application/json"}, doc),
        # DNS rebinding: the page's own name resolves to 127.0.0.1, so Host is foreign
        ({"Host": "evil.example:8080", "Content-Type": "application/json"}, doc),
        ({"Host": "evil.example", "Origin": "http://evil.example", "Content-Type": "application/json"}, doc),
        # text/plain without an Origin (a non-browser client) is refused too
        ({"Content-Type": "text/plain"}, doc),
    ]
    for headers, body in attempts:
        status, text = _raw(target.url, "POST", url, body, {"Host": urlsplit(target.url).netloc} | headers)
        assert 400 <= status < 500, (headers, status, text)
    # A foreign Host cannot read either (the rebinding page would read the experiments).
    status, _ = _raw(target.url, "GET", "/api/v1/experiments", headers={"Host": "evil.example:8080"})
    assert status == 403
    time.sleep(1.0)
    assert not marker.exists()
    assert target.client.get("/api/v1/experiments").json()["items"] == []


def test_another_sites_page_cannot_read_or_hold_the_event_streams(target):
    """Its reads cost the server even unread (a long list, one of the 8 event streams);
    a person following a link to the viewer still gets it."""
    host = {"Host": urlsplit(target.url).netloc}
    for site in ("cross-site", "same-site"):
        for mode, dest in (("no-cors", "image"), ("cors", "empty"), ("no-cors", "script")):
            fetch = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode, "Sec-Fetch-Dest": dest}
            for path in ("/api/v1/experiments", "/api/v1/namespaces/default/experiments/x/events", "/events"):
                status, _ = _raw(target.url, "GET", path, headers=host | fetch)
                assert status == 403, (site, mode, path, status)
    link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    assert _raw(target.url, "GET", "/", headers=host | link)[0] == 200
    assert _raw(target.url, "GET", "/api/v1/experiments", headers=host)[0] == 200  # a program, no Sec-Fetch
    own = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
    assert _raw(target.url, "GET", "/api/v1/experiments", headers=host | own)[0] == 200
    frame = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}
    assert _raw(target.url, "GET", "/", headers=host | frame)[0] == 403


def test_no_other_site_may_frame_the_viewer(target):
    """Clickjacking: a framed viewer's stop, delete and submit under a decoy (with --auth
    too, where the viewer holds the token)."""
    for path in ("/", "/api/v1/experiments", "/static/app.js"):
        r = target.client.get(path)
        assert r.headers["x-frame-options"] == "SAMEORIGIN", path
        assert r.headers["content-security-policy"] == "frame-ancestors 'self'", path
        assert r.headers["x-content-type-options"] == "nosniff", path


def test_the_viewer_own_origin_works_and_ui_is_read_only(target, tmp_path):
    host = urlsplit(target.url).netloc
    headers = {"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin", "Content-Type": "application/yaml"}
    doc = experiment(name="mine", maxTrialCount=1, parallelTrialCount=1)
    r = target.client.post("/api/v1/namespaces/default/experiments", content=yaml.safe_dump(doc), headers=headers)
    if target.kind == "ui":
        assert r.status_code == 405 and "read-only" in r.json()["message"]
        for method in ("DELETE", "PATCH", "PUT", "POST"):
            r = target.client.request(method, "/api/v1/namespaces/default/experiments/mine/stop")
            assert r.status_code == 405
        assert target.client.get("/api/v1/experiments").json()["items"] == []
        assert target.client.get("/").status_code == 200
    else:
        assert r.status_code == 201, r.text
        target.wait_for("default", "mine")


BAD_NAMES = ["..", ".", "%2e%2e", "%2E%2e", "%2fetc", "...", "a" * 64, "UPPER", "-lead", "a%00b", "a.b", "%20"]


def _routes(app) -> list[tuple[str, str]]:
    """Every (method, path template) of the API that takes a name in its path."""
    return [(method.upper(), path) for path, ops in app.openapi()["paths"].items() if "{" in path
            for method in ops if method.upper() in ("GET", "POST", "PATCH", "PUT", "DELETE")]


def test_no_name_escapes_its_folder(live, tmp_path):
    runs = tmp_path / "runs"
    sentinels = [runs / "default" / "demo" / "keep.txt", tmp_path / "outside" / "keep.txt", runs / "keep.txt"]
    for s in sentinels:
        s.parent.mkdir(parents=True, exist_ok=True)
        s.write_text("keep")
    assert live.client.post("/api/v1/namespaces/default/experiments",
                            json=experiment(maxTrialCount=1, parallelTrialCount=1)).status_code == 201
    live.wait_for("default", "demo")
    valid = {"namespace": "default", "name": "demo", "trial": "demo-trial"}
    routes = _routes(live.app)
    assert len(routes) >= 20
    tried = 0
    for method, template in routes:
        for param in [p for p in valid if "{" + p + "}" in template]:
            for bad in BAD_NAMES:
                path = template
                for p, v in valid.items():
                    path = path.replace("{" + p + "}", bad if p == param else v)
                status, text = _raw(live.url, method, path, b"{}" if method in ("POST", "PATCH", "PUT") else None,
                                    {"Content-Type": "application/json"})
                tried += 1
                assert 400 <= status < 500, (method, path, status, text)
        for bad in ("..", "%2e%2e", "x" * 70):  # names in the query
            if method == "GET" and template == "/api/v1/experiments":
                status, _ = _raw(live.url, method, f"{template}?namespace={bad}")
                assert status == 422
    assert tried > 200
    for s in sentinels:
        assert s.read_text() == "keep", s
    # the experiment is still there, with its folder
    assert live.client.get("/api/v1/namespaces/default/experiments/demo").status_code == 200


@pytest.mark.parametrize("namespace", ["..", "../../outside", "/tmp/abs", "a" * 64, "Default", "."])
def test_a_yaml_namespace_outside_the_rule_is_refused(live, tmp_path, namespace):
    doc = experiment(name="esc", maxTrialCount=1, parallelTrialCount=1)
    doc["metadata"]["namespace"] = namespace
    r = live.client.post("/api/v1/namespaces/default/experiments?dryRun=true", json=doc)
    assert r.status_code == 422 and "metadata.namespace" in r.text
    from katib.errors import ValidationError
    from katib.spec import admit

    with pytest.raises(ValidationError, match="metadata.namespace"):
        admit(doc)


def test_a_file_collector_path_cannot_climb_out():
    from katib.errors import ValidationError
    from katib.names import map_into
    from katib.spec import admit

    doc = experiment()
    doc["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "File"}, "source": {"fileSystemPath": {
        "kind": "File", "path": "/../../../../outside/metrics.txt", "format": "TEXT"}}}
    with pytest.raises(ValidationError, match="fileSystemPath.path: must not contain '..'"):
        admit(doc)
    with pytest.raises(ValidationError):
        map_into(Path("/tmp/trial"), "/../../outside/m.txt")
    assert map_into(Path("/tmp/trial"), "/var/log/m.txt") == Path("/tmp/trial/var/log/m.txt").resolve()


KUBE = "/apis/kubeflow.org/v1beta1/namespaces/default/experiments"


@pytest.mark.parametrize("method,path,body,ctype", [
    ("PATCH", KUBE + "/demo", b"null", "application/merge-patch+json"),
    ("PATCH", KUBE + "/demo", b'"a string"', "application/merge-patch+json"),
    ("PATCH", KUBE + "/demo", b"5", "application/merge-patch+json"),
    ("PATCH", KUBE + "/demo", b"\xff\xfe{}", "application/merge-patch+json"),
    ("PATCH", KUBE + "/demo", b"[{\"op\": \"launch\", \"path\": \"/spec\"}]", "application/json-patch+json"),  # an empty one is a valid no-op
    ("POST", KUBE, b"[" * 10_000 + b"]" * 10_000, "application/json"),
    ("POST", KUBE, b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 2000)), "application/yaml"),
    ("POST", KUBE, b'{"spec": {"maxTrialCount": ' + b"9" * 5000 + b"}}", "application/json"),
    ("POST", KUBE, b"spec: {maxTrialCount: " + b"9" * 5000 + b"}", "application/yaml"),
    ("POST", KUBE, b'{"metadata": {"name": "x"}, "metadata": {"name": "y"}}', "application/json"),
    ("POST", KUBE, b"spec:\n  maxTrialCount: 2\n  maxTrialCount: 50\n", "application/yaml"),
    ("POST", KUBE, b"", "application/json"),
    ("POST", KUBE, b"{}", "text/plain"),
    ("POST", KUBE, b"- 1\n---\n- 2\n", "application/yaml"),
    ("GET", "/api/v1/namespaces/default/experiments/demo/trials?limit=9223372036854775808", None, None),
    ("GET", "/api/v1/namespaces/default/experiments/demo/trials?offset=9223372036854775808", None, None),
    ("GET", "/api/v1/namespaces/default/pods/demo-x/log?tailLines=-5", None, None),
    ("GET", "/api/v1/namespaces/default/trials/demo-x/log?tail=-5", None, None),
    ("PATCH", "/api/v1/namespaces/default/experiments/demo/budget", b'{"parallelTrialCount": 1000000}', "application/json"),
    ("PATCH", "/api/v1/namespaces/default/experiments/demo/budget", b'{"maxTrialCount": 1e400}', "application/json"),
    ("PATCH", "/api/v1/namespaces/default/experiments/demo/budget", b"null", "application/json"),
])
def test_a_malformed_request_is_a_4xx_with_a_message(live, method, path, body, ctype):
    assert live.client.post("/api/v1/namespaces/default/experiments",
                            json=experiment(maxTrialCount=1, parallelTrialCount=1)).status_code == 201
    status, text = _raw(live.url, method, path, body, {"Content-Type": ctype} if ctype else {})
    assert 400 <= status < 500, (status, text)
    assert json.loads(text)["message"], text


def test_a_duplicate_key_is_refused_not_last_wins(live):
    text = yaml.safe_dump(experiment(maxTrialCount=2, parallelTrialCount=1), sort_keys=False)
    text = text.replace("  maxTrialCount: 2\n", "  maxTrialCount: 2\n  maxTrialCount: 50\n")
    r = live.client.post("/api/v1/namespaces/default/experiments", content=text,
                         headers={"content-type": "application/yaml"})
    assert r.status_code == 422 and "duplicate key 'maxTrialCount'" in r.json()["message"], r.text
    assert live.client.get("/api/v1/experiments").json()["items"] == []


def test_event_streams_per_client_are_bounded(sqlite_store, tmp_path):
    from api import ServerLimits

    with LiveServer(sqlite_store, tmp_path, limits=ServerLimits(streams_per_client=2)) as server:
        import httpx

        streams = [httpx.Client(base_url=server.url, timeout=10) for _ in range(3)]
        opened = []
        try:
            for c in streams[:2]:
                cm = c.stream("GET", "/api/v1/events")
                r = cm.__enter__()
                opened.append(cm)
                assert r.status_code == 200
            r = streams[2].get("/api/v1/events")
            assert r.status_code == 429 and "too many open event streams" in r.json()["message"]
        finally:
            for cm in opened:
                cm.__exit__(None, None, None)
            for c in streams:
                c.close()


def test_katib_ui_itself_refuses_every_write(tmp_path):
    """The real command, not just the app: `katib ui` serves the viewer and refuses writes."""
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "katib.db"
    from katib.store import Store

    Store(str(db)).close()  # katib ui opens an existing store (a typo'd --db is refused)
    proc = subprocess.Popen([sys.executable, "-m", "katib", "ui", "--db", str(db), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "katib ui did not start"
                time.sleep(0.1)
        marker = tmp_path / "pwned"
        r = httpx.post(url + "/api/v1/namespaces/default/experiments", json=_evil(marker))
        assert r.status_code == 405 and "read-only" in r.json()["message"]
        r = httpx.post(url + "/apis/kubeflow.org/v1beta1/namespaces/default/experiments", json=_evil(marker))
        assert r.status_code == 405 and r.json()["kind"] == "Status"
        assert httpx.get(url + "/").status_code == 200
        time.sleep(0.5)
        assert not marker.exists()
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("namespace", ["..", ".", "../x", "/tmp"])
def test_the_cli_keeps_names_inside_their_folder(tmp_path, namespace):
    import subprocess
    import sys

    sentinel = tmp_path / "runs" / "keep.txt"
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text("keep")
    for argv in (["delete", "experiment", "runs"], ["logs", "x-trial"]):
        r = subprocess.run([sys.executable, "-m", "katib", *argv, "-n", namespace, "--db", str(tmp_path / "katib.db")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert "namespace" in r.stderr + r.stdout, r.stderr
    assert sentinel.read_text() == "keep"
