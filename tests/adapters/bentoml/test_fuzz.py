"""Property-based fuzzing of the endpoint from its own OpenAPI schema: no input gets a 5xx.

Schemathesis generates bodies from the schema (positive mode) and bodies that break it
(negative mode: wrong types, missing or extra fields, other shapes); Hypothesis drives both.
Every answer must be < 500, and the worker must still answer afterwards."""

from __future__ import annotations

import httpx

from stack.config.rollout import RolloutPlan
from stack.contract.states import LifecycleState as S
from stack.governance.service import Governance
from stack.rollout import RolloutController
from tests.adapters.bentoml.conftest import Stack, row
from tests.support.fuzz import fuzz_predict


def test_no_generated_input_gets_a_server_error(stack: Stack) -> None:
    with stack.session() as session:
        Governance(session).promote(stack.versions.champion.ref, S.APPROVED)
        endpoint = (
            RolloutController(session)
            .deploy(stack.versions.champion.ref, RolloutPlan(strategy="direct", endpoint="fuzzed"))
            .endpoint
        )
    seen = fuzz_predict(endpoint.url, max_examples=300)
    assert seen.get(200) and seen.get(422), f"both valid and invalid bodies were sent: {seen}"
    assert httpx.post(f"{endpoint.url}/predict", json=row()).status_code == 200
