"""The flow a Prefect deployment runs: a recipe, by its path, on a stack, by its file.

Module level (not built per run), so a deployment can name it as its entrypoint and a Prefect
worker or `serve` process can import it."""

from __future__ import annotations

from pathlib import Path

from prefect import flow


@flow(name="mlstack-recipe", persist_result=False)
def run_recipe(stack_file: str, base_dir: str, recipe: str) -> str:
    """Open the stack, run the recipe through its orchestrator; the run id."""
    from stack.config.recipe_file import load_recipe
    from stack.session import StackSession

    loaded = load_recipe(Path(recipe))
    source = Path(stack_file) if stack_file else None
    with StackSession.open(source, recipe=loaded, base_dir=Path(base_dir)) as session:
        return session.orchestrator.run(session).run_id  # the session registers its hooks
