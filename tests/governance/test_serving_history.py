""" "What served at T" after a move into serving that MLflow refused half-way: the audit records
what the registry reads after the failure, and the history follows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.exceptions import MlflowException

from stack.contract.states import LifecycleState as S
from stack.governance.history import served_at, serving_histories, serving_history
from stack.lifecycle import Lifecycle
from stack.session import StackSession
from stack.spine import SpineStore
from stack.spine.timeutil import now_utc
from tests.governance.conftest import Factory


@pytest.mark.parametrize(
    ("refusing_call", "serves_after"),
    [
        ("set_alias", "champion"),  # refused before the alias moved
        ("set_version_tag", "challenger"),  # refused after: the alias moved
    ],
)
def test_a_refused_move_into_serving_leaves_history_equal_to_the_registry(
    session: StackSession,
    make_version: Factory,
    model: str,
    monkeypatch: pytest.MonkeyPatch,
    refusing_call: str,
    serves_after: str,
) -> None:
    lifecycle = Lifecycle(session)
    versions = {"champion": make_version(0.8), "challenger": make_version(0.9)}
    for version in versions.values():
        lifecycle.transition(model, version.version, S.APPROVED)
    lifecycle.transition(model, versions["champion"].version, S.SERVING)

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise MlflowException("the registry went read-only")

    # the registry's writes to MLflow (its tables here, stack_mlflow/light/writes.py)
    monkeypatch.setattr(session.registry.writes, refusing_call, refuse)  # type: ignore[attr-defined]
    with pytest.raises(MlflowException, match="read-only"):
        lifecycle.transition(model, versions["challenger"].version, S.SERVING)
    monkeypatch.undo()

    [holder] = session.registry.find_by_state(model, S.SERVING)
    assert holder.ref == versions[serves_after].ref
    failed = session.spine.audit_entries(subject=model, action="state.change_failed")[-1]
    assert failed.payload == {"to": "serving", "serving": holder.ref}
    assert served_at(session.spine, model, now_utc()) == holder.ref


def test_many_models_histories_read_at_once_are_each_their_own(tmp_path: Path) -> None:
    """The inventory reads every model's serving history from one read of the log: each is
    what `serving_history` reads for that model alone, for names that share a start too."""
    spine = SpineStore.open(f"sqlite:///{tmp_path / 'spine.db'}")
    try:
        into, out = {"from": "approved", "to": "serving"}, {"from": "serving", "to": "retired"}
        for action, subject, payload in [
            ("state.changed", "churn@1", into),
            ("state.changed", "churn2@1", into),
            ("state.changed", "churn_x@1", into),
            ("state.changed", "churn@2", {**into, "serving": "churn@2"}),
            ("state.changed", "churn2@1", out),
            ("state.change_failed", "churn@3", {"to": "serving", "serving": "churn@2"}),
            ("endpoint.routed", "endpoint:churn", {"weights": {"churn@2": 1.0}}),
        ]:
            spine.audit(actor="ci", action=action, subject=subject, payload=payload)
        models = ["churn", "churn2", "churn_x", "fraud"]
        histories = serving_histories(spine, models)
        assert histories == {m: serving_history(spine, m) for m in models}
        assert [c.version for c in histories["churn"]] == ["churn@1", "churn@2"]
        assert [c.version for c in histories["churn2"]] == ["churn2@1", None]
        assert histories["fraud"] == []
    finally:
        spine.close()
