"""Promotion gates and approvals, on the embedded MLflow stack."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from stack.config.recipe_file import Recipe, load_recipe
from stack.contract import DatasetFingerprint
from stack.contract.states import LifecycleState as S
from stack.errors import ApprovalRefused, GateFailed, NotFound, StackError
from stack.governance.history import served_at
from stack.governance.service import Governance
from stack.session import StackSession
from tests.governance.conftest import Factory

User = Callable[[str], None]


def to_serving(governance: Governance, ref: str, as_user: User) -> None:
    as_user("ana")
    governance.promote(ref, S.APPROVED)
    as_user("lead")
    governance.approve(ref, S.SERVING, reason="reviewed")
    as_user("ana")
    governance.promote(ref, S.SERVING)


def test_failed_threshold_names_the_rule_and_numbers_and_changes_nothing(
    governance: Governance, make_version: Factory, session: StackSession, as_user: User
) -> None:
    version = make_version(0.62)
    as_user("ana")
    with pytest.raises(GateFailed) as caught:
        governance.promote(version.ref, S.APPROVED)
    assert "FAIL threshold auc: 0.62 (needs >= 0.75)" in str(caught.value)
    assert f"{version.ref} stays candidate" in str(caught.value)
    assert session.registry.get_version(version.model, version.version).state == S.CANDIDATE
    [entry] = session.spine.audit_entries(subject=version.ref, action="gate.failed")
    assert entry.payload["rules"][0] == {
        "rule": "threshold auc",
        "passed": False,
        "detail": "0.62 (needs >= 0.75)",
    }


def test_a_version_without_a_signature_cannot_be_approved(
    governance: Governance, make_version: Factory, session: StackSession, as_user: User
) -> None:
    version = make_version(0.91, signed=False)  # good metrics, but no endpoint could check input
    as_user("ana")
    with pytest.raises(GateFailed) as caught:
        governance.promote(version.ref, S.APPROVED)
    assert "FAIL signature: the model has no signature" in str(caught.value)
    assert "input_example" in str(caught.value)  # what to do
    assert session.registry.get_version(version.model, version.version).state == S.CANDIDATE


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [
        (
            '[{"name": "a", "type": "double"}, {"name": "a", "type": "double"}]',
            "columns 'a' appear more than once",
        ),
        ('[{"name": "a", "type": "tensor"}]', "columns 'a' have no MLflow column type"),
        ('[{"name": "a", "type": "array"}]', "without its items or properties"),
        ("[{not json", "cannot be read (JSONDecodeError"),
    ],
    ids=["duplicate", "unknown-type", "array-without-items", "not-json"],
)
def test_a_signature_no_endpoint_could_use_cannot_be_approved(
    governance: Governance, make_version: Factory, as_user: User, inputs: str, problem: str
) -> None:
    version = make_version(0.91, inputs=inputs)
    as_user("ana")
    with pytest.raises(GateFailed, match="FAIL signature: ") as caught:
        governance.promote(version.ref, S.APPROVED)
    assert problem in str(caught.value)


def test_a_version_registered_by_its_runs_uri_is_read_for_its_signature(
    governance: Governance, make_version: Factory, as_user: User
) -> None:
    version = make_version(0.91, as_run_uri=True)
    assert version.source_uri.startswith("runs:/")
    as_user("ana")
    assert governance.promote(version.ref, S.APPROVED).state is S.APPROVED


def test_serving_needs_an_approval_from_the_group(
    governance: Governance, make_version: Factory, as_user: User
) -> None:
    version = make_version(0.81)
    as_user("ana")
    governance.promote(version.ref, S.APPROVED)
    with pytest.raises(GateFailed, match=r"FAIL approvals: 0 of 1 from ml-leads \(nobody\)"):
        governance.promote(version.ref, S.SERVING)
    as_user("lead")
    governance.approve(version.ref, S.SERVING, reason="looks right")
    as_user("ana")
    assert governance.promote(version.ref, S.SERVING).state == S.SERVING


def test_self_approval_is_refused_and_audited(
    governance: Governance, make_version: Factory, session: StackSession, as_user: User
) -> None:
    version = make_version(0.81, author="lead")
    as_user("lead")
    with pytest.raises(ApprovalRefused, match=r"lead registered .* and cannot approve it"):
        governance.approve(version.ref, S.SERVING)
    [refused] = session.spine.audit_entries(subject=version.ref, action="approval.refused")
    assert refused.actor == "lead"
    assert session.spine.approvals(version.ref) == []


def test_approval_from_outside_the_group_is_refused_and_audited(
    governance: Governance, make_version: Factory, session: StackSession, as_user: User
) -> None:
    version = make_version(0.81)
    as_user("mallory")
    with pytest.raises(ApprovalRefused, match="mallory is not in group 'ml-leads'"):
        governance.approve(version.ref, S.SERVING)
    assert [
        e.actor for e in session.spine.audit_entries(subject=version.ref, action="approval.refused")
    ] == ["mallory"]


def test_approving_twice_is_refused(
    governance: Governance, make_version: Factory, as_user: User
) -> None:
    version = make_version(0.81)
    as_user("lead")
    governance.approve(version.ref, S.SERVING)
    with pytest.raises(ApprovalRefused, match="already approved"):
        governance.approve(version.ref, S.SERVING)


def test_rejected_or_unknown_versions_cannot_be_approved(
    governance: Governance, make_version: Factory, model: str, as_user: User
) -> None:
    version = make_version(0.81)
    as_user("lead")
    governance.reject(version.ref, reason="leaks the label")
    with pytest.raises(ApprovalRefused, match="is rejected; it cannot be approved"):
        governance.approve(version.ref, S.SERVING)
    with pytest.raises(NotFound):
        governance.approve(f"{model}@99", S.SERVING)


def test_challenger_worse_than_the_champion_fails_with_the_numbers(
    governance: Governance, make_version: Factory, as_user: User
) -> None:
    champion = make_version(0.85)
    to_serving(governance, champion.ref, as_user)
    challenger = make_version(0.80)
    as_user("ana")
    governance.promote(challenger.ref, S.APPROVED)
    as_user("lead")
    governance.approve(challenger.ref, S.SERVING)
    as_user("ana")
    with pytest.raises(GateFailed) as caught:
        governance.promote(challenger.ref, S.SERVING)
    assert (
        f"FAIL champion auc: 0.8 vs 0.85 for {champion.ref} (regression 0.05, allowed 0.01)"
        in str(caught.value)
    )


def test_champion_on_a_different_evaluation_set_is_not_comparable(
    governance: Governance, make_version: Factory, as_user: User
) -> None:
    champion = make_version(0.80)
    to_serving(governance, champion.ref, as_user)
    challenger = make_version(0.90, holdout="sha256:other")
    decision = governance.check(challenger, S.SERVING)
    [rule] = [r for r in decision.results if r.rule == "champion auc"]
    assert not rule.passed
    assert "not evaluated on the same 'holdout' data" in rule.detail


def test_a_champion_evaluated_again_on_newer_rows_is_compared_on_them(
    governance: Governance, make_version: Factory, session: StackSession, as_user: User
) -> None:
    """A champion's run keeps each dataset it was evaluated on: the challenger is compared
    with it when one of them is the challenger's, whichever MLflow lists first."""
    champion = make_version(0.80)
    to_serving(governance, champion.ref, as_user)
    assert champion.run_id is not None
    tracker = session.tracker
    rerun = tracker.get_run(champion.run_id).ref
    tracker.log_metrics(rerun, {"auc": 0.82})
    tracker.log_dataset(rerun, DatasetFingerprint("holdout", "sha256:newer", 600, ("x",)))
    challenger = make_version(0.83, holdout="sha256:newer")

    decision = governance.check(challenger, S.SERVING)

    [rule] = [r for r in decision.results if r.rule == "champion auc"]
    assert rule.passed, rule.detail
    assert f"0.83 vs 0.82 for {champion.ref}" in rule.detail


def test_what_served_when_comes_from_the_audit_log(
    governance: Governance,
    make_version: Factory,
    session: StackSession,
    as_user: User,
    model: str,
) -> None:
    first = make_version(0.80)
    to_serving(governance, first.ref, as_user)
    between = session.spine.audit_entries()[-1].at
    second = make_version(0.81)
    to_serving(governance, second.ref, as_user)
    assert served_at(session.spine, model, between) == first.ref
    assert served_at(session.spine, model, session.spine.audit_entries()[-1].at) == second.ref
    assert session.registry.get_version(model, first.version).state == S.RETIRED


def test_model_card_says_what_a_reviewer_needs(
    governance: Governance, make_version: Factory, session: StackSession, as_user: User
) -> None:
    version = make_version(0.81)
    to_serving(governance, version.ref, as_user)
    paths = governance.write_card(version.ref)
    text = paths.markdown.read_text()
    for expected in (
        "Rank churn risk for outreach.",
        "| state | serving |",
        "| risk tier | high |",
        "holdout: 500 rows",
        "lead approved for serving: reviewed",
        "threshold auc ok (0.81 (needs >= 0.75))",
        "approved → serving by ana",
    ):
        assert expected in text, expected
    html = paths.html.read_text()
    assert html.startswith("<!DOCTYPE html>") and "Rank churn risk for outreach." in html
    artifacts = session.tracker.client.list_artifacts(version.run_id, "model_card")  # type: ignore[attr-defined]
    assert sorted(Path(a.path).name for a in artifacts) == [
        f"{version.ref}.html",
        f"{version.ref}.md",
    ]


def test_model_card_shows_the_monitoring_of_its_own_version_only(
    governance: Governance, make_version: Factory, session: StackSession, as_user: User
) -> None:
    """A drift alert raised while one version served is that version's, not the model's:
    the card of the version that served after it (or never served) says `none`."""
    from datetime import UTC, datetime, timedelta

    from stack.config.monitoring import MonitoringSection
    from stack.monitoring.recording import CheckRecorder
    from stack.monitoring.results import CheckResult

    first, second, unserved = make_version(0.81), make_version(0.82), make_version(0.83)
    to_serving(governance, first.ref, as_user)
    end = datetime.now(UTC)
    CheckRecorder(session).record(
        CheckResult(
            first.model,
            first.ref,
            "churn",
            (end - timedelta(hours=1), end),
            400,
            "breach",
            breaches=["tenure drifted (psi 0.42 > 0.2)"],
        ),
        MonitoringSection(),
    )
    to_serving(governance, second.ref, as_user)

    def monitoring(ref: str) -> str:
        return governance.write_card(ref).markdown.read_text().split("## Monitoring")[1]

    for other in (second.ref, unserved.ref):
        assert "| last drift alert | none |" in monitoring(other), other
        assert "| last monitoring check | none |" in monitoring(other), other
    assert "| served since | never served |" in monitoring(unserved.ref)
    judged = monitoring(first.ref)
    assert "| last drift alert | none |" not in judged
    assert "breach on churn |" in judged  # its last check: when, what, on which endpoint


RACER = """
import sys
from stack.errors import ApprovalRefused
from stack.spine import SpineStore
store = SpineStore.open(sys.argv[1])
try:
    store.record_approval(subject="m@1", target_state="serving", actor=sys.argv[2],
                          decision="approved")
    print("recorded")
except ApprovalRefused:
    print("refused")
"""


def test_racing_approvals_are_each_answered_and_the_chain_holds(spine_url: str) -> None:
    from stack.spine import SpineStore

    SpineStore.open(spine_url).close()
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, spine_url, actor], stdout=subprocess.PIPE, text=True
        )
        for actor in ("lead", "lead", "lead2")
    ]
    answers = sorted(r.communicate(timeout=120)[0].strip() for r in racers)
    assert answers == ["recorded", "recorded", "refused"]
    store = SpineStore.open(spine_url)
    assert sorted(a.actor for a in store.approvals("m@1")) == ["lead", "lead2"]
    assert store.verify_audit().ok
    store.close()


def test_a_champion_rule_on_an_error_metric_compares_lower_as_better() -> None:
    """rmse, mae, log_loss…: a challenger with a larger error regressed, unless the rule says
    otherwise (`higher_is_better: true`)."""
    from stack.config.policy import ChampionRule, Gate
    from stack.contract.registry import ModelVersion
    from stack.contract.tracking import RunRecord, RunRef, RunStatus
    from stack.governance import gates

    def version(number: int) -> ModelVersion:
        return ModelVersion("delivery", number, S.APPROVED, "models:/m", run_id=f"r{number}")

    def run(rmse: float) -> RunRecord:
        return RunRecord(RunRef("r", "e"), RunStatus.FINISHED, metrics={"rmse": rmse})

    def decide(rule: ChampionRule, challenger_rmse: float) -> gates.GateDecision:
        inputs = gates.GateInputs(
            version=version(3),
            run=run(challenger_rmse),
            champion=version(2),
            champion_run=run(59.46),
            checks_present=frozenset(),
            eligible_approvers=(),
        )
        return gates.evaluate(Gate(champion=rule), S.SERVING, inputs)

    rule = ChampionRule.model_validate({"metric": "rmse", "max_regression": 3})
    worse = decide(rule, 65.11)
    assert not worse.passed
    assert "regression 5.65" in worse.explain()
    assert decide(rule, 58.0).passed  # a smaller error is an improvement
    told = ChampionRule.model_validate({"metric": "rmse", "higher_is_better": True})
    assert decide(told, 65.11).passed  # as the recipe says


def test_a_version_whose_recipe_is_gone_is_not_decided_without_its_gates(
    session: StackSession, make_version: Factory, recipe: Recipe
) -> None:
    """The recipe is tagged by path; moved away (another checkout, a CI runner), its gates
    could not be read, and the version went to serving unchecked. Now nothing is decided."""
    version = make_version(0.91)
    recipe.path.rename(recipe.path.with_suffix(".moved"))
    governance = Governance(session)
    for act in (
        lambda: governance.promote(version.ref, S.APPROVED),
        lambda: governance.check(version, S.SERVING),
        lambda: governance.approve(version.ref, S.SERVING, as_actor="lead"),
    ):
        with pytest.raises(StackError, match="which is not on disk"):
            act()
    assert session.registry.get_version(version.model, version.version).state == S.CANDIDATE


def test_a_recipe_given_must_be_the_versions_own_or_declare_its_model(
    session: StackSession, make_version: Factory, tmp_path: Path
) -> None:
    """`--recipe` of another model (or of none) would replace the version's gates."""
    version = make_version(0.91)
    other = tmp_path / "other"
    other.mkdir()
    (other / "recipe.yaml").write_text("name: lax\nsteps:\n  - {name: noop, run: 'steps:noop'}\n")
    (other / "steps.py").write_text("def noop():\n    return None\n")
    with pytest.raises(StackError, match=r"did not build .* and declares no model"):
        Governance(session.with_recipe(load_recipe(other))).promote(version.ref, S.APPROVED)
    assert session.registry.get_version(version.model, version.version).state == S.CANDIDATE


def test_a_copy_of_the_recipe_with_a_weaker_gate_does_not_judge_the_version(
    session: StackSession, make_version: Factory, recipe: Recipe, tmp_path: Path, as_user: User
) -> None:
    """`--recipe` pointing at a copy whose gate was lowered let a failing version through:
    the copy declared the same model. A version is judged by the policy it was built under;
    a copy with that very policy (a CI checkout elsewhere) still stands in, and the audit
    names the file and policy that judged."""
    version = make_version(0.62)  # fails the built-under gate (auc >= 0.75)
    text = recipe.path.read_text()
    weak, same = tmp_path / "weak", tmp_path / "checkout"
    for folder, body in ((weak, text.replace("0.75", "0.5")), (same, text + "description: x\n")):
        folder.mkdir()
        (folder / "recipe.yaml").write_text(body)
        (folder / "steps.py").write_text("def noop():\n    return None\n")
    as_user("ana")
    with pytest.raises(StackError, match=r"weak/recipe.yaml's policy .* is not the one that built"):
        Governance(session.with_recipe(load_recipe(weak))).promote(version.ref, S.APPROVED)
    assert session.registry.get_version(version.model, version.version).state == S.CANDIDATE
    assert not session.spine.audit_entries(subject=version.ref, action="gate.passed")

    good = make_version(0.91)
    recipe.path.rename(recipe.path.with_suffix(".moved"))  # the builder is gone from disk
    copy = load_recipe(same)
    assert copy.policy_digest == recipe.policy_digest
    Governance(session.with_recipe(copy)).promote(good.ref, S.APPROVED)
    [entry] = session.spine.audit_entries(subject=good.ref, action="gate.passed")
    assert entry.payload["policy"] == {"recipe": str(copy.path), "digest": recipe.policy_digest}
    with pytest.raises(GateFailed):  # the copy holds the failing one to the same gate
        Governance(session.with_recipe(copy)).promote(version.ref, S.APPROVED)


def test_an_approval_no_gate_would_count_is_refused_and_audited(
    governance: Governance, make_version: Factory, session: StackSession, as_user: User
) -> None:
    """Approving for a state whose gate has no `approvals` rule (or for a state the version
    has already reached) recorded a sign-off that looked real and counted nowhere."""
    version = make_version(0.91)
    as_user("lead")
    with pytest.raises(ApprovalRefused, match=r"no gate counts approvals of .* for approved"):
        governance.approve(version.ref, S.APPROVED)
    as_user("ana")
    governance.promote(version.ref, S.APPROVED)
    as_user("lead")
    with pytest.raises(ApprovalRefused, match="approved is not a state to approve"):
        governance.approve(version.ref, S.APPROVED)
    refused = session.spine.audit_entries(subject=version.ref, action="approval.refused")
    assert len(refused) == 2
    assert session.spine.approvals(version.ref, "approved") == []


def test_a_version_is_rejected_by_its_author_or_an_approver_only(
    governance: Governance, make_version: Factory, session: StackSession, as_user: User
) -> None:
    mine, theirs = make_version(0.91), make_version(0.91)  # registered by ana
    as_user("mallory")  # in no group
    with pytest.raises(ApprovalRefused, match=r"mallory may not reject .* 'ml-leads'"):
        governance.reject(theirs.ref, reason="spite")
    assert session.registry.get_version(theirs.model, theirs.version).state == S.CANDIDATE
    assert session.spine.audit_entries(subject=theirs.ref, action="rejection.refused")
    as_user("ana")  # its author withdraws it
    assert governance.reject(mine.ref, reason="wrong data").state == S.REJECTED
    as_user("lead")  # an approver
    assert governance.reject(theirs.ref, reason="leaks the label").state == S.REJECTED


def test_an_approval_racing_a_rejection_is_decided_on_the_state_after_it(
    governance: Governance, make_version: Factory, session: StackSession, as_user: User
) -> None:
    """The approval read the state, the rejection was applied, then the approval was
    recorded for a rejected version (counted should it come back). The approval is now
    decided under the model's lock, on the state read there."""
    import threading

    from stack.lifecycle import Lifecycle

    version = make_version(0.91)
    as_user("lead")
    outcome: list[BaseException | None] = []

    def approve() -> None:
        try:
            governance.approve(version.ref, S.SERVING, as_actor="lead")
            outcome.append(None)
        except ApprovalRefused as exc:
            outcome.append(exc)

    with Lifecycle(session).serialized(version.model):  # a rejection in progress
        racer = threading.Thread(target=approve)
        racer.start()
        racer.join(1.0)  # it has read the version and waits for the lock (or has not begun)
        governance.reject(version.ref, reason="leaks the label")
    racer.join(60)
    assert isinstance(outcome[0], ApprovalRefused), outcome
    assert "is rejected" in str(outcome[0])
    assert session.spine.approvals(version.ref, "serving") == []
