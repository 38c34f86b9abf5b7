"""What a breached check does: roll back the breached versions rolling out, and start the
retraining the recipe's policy asks for."""

from __future__ import annotations

from stack.config.monitoring import MonitoringSection
from stack.config.recipe_file import Recipe
from stack.monitoring.results import MonitoringOutcome
from stack.monitoring.retrain import RetrainOutcome, maybe_retrain
from stack.session import StackSession


def roll_back(session: StackSession, outcome: MonitoringOutcome) -> list[str]:
    """Each breached version that is rolling out beside the serving one, rolled back
    (when the recipe's `rollback` policy asks); what was done, as lines to show."""
    if not outcome.section.rollback.enabled or not outcome.breached:
        return []
    from stack.rollout.controller import RolloutController

    controller = RolloutController(session_for(session, outcome.recipe))
    name = outcome.section.endpoint or outcome.model
    done: list[str] = []
    for check in outcome.checks:
        if check.status != "breach" or check.version not in controller.challengers(name):
            continue
        why = f"monitoring: {'; '.join(check.breaches)}"
        result = controller.rollback(
            outcome.model, endpoint=name, challenger=check.version, reason=why
        )
        weights = result.endpoint.split.weights
        serves = max(weights, key=lambda ref: weights[ref])
        done.append(f"{check.version} rolled back on {name}; {serves} serves ({why})")
    return done


def retrain(session: StackSession, outcome: MonitoringOutcome) -> RetrainOutcome | None:
    """The retraining a breached assessment calls for (None when the policy asks none)."""
    breached = [c for c in outcome.checks if c.status == "breach"]
    recipe = _retraining_recipe(outcome.recipe, outcome.section)
    return maybe_retrain(
        session_for(session, recipe),
        model=outcome.model,
        policy=outcome.section.retrain,
        breaches=[b for c in breached for b in c.breaches],
        now=outcome.until,
    )


def session_for(session: StackSession, recipe: Recipe | None) -> StackSession:
    """`session`, owning `recipe` (the one an assessment applied; its hooks registered)."""
    if recipe is None or recipe is session.recipe:
        return session
    return session.with_recipe(recipe)


def _retraining_recipe(recipe: Recipe | None, section: MonitoringSection) -> Recipe | None:
    """The recipe `retrain.recipe` names (relative to the monitored recipe), or that one."""
    if recipe is None or section.retrain.recipe is None:
        return recipe
    from stack.config.recipe_file import load_recipe

    return load_recipe(recipe.directory / section.retrain.recipe)
