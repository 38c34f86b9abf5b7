"""`mlstack ci init github|gitlab`."""

from __future__ import annotations

from pathlib import Path

import click

from stack.cli.common import open_session, stack_path


@click.group("ci")
def ci_group() -> None:
    """CI/CD for models: train and gate on pull requests, request promotion on merge."""


@ci_group.command()
@click.argument("kind", type=click.Choice(["github", "gitlab"]))
@click.option("--recipe", "recipe_location", required=True, type=click.Path(exists=True))
@click.option("--branch", default="main", show_default=True, help="Merges here request promotion.")
@click.pass_context
def init(ctx: click.Context, kind: str, recipe_location: str, branch: str) -> None:
    """Write the workflow file for RECIPE (GitHub Actions or GitLab CI)."""
    from stack.ci.workflows import WorkflowSpec, adapter_packages, write_workflow
    from stack.config.recipe_file import load_recipe
    from stack.errors import StackError

    recipe = load_recipe(Path(recipe_location))
    if recipe.spec.model is None:
        raise StackError(f"{recipe.path}: the recipe names no `model:`, so there is no gate to run")
    root = Path.cwd()
    with open_session(ctx, recipe) as session:
        packages = [resolved.package for resolved in session.resolved.values()]
    source = stack_path(ctx)
    spec = WorkflowSpec(
        recipe=_relative(Path(recipe_location), root),
        model=recipe.spec.model.name,
        packages=adapter_packages(packages),
        stack_file=_relative(source, root) if source else None,
        branch=branch,
    )
    written = write_workflow(kind, spec, root)
    click.echo(f"wrote {written}")


def _relative(path: Path, root: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)
