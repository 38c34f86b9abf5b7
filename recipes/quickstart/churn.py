"""The quickstart's own step code: what a user writes. It talks to the stack only through
the step context (`ctx.session`), so it runs unchanged on every stack and orchestrator."""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stack.contract import DatasetFingerprint, RunRef
from stack.contract.states import LifecycleState
from stack.governance.service import Governance
from stack.lifecycle import Lifecycle
from stack.monitoring import save_reference
from stack.orchestration.steps import StepContext
from stack.spine import NodeKind, NodeRef

FEATURES = ("tenure_months", "monthly_charges", "support_calls", "late_payments", "usage_drop")
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Dataset:
    rows: list[dict[str, float | int | str]]
    fingerprint: str


@dataclass(frozen=True)
class FeatureSet:
    train_x: list[list[float]]
    train_y: list[int]
    test_x: list[list[float]]
    test_y: list[int]
    means: list[float]
    scales: list[float]
    cutoff: str


@dataclass(frozen=True)
class TrainedModel:
    run_id: str
    experiment: str
    model_uri: str
    model: Any


def generate_customers(customers: int, seed: int) -> Dataset:
    """Customers observed over 180 days; churn depends on the features, with noise."""
    rng = random.Random(seed)
    rows: list[dict[str, float | int | str]] = []
    for i in range(customers):
        tenure = rng.randint(1, 72)
        charges = round(rng.uniform(20, 120), 2)
        calls = rng.randint(0, 8)
        late = rng.randint(0, 4)
        usage_drop = round(rng.betavariate(2, 5), 3)
        logit = (
            -1.2 - 0.04 * tenure + 0.015 * charges + 0.35 * calls + 0.4 * late + 2.5 * usage_drop
        )
        churned = int(rng.random() < 1 / (1 + math.exp(-logit)))
        rows.append(
            {
                "customer_id": f"C{i:05d}",
                "event_timestamp": (START + timedelta(days=rng.uniform(0, 180))).isoformat(),
                "tenure_months": tenure,
                "monthly_charges": charges,
                "support_calls": calls,
                "late_payments": late,
                "usage_drop": usage_drop,
                "churned": churned,
            }
        )
    rows.sort(key=lambda r: str(r["event_timestamp"]))
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    return Dataset(rows=rows, fingerprint=digest)


def build_features(generate_data: Dataset) -> FeatureSet:
    """Train on the first 75% of the time line, test on the rest; scale with training stats."""
    rows = generate_data.rows
    cut = int(len(rows) * 0.75)
    train, test = rows[:cut], rows[cut:]

    def matrix(part: list[dict[str, float | int | str]]) -> list[list[float]]:
        return [[float(r[f]) for f in FEATURES] for r in part]

    raw_train = matrix(train)
    means = [sum(col) / len(col) for col in zip(*raw_train, strict=True)]
    scales = [
        math.sqrt(sum((v - m) ** 2 for v in col) / len(col)) or 1.0
        for col, m in zip(zip(*raw_train, strict=True), means, strict=True)
    ]

    def scale(x: list[list[float]]) -> list[list[float]]:
        return [[(v - m) / s for v, m, s in zip(row, means, scales, strict=True)] for row in x]

    return FeatureSet(
        train_x=scale(raw_train),
        train_y=[int(r["churned"]) for r in train],
        test_x=scale(matrix(test)),
        test_y=[int(r["churned"]) for r in test],
        means=means,
        scales=scales,
        cutoff=str(test[0]["event_timestamp"]),
    )


def train(
    ctx: StepContext, generate_data: Dataset, build_features: FeatureSet, C: float, max_iter: int
) -> TrainedModel:
    """Fit a logistic regression; the run records params, the data fingerprint and the model."""
    import pandas as pd
    import sklearn
    from sklearn.linear_model import LogisticRegression

    tracker = ctx.session.tracker
    run = tracker.start_run("quickstart-churn", name=f"train-{ctx.run_id[:8]}")
    tracker.log_params(run, {"C": C, "max_iter": max_iter, "features": ",".join(FEATURES)})
    fingerprint = DatasetFingerprint(
        name="churn-customers",
        digest=f"sha256:{generate_data.fingerprint}",
        rows=len(build_features.train_y),
        columns=FEATURES,
        source="recipes/quickstart (generated, seed 7)",
    )
    tracker.log_dataset(run, fingerprint)
    model = LogisticRegression(C=C, max_iter=max_iter).fit(
        build_features.train_x, build_features.train_y
    )
    model_uri = tracker.log_model(
        run,
        model,
        name="churn",
        framework="sklearn",
        requirements=[f"scikit-learn=={sklearn.__version__}"],
        # the signature (named columns) is what an endpoint serving this model accepts
        input_example=pd.DataFrame(build_features.train_x[:5], columns=list(FEATURES)),
    )
    # What monitoring compares served windows with: the training rows as the endpoint sees
    # them, and the model's own answers on them (for prediction drift).
    reference = pd.DataFrame(build_features.train_x, columns=list(FEATURES))
    reference["prediction"] = model.predict(build_features.train_x)
    save_reference(ctx.session, run.run_id, reference)
    data_node = NodeRef(NodeKind.DATA_SNAPSHOT, fingerprint.digest)
    ctx.session.spine.link(
        data_node,
        NodeRef(NodeKind.RUN, run.run_id),
        "trained",
        attributes={data_node: {"rows": len(generate_data.rows), "cutoff": build_features.cutoff}},
    )
    return TrainedModel(run.run_id, run.experiment, model_uri, model)


def evaluate(ctx: StepContext, build_features: FeatureSet, train: TrainedModel) -> dict[str, float]:
    """AUC and accuracy on the later period, logged to the training run."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    scores = train.model.predict_proba(build_features.test_x)[:, 1]
    metrics = {
        "auc": round(float(roc_auc_score(build_features.test_y, scores)), 4),
        "accuracy": round(
            float(accuracy_score(build_features.test_y, (scores >= 0.5).astype(int))), 4
        ),
    }
    run = RunRef(train.run_id, train.experiment)
    ctx.session.tracker.log_metrics(run, metrics)
    ctx.session.tracker.finish_run(run)
    print(f"    auc={metrics['auc']:.3f} accuracy={metrics['accuracy']:.3f}")
    return metrics


def register(ctx: StepContext, train: TrainedModel, evaluate: dict[str, float]) -> str:
    """Register the model as a candidate: audited, and linked to its run in the spine."""
    version = Lifecycle(ctx.session).register(
        "churn",
        train.model_uri,
        run_id=train.run_id,
        tags={"auc": str(evaluate["auc"])},
        reason=f"quickstart training, auc {evaluate['auc']}",
        recipe=ctx.recipe,
    )
    print(f"    registered {version.ref} as {version.state.value}")
    return version.ref


def promote(ctx: StepContext, register: str, approver: str) -> str:
    """Through the gates: approved (metric thresholds), then serving (thresholds, champion,
    model card, and an approval from the ml-leads group, given here by the demo's approver)."""
    governance = Governance(ctx.session, ctx.recipe)
    governance.promote(register, LifecycleState.APPROVED, reason="quickstart gate")
    governance.approve(register, LifecycleState.SERVING, reason="demo approval", as_actor=approver)
    print(f"    {approver} approved {register} for serving")
    decision = governance.check(governance.version(register), LifecycleState.SERVING)
    for line in decision.explain().splitlines():
        print(f"    {line}")
    if not decision.passed:
        print(f"    {register} stays approved: the challenger did not beat the champion")
        return register
    version = governance.promote(register, LifecycleState.SERVING, reason="passed the gate")
    print(f"    {version.ref} is now {version.state.value}")
    return version.ref


def summary(ctx: StepContext, promote: str) -> None:
    """Where to look next."""
    session = ctx.session
    model = promote.split("@")[0]
    serving = session.registry.find_by_state(model, LifecycleState.SERVING)
    card = session.home / "cards" / f"{promote}.md"
    verified = session.spine.verify_audit()
    print(f"    serving version : {serving[0].ref if serving else 'none'}")
    print(f"    this run's model: {promote}")
    print(f"    lineage         : mlstack lineage {model}@serving")
    for edge in session.spine.upstream(NodeRef(NodeKind.MODEL_VERSION, promote)):
        print(f"                      {edge.target} <-{edge.relation}- {edge.source}")
    print(f"    model card      : {card}")
    print(
        f"    audit log       : {verified.entries} entries, chain "
        f"{'intact' if verified.ok else 'BROKEN'} (mlstack audit log --model {model})"
    )
    print(f"    MLflow UI       : mlflow ui --backend-store-uri sqlite:///{session.home}/mlflow.db")
