"""Property-based fuzzing of an endpoint from its own OpenAPI schema: no body gets a 5xx."""

from __future__ import annotations

from typing import Any


def fuzz_predict(url: str, *, max_examples: int) -> dict[int, int]:
    """Send `max_examples` bodies to `url`/predict: generated from its schema (positive mode)
    and breaking it (negative mode: wrong types, missing or extra fields, other shapes).
    Asserts every answer is < 500; returns how many of each status came back."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operation = schema["/predict"]["POST"]
    cases = operation.as_strategy(generation_mode=GenerationMode.POSITIVE) | operation.as_strategy(
        generation_mode=GenerationMode.NEGATIVE
    )
    seen: dict[int, int] = {}

    @given(case=cases)
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case: Any) -> None:
        response = case.call(base_url=url)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (response.status_code, case.body, response.text)

    no_server_error()
    return seen
