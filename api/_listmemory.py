"""The lists a watch may start from. Kubernetes clients list, then watch from the list's
``resourceVersion`` (``kubectl get -w``, ``kubectl wait``, informers); the watch then sends
only what changed since the list. This server keeps no history of its objects, so it
remembers, for its most recent small lists, each object's fingerprint under a resource
version of their own: a watch from one of them starts with exactly the differences (an
object added, changed or deleted since), and a watch from any other (or "") starts, as
Kubernetes starts one from "", with every object ADDED."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections import OrderedDict
from typing import Any

KEPT_LISTS = 128  # lists remembered (each of at most api._watch.MAX_OBJECTS objects)


def fingerprint(obj: dict[str, Any]) -> str:
    return hashlib.blake2b(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode(), digest_size=12).hexdigest()


class ListMemory:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # distinct from a previous run's versions, and from another server's on the same store
        self._next = (time.time_ns() // 1000) * 1000 + secrets.randbelow(1000) * 10**12
        self._lists: OrderedDict[str, tuple[tuple[str, ...], dict[str, str]]] = OrderedDict()

    def remember(self, key: tuple[str, ...], objects: list[dict[str, Any]]) -> str:
        """The resource version of this list of ``objects`` (the list ``key`` names: its
        resource, namespace and selectors)."""
        prints = {str(o.get("metadata", {}).get("name", "")): fingerprint(o) for o in objects}
        with self._lock:
            self._next += 1
            version = str(self._next)
            self._lists[version] = (key, prints)
            while len(self._lists) > KEPT_LISTS:
                self._lists.popitem(last=False)
        return version

    def recall(self, version: str | None, key: tuple[str, ...]) -> dict[str, str] | None:
        """The fingerprints of the list ``version`` names, if it is remembered and was a
        list of ``key``."""
        with self._lock:
            found = self._lists.get(version or "")
        return found[1] if found is not None and found[0] == key else None
