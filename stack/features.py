"""A recipe's feature definitions, planned and applied through the FeatureStore role.

The plan is shown before anything changes (as `feast plan` does), a breaking change is refused
whole by the adapter, and an apply is an audit entry written before the store changes, with a
second entry if applying fails, so the log never misses a change that happened."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from stack.config.recipe_file import Recipe
from stack.contract.capabilities import FeaturesCapability
from stack.contract.features import FeatureDefinitions, FeaturePlan, FeatureRepoReader
from stack.errors import CapabilityMissing, StackError
from stack.identity import current_actor
from stack.plugins.capabilities import declares
from stack.session import StackSession


def recipe_definitions(session: StackSession, recipe: Recipe) -> FeatureDefinitions:
    """The definitions a recipe declares inline, or those of the Feast repo it points at."""
    section = recipe.spec.features
    if section is None:
        raise StackError(f"{recipe.path}: the recipe has no `features:` section")
    repo = section.repo_path(recipe.directory)
    if repo is None:
        return section.definitions(recipe.directory)
    if not declares(session, FeaturesCapability.READ_REPO):
        raise CapabilityMissing(
            f"{recipe.path}: `features.repo` needs a feature store that reads tool repos "
            f"(the `read_repo` capability); the stack's ({type(session.features).__name__}) "
            "does not"
        )
    reader = cast(FeatureRepoReader, session.features)  # the registry checked it
    return reader.read_repo(repo)


def plan_features(session: StackSession, recipe: Recipe) -> FeaturePlan:
    return session.features.plan(recipe_definitions(session, recipe))


def apply_features(
    session: StackSession,
    recipe: Recipe,
    *,
    actor: str | None = None,
    show: Callable[[FeaturePlan], None] | None = None,
) -> FeaturePlan:
    """Apply the recipe's definitions whole, or refuse (breaking changes) changing nothing.
    `show` sees the plan before anything is applied (the CLI prints it)."""
    who = actor or current_actor()
    definitions = recipe_definitions(session, recipe)
    store = session.features
    plan = store.plan(definitions)
    if show is not None:
        show(plan)
    subject = f"recipe:{recipe.name}"
    if plan.breaking:
        raise StackError(
            f"{recipe.path}: refusing feature changes that break existing views, nothing "
            "applied:\n  " + "\n  ".join(plan.breaking) + "\n  add a new view (or a new "
            "feature) instead of changing one in place"
        )
    if plan.is_empty:
        return plan
    payload = {"add": list(plan.to_add), "update": list(plan.to_update)}
    session.spine.audit(actor=who, action="features.applied", subject=subject, payload=payload)
    try:
        store.apply(definitions)
    except Exception as exc:
        session.spine.audit(
            actor=who,
            action="features.apply_failed",
            subject=subject,
            reason=f"{type(exc).__name__}: {exc}",
            payload=payload,
        )
        raise
    return plan


def render_plan(plan: FeaturePlan) -> str:
    """The plan as `feast plan` would show it: one line per view, breaking changes last."""
    if plan.is_empty:
        return "No changes: the feature store matches the definitions."
    lines = [f"  + create view {name}" for name in plan.to_add]
    lines += [f"  ~ update view {name}" for name in plan.to_update]
    lines += [f"  - delete view {name}" for name in plan.to_delete]
    lines += [f"  ! breaking: {reason}" for reason in plan.breaking]
    return "\n".join(["Plan:", *lines])
