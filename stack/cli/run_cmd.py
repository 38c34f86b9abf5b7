"""`mlstack run RECIPE` and `mlstack runs`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from stack.cli.common import open_existing_session, open_session, stack_path, store_of
from stack.hooks.specs import hookimpl

if TYPE_CHECKING:
    from stack.config.param_overrides import ParamOverride


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


class RunStarted:
    """Remembers the run id, so that Ctrl-C can say how to resume it."""

    run_id: str | None = None

    @hookimpl
    def on_run_started(self, run_id: str, recipe: str) -> None:
        self.run_id = run_id


def _parse_params(
    ctx: click.Context, option: click.Parameter, values: tuple[str, ...]
) -> tuple[ParamOverride, ...]:
    """Each `--param` as a ParamOverride; a malformed one is a usage error naming it."""
    if not values:
        return ()
    from stack.config.param_overrides import MalformedOverride, parse_override

    try:
        return tuple(parse_override(value) for value in values)
    except MalformedOverride as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=option) from None


@click.command()
@click.argument("recipe_location", metavar="RECIPE", type=click.Path(exists=True))
@click.option(
    "--param",
    "-P",
    "params",
    multiple=True,
    metavar="STEP.NAME=VALUE",
    callback=_parse_params,
    help="Set a param that recipe.yaml declares for STEP, for this run (repeatable). "
    "VALUE is YAML, as in the recipe: 300 is an int, 0.1 a float, true a bool, [a, b] a "
    "list, '\"300\"' a string. Recorded with the run (`mlstack runs`); a resumed run keeps "
    "the params of the run it resumes.",
)
@click.option(
    "--resume",
    metavar="RUN_ID",
    help="Resume this failed run from its failed step, or an abandoned one (its process "
    "died) from the step that was interrupted, once what it left behind is put back.",
)
@click.option("--quiet", "-q", is_flag=True, help="No per-step lines.")
@click.pass_context
def run(
    ctx: click.Context,
    recipe_location: str,
    params: tuple[ParamOverride, ...],
    resume: str | None,
    quiet: bool,
) -> None:
    """Run RECIPE (a folder with recipe.yaml, or the file) on the stack.

    \b
      mlstack run recipes/quickstart
      mlstack run recipes/quickstart --param train.C=0.5 --param train.max_iter=400
      mlstack run recipes/quickstart --resume RUN_ID

    Each --param must name a step of the recipe and a param that step declares under
    `params:` in recipe.yaml (to vary another argument of the step's function, declare it
    there with its default). Every --param is checked against the steps' functions before
    anything runs."""
    from stack.preflight import preflight

    # Every check `stack validate` makes, before the stack (or any run) is touched.
    checked = preflight(stack_path(ctx), Path(recipe_location), overrides=params)
    recipe = checked.recipe
    assert recipe is not None  # preflight was given one
    with open_session(ctx, recipe) as session:  # the session registers the recipe's hooks
        # even with --quiet: which stack and store a run used is not progress (the current
        # folder's, unless --stack says otherwise: a recipe's own folder is not looked in)
        click.echo(f"stack: {store_of(session)}", err=True)
        note = checked.embedded_note()
        if note:
            click.echo(note, err=True)
        if not quiet:
            session.hooks.register(ConsoleProgress(), name="mlstack-console")
        started = RunStarted()
        session.hooks.register(started, name="mlstack-run-started")
        try:
            result = session.orchestrator.run(session, resume=resume)
        except KeyboardInterrupt:
            if started.run_id is not None:  # recorded failed at the step it stopped in
                click.echo(
                    f"\nresume with: mlstack run {recipe_location} --resume {started.run_id}",
                    err=True,
                )
            raise
    click.echo(f"run {result.run_id}: {result.state}")


@click.command()
@click.option("--recipe", default=None, help="Only runs of this recipe.")
@click.option("--limit", default=10, show_default=True)
@click.pass_context
def runs(ctx: click.Context, recipe: str | None, limit: int) -> None:
    """List recent pipeline runs with the status of each step.

    A run recorded as running is judged by its lease: `abandoned` when its process died
    (resume it with `mlstack run RECIPE --resume RUN_ID`), `stale` when it runs on another
    host that has not renewed its lease lately (see `mlstack doctor`)."""
    from stack.orchestration.reconcile import describe_state

    with open_existing_session(ctx) as session:
        records = session.spine.pipeline_runs(recipe=recipe, limit=limit)
    if not records:
        click.echo("no runs yet")
    for record in records:
        resumed = f" (resumes {record.resumed_from})" if record.resumed_from else ""
        click.echo(
            f"{record.run_id}  {record.recipe}  {describe_state(record)}  "
            f"{record.started_at:%Y-%m-%d %H:%M:%S}{resumed}"
        )
        if record.param_overrides:
            click.echo("    params  " + " ".join(record.param_overrides))
        for step in record.steps:
            line = f"    {step.status:<10} {step.step}  "
            # the error's further lines (where in the recipe's code) under its first
            detail = (step.error or "").replace("\n", "\n" + " " * len(line))
            click.echo((line + detail).rstrip())
