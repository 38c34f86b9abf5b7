"""`mlstack schedule` on a Prefect stack creates a deployment with the cron schedule."""

from __future__ import annotations

import asyncio
from pathlib import Path
from textwrap import dedent

from stack.config.recipe_file import load_recipe
from stack.orchestration.schedule import schedule
from stack.session import StackSession


def test_a_schedule_is_a_prefect_deployment_with_the_cron(tmp_path: Path) -> None:
    recipe_dir = tmp_path / "nightly"
    recipe_dir.mkdir()
    (recipe_dir / "steps.py").write_text("def hello():\n    return 1\n")
    (recipe_dir / "recipe.yaml").write_text(
        dedent("""
        name: nightly
        steps:
          - {name: hello, run: "steps:hello"}
        """)
    )
    (tmp_path / "stack.yaml").write_text(
        "name: s\nhome: .mlstack\norchestrator: {adapter: prefect}\n"
        "spine: {url: 'sqlite:///.mlstack/spine.db'}\n"
    )
    with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as session:
        said = schedule(session, load_recipe(recipe_dir), cron="0 2 * * *", name="nightly-2am")
    assert "mlstack-recipe/nightly-2am" in said

    from prefect.client.orchestration import get_client

    async def read() -> object:
        async with get_client() as client:
            return await client.read_deployment_by_name("mlstack-recipe/nightly-2am")

    deployment = asyncio.run(read())
    crons = [s.schedule.cron for s in deployment.schedules]  # type: ignore[attr-defined]
    assert crons == ["0 2 * * *"]
    assert deployment.parameters["recipe"] == str(recipe_dir / "recipe.yaml")  # type: ignore[attr-defined]
