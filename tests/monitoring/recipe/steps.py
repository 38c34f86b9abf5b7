"""Step code of the monitoring tests' recipe: what a user's training recipe does."""

from __future__ import annotations

from stack.lifecycle import Lifecycle
from stack.monitoring import save_reference
from stack.orchestration.steps import StepContext

FEATURES = ["customer", "tenure", "spend", "calls"]


def sample(rows: int, seed: int, shift: float = 0.0) -> tuple[list[dict[str, float]], list[int]]:
    """Customers; `shift` moves tenure (the drift the tests look for)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tenure = rng.normal(shift, 1, rows)
    spend = rng.normal(0, 1, rows)
    calls = rng.normal(0, 1, rows)
    labels = ((tenure + calls + rng.normal(0, 0.3, rows)) > 0).astype(int)
    records = [
        {"customer": float(i), "tenure": float(t), "spend": float(s), "calls": float(c)}
        for i, (t, s, c) in enumerate(zip(tenure, spend, calls, strict=True))
    ]
    return records, [int(v) for v in labels]


def train(ctx: StepContext) -> dict[str, str]:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    records, labels = sample(2000, seed=1)
    frame = pd.DataFrame(records, columns=FEATURES)
    model = LogisticRegression().fit(frame, labels)
    tracker = ctx.session.tracker
    run = tracker.start_run("monitored")
    accuracy = float(model.score(frame, labels))
    tracker.log_metrics(run, {"accuracy": accuracy})
    uri = tracker.log_model(
        run,
        model,
        name="churn",
        framework="sklearn",
        requirements=["scikit-learn"],
        input_example=frame.head(3),
    )
    reference = frame.drop(columns=["customer"]).assign(prediction=model.predict(frame))
    save_reference(ctx.session, run.run_id, reference)
    tracker.finish_run(run)
    return {"run_id": run.run_id, "uri": uri}


def register(ctx: StepContext, train: dict[str, str]) -> str:
    version = Lifecycle(ctx.session).register(
        "churn", train["uri"], run_id=train["run_id"], recipe=ctx.recipe
    )
    return version.ref
