"""`mlstack run RECIPE` and `mlstack runs`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from stack.cli.common import open_session
from stack.hooks.specs import hookimpl


class ConsoleProgress:
    """Prints a line per step as the lifecycle events fire (a hook like any user's)."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(highlight=False)

    @hookimpl
    def on_run_started(self, run_id: str, recipe: str) -> None:
        self.console.print(f"[bold]run[/bold] {recipe} [dim]{run_id}[/dim]")

    @hookimpl
    def on_step_started(self, run_id: str, step: str) -> None:
        self.console.print(f"  [cyan]…[/cyan] {step}")

    @hookimpl
    def on_step_finished(self, run_id: str, step: str, status: str) -> None:
        mark = {"succeeded": "[green]✓[/green]", "reused": "[blue]↺[/blue]"}.get(
            status, "[red]✗[/red]"
        )
        self.console.print(f"  {mark} {step} [dim]{status}[/dim]")

    @hookimpl
    def on_run_finished(self, run_id: str, recipe: str, state: str) -> None:
        colour = "green" if state == "succeeded" else "red"
        self.console.print(f"[{colour}]{state}[/{colour}] {recipe} [dim]{run_id}[/dim]")


@click.command()
@click.argument("recipe_location", metavar="RECIPE", type=click.Path(exists=True))
@click.option("--resume", metavar="RUN_ID", help="Resume this failed run from its failed step.")
@click.option("--quiet", "-q", is_flag=True, help="No per-step lines.")
@click.pass_context
def run(ctx: click.Context, recipe_location: str, resume: str | None, quiet: bool) -> None:
    """Run RECIPE (a folder with recipe.yaml, or the file) on the stack."""
    from stack.config.recipe_file import load_recipe

    recipe = load_recipe(Path(recipe_location))
    with open_session(ctx, recipe) as session:
        for target in recipe.spec.hooks:
            session.hooks.register_target(target, origin=str(recipe.path))
        if not quiet:
            session.hooks.register(ConsoleProgress(), name="mlstack-console")
        result = session.orchestrator.run(recipe, session, resume=resume)
    click.echo(f"run {result.run_id}: {result.state}")


@click.command()
@click.option("--recipe", default=None, help="Only runs of this recipe.")
@click.option("--limit", default=10, show_default=True)
@click.pass_context
def runs(ctx: click.Context, recipe: str | None, limit: int) -> None:
    """List recent pipeline runs with the status of each step."""
    with open_session(ctx) as session:
        records = session.spine.pipeline_runs(recipe=recipe, limit=limit)
    if not records:
        click.echo("no runs yet")
    for record in records:
        resumed = f" (resumes {record.resumed_from})" if record.resumed_from else ""
        click.echo(
            f"{record.run_id}  {record.recipe}  {record.state}  "
            f"{record.started_at:%Y-%m-%d %H:%M:%S}{resumed}"
        )
        for step in record.steps:
            detail: Any = f"  {step.error}" if step.error else ""
            click.echo(f"    {step.status:<10} {step.step}{detail}")
