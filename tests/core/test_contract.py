"""The contract's value types enforce their own rules."""

from __future__ import annotations

import pytest

from stack.contract import (
    ColumnDrift,
    DriftReport,
    LifecycleState,
    ModelSelector,
    TrafficSplit,
    can_transition,
)
from stack.contract.roles import ROLE_PROTOCOLS, Role
from stack.errors import StackError

S = LifecycleState


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (S.CANDIDATE, S.APPROVED, True),
        (S.CANDIDATE, S.SERVING, False),  # never straight to serving: approval first
        (S.APPROVED, S.CANARY, True),
        (S.CANARY, S.SERVING, True),
        (S.CANARY, S.APPROVED, True),  # its rollout died: back to what its gate gave it
        (S.CANARY, S.CANDIDATE, False),
        (S.SERVING, S.RETIRED, True),
        (S.SERVING, S.CANDIDATE, False),
        (S.REJECTED, S.SERVING, False),
        (S.RETIRED, S.SERVING, True),  # a rollback target returns to serving
    ],
)
def test_lifecycle_transitions(current: S, target: S, allowed: bool) -> None:
    assert can_transition(current, target) is allowed


def test_every_state_has_its_transitions_defined() -> None:
    for state in S:
        can_transition(state, S.RETIRED)


def test_model_selector_by_state_and_by_version() -> None:
    assert ModelSelector.parse("churn@serving") == ModelSelector("churn", state=S.SERVING)
    assert ModelSelector.parse("churn@3") == ModelSelector("churn", version=3)
    assert str(ModelSelector.parse("churn@3")) == "churn@3"


@pytest.mark.parametrize("text", ["churn", "churn@", "@3", "churn@live"])
def test_bad_model_selector_says_how_to_write_one(text: str) -> None:
    with pytest.raises(StackError, match=r"churn@serving|unknown state"):
        ModelSelector.parse(text)


def test_traffic_split_must_sum_to_one() -> None:
    with pytest.raises(StackError, match="sum to 1"):
        TrafficSplit({"m@1": 0.5, "m@2": 0.4})


def test_traffic_split_version_cannot_be_live_and_shadow() -> None:
    with pytest.raises(StackError, match="both live and shadow"):
        TrafficSplit({"m@1": 1.0}, shadows=("m@1",))


def test_drift_report_share_and_columns() -> None:
    report = DriftReport(
        (
            ColumnDrift("a", "wasserstein", 0.3, 0.1, True),
            ColumnDrift("b", "wasserstein", 0.01, 0.1, False),
        )
    )
    assert report.drifted_share == 0.5
    assert report.drifted_columns == ("a",)
    assert DriftReport(()).drifted_share == 0.0


def test_every_role_has_a_protocol() -> None:
    assert set(ROLE_PROTOCOLS) == set(Role)
