"""Property-based fuzzing of the OpenAPI schema (schemathesis): no request the schema
allows may crash the server or answer 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

SKIP = {"/api/v1/events"}  # the event stream never ends by design


TRUE = ("true", "1", "on", "yes", "y", "t")


def _bounded_stream(case) -> None:
    """A watch is a stream: the one a case asks for ends in a second. A followed log lasts
    as long as its trial runs (tests/api_tests/test_pod_logs.py follows them): read once here."""
    if case.query and str(case.query.get("watch", "")).lower() in TRUE:
        case.query["timeoutSeconds"] = 1
    if case.query and str(case.query.get("follow", "")).lower() in TRUE:
        case.query["follow"] = "false"


def test_no_request_makes_a_5xx(live):
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed = []
    for operation in operations:
        if operation.path in SKIP:
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case):
            _bounded_stream(case)
            response = case.call(timeout=30)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}")

        check()
        fuzzed.append(f"{operation.method.upper()} {operation.path}")
    assert len(fuzzed) >= 20, fuzzed


def test_stateful_sequences_make_no_5xx(live):
    """Sequences that follow the schema's links (create → get, status, trials, stop,
    budget, patch, delete of what was created): no 5xx, whatever the order."""
    from hypothesis import settings as hsettings

    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    base = schema.as_state_machine()
    calls: list[str] = []

    class Machine(base):  # type: ignore[misc, valid-type]
        def before_call(self, case):
            _bounded_stream(case)

        def validate_response(self, response, case, **kwargs):
            calls.append(f"{case.method} {case.path} {response.status_code}")
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}")

    Machine.run(settings=hsettings(max_examples=40, stateful_step_count=6, deadline=None, database=None,
                                   suppress_health_check=list(HealthCheck)))
    assert calls
