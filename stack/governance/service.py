"""Governance: approve, reject and promote through the recipe's gates, every decision audited.

The rules: a promotion passes its gate (thresholds, champion comparison, checks, approvals)
or the version stays where it was, with the failing rules and their numbers in the error and
in the audit log. Approvals come from the right group and never from the model's own author
(unless the policy says so); a refused approval is audited too. After each state change the
model card is written again and logged to the tracker.
"""

from __future__ import annotations

from typing import TypeAlias

from stack.config.policy import Gate
from stack.config.recipe_file import Recipe
from stack.contract.registry import InputSchema, InputSchemaReader, ModelSelector, ModelVersion
from stack.contract.roles import Role
from stack.contract.states import LifecycleState, approvable_for, can_transition
from stack.contract.tracking import RunRecord
from stack.errors import ApprovalRefused, GateFailed, NotFound, StackError
from stack.governance import cards, gates
from stack.identity import Actor, resolve_actor
from stack.lifecycle import Lifecycle, StateChange
from stack.session import StackSession
from stack.spine.lineage import NodeKind, NodeRef
from stack.spine.records import Approval

_NOT_APPROVABLE = (LifecycleState.REJECTED, LifecycleState.RETIRED)
#: What names a version: a `ModelVersion` (read again: its state now), a `ModelSelector`,
#: or the text of one (`churn@3`, `churn@serving`), parsed here by `ModelSelector.parse`.
Selected: TypeAlias = ModelVersion | ModelSelector | str


class Governance:
    """Approvals and gated promotions of a session's versions: `Governance(ctx.session)` in a
    step, `mlstack promote|approve|reject` on the command line. The policy a version is held
    to is its recipe's, as the session says (`StackSession.recipe_for`)."""

    def __init__(self, session: StackSession, recipe: Recipe | None = None) -> None:
        """`recipe` is deprecated (the session owns its recipe): passed, the session is
        viewed as owning it (`StackSession.for_recipe`)."""
        # a view (a prompt registry's) is kept as it is: only a passed recipe makes another
        self.session = session if recipe is None else session.for_recipe(recipe, "Governance")

    # -- who and what -------------------------------------------------------------------

    def actor(self, name: str | None = None) -> Actor:
        """The acting identity; `name` is for code that acts as a configured identity (the
        demo's approver, a bot), with that name's groups from the stack file."""
        identity = self.session.stack.identity
        if name is not None:
            groups = frozenset(g for g, members in identity.groups.items() if name in members)
            return Actor(name=name, groups=groups, source="code")
        secret = identity.token_secret.get_secret_value() if identity.token_secret else None
        return resolve_actor(dict(identity.groups), secret)

    def version(self, selector: Selected) -> ModelVersion:
        """The version `selector` names (`churn@3`, or `churn@serving`: the newest in that
        state; a ModelVersion: as the registry reads it now). Raises NotFound when there is
        none, StackError for a malformed selector."""
        registry = self.session.registry
        if isinstance(selector, ModelVersion):
            return registry.get_version(selector.model, selector.version)
        parsed = selector if isinstance(selector, ModelSelector) else ModelSelector.parse(selector)
        if parsed.version is not None:
            return registry.get_version(parsed.model, parsed.version)
        assert parsed.state is not None
        found = registry.find_by_state(parsed.model, parsed.state)
        if not found:
            raise NotFound(f"no version of {parsed.model!r} is {parsed.state.value}")
        return found[-1]

    def gate_for(self, version: ModelVersion, target: LifecycleState) -> Gate | None:
        """The gate `version` passes to enter `target` (None: none). Raises StackError when its
        recipe cannot be read (see `StackSession.recipe_for`)."""
        recipe = self.session.recipe_for(version)
        return recipe.spec.promotion.gates.get(target) if recipe else None

    def author(self, version: ModelVersion) -> str | None:
        registered = self.session.spine.audit_entries(
            subject=version.ref, action="model.registered"
        )
        return registered[0].actor if registered else None

    # -- approvals ----------------------------------------------------------------------

    def approve(
        self,
        selector: Selected,
        target: LifecycleState,
        *,
        reason: str = "",
        as_actor: str | None = None,
    ) -> Approval:
        """Record the acting identity's approval of `selector` for `target` (what a gate's
        `approvals` rule counts). Raises ApprovalRefused (audited) when the actor is not in
        the gate's group, registered the version itself, or the version is rejected/retired."""
        actor = self.actor(as_actor)
        chosen = self.version(selector)
        # under the model's lock, on the state read there: a rejection racing this approval
        # is applied before it (and refuses it) or after it, never in between
        with Lifecycle(self.session).serialized(chosen.model):
            version = self.session.registry.get_version(chosen.model, chosen.version)
            refusal = self._approval_refusal(version, target, actor)
            if refusal:
                self.session.spine.audit(
                    actor=actor.name,
                    action="approval.refused",
                    subject=version.ref,
                    reason=refusal,
                    payload={"target_state": target.value},
                )
                raise ApprovalRefused(refusal)
            try:
                approval = self.session.spine.record_approval(
                    subject=version.ref,
                    target_state=target.value,
                    actor=actor.name,
                    decision="approved",
                    reason=reason,
                )
            except ApprovalRefused as exc:
                self.session.spine.audit(
                    actor=actor.name,
                    action="approval.refused",
                    subject=version.ref,
                    reason=str(exc),
                    payload={"target_state": target.value},
                )
                raise
        self._write_card(version)
        return approval

    def _approval_refusal(
        self, version: ModelVersion, target: LifecycleState, actor: Actor
    ) -> str | None:
        if version.state in _NOT_APPROVABLE:
            return f"{version.ref} is {version.state.value}; it cannot be approved" + Lifecycle(
                self.session
            ).way_back(version)
        if not approvable_for(target, version.state):
            return (
                f"{target.value} is not a state to approve {version.ref} for (it is "
                f"{version.state.value}: an approval is for a state ahead of it)"
            )
        gate = self.gate_for(version, target)
        rule = gate.approvals if gate else None
        if rule is None:  # recorded, it would look like a sign-off that nothing counts
            return (
                f"no gate counts approvals of {version.model} for {target.value}: its "
                f"recipe's {target.value} gate has no `approvals` rule"
            )
        if rule is not None and rule.group and not actor.in_group(rule.group):
            return (
                f"{actor.name} is not in group {rule.group!r}, which approves "
                f"{version.model} for {target.value}"
            )
        allow_author = rule.allow_author if rule else False
        if not allow_author and actor.name == self.author(version):
            return f"{actor.name} registered {version.ref} and cannot approve it"
        return None

    def eligible_approvers(self, version: ModelVersion, target: LifecycleState) -> tuple[str, ...]:
        gate = self.gate_for(version, target)
        approvals = self.session.spine.approvals(version.ref, target.value)
        return gates.counted_approvers(
            ((a.actor, a.decision) for a in approvals),
            gate.approvals if gate else None,
            self.session.stack.identity.groups,
            self.author(version),
        )

    # -- decisions ----------------------------------------------------------------------

    def reject(
        self, selector: Selected, *, reason: str, as_actor: str | None = None
    ) -> ModelVersion:
        """Move `selector` to `rejected` (where the lifecycle allows it), audited.
        Raises ApprovalRefused (audited as `rejection.refused`) when the actor may not: a
        version is rejected by its author (withdrawing it) or by a member of a group its
        gates name as approvers; anyone may when its gates name no group."""
        actor = self.actor(as_actor)
        version = self.version(selector)
        refusal = self._rejection_refusal(version, actor)
        if refusal:
            self.session.spine.audit(
                actor=actor.name, action="rejection.refused", subject=version.ref, reason=refusal
            )
            raise ApprovalRefused(refusal)
        updated = Lifecycle(self.session).transition(
            version.model,
            version.version,
            LifecycleState.REJECTED,
            actor=actor.name,
            reason=reason,
        )
        return updated

    def _rejection_refusal(self, version: ModelVersion, actor: Actor) -> str | None:
        recipe = self.session.recipe_for(version, required=False)
        gates_ = recipe.spec.promotion.gates.values() if recipe else ()
        groups = sorted({g.approvals.group for g in gates_ if g.approvals and g.approvals.group})
        if not groups or actor.name == self.author(version):
            return None
        if any(actor.in_group(group) for group in groups):
            return None
        return (
            f"{actor.name} may not reject {version.ref}: it is rejected by its author or by "
            f"a member of {', '.join(repr(g) for g in groups)} (the groups its gates name)"
        )

    def check(self, version: ModelVersion, target: LifecycleState) -> gates.GateDecision:
        """Evaluate the gate without acting (what `promote` would decide)."""
        gate = self.gate_for(version, target) or Gate()
        registry = self.session.registry
        champions = registry.find_by_state(version.model, LifecycleState.SERVING)
        champion = champions[0] if champions else None
        return gates.evaluate(
            gate,
            target,
            gates.GateInputs(
                version=version,
                run=self._run(version),
                champion=champion,
                champion_run=self._run(champion) if champion else None,
                checks_present=self._checks_present(version),
                eligible_approvers=self.eligible_approvers(version, target),
                input_schema=self._input_schema(version, target),
            ),
        )

    def _input_schema(self, version: ModelVersion, target: LifecycleState) -> InputSchema | None:
        registry = self.session.registry
        if target not in gates.SERVABLE_STATES or not isinstance(registry, InputSchemaReader):
            return None
        return registry.input_schema(version)

    def promote(
        self,
        selector: Selected,
        target: LifecycleState,
        *,
        reason: str = "",
        as_actor: str | None = None,
    ) -> ModelVersion:
        """Pass the gate for `target`, then move the version; returns it in its new state.

        The gate's every rule (thresholds, champion, checks, approvals, signature) is
        audited (`gate.passed` / `gate.failed`). Raises GateFailed (its `decision` holds each
        rule with its numbers; the version stays where it was), InvalidTransition for a move
        the lifecycle does not allow, Vetoed when a hook refuses. See `promotion`."""
        return self.promotion(selector, target, reason=reason, as_actor=as_actor).version

    def promotion(
        self,
        selector: Selected,
        target: LifecycleState,
        *,
        reason: str = "",
        as_actor: str | None = None,
    ) -> StateChange:
        """`promote`, returning the whole change: the version, the state it left and the
        versions it displaced (retired, each audited).

        The gate is decided under the model's lock (`Lifecycle.serialized`) on the state
        read there: racing promotions of one model are decided and applied one at a time,
        each against the champion the one before it left, and a version another process
        moved meanwhile is judged where it is now (InvalidTransition when it can no longer
        make the move)."""
        actor = self.actor(as_actor)
        version = self.version(selector)
        return Lifecycle(self.session).change(
            version.model,
            version.version,
            target,
            actor=actor.name,
            reason=reason,
            decide=lambda current: self._decide(current, target, actor, reason, audit_pass=True),
        )

    def require(self, version: ModelVersion, target: LifecycleState, *, reason: str = "") -> None:
        """Decide `target`'s gate for `version` without moving it (before a deploy sends it
        traffic): a refusal is audited and raised exactly as `promote` would; a pass is left
        for the `promote` that follows to record."""
        self._decide(version, target, self.actor(), reason, audit_pass=False)

    def _decide(
        self,
        version: ModelVersion,
        target: LifecycleState,
        actor: Actor,
        reason: str,
        *,
        audit_pass: bool,
    ) -> None:
        if not can_transition(version.state, target):  # no gate for a move that cannot happen
            raise Lifecycle(self.session).refusal(version, target)
        decision = self.check(version, target)
        if decision.passed and not audit_pass:
            return
        recipe = self.session.recipe_for(version)
        policy = {"recipe": str(recipe.path), "digest": recipe.policy_digest} if recipe else None
        self.session.spine.audit(
            actor=actor.name,
            action="gate.passed" if decision.passed else "gate.failed",
            subject=version.ref,
            reason=reason,
            payload={**decision.to_json(), "policy": policy},  # which file's gate judged it
        )
        if not decision.passed:
            raise GateFailed(
                decision.explain() + f"\n{version.ref} stays {version.state.value}", decision
            )

    # -- helpers ------------------------------------------------------------------------

    def _run(self, version: ModelVersion) -> RunRecord | None:
        if version.run_id is None or not self.session.has(Role.TRACKER):
            return None
        try:
            return self.session.tracker.get_run(version.run_id)
        except StackError:
            return None

    def _checks_present(self, version: ModelVersion) -> frozenset[str]:
        present = set()
        if cards.card_paths(self.session, version.ref).markdown.exists():
            present.add("model_card")
        if version.run_id is not None:  # its training run saved a monitoring reference
            upstream = self.session.spine.upstream(NodeRef(NodeKind.RUN, version.run_id))
            if any(e.relation == "reference_of" for e in upstream):
                present.add("drift_baseline")
        return frozenset(present)

    def _write_card(self, version: ModelVersion) -> None:
        cards.write_card(self.session, version, self.session.recipe_for(version, required=False))

    def write_card(self, selector: Selected) -> cards.CardPaths:
        version = self.version(selector)
        return cards.write_card(
            self.session, version, self.session.recipe_for(version, required=False)
        )
