""" "What served at T" after a move into serving that MLflow refused half-way: the audit records
what the registry reads after the failure, and the history follows it."""

from __future__ import annotations

from typing import Any

import pytest
from mlflow.exceptions import MlflowException

from stack.contract.states import LifecycleState as S
from stack.governance.history import served_at
from stack.lifecycle import Lifecycle
from stack.session import StackSession
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

    # the registry's writes to MLflow (its tables here, stack_mlflow/reads/writes.py)
    monkeypatch.setattr(session.registry.writes, refusing_call, refuse)  # type: ignore[attr-defined]
    with pytest.raises(MlflowException, match="read-only"):
        lifecycle.transition(model, versions["challenger"].version, S.SERVING)
    monkeypatch.undo()

    [holder] = session.registry.find_by_state(model, S.SERVING)
    assert holder.ref == versions[serves_after].ref
    failed = session.spine.audit_entries(subject=model, action="state.change_failed")[-1]
    assert failed.payload == {"to": "serving", "serving": holder.ref}
    assert served_at(session.spine, model, now_utc()) == holder.ref
