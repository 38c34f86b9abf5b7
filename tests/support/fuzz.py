"""Property-based fuzzing of an endpoint from its own OpenAPI schema: no request gets a 5xx.

Every operation the schema lists is sent bodies generated from it (positive mode) and bodies
that break it (negative mode: wrong types, missing or extra fields, other shapes, other
content types); then stateful scenarios follow the schema's links (a prediction's request
id sent back as its feedback). Runs are derandomized: the same schema gives the same cases.
Needs schemathesis; a test calling this is skipped with the reason when it is missing."""

from __future__ import annotations

from typing import Any

import pytest


def _schemathesis() -> Any:
    return pytest.importorskip(
        "schemathesis", reason="schemathesis is not installed: the endpoint fuzz tests need it"
    )


def _settings(max_examples: int, **extra: Any) -> Any:
    from hypothesis import HealthCheck, Phase, settings

    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure reports as found
        suppress_health_check=list(HealthCheck),
        **extra,
    )


def _record(seen: dict[int, int], response: Any, case: Any) -> None:
    seen[response.status_code] = seen.get(response.status_code, 0) + 1
    assert response.status_code < 500, (
        case.operation.label,
        response.status_code,
        case.headers,
        case.body,
        response.text[:500],
    )


def fuzz_endpoint(
    url: str, *, max_examples: int, only: str | None = None, stateful: bool = True
) -> dict[str, dict[int, int]]:
    """Up to `max_examples` cases per operation (or the `only` one, `"POST /predict"`), then
    (with `stateful`) as many scenarios; asserts every answer is < 500. Returns the statuses
    seen, per operation and for the scenarios (`"stateful"`)."""
    schemathesis = _schemathesis()
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    found: dict[str, dict[int, int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if only is not None and operation.label != only:
            continue
        seen = found.setdefault(operation.label, {})
        positive = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
        cases = positive | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
        _no_server_error(cases, url, seen, max_examples)()
    if stateful:
        found["stateful"] = _scenarios(schema, url, max_examples)
    return found


def _no_server_error(cases: Any, url: str, seen: dict[int, int], max_examples: int) -> Any:
    from hypothesis import given

    @given(case=cases)
    @_settings(max_examples)
    def run(case: Any) -> None:
        _record(seen, case.call(base_url=url, timeout=20), case)

    return run


def _scenarios(schema: Any, url: str, max_examples: int) -> dict[int, int]:
    seen: dict[int, int] = {}

    class Scenarios(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": url, "timeout": 20}

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            _record(seen, response, case)

    Scenarios.run(settings=_settings(max_examples, stateful_step_count=4))
    return seen


def fuzz_predict(url: str, *, max_examples: int) -> dict[int, int]:
    """`fuzz_endpoint` for `/predict` alone, without scenarios: its statuses."""
    only = "POST /predict"
    return fuzz_endpoint(url, max_examples=max_examples, only=only, stateful=False)[only]
