"""Monitoring on odd data, on a real stack (MLflow on SQLite, Evidently, a batch log; no
server): a feature empty in the whole window, or gone from every record, is 100% missing and
breaches the missing-share rule like a half-empty one; a feature empty in the reference is
reported, not compared; a misspelt model is an error naming the known ones; labels for
request ids never answered are stored and named."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stack.config.recipe_file import Recipe, load_recipe
from stack.monitoring.loop import CheckResult, MonitoringLoop
from stack.session import StackSession
from tests.support.cli import cli_in

STACK = """
name: odd-data-test
home: .mlstack
tracker: {adapter: mlflow}
registry: {adapter: mlflow}
monitor: {adapter: evidently}
orchestrator: {adapter: local}
spine: {url: "sqlite:///.mlstack/spine.db"}
"""

RECIPE = """
name: basket
model: {name: basket, owner: tests}
monitoring:
  source: batch
  endpoint: half-empty
  window: 1d
  min_rows: 30
  policy:
    max_missing_share: 0.2
steps:
  - name: build
    run: odd_basket:build
  - name: score
    run: odd_basket:score
    needs: [build]
"""

# The reference has `coupon` with no value at all; every window has it filled.
STEPS = """
import numpy as np, pandas as pd, sklearn
from sklearn.linear_model import LinearRegression
from stack.lifecycle import Lifecycle
from stack.monitoring import save_reference
from stack.monitoring.batch import BatchPredictionLog, batch_root

def orders(n, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"basket_value": rng.normal(60, 15, n).round(2),
                         "items": rng.normal(6, 2, n).round(1),
                         "channel": rng.choice(["web", "app", "store"], n)})

def build(ctx):
    X = orders(500, 1)
    num = X[["basket_value", "items"]]
    model = LinearRegression().fit(num, num.basket_value * 0.1 + num["items"])
    tracker = ctx.session.tracker
    run = tracker.start_run("basket")
    uri = tracker.log_model(run, model, name="basket", framework="sklearn",
                            requirements=[f"scikit-learn=={sklearn.__version__}"],
                            input_example=num.head(3))
    save_reference(ctx.session, run.run_id,
                   X.assign(coupon=[None] * len(X), prediction=model.predict(num)))
    tracker.finish_run(run)
    return Lifecycle(ctx.session).register("basket", uri, run_id=run.run_id, reason="test",
                                           recipe=ctx.recipe).ref

def score(ctx, build):
    log = BatchPredictionLog(batch_root(ctx.session))
    variants = {
        "half-empty": lambda r, i: {**r, "basket_value": None} if i % 2 else r,
        "all-empty": lambda r, i: {**r, "basket_value": None},
        "key-gone": lambda r, i: {k: v for k, v in r.items() if k != "basket_value"},
    }
    for name, change in variants.items():
        rows = [{**r, "coupon": "SAVE10"} for r in orders(100, 2).to_dict("records")]
        records = [change(r, i) for i, r in enumerate(rows)]
        log.record(name, version=build, ids=[f"{name}-{i}" for i in range(len(records))],
                   records=records, predictions=[10.0] * len(records))
    return build
"""


@dataclass
class Basket:
    folder: Path
    recipe: Recipe

    def session(self) -> StackSession:
        return StackSession.open(self.folder / "stack.yaml", base_dir=self.folder)

    def check(self, batch: str) -> CheckResult:
        with self.session() as session:
            [result] = (
                MonitoringLoop(session.with_recipe(self.recipe))
                .assess("basket", endpoint=batch)
                .checks
            )
        return result


@pytest.fixture(scope="module")
def basket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Basket]:
    folder = tmp_path_factory.mktemp("odd-data")
    (folder / "stack.yaml").write_text(STACK)
    (folder / "recipe").mkdir()
    (folder / "recipe" / "recipe.yaml").write_text(RECIPE)
    (folder / "recipe" / "odd_basket.py").write_text(STEPS)
    recipe = load_recipe(folder / "recipe")
    with StackSession.open(folder / "stack.yaml", recipe=recipe, base_dir=folder) as session:
        session.orchestrator.run(session)
    yield Basket(folder, recipe)


def missing(result: CheckResult) -> dict[str, float]:
    assert result.quality is not None, result.messages
    return {c.column: c.missing_share for c in result.quality.columns}


@pytest.mark.parametrize(
    ("batch", "share", "why"),
    [
        ("half-empty", 0.5, None),
        ("all-empty", 1.0, "column 'basket_value' has no value in the window (all missing)"),
        ("key-gone", 1.0, "column 'basket_value' is missing from the window (renamed or dropped?)"),
    ],
)
def test_an_empty_or_vanished_feature_breaches_the_missing_share_rule(
    basket: Basket, batch: str, share: float, why: str | None
) -> None:
    result = basket.check(batch)
    assert result.rows == 100
    assert result.status == "breach", result.messages
    assert result.breaches == [f"basket_value: {share:.1%} missing (limit 20.0%)"]
    assert missing(result)["basket_value"] == pytest.approx(share)
    assert result.drift is not None
    compared = {c.column for c in result.drift.columns}
    if why is None:
        assert "basket_value" in compared
    else:  # no value to compare: drift says so instead of judging it
        assert "basket_value" not in compared and "items" in compared
        assert any(m.startswith(why) and "drift not compared" in m for m in result.messages)
    with basket.session() as session:
        [stored] = session.spine.checks("basket", limit=1)
    assert stored.id == result.id and stored.status == "breach"
    assert {"column": "basket_value", "missing_share": share} in [
        {k: c[k] for k in ("column", "missing_share")} for c in stored.result["quality"]["columns"]
    ]


def test_a_feature_empty_in_the_reference_is_reported_not_compared(basket: Basket) -> None:
    result = basket.check("half-empty")
    assert missing(result)["coupon"] == 0.0  # filled in the window: no breach of its own
    assert result.drift is not None
    assert "coupon" not in {c.column for c in result.drift.columns}
    assert "column 'coupon' has no value in the reference: drift not compared" in result.messages


def test_a_misspelt_model_is_an_error_naming_the_known_ones(basket: Basket, tmp_path: Path) -> None:
    cli = cli_in(basket.folder)
    known = "no model 'baskte' in the registry (known models: basket); did you mean 'basket'?"
    checked = cli("monitor", "run", "baskte", "--endpoint", "all-empty")
    assert checked.returncode == 1, checked.stdout
    assert known in checked.stderr
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\nhalf-empty-0,9.5\n")
    ingested = cli("labels", "ingest", str(labels), "--model", "baskte")
    assert ingested.returncode == 1, ingested.stdout
    assert known in ingested.stderr
    with basket.session() as session:
        assert session.spine.labels("baskte") == []
        assert session.spine.checks("baskte") == []


def test_labels_for_requests_never_answered_are_stored_and_named(
    basket: Basket, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "request_id,label\nhalf-empty-0,9.5\nnever-1,8.0\nhalf-empty-1,7.0\nnever-2,6.5\n"
    )
    result = cli_in(basket.folder)("labels", "ingest", str(labels), "--model", "basket")
    assert result.returncode == 0, result.stderr
    assert "ingested 4 labels for basket" in result.stdout
    assert (
        "2 request id(s) were never answered on endpoint 'half-empty': never-1, never-2"
        in result.stdout
    )
    # the same ids are answered in another batch: checked against the one named
    other = cli_in(basket.folder)(
        "labels", "ingest", str(labels), "--model", "basket", "--endpoint", "all-empty"
    )
    assert "4 request id(s) were never answered on endpoint 'all-empty'" in other.stdout
    with basket.session() as session:
        stored = {g.request_id for g in session.spine.labels("basket")}
    assert {"never-1", "never-2", "half-empty-0"} <= stored
