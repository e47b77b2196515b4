"""The PrometheusMetric collector: the trial's metrics endpoint, scraped while it runs.

``metricsCollectorSpec.source.httpGet`` (Katib's defaults: port 8080, path ``/metrics``)
names the endpoint; locally the trial serves it on this machine (``host`` defaults to
127.0.0.1), so parallel trials of one experiment need ports of their own (one trial at a
time, or an endpoint per trial). Each scrape reads Prometheus' text exposition format;
a series of a metric the experiment names is a sample when its value (or its own
timestamp) changed since the last scrape, timed by its timestamp or the scrape. Katib
declares this kind but ships no collector for it; a trial that ends before it was scraped
reports nothing.

An executor whose trials run on other machines (Ray) scrapes the endpoint where the trial
runs, so ``localhost`` is the trial's, and brings the scrapes back into the trial's folder
as ``SCRAPES`` (one JSON object a line: ``{"time": seconds, "text": exposition}``); when
that file is there, the scrapes are read from it instead of the endpoint.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from typing import Any

from ._collector import Sample, Tail
from ._sources import Source, SourceContext

SCRAPES = "prometheus-scrapes.jsonl"

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(?:\s+(-?\d+))?\s*$")


def parse_exposition(text: str, names: set[str], now: float) -> list[tuple[str, str, str, float]]:
    """``(metric, labels, value, time)`` of each series of ``names`` in a scrape.

    >>> parse_exposition('# HELP accuracy x\\naccuracy{split="val"} 0.75 1700000000000\\nloss 0.3', {"accuracy"}, 5.0)
    [('accuracy', '{split="val"}', '0.75', 1700000000.0)]
    """
    out = []
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m is None or m.group(1) not in names:
            continue
        stamp = int(m.group(4)) / 1000 if m.group(4) else now
        out.append((m.group(1), m.group(2) or "", m.group(3), stamp))
    return out


def endpoint_url(http_get: dict[str, Any] | None) -> str:
    """The URL ``source.httpGet`` names (Katib's defaults: HTTP, port 8080, ``/metrics``; host 127.0.0.1).

    >>> endpoint_url({"port": 9090, "path": "/m"})
    'http://127.0.0.1:9090/m'
    """
    scheme, host, port, path = endpoint_parts(http_get)
    return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}{path}"


def endpoint_parts(http_get: dict[str, Any] | None) -> tuple[str, str, int | str, str]:
    """``(scheme, host, port, path)`` of ``source.httpGet``, Katib's defaults filled in, the
    path with its leading slash (also for a ``null`` or relative one).

    >>> endpoint_parts({"path": "metrics", "scheme": "HTTPS", "port": None})
    ('https', '127.0.0.1', 8080, '/metrics')
    >>> endpoint_parts({"port": "9090"})
    ('http', '127.0.0.1', 9090, '/metrics')

    Anything but an HTTP(S) endpoint (``katib.spec.http_get_errors``: a spec admitted
    before that check, say) is a ``ValueError``: katib fetches it, so nothing else may be.
    """
    from katib.spec import http_get_errors, port_value

    http: dict[str, Any] = dict(http_get or {})
    path = str(http.get("path") or "/metrics")
    port = port_value(http.get("port") or 8080)  # an IntOrString written "9090" is 9090, as Katib reads it
    parts = (str(http.get("scheme") or "HTTP").lower(), str(http.get("host") or "127.0.0.1"),
             port, path if path.startswith("/") else "/" + path)
    wrong = http_get_errors({"scheme": parts[0], "host": parts[1], "port": parts[2], "path": parts[3]})
    if wrong:
        raise ValueError("; ".join(f"source.httpGet.{field} {rule}" for field, rule in wrong))
    return parts


def fetch(url: str, limit: int = 1 << 20) -> str:
    """The body of an HTTP(S) GET of ``url`` (at most ``limit`` bytes), with no other
    scheme and no redirect followed (``urlopen`` would read ``file:``, ``ftp:`` and
    ``data:`` URLs, and follow a redirect to ``ftp:``); ``OSError`` when it does not answer 200."""
    if not url.startswith(("http://", "https://")):
        raise OSError(f"not an HTTP(S) URL: {url[:80]!r}")
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.HTTPHandler(), urllib.request.HTTPSHandler()):
        opener.add_handler(handler)
    with opener.open(url, timeout=2) as reply:
        if reply.status != 200:
            raise OSError(f"{url} answered {reply.status}")
        return reply.read(limit).decode("utf-8", errors="replace")


class PrometheusSource(Source):
    def __init__(self, ctx: SourceContext) -> None:
        super().__init__(ctx)
        try:
            self.url: str | None = endpoint_url(ctx.http_get)
        except ValueError:
            self.url = None  # not an HTTP(S) endpoint: nothing is fetched
        self._scrapes = ctx.output.parent / SCRAPES
        self._tail = Tail(self._scrapes)
        self._last: dict[tuple[str, str], tuple[str, float | None]] = {}

    def read(self, final: bool = False) -> list[Sample]:
        if self._scrapes.exists():  # scraped where the trial runs, brought back here
            out = []
            for line in self._tail.read(final):
                try:
                    scrape = json.loads(line)
                    out += self._samples(str(scrape["text"]), float(scrape["time"]))
                except (ValueError, TypeError, KeyError):
                    continue
            return out
        if self.url is None:
            return []
        try:
            text = fetch(self.url)
        except (OSError, urllib.error.URLError, ValueError):
            return []  # not serving yet, or gone
        return self._samples(text, time.time())

    def _samples(self, text: str, now: float) -> list[Sample]:
        out = []
        for name, labels, value, stamp in parse_exposition(text, self.ctx.names, now):
            key = (name, labels)
            own_time = stamp if stamp != now else None
            if self._last.get(key) == (value, own_time):
                continue
            self._last[key] = (value, own_time)
            out.append(Sample(stamp, name, value))
        return out
