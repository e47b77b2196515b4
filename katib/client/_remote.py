"""The remote backend of ``KatibClient``: a ``katib server``'s REST API over httpx, each
error said in one sentence."""

from __future__ import annotations

import math
import time
from typing import Any

from ..errors import KatibError, NotFoundError

IDLE_CHECK_SECONDS = 2.0


class _Remote:
    def __init__(self, url: str, timeout: float, token: str | None = None) -> None:
        import httpx

        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)
        self.token = token
        # (namespace, name) -> (when idle was last asked, when it was first seen idle)
        self._idle: dict[tuple[str, str], tuple[float, float | None]] = {}

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        r = self._request(method, path, **kw)
        return r.json() if r.content else {}

    def _request(self, method: str, path: str, prefix: str = "/api/v1", **kw: Any) -> Any:
        """The server's answer, or an error that says in one sentence what went wrong: the
        server cannot be reached, wants a (valid) token, forbids this, lacks the object."""
        import httpx

        from katib.errors import (
            ConflictError,
            FieldError,
            ForbiddenError,
            UnauthorizedError,
            ValidationError,
        )

        try:
            r = self.http.request(method, prefix + path, **kw)
        except httpx.HTTPError as exc:
            raise KatibError(f"cannot reach the katib server at {self.url}: {exc or type(exc).__name__}") from None
        if r.status_code < 300:
            return r
        try:
            body: dict[str, Any] = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        except ValueError:
            body = {}
        message = str(body.get("message") or body.get("detail") or r.text[:300] or r.reason_phrase)
        if r.status_code == 422 and body.get("errors"):
            raise ValidationError([FieldError(e["field"], e["message"]) for e in body["errors"]])
        causes = (body.get("details") or {}).get("causes") if isinstance(body.get("details"), dict) else None
        if r.status_code == 422 and causes:  # a Kubernetes Status (the /apis routes)
            raise ValidationError([FieldError(c.get("field", ""), c.get("message", "")) for c in causes])
        if r.status_code == 401:
            raise UnauthorizedError(
                f"the katib server at {self.url} did not accept the API token ({message})" if self.token else
                f"the katib server at {self.url} needs an API token (--token or $KATIB_TOKEN; `katib user token NAME` "
                "on its machine makes one)")
        if r.status_code == 403:
            raise ForbiddenError(f"the katib server at {self.url} forbids this: {message}")
        if r.status_code == 404:
            raise NotFoundError(message)
        if r.status_code == 409:
            raise ConflictError(message)
        raise KatibError(f"the katib server at {self.url} answered {method} {path} with {r.status_code}: {message}")

    def create(self, doc: dict[str, Any], namespace: str) -> dict[str, Any]:
        return self._call("POST", f"/namespaces/{namespace}/experiments", json=doc)  # type: ignore[no-any-return]

    def get(self, name: str, namespace: str) -> dict[str, Any]:
        return self._call("GET", f"/namespaces/{namespace}/experiments/{name}")  # type: ignore[no-any-return]

    def submit_again(self, doc: dict[str, Any], namespace: str) -> dict[str, Any]:
        """The existing experiment, submitted again as ``katib run`` of a file takes it here:
        its spec replaced by the file's (a merge patch that also removes what only the stored
        spec has: merged, a changed algorithm kept the old one's settings and was refused for
        them), the server then resuming, applying a budget, restarting, or refusing the fields
        Katib's rules keep, named."""
        name = str((doc.get("metadata") or {}).get("name") or "")
        meta = {k: v for k, v in (doc.get("metadata") or {}).items() if k in ("name", "namespace", "labels", "annotations")}
        stored = self.get(name, namespace).get("spec") or {}
        body = {**doc, "metadata": {**meta, "namespace": namespace}, "spec": _replacing(stored, doc.get("spec") or {})}
        r = self._request("PATCH", f"/namespaces/{namespace}/experiments/{name}", prefix="/apis/kubeflow.org/v1beta1",
                          json=body, headers={"Content-Type": "application/merge-patch+json"})
        return r.json()  # type: ignore[no-any-return]

    def idle(self, name: str, namespace: str) -> bool:
        """Unfinished, and nothing runs it, in the server's word (its list's ``active``: a
        controller of its own or a ``katib run`` elsewhere; an outside loop's experiment is
        never idle): a stopped experiment, which a wait would otherwise poll until its
        timeout. Asked at most every ``IDLE_CHECK_SECONDS``, and said only when two answers
        that far apart agree (a controller just being started is not idle)."""
        key, now = (namespace, name), time.monotonic()
        last, since = self._idle.get(key, (-math.inf, None))
        if now - last < IDLE_CHECK_SECONDS:
            return False
        item = next((o for o in self.experiments(namespace) if (o.get("metadata") or {}).get("name") == name), None)
        conditions = ((item or {}).get("status") or {}).get("conditions") or []
        ended = any(c.get("type") in ("Succeeded", "Failed") and c.get("status") == "True" for c in conditions)
        external = ((item or {}).get("spec") or {}).get("executor") == "external"
        if item is None or item.get("active") or ended or external:
            self._idle.pop(key, None)
            return False
        self._idle[key] = (now, since if since is not None else now)
        return since is not None and now - since >= IDLE_CHECK_SECONDS

    def resume(self, name: str, namespace: str) -> dict[str, Any]:
        return self._call("POST", f"/namespaces/{namespace}/experiments/{name}/resume")  # type: ignore[no-any-return]

    def close(self) -> None:
        self.http.close()

    def _pages(self, path: str, key: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every item of a list the server answers a page at a time, each page naming the
        next by its token (``metadata.continue``)."""
        items: list[dict[str, Any]] = []
        params = dict(params or {})
        while True:
            page = self._call("GET", path, params=params)
            items += page[key]
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params["continue"] = token

    def experiments(self, namespace: str) -> list[dict[str, Any]]:
        return self._pages("/experiments", "items", {"namespace": namespace})

    def trials(self, name: str, namespace: str) -> list[dict[str, Any]]:
        return self._pages(f"/namespaces/{namespace}/experiments/{name}/trials", "items")

    def observations(self, trial: str, namespace: str, metric: str | None) -> list[dict[str, Any]]:
        return self._pages(f"/namespaces/{namespace}/trials/{trial}/observations", "metricLogs",
                           {"metric": metric} if metric else None)

    def budget(self, name: str, namespace: str, budget: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", f"/namespaces/{namespace}/experiments/{name}/budget", json=budget)  # type: ignore[no-any-return]

    def delete(self, name: str, namespace: str) -> None:
        self._call("DELETE", f"/namespaces/{namespace}/experiments/{name}")

    def all_experiments(self) -> list[dict[str, Any]]:
        return self._pages("/experiments", "items")

    def stop(self, name: str, namespace: str) -> dict[str, Any]:
        return self._call("POST", f"/namespaces/{namespace}/experiments/{name}/stop")  # type: ignore[no-any-return]

    def trial(self, name: str, namespace: str) -> dict[str, Any]:
        return self._call("GET", f"/namespaces/{namespace}/trials/{name}")  # type: ignore[no-any-return]

    def stop_trial(self, name: str, namespace: str) -> None:
        self._call("POST", f"/namespaces/{namespace}/trials/{name}/stop")

    def retry_trial(self, name: str, namespace: str) -> None:
        self._call("POST", f"/namespaces/{namespace}/trials/{name}/retry")

    def log(self, name: str, namespace: str, tail: int | None) -> str:
        params = {"tail": tail} if tail is not None else {}
        return self._request("GET", f"/namespaces/{namespace}/trials/{name}/log", params=params).text  # type: ignore[no-any-return]

    def log_since(self, name: str, namespace: str, offset: int) -> tuple[bytes, int]:
        r = self._request("GET", f"/namespaces/{namespace}/trials/{name}/log", params={"since": offset})
        return r.content, int(r.headers.get("x-log-offset", offset + len(r.content)))

    def ask(self, name: str, namespace: str, count: int) -> list[dict[str, Any]]:
        return self._call("POST", f"/namespaces/{namespace}/experiments/{name}/ask", params={"count": count})["trials"]  # type: ignore[no-any-return]

    def tell(self, name: str, namespace: str, trial: str, metrics: Any, outcome: str) -> dict[str, Any]:
        return self._call("POST", f"/namespaces/{namespace}/experiments/{name}/tell",  # type: ignore[no-any-return]
                          json={"trial": trial, "metrics": metrics, "outcome": outcome})


def _replacing(stored: Any, wanted: Any) -> Any:
    """The merge patch (RFC 7386) that turns ``stored`` into ``wanted``: ``wanted``, with
    null for each key only ``stored`` has, at every level of objects."""
    if not isinstance(stored, dict) or not isinstance(wanted, dict):
        return wanted
    out = {k: _replacing(stored.get(k), v) for k, v in wanted.items()}
    out.update({k: None for k in stored if k not in wanted})
    return out
