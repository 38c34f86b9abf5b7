"""Step code of the delivery-time recipe: a regression, end to end, through the contract."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from stack.contract import DatasetFingerprint, RunRef
from stack.contract.states import LifecycleState
from stack.errors import GateFailed
from stack.governance.service import Governance
from stack.lifecycle import Lifecycle
from stack.monitoring import save_reference
from stack.orchestration.steps import StepContext

FEATURES = ["distance_km", "items", "rush_hour", "rain"]


@dataclass(frozen=True)
class Orders:
    frame: Any  # pandas DataFrame, in time order
    fingerprint: str


@dataclass(frozen=True)
class Trained:
    run_id: str
    experiment: str
    model_uri: str
    model: Any


def generate_orders(orders: int, seed: int) -> Orders:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    hour = rng.integers(9, 23, orders)
    frame = pd.DataFrame(
        {
            "distance_km": rng.gamma(2.0, 1.8, orders).round(2),
            "items": rng.integers(1, 12, orders).astype(float),
            "rush_hour": np.isin(hour, [12, 13, 18, 19, 20]).astype(float),
            "rain": (rng.random(orders) < 0.2).astype(float),
        }
    )
    frame["minutes"] = (
        12
        + 4.2 * frame.distance_km
        + 0.8 * frame["items"]
        + 6 * frame.rush_hour
        + 5 * frame.rain
        + rng.normal(0, 4, orders)
    ).round(1)
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame).to_numpy().tobytes()).hexdigest()
    return Orders(frame, digest)


def _split(orders: Orders) -> tuple[Any, Any]:
    cut = int(len(orders.frame) * 0.8)
    return orders.frame.iloc[:cut], orders.frame.iloc[cut:]


def train(ctx: StepContext, orders: Orders, alpha: float) -> Trained:
    import sklearn
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fit, _ = _split(orders)
    x, y = fit[FEATURES], fit["minutes"]
    model = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(x, y)
    tracker = ctx.session.tracker
    run = tracker.start_run("delivery-time")
    tracker.log_params(run, {"alpha": alpha, "features": ",".join(FEATURES)})
    uri = tracker.log_model(
        run,
        model,
        name="delivery-time",
        framework="sklearn",
        requirements=[f"scikit-learn=={sklearn.__version__}"],
        input_example=x.head(5),
    )
    save_reference(ctx.session, run.run_id, x.assign(prediction=model.predict(x)))
    return Trained(run.run_id, run.experiment, uri, model)


def evaluate(ctx: StepContext, orders: Orders, train: Trained) -> dict[str, float]:
    import numpy as np
    from sklearn.metrics import mean_absolute_error, r2_score

    _, test = _split(orders)
    predicted = train.model.predict(test[FEATURES])
    metrics = {
        "rmse": round(float(np.sqrt(np.mean((test["minutes"] - predicted) ** 2))), 4),
        "mae": round(float(mean_absolute_error(test["minutes"], predicted)), 4),
        "r2": round(float(r2_score(test["minutes"], predicted)), 4),
    }
    run = RunRef(train.run_id, train.experiment)
    tracker = ctx.session.tracker
    tracker.log_metrics(run, metrics)
    tracker.log_dataset(
        run,
        DatasetFingerprint(
            name="orders-holdout",
            digest=f"sha256:{orders.fingerprint}",
            rows=len(test),
            columns=tuple(test.columns),
            source="recipes/regression (generated)",
        ),
        context="evaluation",
    )
    tracker.finish_run(run)
    print(f"    rmse={metrics['rmse']:.2f} mae={metrics['mae']:.2f} r2={metrics['r2']:.3f}")
    return metrics


def register(ctx: StepContext, train: Trained, evaluate: dict[str, float]) -> str:
    version = Lifecycle(ctx.session).register(
        "delivery-time",
        train.model_uri,
        run_id=train.run_id,
        reason=f"rmse {evaluate['rmse']}",
        recipe=ctx.recipe,
    )
    print(f"    registered {version.ref}")
    return version.ref


def promote(ctx: StepContext, register: str) -> str:
    """Approved, then serving if the gates agree; a refusal is an outcome, not a failure."""
    governance = Governance(ctx.session)
    try:
        governance.promote(register, LifecycleState.APPROVED, reason="passed the approved gate")
        version = governance.promote(register, LifecycleState.SERVING, reason="passed the gate")
    except GateFailed as refused:
        print("    " + str(refused).replace("\n", "\n    "))
        return register
    print(f"    {version.ref} is now {version.state.value}")
    return version.ref
