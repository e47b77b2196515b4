"""The viewer's static files, each compressed once.

Starlette's ``StaticFiles`` behind the app's ``GZipMiddleware`` compresses a file again at
every request: ECharts (629 KB) costs ~25 ms of the server's CPU per page load, while the
page waits for it. Here a file's gzip is made on its first request and kept, keyed by its
path, size and modification time (an edited file is compressed again); the answer carries
``Content-Encoding: gzip``, which the middleware passes through. Range requests, clients
that take no gzip and small files get Starlette's own answer.
"""

from __future__ import annotations

import gzip
import os
import threading
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

MIN_SIZE = 4096  # as the middleware: smaller files are sent as they are


def accepts_gzip(headers: Headers) -> bool:
    """Whether the request's ``Accept-Encoding`` takes gzip (by name or ``*``, not at q=0)."""
    accepted = [t.split(";")[0].strip() for t in headers.get("accept-encoding", "").lower().split(",")
                if not t.replace(" ", "").endswith(("q=0", "q=0.0", "q=0.00", "q=0.000"))]
    return "gzip" in accepted or "*" in accepted


class CompressedStaticFiles(StaticFiles):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kept: dict[str, tuple[tuple[int, int], bytes]] = {}
        self._lock = threading.Lock()

    def file_response(self, full_path: Any, stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        request = Headers(scope=scope)
        if (isinstance(response, NotModifiedResponse) or "range" in request or status_code != 200
                or stat_result.st_size < MIN_SIZE or not accepts_gzip(request)):
            return response
        body = self._gzip(str(full_path), stat_result)
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "accept-ranges")}
        headers["content-encoding"] = "gzip"
        headers["vary"] = "Accept-Encoding"
        return Response(body, status_code=status_code, headers=headers)

    def _gzip(self, path: str, stat_result: os.stat_result) -> bytes:
        version = (stat_result.st_size, stat_result.st_mtime_ns)
        with self._lock:
            kept = self._kept.get(path)
        if kept is not None and kept[0] == version:
            return kept[1]
        with open(path, "rb") as f:
            body = gzip.compress(f.read(), compresslevel=9, mtime=0)
        with self._lock:
            self._kept[path] = (version, body)
        return body
