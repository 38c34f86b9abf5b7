"""`mlstack compile` and `mlstack schedule`: a recipe for the orchestrator that runs it."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click

from stack.cli.common import open_session

RECIPE = click.argument("recipe_location", metavar="RECIPE", type=click.Path(exists=True))


@click.command()
@RECIPE
@click.option("--output", "-o", type=click.Path(dir_okay=False), required=True)
@click.pass_context
def compile_recipe(ctx: click.Context, recipe_location: str, output: str) -> None:
    """Compile RECIPE for the stack's orchestrator (a Kubeflow pipeline's IR YAML)."""
    from stack.config.recipe_file import load_recipe
    from stack.contract.capabilities import OrchestratorCapability
    from stack.contract.orchestration import PipelineCompiler
    from stack.contract.roles import Role
    from stack.errors import StackError
    from stack.plugins.capabilities import declares

    recipe = load_recipe(Path(recipe_location))
    with open_session(ctx, recipe) as session:
        if not declares(session, OrchestratorCapability.COMPILE):
            adapter = session.resolved[Role.ORCHESTRATOR].adapter
            raise StackError(
                f"the orchestrator {adapter!r} runs recipes as they are; only one with the "
                "`compile` capability (kfp) writes a pipeline file"
            )
        compiler = cast(PipelineCompiler, session.orchestrator)  # the registry checked it
        written = compiler.compile(recipe, Path(output))
    click.echo(f"compiled {recipe.name} -> {written}")


@click.command()
@RECIPE
@click.option("--cron", required=True, help="Five fields: minute hour day month weekday.")
@click.option("--name", help="The schedule's name (default: the recipe's).")
@click.pass_context
def schedule(ctx: click.Context, recipe_location: str, cron: str, name: str | None) -> None:
    """Run RECIPE on a schedule kept by the stack's orchestrator (or print the crontab line)."""
    from stack.config.recipe_file import load_recipe
    from stack.orchestration.schedule import schedule as create

    recipe = load_recipe(Path(recipe_location))
    with open_session(ctx, recipe) as session:
        click.echo(create(session, recipe, cron=cron, name=name))
