"""20 clients creating, reading and editing at once: nothing lost, nothing locked."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import experiment

BASE = "/api/v1/namespaces/default"


def test_twenty_clients_at_once(live):
    def one(i: int) -> list[int]:
        codes = []
        with httpx.Client(base_url=live.url, timeout=120) as c:
            doc = experiment(name=f"exp-{i}", maxTrialCount=3, parallelTrialCount=1, resumePolicy="LongRunning")
            codes.append(c.post(f"{BASE}/experiments", json=doc).status_code)
            for _ in range(5):
                codes.append(c.get(f"{BASE}/experiments/exp-{i}").status_code)
                codes.append(c.get("/api/v1/experiments").status_code)
                codes.append(c.get(f"{BASE}/experiments/exp-{i}/trials").status_code)
            r = c.patch(f"{BASE}/experiments/exp-{i}/budget", json={"parallelTrialCount": 2})
            # As Katib's webhook, an edit is refused once the trials reach maxTrialCount.
            if r.status_code == 422 and "spec.maxTrialCount: must be greater than status.trials" in r.text:
                refused.add(f"exp-{i}")
                codes.append(200)
            else:
                codes.append(r.status_code)
        return codes

    refused: set[str] = set()

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    bad = [(i, codes) for i, codes in enumerate(results) if any(code not in (200, 201) for code in codes)]
    assert not bad, bad
    for i in range(20):
        status = live.wait_for("default", f"exp-{i}", timeout=180)["status"]
        assert status["trials"] == 3 and status["trialsSucceeded"] == 3
    items = live.client.get("/api/v1/experiments").json()["items"]
    assert sorted(e["metadata"]["name"] for e in items) == sorted(f"exp-{i}" for i in range(20))
    assert all(e["spec"]["parallelTrialCount"] == (1 if e["metadata"]["name"] in refused else 2) for e in items)
