"""The PrometheusMetric collector on the Kubernetes executor: Katib's katib-config ships no
collector image for it, so no sidecar can be injected; katib's controller scrapes the trial's
primary pod itself, from outside the cluster, through the API server's pod proxy
(``GET /api/v1/namespaces/{ns}/pods/{pod}:{port}/proxy{path}``, with the executor's
credentials: RBAC ``pods/proxy`` ``get``), the port and path from the collector's
``source.httpGet`` (Katib's defaults: 8080, ``/metrics``; ``scheme: HTTPS`` proxies to
``https:{pod}:{port}``). While the pod runs it is scraped every ``SCRAPE_SECONDS``, each
answer appended to the trial's ``SCRAPES`` file (``{"time": seconds, "text": exposition}``),
which the controller's PrometheusMetric source reads (``_prometheus``), as it reads a Ray
trial's scrapes. An endpoint not serving yet (or a refused proxy) is tried again at the
next scrape; a trial that ends before it was scraped reports nothing, as locally."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._prometheus import endpoint_parts

SCRAPE_SECONDS = 0.5


def proxy_path(namespace: str, pod: str, http_get: dict[str, Any] | None) -> str:
    """The API server's proxy path to the pod's endpoint ``http_get`` names.

    >>> proxy_path("default", "t-1", {"port": 9090, "path": "/m"})
    '/api/v1/namespaces/default/pods/t-1:9090/proxy/m'
    >>> proxy_path("ns", "p", {"scheme": "HTTPS"})
    '/api/v1/namespaces/ns/pods/https:p:8080/proxy/metrics'
    """
    scheme, _, port, path = endpoint_parts(http_get)
    return f"/api/v1/namespaces/{namespace}/pods/{'https:' if scheme == 'https' else ''}{pod}:{port}/proxy{path}"


def scrape(api_client: Any, path: str, out: Path, running: Callable[[], bool], wait: Callable[[float], Any],
           every: float = SCRAPE_SECONDS) -> None:
    """Scrape ``path`` (``proxy_path``) while ``running()``, appending each answer that
    differs from the last to ``out`` (as the Ray runner does: the file grows with what changed)."""
    last = None
    while running():
        try:
            reply = api_client.call_api(path, "GET", auth_settings=["BearerToken"], _preload_content=False,
                                        _return_http_data_only=True, _request_timeout=2)
            text = reply.data[: 1 << 20].decode("utf-8", errors="replace")
        except Exception:  # noqa: BLE001 - not serving yet, or gone: the next scrape tells
            text = None
        if text is not None and text != last:  # answered while the pod ran, even if it has ended since
            last = text
            with out.open("a") as f:
                f.write(json.dumps({"time": time.time(), "text": text}) + "\n")
        wait(every)
