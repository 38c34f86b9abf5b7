"""One recipe, unchanged, on every orchestrator: the spine reads the same after each run
(steps, their outputs, the lineage and audit entries the steps wrote, the lifecycle events);
only the name of the orchestrator that ran it differs."""

from __future__ import annotations

import os
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from stack.config.param_overrides import parse_override
from stack.config.recipe_file import load_recipe
from stack.orchestration.outputs import load_output
from stack.session import StackSession
from stack.spine import NodeKind, NodeRef

STEPS = """
from stack.spine import NodeKind, NodeRef

def prepare():
    return {"rows": [3, 1, 2]}

def train(ctx, prepare, scale):
    model = {"weights": sorted(x * scale for x in prepare["rows"])}
    data = NodeRef(NodeKind.DATA_SNAPSHOT, "sha256:prepared")
    ctx.session.spine.link(data, NodeRef(NodeKind.RUN, "train-run"), "trained_on")
    ctx.session.spine.audit(actor="recipe", action="model.trained", subject="toy", reason="test")
    return model

def report(prepare, train):
    return {"n": len(prepare["rows"]), "top": train["weights"][-1]}
"""

RECIPE = """
name: toy
steps:
  - {name: prepare, run: "toy_steps:prepare"}
  - {name: train, run: "toy_steps:train", needs: [prepare], params: {scale: 10}}
  - {name: report, run: "toy_steps:report", needs: [prepare, train]}
"""


@pytest.fixture(scope="module", autouse=True)
def tool_homes(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Prefect's and ZenML's own stores in temporary folders, never the user's."""
    names = ("PREFECT_HOME", "ZENML_CONFIG_PATH")
    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ[name] = str(tmp_path_factory.mktemp(name.lower()))
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def run_on(orchestrator: str, folder: Path) -> dict[str, Any]:
    folder.mkdir()
    recipe_dir = folder / "toy"
    recipe_dir.mkdir()
    (recipe_dir / "toy_steps.py").write_text(dedent(STEPS))
    (recipe_dir / "recipe.yaml").write_text(dedent(RECIPE))
    (folder / "stack.yaml").write_text(
        f"name: s\nhome: .mlstack\norchestrator: {{adapter: {orchestrator}}}\n"
        "spine: {url: 'sqlite:///.mlstack/spine.db'}\n"
    )
    # `--param train.scale=3`: a step in another process (kfp, zenml) reads it from the spine
    recipe = load_recipe(recipe_dir).with_overrides((parse_override("train.scale=3"),))
    with StackSession.open(folder / "stack.yaml", recipe=recipe, base_dir=folder) as session:
        run = session.orchestrator.run(session)
        record = session.spine.pipeline_run(run.run_id)
        assert record is not None
        report = next(s for s in record.steps if s.step == "report")
        assert report.output_uri is not None
        return {
            "params": record.param_overrides,
            "report": load_output(report.output_uri, report.output_digest),
            "orchestrator": record.orchestrator,
            "state": record.state,
            "steps": {s.step: (s.status, s.output_digest) for s in record.steps},
            "events": sorted(e.name for e in session.spine.events(subject=run.run_id)),
            "audit": [(e.actor, e.action, e.subject) for e in session.spine.audit_entries()],
            "lineage": [
                (str(e.source), e.relation)
                for e in session.spine.upstream(NodeRef(NodeKind.RUN, "train-run"))
            ],
            "audit_ok": session.spine.verify_audit().ok,
        }


def test_the_spine_reads_the_same_whichever_orchestrator_ran_the_recipe(tmp_path: Path) -> None:
    engines = ("local", "prefect", "zenml", "kfp")
    results = {name: run_on(name, tmp_path / name) for name in engines}
    assert {r["orchestrator"] for r in results.values()} == set(engines)
    local = results["local"]
    assert local["state"] == "succeeded" and local["audit_ok"]
    assert local["params"] == ("train.scale=3",)
    assert local["report"] == {"n": 3, "top": 9}  # 3 * scale 3, not the recipe's 10
    assert local["lineage"] == [("data_snapshot:sha256:prepared", "trained_on")]
    for name, result in results.items():
        for key in ("state", "steps", "events", "audit", "lineage", "audit_ok", "params", "report"):
            assert result[key] == local[key], f"{name} differs from local in {key}"
