"""The batch-scoring recipe: the serving version scores a table, the scores are written back,
and the batch is monitored as an endpoint's window is, late labels included."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from stack.contract.states import LifecycleState
from stack.lifecycle import Lifecycle
from stack.monitoring import save_reference
from stack.session import StackSession
from tests.recipes.conftest import copy_recipe
from tests.support.cli import cli_in

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "late_payments", "usage_drop"]


def serve_a_churn_model(folder: Path) -> str:
    """What the quickstart leaves behind, in a few lines: a serving `churn` with a reference."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = pd.DataFrame(
        {
            "tenure_months": rng.integers(1, 73, 800).astype(float),
            "monthly_charges": rng.uniform(20, 120, 800),
            "support_calls": rng.poisson(2, 800).astype(float),
            "late_payments": rng.integers(0, 5, 800).astype(float),
            "usage_drop": rng.beta(2, 5, 800),
        }
    )
    y = (x.support_calls + 3 * x.usage_drop > 3).astype(int)
    with StackSession.open(folder / "stack.yaml", base_dir=folder) as session:
        model = LogisticRegression(max_iter=500).fit(x, y)
        run = session.tracker.start_run("churn")
        uri = session.tracker.log_model(
            run,
            model,
            name="churn",
            framework="sklearn",
            requirements=["scikit-learn"],
            input_example=x.head(3),
        )
        save_reference(session, run.run_id, x.assign(prediction=model.predict(x)))
        session.tracker.finish_run(run)
        lifecycle = Lifecycle(session)
        version = lifecycle.register("churn", uri, run_id=run.run_id)
        lifecycle.transition("churn", version.version, LifecycleState.APPROVED)
        lifecycle.transition("churn", version.version, LifecycleState.SERVING)
        return version.ref


def test_batch_scores_are_written_back_and_monitored(tmp_path: Path) -> None:
    copy_recipe("batch-scoring", tmp_path)
    ref = serve_a_churn_model(tmp_path)
    cli = cli_in(tmp_path)

    steady = cli("run", "batch-scoring", check=True).stdout
    assert f"1000 customers scored by {ref}" in steady
    assert "OK over 1000 rows" in steady
    scores = pd.read_parquet(tmp_path / "batch-scoring" / "data" / "scores.parquet")
    assert len(scores) == 1000 and set(scores.model_version) == {ref}
    assert set(scores.churn) <= {0, 1}

    # outcomes for some of tonight's customers arrive; the next batch has drifted
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text(
        "request_id,label\n" + "".join(f"C{i:05d}@{today},{i % 2}\n" for i in range(200))
    )
    cli("labels", "ingest", str(outcomes), "--model", "churn", check=True)
    recipe = tmp_path / "batch-scoring" / "recipe.yaml"
    recipe.write_text(recipe.read_text().replace("shift: 0.0", "shift: 1.0"))
    drifted = cli("run", "batch-scoring", check=True).stdout
    assert "BREACH" in drifted and "usage_drop" in drifted

    with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as session:
        [latest, first] = session.spine.checks("churn", limit=2)
        assert (first.status, latest.status) == ("ok", "breach")
        assert latest.endpoint == "churn-nightly"
        # the labels were joined by id across both batches: 200 labelled rows of 2000
        assert latest.result["performance"]["labelled_rows"] == 200
        assert latest.result["performance"]["rows"] == 2000
