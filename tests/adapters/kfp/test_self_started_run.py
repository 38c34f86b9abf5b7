"""A pipeline started by KFP itself (a recurring run: no run id given) records its own run in
the spine, start to finish, as a run that mlstack started does."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

from stack.config.recipe_file import load_recipe
from stack.session import StackSession
from stack_kfp.pipeline import build_pipeline


def test_a_pipeline_without_a_run_id_starts_and_finishes_its_own(tmp_path: Path) -> None:
    from kfp import local

    recipe_dir = tmp_path / "nightly"
    recipe_dir.mkdir()
    (recipe_dir / "steps.py").write_text("def a():\n    return 2\n\ndef b(a):\n    return a * 3\n")
    (recipe_dir / "recipe.yaml").write_text(
        dedent("""
        name: nightly
        steps:
          - {name: a, run: "steps:a"}
          - {name: b, run: "steps:b", needs: [a]}
        """)
    )
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(
        "name: s\nhome: .mlstack\norchestrator: {adapter: kfp}\n"
        "spine: {url: 'sqlite:///.mlstack/spine.db'}\n"
    )
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"))
    pipeline = build_pipeline(
        load_recipe(recipe_dir), stack_file=str(stack_file), base_dir=str(tmp_path), image="x"
    )
    pipeline()  # as a recurring run would: no run id
    with StackSession.open(stack_file, base_dir=tmp_path) as session:
        [run] = session.spine.pipeline_runs(recipe="nightly")
        assert (run.orchestrator, run.state) == ("kfp", "succeeded")
        assert {s.step: s.status for s in run.steps} == {"a": "succeeded", "b": "succeeded"}
        names = [e.name for e in session.spine.events(subject=run.run_id)]
        assert names[0] == "on_run_started" and names[-1] == "on_run_finished"
