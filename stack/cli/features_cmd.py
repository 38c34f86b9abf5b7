"""`mlstack features plan|apply|materialize`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from stack.cli.common import open_session, parse_moment

RECIPE = click.argument("recipe_location", metavar="RECIPE", type=click.Path(exists=True))


@click.group("features")
def features_group() -> None:
    """Plan and apply a recipe's feature definitions; load the online store."""


@features_group.command()
@RECIPE
@click.pass_context
def plan(ctx: click.Context, recipe_location: str) -> None:
    """Show what `apply` would change in the feature store (nothing is changed)."""
    from stack.config.recipe_file import load_recipe
    from stack.features import plan_features, render_plan

    recipe = load_recipe(Path(recipe_location))
    with open_session(ctx, recipe) as session:
        click.echo(render_plan(plan_features(session, recipe)))


@features_group.command()
@RECIPE
@click.pass_context
def apply(ctx: click.Context, recipe_location: str) -> None:
    """Show the plan, then apply it whole; a change that breaks a view applies nothing."""
    from stack.config.recipe_file import load_recipe
    from stack.features import apply_features, render_plan

    recipe = load_recipe(Path(recipe_location))
    with open_session(ctx, recipe) as session:
        applied = apply_features(session, recipe, show=lambda plan: click.echo(render_plan(plan)))
    if not applied.is_empty:
        click.echo(f"applied: {len(applied.to_add)} created, {len(applied.to_update)} updated")


@features_group.command()
@click.option("--end", help="Load feature values up to this time (ISO; default now).")
@click.option("--start", help="From this time (default: where the last load stopped).")
@click.pass_context
def materialize(ctx: click.Context, end: str | None, start: str | None) -> None:
    """Load the online store with feature values from the offline store."""
    until = parse_moment(end) or datetime.now(UTC)
    with open_session(ctx) as session:
        views = session.features.materialize(until, start=parse_moment(start))
    click.echo(f"materialized {views} feature views up to {until.isoformat()}")
