"""Each version is judged on the requests first routed to it, as the prediction log has them."""

from __future__ import annotations

from typing import Any

from stack_bentoml.health import version_health


def logged(
    request_id: str, version: str, role: str, status: int, ms: float = 5.0
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "model_version": version,
        "role": role,
        "status": status,
        "latency_ms": ms,
        "output": None if status >= 500 else "[0]",
        "live_output": None,
    }


def test_a_fallback_answer_is_not_a_request_of_the_version_that_gave_it() -> None:
    rows = [
        logged("a", "churn@2", "live", 500),  # the canary failed it,
        logged("a", "churn@1", "fallback", 200),  # the champion answered it
        logged("b", "churn@1", "live", 200),
    ]
    health = version_health(rows)
    assert (health["churn@2"].requests, health["churn@2"].errors) == (1, 1)
    assert (health["churn@1"].requests, health["churn@1"].fallbacks) == (1, 1)
    assert health["churn@1"].errors == 0


def test_an_input_every_version_failed_is_no_versions_error() -> None:
    rows = [
        logged("a", "churn@2", "live", 500),
        logged("a", "churn@1", "fallback", 500),  # the champion failed it too
        logged("b", "churn@2", "live", 200),
    ]
    health = version_health(rows)
    canary = health["churn@2"]
    assert (canary.requests, canary.errors, canary.input_faults) == (2, 0, 1)
    assert (health["churn@1"].requests, health["churn@1"].errors) == (0, 0)


def test_a_missed_deadline_counts_against_the_challenger_with_its_latency() -> None:
    rows = [
        logged("a", "churn@2", "live", 504, ms=250.0),  # too late: the champion answered
        logged("a", "churn@1", "fallback", 200, ms=252.0),
        logged("b", "churn@2", "live", 200, ms=4.0),
    ]
    canary = version_health(rows)["churn@2"]
    assert (canary.requests, canary.errors, canary.input_faults) == (2, 1, 0)
    assert canary.p99_latency_ms == 250.0


def test_a_versions_errors_are_named_by_their_exception() -> None:
    """What the rollout's verdict says failed: the logged traceback's exception (for a
    challenger, its own process's, which follows the worker's)."""
    missed = "Traceback (most recent call last):\nstack_bentoml.isolation.DeadlineMissed: late"
    raised = (
        "Traceback (most recent call last):\nRuntimeError: ValueError: bad amount\n\n"
        "in churn@2's process:\nTraceback (most recent call last):\nValueError: bad amount"
    )
    rows = [
        {**logged("a", "churn@2", "live", 504), "error": missed},
        logged("a", "churn@1", "fallback", 200),
        {**logged("b", "churn@2", "live", 500), "error": raised},
        logged("b", "churn@1", "fallback", 200),
        {**logged("c", "churn@2", "live", 504), "error": missed},
        logged("c", "churn@1", "fallback", 200),
        logged("d", "churn@2", "live", 500),  # no traceback (a pod's proxy answered it)
        logged("d", "churn@1", "fallback", 200),
    ]
    canary = version_health(rows)["churn@2"]
    assert canary.errors == 4
    assert canary.error_kinds == {"DeadlineMissed": 2, "ValueError": 1}
