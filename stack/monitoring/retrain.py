"""Retraining on a breach: the recipe that built the model runs again through the stack's
orchestrator. One retraining per cooldown (the first breach of an episode starts it; the
checks that follow see the cooldown), and `on_retrain_requested` may veto it. The run
registers its model as a candidate, which passes the recipe's promotion gate like any other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stack.config.monitoring import RetrainPolicy
from stack.errors import StackError, Vetoed
from stack.identity import current_actor
from stack.session import StackSession

STARTED = "retraining.started"


@dataclass(frozen=True, slots=True)
class RetrainOutcome:
    started: bool
    reason: str
    run_id: str | None = None
    state: str | None = None


def maybe_retrain(
    session: StackSession,
    *,
    model: str,
    policy: RetrainPolicy,
    breaches: list[str],
    now: datetime,
) -> RetrainOutcome | None:
    """Start the retraining the policy asks for (the session's recipe runs again, its hooks
    asked first), or say why not; None when it asks none."""
    if not policy.enabled or not breaches:
        return None
    recipe = session.recipe
    if recipe is None:
        return RetrainOutcome(False, f"no recipe on disk for {model}: cannot retrain")
    earlier = session.spine.events(subject=model, name=STARTED)
    if earlier and now - earlier[-1].at < policy.cooldown:
        until = earlier[-1].at + policy.cooldown
        return RetrainOutcome(
            False,
            f"cooldown: a retraining started at {earlier[-1].at:%Y-%m-%d %H:%M:%S} UTC; "
            f"the next may start after {until:%Y-%m-%d %H:%M:%S} UTC",
        )
    reason = "; ".join(breaches)
    try:
        session.emit("on_retrain_requested", subject=model, model=model, reason=reason)
    except Vetoed as exc:
        return RetrainOutcome(False, str(exc))
    actor = current_actor()
    session.spine.record_event(STARTED, model, {"recipe": recipe.name, "reason": reason})
    session.spine.audit(
        actor=actor, action=STARTED, subject=model, reason=reason, payload={"recipe": recipe.name}
    )
    try:
        result = session.orchestrator.run(session)
    except StackError as exc:  # a failed step: recorded by the orchestrator, reported here
        session.spine.audit(actor=actor, action="retraining.failed", subject=model, reason=str(exc))
        return RetrainOutcome(True, reason, state=f"failed: {exc}")
    session.spine.audit(
        actor=actor,
        action="retraining.finished",
        subject=model,
        reason=reason,
        payload={"run_id": result.run_id, "state": result.state.value},
    )
    return RetrainOutcome(True, reason, result.run_id, result.state.value)
