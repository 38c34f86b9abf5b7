"""A real embedded stack (MLflow on SQLite, spine on SQLite) and a recipe with gates."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from textwrap import dedent

import pytest

from stack.config.recipe_file import Recipe, load_recipe
from stack.contract.registry import ModelVersion
from stack.contract.tracking import DatasetFingerprint
from stack.governance.service import Governance
from stack.lifecycle import Lifecycle
from stack.session import StackSession
from tests.support.logged_models import signed_logged_model

RECIPE = """
name: gated
model: {name: MODEL, owner: ana, risk_tier: high, intended_use: Rank churn risk for outreach.}
promotion:
  gates:
    approved:
      thresholds: {auc: {min: 0.75}}
    serving:
      thresholds: {auc: {min: 0.75}}
      champion: {metric: auc, max_regression: 0.01, same_dataset: holdout}
      checks: [model_card]
      approvals: {count: 1, group: ml-leads}
steps:
  - {name: noop, run: "steps:noop"}
"""


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("governed")
    (folder / "stack.yaml").write_text(
        dedent(f"""
        name: governed
        home: {folder / ".mlstack"}
        tracker: {{adapter: mlflow, tracking_uri: 'sqlite:///{folder / "mlflow.db"}'}}
        registry: {{adapter: mlflow, tracking_uri: 'sqlite:///{folder / "mlflow.db"}'}}
        spine: {{url: 'sqlite:///{folder / "spine.db"}'}}
        identity:
          groups: {{ml-leads: [lead, lead2]}}
          token_secret: test-secret
    """)
    )
    return folder


@pytest.fixture(scope="module")
def session(stack_dir: Path) -> Iterator[StackSession]:
    with StackSession.open(stack_dir / "stack.yaml", base_dir=stack_dir) as opened:
        yield opened


@pytest.fixture
def model() -> str:
    return f"churn-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def recipe(tmp_path: Path, model: str) -> Recipe:
    (tmp_path / "recipe.yaml").write_text(RECIPE.replace("MODEL", model))
    (tmp_path / "steps.py").write_text("def noop():\n    return None\n")
    return load_recipe(tmp_path)


Factory = Callable[..., ModelVersion]


@pytest.fixture
def make_version(session: StackSession, recipe: Recipe, model: str) -> Factory:
    """Train (metrics and a holdout fingerprint only) and register, as `author`."""

    def make(
        auc: float,
        *,
        author: str = "ana",
        holdout: str = "sha256:h1",
        signed: bool = True,
        inputs: str | None = None,
        as_run_uri: bool = False,
    ) -> ModelVersion:
        tracker = session.tracker
        run = tracker.start_run("governance")
        tracker.log_metrics(run, {"auc": auc})
        tracker.log_dataset(run, DatasetFingerprint("holdout", holdout, 500, ("x",)))
        uri = signed_logged_model(tracker.client, run.run_id, signed=signed, inputs=inputs)  # type: ignore[attr-defined]
        if as_run_uri:  # as MLflow's own log_model is registered: runs:/<run>/<name>
            uri = f"runs:/{run.run_id}/model"
        tracker.finish_run(run)
        return Lifecycle(session).register(
            model, uri, run_id=run.run_id, actor=author, recipe=recipe
        )

    return make


@pytest.fixture
def governance(session: StackSession, recipe: Recipe) -> Governance:
    return Governance(session.with_recipe(recipe))


@pytest.fixture
def as_user(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    def switch(name: str) -> None:
        monkeypatch.delenv("MLSTACK_TOKEN", raising=False)
        monkeypatch.setenv("MLSTACK_USER", name)

    return switch
