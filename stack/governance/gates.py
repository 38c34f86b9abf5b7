"""Evaluate a gate: every rule is checked and reported with its numbers, pass or fail."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stack.config.policy import ApprovalRule, ChampionRule, Gate
from stack.contract.registry import InputSchema, ModelVersion
from stack.contract.states import LifecycleState
from stack.contract.tracking import RunRecord


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class GateDecision:
    subject: str
    target: LifecycleState
    results: tuple[RuleResult, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target.value,
            "passed": self.passed,
            "rules": [
                {"rule": r.rule, "passed": r.passed, "detail": r.detail} for r in self.results
            ],
        }

    def explain(self) -> str:
        lines = [
            f"gate to {self.target.value} for {self.subject}: "
            f"{'passed' if self.passed else 'FAILED'}"
        ]
        lines += [f"  {'ok  ' if r.passed else 'FAIL'} {r.rule}: {r.detail}" for r in self.results]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class GateInputs:
    """What the rules look at, gathered by the caller from the tracker, registry and spine."""

    version: ModelVersion
    run: RunRecord | None
    champion: ModelVersion | None
    champion_run: RunRecord | None
    checks_present: frozenset[str]
    eligible_approvers: tuple[str, ...]
    input_schema: InputSchema | None = None  # None: the registry cannot tell


# States a version can only reach if an endpoint could serve it: one that cannot validate
# requests never gets past `approved`.
SERVABLE_STATES = frozenset(
    {
        LifecycleState.APPROVED,
        LifecycleState.CANARY,
        LifecycleState.SHADOW,
        LifecycleState.SERVING,
    }
)


def evaluate(gate: Gate, target: LifecycleState, inputs: GateInputs) -> GateDecision:
    results: list[RuleResult] = []
    metrics = dict(inputs.run.metrics) if inputs.run else {}
    for name, bound in gate.thresholds.items():
        value = metrics.get(name)
        if value is None:
            results.append(RuleResult(f"threshold {name}", False, "no such metric on the run"))
            continue
        ok = (bound.min is None or value >= bound.min) and (bound.max is None or value <= bound.max)
        limits = " and ".join(
            part
            for part in (
                f">= {bound.min:g}" if bound.min is not None else "",
                f"<= {bound.max:g}" if bound.max is not None else "",
            )
            if part
        )
        results.append(RuleResult(f"threshold {name}", ok, f"{value:g} (needs {limits})"))
    if gate.champion is not None:
        results.append(_champion(gate.champion, inputs, metrics))
    for check in gate.checks:
        present = check in inputs.checks_present
        results.append(RuleResult(f"check {check}", present, "present" if present else "missing"))
    if gate.approvals is not None:
        have, need = len(inputs.eligible_approvers), gate.approvals.count
        who = ", ".join(inputs.eligible_approvers) or "nobody"
        group = f" from {gate.approvals.group}" if gate.approvals.group else ""
        results.append(RuleResult("approvals", have >= need, f"{have} of {need}{group} ({who})"))
    schema = inputs.input_schema
    if schema is not None and target in SERVABLE_STATES:
        columns = ", ".join(f"{c.name}:{c.type}" for c in schema.columns)
        results.append(RuleResult("signature", schema.problem is None, schema.problem or columns))
    return GateDecision(inputs.version.ref, target, tuple(results))


def _champion(rule: ChampionRule, inputs: GateInputs, metrics: dict[str, float]) -> RuleResult:
    name = f"champion {rule.metric}"
    if inputs.champion is None or inputs.champion.ref == inputs.version.ref:
        return RuleResult(name, True, "no serving version to compare with")
    ours = metrics.get(rule.metric)
    theirs = dict(inputs.champion_run.metrics).get(rule.metric) if inputs.champion_run else None
    if ours is None or theirs is None:
        missing = inputs.version.ref if ours is None else inputs.champion.ref
        return RuleResult(name, False, f"{missing} has no {rule.metric} to compare")
    if rule.same_dataset:
        mine = _digest(inputs.run, rule.same_dataset)
        other = _digest(inputs.champion_run, rule.same_dataset, mine)
        if mine is None or mine != other:
            return RuleResult(
                name,
                False,
                f"not evaluated on the same {rule.same_dataset!r} data "
                f"({mine or 'none'} vs {other or 'none'})",
            )
    if rule.max_ratio is not None:
        if rule.higher_is_better:
            ok, allowed = ours >= theirs / rule.max_ratio, f"at least {1 / rule.max_ratio:.2f}x"
        else:
            ok, allowed = ours <= theirs * rule.max_ratio, f"at most {rule.max_ratio:.2f}x"
        ratio = f"{ours / theirs:.2f}x" if theirs else "no ratio: the champion's is 0"
        return RuleResult(
            name, ok, f"{ours:g} vs {theirs:g} for {inputs.champion.ref} ({ratio}, {allowed})"
        )
    regression = (theirs - ours) if rule.higher_is_better else (ours - theirs)
    ok = regression <= rule.max_regression
    return RuleResult(
        name,
        ok,
        f"{ours:g} vs {theirs:g} for {inputs.champion.ref} "
        f"(regression {max(regression, 0):g}, allowed {rule.max_regression:g})",
    )


def _digest(run: RunRecord | None, dataset: str, prefer: str | None = None) -> str | None:
    """The digest of `run`'s dataset named `dataset`: `prefer` when one of them has it (a
    champion evaluated again on newer rows keeps the older dataset too), else the first."""
    if run is None:
        return None
    digests = [d.digest for d in run.datasets if d.name == dataset]
    return prefer if prefer in digests else next(iter(digests), None)


def counted_approvers(
    approvals: Iterable[tuple[str, str]],
    rule: ApprovalRule | None,
    groups: Mapping[str, tuple[str, ...]],
    author: str | None,
) -> tuple[str, ...]:
    """The approvers an `approvals` rule counts, in order, from (actor, decision) pairs of one
    version and target: distinct, `approved`, in the rule's group (`groups`: the stack
    file's), and not the version's `author` unless the rule allows it."""
    counted: list[str] = []
    for actor, decision in approvals:
        if decision != "approved" or actor in counted:
            continue
        if rule is not None and rule.group and actor not in groups.get(rule.group, ()):
            continue
        if actor == author and not (rule and rule.allow_author):
            continue
        counted.append(actor)
    return tuple(counted)
