"""`mlstack image build`."""

from __future__ import annotations

from pathlib import Path

import click

from stack.cli.common import open_session, stack_path


@click.group("image")
def image_group() -> None:
    """The container image a recipe runs in on a cluster."""


@image_group.command()
@click.argument("recipe_location", metavar="RECIPE", type=click.Path(exists=True))
@click.option("--tag", help="Image tag (default: mlstack-<recipe>:latest).")
@click.option("--output", type=click.Path(file_okay=False), help="Build context folder.")
@click.option("--no-build", is_flag=True, help="Write the context and Dockerfile only.")
@click.pass_context
def build(
    ctx: click.Context, recipe_location: str, tag: str | None, output: str | None, no_build: bool
) -> None:
    """Write RECIPE's build context (pinned from uv.lock) and build it with Docker."""
    from stack.config.recipe_file import load_recipe
    from stack.orchestration.image import docker_available, docker_build, write_context

    recipe = load_recipe(Path(recipe_location))
    with open_session(ctx, recipe) as session:
        packages = tuple(
            dict.fromkeys(["mlstack", *(r.package for r in session.resolved.values())])
        )
        folder = Path(output) if output else session.home / "images" / recipe.name
    context = write_context(recipe, stack_file=stack_path(ctx), packages=packages, output=folder)
    click.echo(f"build context: {context.folder} ({', '.join(packages)})")
    if no_build:
        return
    why_not = docker_available()
    if why_not is not None:
        click.echo(f"not built: {why_not}; build it with: docker build -t TAG {context.folder}")
        return
    name = tag or f"mlstack-{recipe.name}:latest"
    docker_build(context, name)
    click.echo(f"built {name}")
