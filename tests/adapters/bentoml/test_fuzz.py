"""Property-based fuzzing of the endpoint from its own OpenAPI schema: no input gets a 5xx.

Schemathesis generates bodies from the schema (positive mode) and bodies that break it
(negative mode: wrong types, missing or extra fields, other shapes); Hypothesis drives both.
Every answer must be < 500, and the worker must still answer afterwards."""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from stack.config.rollout import RolloutPlan
from stack.contract.states import LifecycleState as S
from stack.governance.service import Governance
from stack.rollout import RolloutController
from tests.adapters.bentoml.conftest import Stack, row


def test_no_generated_input_gets_a_server_error(stack: Stack) -> None:
    with stack.session() as session:
        Governance(session).promote(stack.versions.champion.ref, S.APPROVED)
        endpoint = (
            RolloutController(session)
            .deploy(stack.versions.champion.ref, RolloutPlan(strategy="direct", endpoint="fuzzed"))
            .endpoint
        )
    schema = schemathesis.openapi.from_url(f"{endpoint.url}/openapi.json")
    operation = schema["/predict"]["POST"]
    cases = operation.as_strategy(generation_mode=GenerationMode.POSITIVE) | operation.as_strategy(
        generation_mode=GenerationMode.NEGATIVE
    )
    seen: dict[int, int] = {}

    @given(case=cases)
    @settings(
        max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def no_server_error(case: Any) -> None:
        response = case.call(base_url=endpoint.url)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (response.status_code, case.body, response.text)

    no_server_error()
    assert seen.get(200) and seen.get(422), f"both valid and invalid bodies were sent: {seen}"
    assert httpx.post(f"{endpoint.url}/predict", json=row()).status_code == 200
