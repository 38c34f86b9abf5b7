"""The quickstart's own step code: what a user writes. Plain Python, no framework imports
beyond the step context, so it runs unchanged on every orchestrator."""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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
class Model:
    weights: list[float]
    bias: float
    features: tuple[str, ...]


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


def _predict(model: Model, row: list[float]) -> float:
    z = model.bias + sum(w * v for w, v in zip(model.weights, row, strict=True))
    return 1 / (1 + math.exp(-z))


def train(build_features: FeatureSet, epochs: int, learning_rate: float) -> Model:
    """Full-batch gradient descent on the log loss."""
    x, y = build_features.train_x, build_features.train_y
    model = Model(weights=[0.0] * len(FEATURES), bias=0.0, features=FEATURES)
    n = len(x)
    for _ in range(epochs):
        grad_w = [0.0] * len(FEATURES)
        grad_b = 0.0
        for row, label in zip(x, y, strict=True):
            error = _predict(model, row) - label
            grad_b += error
            for j, value in enumerate(row):
                grad_w[j] += error * value
        model = Model(
            weights=[w - learning_rate * g / n for w, g in zip(model.weights, grad_w, strict=True)],
            bias=model.bias - learning_rate * grad_b / n,
            features=FEATURES,
        )
    return model


def auc(labels: list[int], scores: list[float]) -> float:
    """Area under the ROC curve by the rank-sum formula (ties averaged)."""
    ranked = sorted(zip(scores, labels, strict=True))
    ranks = [0.0] * len(ranked)
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    positives = sum(labels)
    negatives = len(labels) - positives
    rank_sum = sum(r for r, (_, label) in zip(ranks, ranked, strict=True) if label == 1)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def evaluate(ctx: StepContext, build_features: FeatureSet, train: Model) -> dict[str, float]:
    """Score the held-out period and record its lineage: data snapshot → pipeline run."""
    scores = [_predict(train, row) for row in build_features.test_x]
    labels = build_features.test_y
    metrics = {
        "auc": round(auc(labels, scores), 4),
        "accuracy": round(
            sum((s >= 0.5) == bool(y) for s, y in zip(scores, labels, strict=True)) / len(labels),
            4,
        ),
        "test_rows": float(len(labels)),
    }
    data_node = NodeRef(NodeKind.DATA_SNAPSHOT, "churn-customers")
    run_node = NodeRef(NodeKind.PIPELINE_RUN, ctx.run_id)
    ctx.session.spine.link(
        data_node,
        run_node,
        "trained",
        attributes={data_node: {"cutoff": build_features.cutoff}, run_node: metrics},
    )
    print(f"    auc={metrics['auc']:.3f} accuracy={metrics['accuracy']:.3f}")
    return metrics
