"""`mlstack prompts register|list|show|diff|promote|approve`: prompt versions, with the
lifecycle, gates, approvals and audit of model versions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from stack.cli.common import VERSION, open_existing_session, open_session

if TYPE_CHECKING:
    from stack.contract.registry import ModelSelector

STATES = click.Choice(["approved", "canary", "shadow", "serving", "rejected", "retired"])
TARGETS = click.Choice(["candidate", *STATES.choices])  # candidate: a retired one comes back
RECIPE = click.option(
    "--recipe", "recipe_location", type=click.Path(exists=True), help="Whose gates apply."
)


@click.group("prompts")
def prompts_group() -> None:
    """Prompts as versioned assets (MLflow's prompt registry), under the same lifecycle."""


@prompts_group.command()
@click.argument("name")
@click.option("--file", "template", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--message", default="", help="What changed (kept with the version).")
@click.option("--run", "run_id", help="The evaluation run whose scores the gates read.")
@RECIPE
@click.pass_context
def register(
    ctx: click.Context,
    name: str,
    template: str,
    message: str,
    run_id: str | None,
    recipe_location: str | None,
) -> None:
    """Register the template in FILE as a new candidate version of prompt NAME."""
    from stack.config.recipe_file import load_recipe
    from stack.lifecycle import Lifecycle
    from stack.llm.prompts import prompt_session

    recipe = load_recipe(Path(recipe_location)) if recipe_location else None
    with open_session(ctx, recipe) as session:
        version = Lifecycle(prompt_session(session)).register(
            name,
            str(Path(template).resolve()),
            run_id=run_id,
            tags={"message": message} if message else None,
            reason=message,
            recipe=recipe,
        )
    click.echo(f"registered prompt {version.ref} as {version.state.value}")


@prompts_group.command("list")
@click.argument("name")
@click.pass_context
def list_versions(ctx: click.Context, name: str) -> None:
    """Every version of prompt NAME with its state."""
    from stack.llm.prompts import prompt_registry

    with open_existing_session(ctx) as session:
        for version in prompt_registry(session).versions(name):
            click.echo(f"{version.ref:<24} {version.state.value:<10} {version.source_uri}")


@prompts_group.command()
@click.argument("selector", metavar="NAME@VERSION", type=VERSION)
@click.pass_context
def show(ctx: click.Context, selector: ModelSelector) -> None:
    """The template of a prompt version (NAME@3 or NAME@serving)."""
    from stack.governance.service import Governance
    from stack.llm.prompts import prompt_session

    with open_existing_session(ctx) as session:
        view = prompt_session(session)
        version = Governance(view).version(selector)
        click.echo(view.registry.template(version.model, version.version))  # type: ignore[attr-defined]


@prompts_group.command()
@click.argument("name")
@click.argument("before", type=int)
@click.argument("after", type=int)
@click.pass_context
def diff(ctx: click.Context, name: str, before: int, after: int) -> None:
    """What changed between two versions of prompt NAME."""
    from stack.llm.prompts import diff as unified
    from stack.llm.prompts import prompt_registry

    with open_existing_session(ctx) as session:
        registry = prompt_registry(session)
        texts = [(v, registry.template(name, v)) for v in (before, after)]  # type: ignore[attr-defined]
    click.echo(unified(name, texts[0], texts[1]), nl=False)


@prompts_group.command()
@click.argument("selector", metavar="NAME@VERSION", type=VERSION)
@click.option("--to", "target", type=TARGETS, required=True)
@click.option("--reason", default="")
@click.option("--dry-run", is_flag=True, help="Show the gate's verdict; change nothing.")
@RECIPE
@click.pass_context
def promote(
    ctx: click.Context,
    selector: ModelSelector,
    target: str,
    reason: str,
    dry_run: bool,
    recipe_location: str | None,
) -> None:
    """Move a prompt version to a state through its gate (as `mlstack promote` for models)."""
    from stack.cli.governance_cmd import run_promote

    run_promote(
        ctx,
        selector,
        target,
        reason=reason,
        dry_run=dry_run,
        recipe_location=recipe_location,
        prompts=True,
    )


@prompts_group.command()
@click.argument("selector", metavar="NAME@VERSION", type=VERSION)
@click.option("--to", "target", type=STATES, required=True)
@click.option("--reason", default="")
@RECIPE
@click.pass_context
def approve(
    ctx: click.Context,
    selector: ModelSelector,
    target: str,
    reason: str,
    recipe_location: str | None,
) -> None:
    """Approve a prompt version for a state (the policy's group, never its author)."""
    from stack.cli.governance_cmd import run_approve

    run_approve(ctx, selector, target, reason=reason, recipe_location=recipe_location, prompts=True)
