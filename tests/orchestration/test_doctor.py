"""What `mlstack doctor` finds on endpoints and versions a rollout left, and how `--repair`
puts it back: judged by the rollout's owner (dead, alive, or on another host)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stack.contract.roles import Role
from stack.contract.serving import TrafficSplit
from stack.contract.states import LifecycleState
from stack.hooks import Veto, hookimpl
from stack.lifecycle import Lifecycle
from stack.orchestration.lease import current_owner
from stack.orchestration.reconcile import Doctor, ProblemKind
from stack.plugins import AdapterManifest, RoleBinding
from stack.session import StackSession
from tests.support.sessions import memory_session

S = LifecycleState
MEMORY = AdapterManifest(
    name="memory",
    package="mlstack-memory",
    roles={
        Role.REGISTRY: RoleBinding("tests.support.memory:MemoryRegistry"),
        Role.SERVER: RoleBinding("tests.support.memory:MemoryServer"),
    },
)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[StackSession]:
    with memory_session(tmp_path, MEMORY, "registry: memory\nserver: memory\n") as opened:
        yield opened


def dead_owner() -> dict[str, Any]:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return {**current_owner(), "pid": child.pid}


def version_in(session: StackSession, *path: S) -> str:
    version = session.registry.register("churn", "file:///m")
    for state in path:
        Lifecycle(session).transition("churn", version.version, state, actor="ci")
    return version.ref


def canary_beside_champion(session: StackSession, owner: dict[str, Any], **audit: Any) -> str:
    """What a canary rollout leaves when its process stops mid-bake."""
    champion = version_in(session, S.APPROVED, S.SERVING)
    challenger = version_in(session, S.APPROVED, S.CANARY)
    server = session.server
    server.deploy(session.registry.get_version("churn", 1), endpoint="churn")
    server.add_version(session.registry.get_version("churn", 2), endpoint="churn")
    server.route("churn", TrafficSplit({champion: 0.5, challenger: 0.5}))
    session.spine.audit(
        actor="ci",
        action="rollout.started",
        subject="endpoint:churn",
        payload={"strategy": "canary", "champion": champion, "challenger": challenger}
        | {"owner": owner}
        | audit,
    )
    return challenger


def test_a_dead_rollout_goes_back_to_its_champion_and_its_canary_to_approved(
    session: StackSession,
) -> None:
    challenger = canary_beside_champion(session, dead_owner())
    found = Doctor(session).examine()
    assert {(p.kind, p.subject) for p in found} == {
        (ProblemKind.ENDPOINT, "endpoint:churn"),
        (ProblemKind.VERSION, challenger),
    }

    repairs = Doctor(session).repair()
    assert all(r.done for r in repairs), repairs
    [endpoint] = session.server.endpoints()
    assert dict(endpoint.split.weights) == {"churn@1": 1.0}
    assert session.registry.get_version("churn", 2).state is S.APPROVED
    actions = [e.action for e in session.spine.audit_entries()]
    assert actions[-3:] == ["rollout.rolled_back", "endpoint.routed", "state.changed"]
    assert Doctor(session).examine() == []


def test_a_first_canary_serving_alone_with_no_rollout_is_undeployed(
    session: StackSession,
) -> None:
    ref = version_in(session, S.APPROVED, S.CANARY)  # the process died before rollout.started
    session.server.deploy(session.registry.get_version("churn", 1), endpoint="churn")
    [problem, _version] = Doctor(session).examine()
    assert problem.found == f"{ref} takes 100% without passing the serving gate"
    assert problem.remedy == "undeploy the endpoint (no serving version to fall back to)"

    assert all(r.done for r in Doctor(session).repair())
    assert session.server.endpoints() == []
    assert session.registry.get_version("churn", 1).state is S.APPROVED
    assert session.spine.verify_audit().ok


def test_a_rollout_whose_owner_lives_is_left_alone(session: StackSession) -> None:
    canary_beside_champion(session, current_owner())
    assert Doctor(session).examine() == []


def test_an_ab_test_left_running_is_not_a_problem(session: StackSession) -> None:
    challenger = canary_beside_champion(session, dead_owner())
    session.spine.audit(
        actor="ci",
        action="rollout.ab_running",
        subject="endpoint:churn",
        payload={"challenger": challenger},
    )
    assert Doctor(session).examine() == []


def test_a_rollout_whose_owner_cannot_be_judged_is_reported_and_left_unless_taken_over(
    session: StackSession,
) -> None:
    canary_beside_champion(session, {})  # started before rollouts recorded their owner
    [problem] = Doctor(session).examine()
    assert problem.remedy is None
    assert problem.found.endswith("by an unrecorded process: its owner is unknown from here")
    assert not any(r.done for r in Doctor(session).repair())
    assert len(session.server.endpoints()[0].split.weights) == 2

    repairs = Doctor(session, take_over_stale=True).repair()
    assert repairs and all(r.done for r in repairs)
    assert dict(session.server.endpoints()[0].split.weights) == {"churn@1": 1.0}


def test_a_repair_a_hook_vetoes_is_reported_and_the_others_go_on(
    session: StackSession,
) -> None:
    class Freeze:
        @hookimpl
        def on_promotion_requested(self, version: Any, target_state: str, actor: str) -> Veto:
            return Veto("change freeze")

    challenger = canary_beside_champion(session, dead_owner())
    session.hooks.register(Freeze())
    repairs = {r.problem.subject: r for r in Doctor(session).repair()}
    assert repairs["endpoint:churn"].done
    assert not repairs[challenger].done
    assert "not repaired: Vetoed" in repairs[challenger].outcome
    assert "change freeze" in repairs[challenger].outcome
    assert session.registry.get_version("churn", 2).state is S.CANARY


def test_a_rollout_that_died_after_promoting_is_closed_as_completed(
    session: StackSession,
) -> None:
    challenger = canary_beside_champion(session, dead_owner())
    session.server.route("churn", TrafficSplit({challenger: 1.0, "churn@1": 0.0}))
    Lifecycle(session).transition("churn", 2, S.SERVING, actor="ci")  # then the process died
    [problem] = Doctor(session).examine()
    assert problem.remedy == (
        f"close the rollout ({challenger} was promoted before its process died)"
    )

    assert all(r.done for r in Doctor(session).repair())
    assert session.spine.audit_entries()[-1].action == "rollout.completed"
    assert dict(session.server.endpoints()[0].split.weights) == {challenger: 1.0, "churn@1": 0.0}
    assert Doctor(session).examine() == []


def test_a_change_audited_but_never_applied_is_audited_as_the_registry_holds_it(
    session: StackSession,
) -> None:
    """A promoter killed between its audit entry and the registry write leaves a log that
    says churn@2 serves while the registry holds churn@1 there: the registry is the truth."""
    from stack.governance.history import served_at
    from stack.spine.timeutil import now_utc

    version_in(session, S.APPROVED, S.SERVING)
    version_in(session, S.APPROVED)
    session.spine.audit(  # what Lifecycle.change writes before the registry moves
        actor="ci",
        action="state.changed",
        subject="churn@2",
        payload={"from": "approved", "to": "serving", "displaced": ["churn@1"]},
    )
    lied = now_utc()
    assert served_at(session.spine, "churn", lied) == "churn@2"  # the log lies

    [problem] = Doctor(session).examine()
    assert (problem.kind, problem.subject) == (ProblemKind.AUDIT, "churn@2")
    assert "the audit log says serving, the registry says approved" in problem.found
    [repair] = Doctor(session).repair()
    assert repair.done, repair.outcome
    assert served_at(session.spine, "churn", now_utc()) == "churn@1"
    assert served_at(session.spine, "churn", lied) == "churn@1"  # the gap is told true too
    assert session.registry.get_version("churn", 2).state is S.APPROVED  # the registry kept
    assert Doctor(session).examine() == []
    assert session.spine.verify_audit().ok


def test_a_rollout_that_died_before_routing_is_closed_without_a_promotion(
    session: StackSession,
) -> None:
    """Killed after the challenger entered `canary` and was loaded, before any traffic
    moved: the champion still serves alone. Nothing was promoted, and the log must not
    say so: the rollout is closed as rolled back, the challenger back to approved."""
    challenger = canary_beside_champion(session, dead_owner())
    session.server.route("churn", TrafficSplit({"churn@1": 1.0}))  # as before the rollout
    problems = {p.subject: p for p in Doctor(session).examine()}
    assert problems["endpoint:churn"].remedy == (
        f"close the rollout ({challenger} never took traffic; churn@1 serves)"
    )

    assert all(r.done for r in Doctor(session).repair())
    [closed] = session.spine.audit_entries(subject="endpoint:churn", action="rollout.rolled_back")
    assert closed.payload["from"] == [challenger] and closed.payload["to"] == "churn@1"
    assert session.spine.audit_entries(subject="endpoint:churn", action="rollout.completed") == []
    assert dict(session.server.endpoints()[0].split.weights) == {"churn@1": 1.0}
    assert session.registry.get_version("churn", 2).state is S.APPROVED
    assert Doctor(session).examine() == []


def test_rollout_status_says_when_a_rollouts_process_is_gone(session: StackSession) -> None:
    """`rollout status` shows `last: rollout.started` for a rollout in progress; when its
    process is gone it says so (the split stays where that process left it)."""
    from stack.cli.serving_cmd import _owner_gone

    canary_beside_champion(session, dead_owner())
    [started] = session.spine.audit_entries(subject="endpoint:churn", action="rollout.started")
    gone = _owner_gone(session, started)
    assert gone is not None and "is gone" in gone and "mlstack doctor --repair" in gone
    alive = session.spine.audit(
        actor="ci",
        action="rollout.started",
        subject="endpoint:churn",
        payload={"owner": current_owner()},
    )
    assert _owner_gone(session, alive) is None


def test_an_endpoint_left_on_an_ungated_version_gets_the_models_serving_version_back(
    session: StackSession,
) -> None:
    """The endpoint answers with a canary nobody is judging, and the registry names another
    version serving (not loaded there): that version is put back on the endpoint, not the
    endpoint undeployed (production taken down) as when the model has nothing serving."""
    serving = version_in(session, S.APPROVED, S.SERVING)
    canary = version_in(session, S.APPROVED, S.CANARY)
    session.server.deploy(session.registry.get_version("churn", 2), endpoint="churn")
    problems = {p.subject: p for p in Doctor(session).examine()}
    assert problems["endpoint:churn"].remedy == (
        f"serve {serving} on it (the model's serving version)"
    )

    assert all(r.done for r in Doctor(session).repair())
    assert dict(session.server.endpoints()[0].split.weights) == {serving: 1.0}
    assert session.registry.get_version("churn", 2).state is S.APPROVED
    [undone] = session.spine.audit_entries(subject="endpoint:churn", action="rollout.rolled_back")
    assert undone.payload["from"] == [canary] and undone.payload["to"] == serving
    assert Doctor(session).examine() == []
