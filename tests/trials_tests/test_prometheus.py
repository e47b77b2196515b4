"""The PrometheusMetric collector: a trial serving /metrics is scraped while it runs."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from katib.controller import Controller, admit
from tests.conftest import experiment
from trials._prometheus import parse_exposition

SERVER = """
import http.server, sys, threading
scraped = threading.Event()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("# TYPE accuracy gauge\\naccuracy %s\\nother 1\\n" % (1 - float(sys.argv[2]))).encode()
        self.send_response(200 if self.path == "/metrics" else 404)
        self.end_headers()
        self.wfile.write(body)
        scraped.set()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
threading.Thread(target=s.serve_forever, daemon=True).start()
scraped.wait(60)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_exposition_lines():
    text = 'accuracy 0.5\naccuracy{split="test"} 0.25 1700000000000\n# accuracy 9\nloss NaN\nbad line here\n'
    assert parse_exposition(text, {"accuracy", "loss"}, 3.0) == [
        ("accuracy", "", "0.5", 3.0), ("accuracy", '{split="test"}', "0.25", 1700000000.0), ("loss", "", "NaN", 3.0)]


def test_a_trial_endpoint_is_scraped(sqlite_store, tmp_path: Path):
    port = free_port()
    doc = experiment(name="prometheus", maxTrialCount=1, parallelTrialCount=1,
                     objective={"type": "maximize", "objectiveMetricName": "accuracy"},
                     metricsCollectorSpec={"collector": {"kind": "PrometheusMetric"},
                                           "source": {"httpGet": {"port": port, "path": "/metrics"}}},
                     command=[sys.executable, "-c", SERVER, str(port), "${trialParameters.x}"])
    ctl = Controller(sqlite_store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    status = ctl.run(rec.namespace, rec.name).to_dict()
    assert status["trialsSucceeded"] == 1, status.get("conditions")
    [t] = sqlite_store.list_trials(rec.id)
    assert float(t.observation["accuracy"]["latest"]) == 1 - float(t.parameters()["x"])


def test_only_an_http_endpoint_is_fetched(tmp_path: Path):
    """A spec that names a file (a ``FILE`` scheme, or a host carrying a path and a ``#``
    that hides the port) read the file in the server's process, outside any sandbox: another
    tenant's trial log, shaped ``NAME VALUE``, came back as this trial's metrics. Such a spec
    is refused at admission; a source built from one anyway fetches nothing."""
    from trials._prometheus import PrometheusSource, fetch
    from trials._sources import SourceContext

    secret = tmp_path / "other-tenant" / "trial.log"
    secret.parent.mkdir()
    secret.write_text("password hunter2\nacc 0.4242\n")
    for http_get in ({"scheme": "FILE", "host": f"localhost{secret}#", "port": 8080, "path": "/metrics"},
                     {"scheme": "HTTP", "host": f"localhost{secret}#", "port": 8080, "path": "/metrics"}):
        source = PrometheusSource(SourceContext("PrometheusMetric", {"password", "acc"}, tmp_path / "out.log",
                                                http_get=http_get))
        assert source.read() == [] and source.read(final=True) == []
    for url in (f"file://localhost{secret}", "data:text/plain,acc%201", f"ftp://localhost{secret}"):
        try:
            fetch(url)
        except OSError:
            continue
        raise AssertionError(f"{url} was fetched")
