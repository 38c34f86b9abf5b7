"""The core records every registration and state change; hooks can veto; illegal moves and
failures leave the registry and the audit log consistent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.contract.roles import Role
from stack.contract.states import LifecycleState as S
from stack.errors import InvalidTransition, Vetoed
from stack.governance.cards import card_paths
from stack.hooks import Veto, hookimpl
from stack.lifecycle import Lifecycle
from stack.plugins import AdapterManifest, RoleBinding
from stack.session import StackSession
from stack.spine import NodeKind, NodeRef
from tests.support.sessions import memory_session

MEMORY = AdapterManifest(
    name="memory",
    package="mlstack-memory",
    roles={Role.REGISTRY: RoleBinding("tests.support.memory:MemoryRegistry")},
)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[StackSession]:
    with memory_session(tmp_path, MEMORY, "registry: memory\n") as opened:
        yield opened


def test_registration_is_audited_and_linked_to_its_run(session: StackSession) -> None:
    version = Lifecycle(session).register("churn", "file:///m/1", run_id="run-1", actor="ana")
    [entry] = session.spine.audit_entries(subject="churn")
    assert (entry.actor, entry.action, entry.subject) == ("ana", "model.registered", "churn@1")
    [edge] = session.spine.upstream(NodeRef(NodeKind.MODEL_VERSION, version.ref))
    assert edge.source == NodeRef(NodeKind.RUN, "run-1")


def test_promotion_to_serving_records_the_displaced_version(session: StackSession) -> None:
    lifecycle = Lifecycle(session)
    for i in (1, 2):
        lifecycle.register("churn", f"file:///m/{i}")
        lifecycle.transition("churn", i, S.APPROVED, actor="lead")
        change = lifecycle.change("churn", i, S.SERVING, actor="lead", reason="better AUC")
    assert change.displaced == ("churn@1",)
    promoted, retired = session.spine.audit_entries(action="state.changed")[-2:]
    assert (promoted.subject, promoted.reason) == ("churn@2", "better AUC")
    assert promoted.payload == {"from": "approved", "to": "serving", "displaced": ["churn@1"]}
    # the displaced version's own entry, after the change that displaced it
    assert (retired.subject, retired.actor, retired.reason) == (
        "churn@1",
        "lead",
        "displaced by churn@2",
    )
    assert retired.payload == {"from": "serving", "to": "retired", "displaced_by": "churn@2"}
    assert session.registry.get_version("churn", 1).state == S.RETIRED
    card = card_paths(session, "churn@1").markdown.read_text()
    assert "| state | retired |" in card and "serving → retired" in card
    assert session.spine.verify_audit().ok


def test_illegal_move_changes_nothing_and_audits_nothing(session: StackSession) -> None:
    lifecycle = Lifecycle(session)
    lifecycle.register("churn", "file:///m/1")
    with pytest.raises(InvalidTransition, match="candidate; it cannot move to serving"):
        lifecycle.transition("churn", 1, S.SERVING)
    assert session.registry.get_version("churn", 1).state == S.CANDIDATE
    assert [e.action for e in session.spine.audit_entries()] == ["model.registered"]


def test_vetoed_promotion_is_audited_and_not_applied(session: StackSession) -> None:
    class Freeze:
        @hookimpl
        def on_promotion_requested(self, target_state: str) -> object:
            return Veto("release freeze until Monday")

    session.hooks.register(Freeze())
    lifecycle = Lifecycle(session)
    lifecycle.register("churn", "file:///m/1")
    with pytest.raises(Vetoed):
        lifecycle.transition("churn", 1, S.APPROVED, actor="lead")
    assert session.registry.get_version("churn", 1).state == S.CANDIDATE
    vetoed = session.spine.audit_entries(action="state.vetoed")
    assert [e.reason for e in vetoed] == ["release freeze until Monday"]


def test_every_state_change_rewrites_the_model_card(session: StackSession) -> None:
    lifecycle = Lifecycle(session)
    lifecycle.register("churn", "file:///m/1")
    lifecycle.transition("churn", 1, S.APPROVED, actor="lead")
    card = session.home / "cards" / "churn@1.md"
    assert "| state | approved |" in card.read_text()
    lifecycle.transition("churn", 1, S.SERVING, actor="lead")
    assert "| state | serving |" in card.read_text()


def test_training_frame_lineage_links_data_and_views_to_the_run(session: StackSession) -> None:
    from stack.contract import DatasetFingerprint, FeatureViewRef, TrainingFrame

    frame = TrainingFrame(
        frame=None,
        fingerprint=DatasetFingerprint(
            "training-frame", "sha256:f1", 120, ("customer_id", "calls")
        ),
        feature_views=(FeatureViewRef("stats", "v1a2"), FeatureViewRef("profile", "9c0d")),
    )
    Lifecycle(session).record_training_frame("run-7", frame)
    upstream = session.spine.upstream(NodeRef(NodeKind.RUN, "run-7"))
    assert {(str(e.source), e.relation) for e in upstream} == {
        ("data_snapshot:sha256:f1", "trained_on"),
        ("feature_view:stats@v1a2", "fed"),
        ("feature_view:profile@9c0d", "fed"),
    }
    assert session.spine.node_attributes(NodeRef(NodeKind.DATA_SNAPSHOT, "sha256:f1")) == {
        "rows": 120,
        "columns": ["customer_id", "calls"],
        "source": None,
    }
