"""The quickstart's data, features and training: what a user writes. It talks to the stack
only through the step context (`ctx.session`), so it runs unchanged on every stack and
orchestrator.

The data are customers of a subscription business, generated deterministically: one
observation each in the training period (its features, and whether the customer churned in
the following quarter), a later *production* period where a few features drift and the link
between calls to support and churn grows stronger, and a trap for leaks: each customer's
activity is updated again weeks after the observation (after they churned or not), which a
training frame must not see."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stack.contract import DatasetFingerprint, RunRef
from stack.contract.states import LifecycleState
from stack.governance.service import Governance
from stack.lifecycle import Lifecycle
from stack.monitoring import save_reference
from stack.orchestration.steps import StepContext

FEATURES = ("tenure_months", "monthly_charges", "support_calls", "late_payments", "usage_drop")
VIEW = "customer_activity"
REFS = [f"{VIEW}:{name}" for name in FEATURES]
START = datetime(2026, 1, 1, tzinfo=UTC)
PRODUCTION = START + timedelta(days=180)  # the model goes live here
END = PRODUCTION + timedelta(days=60)


@dataclass(frozen=True)
class Generated:
    """Where the generated data lie, and its fingerprint."""

    activity: str  # the feature source (Feast reads it)
    observations: str  # training-period entity rows with their label
    production: str  # production-period requests, their request ids and (late) labels
    fingerprint: str
    customers: int


@dataclass(frozen=True)
class Frame:
    frame: Any  # a pandas DataFrame: entity, timestamp, label, features
    fingerprint: DatasetFingerprint
    views: tuple[Any, ...]
    leaked: int  # rows whose features came from after their own time (must be 0)


@dataclass(frozen=True)
class TrainedModel:
    run_id: str
    experiment: str
    model_uri: str
    model: Any


def generate_customers(ctx: StepContext, customers: int, seed: int) -> Generated:
    """Customers, their activity over time, and what happened to them."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    folder = ctx.recipe.directory / "data"
    folder.mkdir(exist_ok=True)

    def people(count: int, production: bool) -> pd.DataFrame:
        drift = 1.0 if production else 0.0
        frame = pd.DataFrame(
            {
                "tenure_months": rng.integers(1, 73, count).astype(float),
                "monthly_charges": rng.uniform(20, 120, count).round(2),
                # production: more calls to support, usage dropping more (the drift)
                "support_calls": rng.poisson(2 + 2.5 * drift, count).astype(float),
                "late_payments": rng.integers(0, 5, count).astype(float),
                "usage_drop": rng.beta(2 + 3 * drift, 5 - 2 * drift, count).round(3),
            }
        )
        calls = 0.35 + 0.45 * drift  # and calls matter more than before (concept drift)
        logit = (
            -1.6
            - 0.04 * frame.tenure_months
            + 0.015 * frame.monthly_charges
            + calls * (frame.support_calls - 2.5 * drift)
            + 0.4 * frame.late_payments
            + (2.5 - 3.5 * drift) * frame.usage_drop
        )
        frame["churned"] = (rng.random(count) < 1 / (1 + np.exp(-logit))).astype(int)
        return frame

    ids = [f"C{i:05d}" for i in range(customers)]
    train = people(customers, production=False)
    train.insert(0, "customer_id", ids)
    train.insert(
        1, "event_timestamp", [START + timedelta(days=d) for d in rng.uniform(0, 170, customers)]
    )
    live_count = customers // 2
    live = people(live_count, production=True)
    live.insert(0, "customer_id", rng.choice(ids, live_count, replace=False))
    live.insert(
        1,
        "event_timestamp",
        [PRODUCTION + timedelta(days=d) for d in rng.uniform(0, 59, live_count)],
    )
    live = live.sort_values("event_timestamp", ignore_index=True)
    live.insert(0, "request_id", [f"obs-{i:05d}" for i in range(live_count)])
    # The leak trap: weeks after each training observation the activity changes again, in a
    # way that gives the answer away (usage collapses for those who left).
    after = train.copy()
    after["event_timestamp"] = after.event_timestamp + timedelta(days=21)
    after["usage_drop"] = np.where(after.churned == 1, 0.99, 0.01)
    activity = pd.concat([train, after, live.drop(columns=["request_id"])], ignore_index=True).drop(
        columns=["churned"]
    )
    paths = {
        "activity": folder / "activity.parquet",
        "observations": folder / "observations.parquet",
        "production": folder / "production.parquet",
    }
    activity.to_parquet(paths["activity"], index=False)
    train[["customer_id", "event_timestamp", "churned", *FEATURES]].to_parquet(
        paths["observations"], index=False
    )
    live.to_parquet(paths["production"], index=False)
    digest = hashlib.sha256(paths["activity"].read_bytes() + paths["observations"].read_bytes())
    print(
        f"    {customers} customers, {len(activity)} activity rows, "
        f"{live_count} production requests (labels arrive later)"
    )
    return Generated(
        activity=str(paths["activity"]),
        observations=str(paths["observations"]),
        production=str(paths["production"]),
        fingerprint=digest.hexdigest(),
        customers=customers,
    )


def apply_features(ctx: StepContext, generate_data: Generated) -> int:
    """`features apply` (the plan, then the change, whole) and `features materialize`."""
    from stack.features import apply_features as apply
    from stack.features import render_plan

    apply(
        ctx.session,
        ctx.recipe,
        show=lambda plan: print("    " + render_plan(plan).replace("\n", "\n    ")),
    )
    views = ctx.session.features.materialize(END, start=START - timedelta(days=1))
    print(f"    materialized {views} feature view(s) into the online store up to {END:%Y-%m-%d}")
    return views


def point_in_time(ctx: StepContext, entity: Any, label: str = "churned") -> Frame:
    """Each entity row's features as of its own time, from the feature store; counts the
    rows that would have seen their future (the leak trap), which must be none."""
    training = ctx.session.features.training_frame(
        entity[["customer_id", "event_timestamp", label]], REFS
    )
    frame = training.frame
    expected = entity.set_index(["customer_id", "event_timestamp"])["usage_drop"]
    got = frame.set_index(["customer_id", "event_timestamp"])["usage_drop"]
    leaked = int((got.reindex(expected.index).round(3) != expected.round(3)).sum())
    return Frame(frame, training.fingerprint, training.feature_views, leaked)


def training_frame(ctx: StepContext, generate_data: Generated, apply_features: int) -> Frame:
    """The point-in-time training frame: labels observed at each customer's time, features
    joined as of that time by Feast (the later, leaking update is not seen)."""
    import pandas as pd

    observations = pd.read_parquet(generate_data.observations)
    built = point_in_time(ctx, observations)
    print(
        f"    {len(built.frame)} rows, point in time: {built.leaked} rows saw their future "
        f"(views: {', '.join(f'{v.name}@{v.version}' for v in built.views)})"
    )
    return built


def split(frame: Any, share: float = 0.75) -> tuple[Any, Any]:
    """Earlier rows to train on, later rows to test on: no future in training."""
    ordered = frame.sort_values("event_timestamp", ignore_index=True)
    cut = int(len(ordered) * share)
    return ordered.iloc[:cut], ordered.iloc[cut:]


def train(ctx: StepContext, training_frame: Frame, C: float, max_iter: int) -> TrainedModel:
    """A scaled logistic regression, tracked in MLflow: params, the training frame and its
    feature views, the model with its signature, and the monitoring reference."""
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fit_rows, _ = split(training_frame.frame)
    x, y = fit_rows[list(FEATURES)], fit_rows["churned"]
    tracker = ctx.session.tracker
    run = tracker.start_run("quickstart-churn", name=f"{ctx.recipe.name}-{ctx.run_id[:8]}")
    tracker.log_params(run, {"C": C, "max_iter": max_iter, "features": ",".join(FEATURES)})
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter)).fit(x, y)
    model_uri = tracker.log_model(
        run,
        model,
        name="churn",
        framework="sklearn",
        requirements=[f"scikit-learn=={sklearn.__version__}"],
        input_example=x.head(5),  # the signature (named columns) is what the endpoint accepts
    )
    from stack.contract.features import TrainingFrame

    Lifecycle(ctx.session).record_training_frame(
        run.run_id,
        TrainingFrame(fit_rows, training_frame.fingerprint, training_frame.views),
    )
    # What monitoring compares live windows with: the training rows as the endpoint sees
    # them, and the model's own answers on them (for prediction drift).
    save_reference(ctx.session, run.run_id, x.assign(prediction=model.predict(x)))
    return TrainedModel(run.run_id, run.experiment, model_uri, model)


def evaluate(
    ctx: StepContext, training_frame: Frame, train: TrainedModel, holdout: str
) -> dict[str, float]:
    """AUC and accuracy on the later rows, logged with the dataset they were measured on
    (the gate compares a challenger with the champion only on the same data)."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    _, test = split(training_frame.frame)
    x, y = test[list(FEATURES)], test["churned"]
    scores = train.model.predict_proba(x)[:, 1]
    metrics = {
        "auc": round(float(roc_auc_score(y, scores)), 4),
        "accuracy": round(float(accuracy_score(y, (scores >= 0.5).astype(int))), 4),
    }
    run = RunRef(train.run_id, train.experiment)
    tracker = ctx.session.tracker
    fingerprint = holdout_fingerprint(test, holdout)
    tracker.log_metrics(run, metrics)
    tracker.log_dataset(run, fingerprint, context="evaluation")
    tracker.finish_run(run)
    print(
        f"    auc={metrics['auc']:.3f} accuracy={metrics['accuracy']:.3f} on {len(test)} later rows"
    )
    evaluate_champion(ctx, x, y, fingerprint)
    return metrics


def evaluate_champion(ctx: StepContext, x: Any, y: Any, fingerprint: DatasetFingerprint) -> None:
    """The serving champion's AUC on the same rows, logged to its run with their dataset,
    when its run has none on these rows (a champion the retraining made was evaluated on the
    production period's rows): the serving gate compares the two only on the same data."""
    from sklearn.metrics import roc_auc_score

    from stack.contract.registry import ModelLoader

    serving = ctx.session.registry.find_by_state("churn", LifecycleState.SERVING)
    if not serving or not serving[0].run_id:
        return
    champion, tracker = serving[0], ctx.session.tracker
    record = tracker.get_run(serving[0].run_id)
    if any(d.name == fingerprint.name and d.digest == fingerprint.digest for d in record.datasets):
        return
    registry = ctx.session.registry
    assert isinstance(registry, ModelLoader), "the registry loads no model into a process"
    loaded: Any = registry.load_model(champion)
    auc = round(float(roc_auc_score(y, loaded.get_raw_model().predict_proba(x)[:, 1])), 4)
    tracker.log_metrics(record.ref, {"auc": auc})
    tracker.log_dataset(record.ref, fingerprint, context="evaluation")
    print(f"    champion {champion.ref} auc={auc:.3f} on the same rows")


def holdout_fingerprint(test: Any, name: str) -> DatasetFingerprint:
    import pandas as pd

    digest = hashlib.sha256(pd.util.hash_pandas_object(test, index=False).to_numpy().tobytes())
    return DatasetFingerprint(
        name=name,
        digest=f"sha256:{digest.hexdigest()}",
        rows=len(test),
        columns=tuple(test.columns),
        source="recipes/quickstart (generated)",
    )


def register(ctx: StepContext, train: TrainedModel, evaluate: dict[str, float]) -> str:
    """A candidate version in the registry: audited, linked to its run, tagged with the
    recipe whose gates it must pass."""
    version = Lifecycle(ctx.session).register(
        "churn",
        train.model_uri,
        run_id=train.run_id,
        tags={"auc": str(evaluate["auc"])},
        reason=f"{ctx.recipe.name}, auc {evaluate['auc']}",
        recipe=ctx.recipe,
    )
    print(f"    registered {version.ref} as {version.state.value}")
    return version.ref


def approve(ctx: StepContext, register: str, approver: str) -> str:
    """Through the `approved` gate (metric thresholds), and the sign-off the `serving` gate
    asks for, given by the demo's approver (a member of ml-leads; never the author)."""
    governance = Governance(ctx.session)
    version = governance.version(register)
    # A resumed run (its process was killed during this step) finds done what was done.
    if version.state is not LifecycleState.APPROVED:
        governance.promote(register, LifecycleState.APPROVED, reason="passed the approved gate")
    if approver not in governance.eligible_approvers(version, LifecycleState.SERVING):
        governance.approve(
            register, LifecycleState.SERVING, reason="demo approval", as_actor=approver
        )
    print(f"    {register} approved; {approver} signed off for serving")
    return register
