"""Step code of the batch-scoring recipe."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stack.contract.registry import ModelLoader
from stack.contract.states import LifecycleState
from stack.errors import StackError
from stack.monitoring import BatchPredictionLog, batch_root
from stack.monitoring.loop import MonitoringLoop
from stack.orchestration.steps import StepContext
from stack.spine import NodeKind, NodeRef

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "late_payments", "usage_drop"]


@dataclass(frozen=True)
class Scored:
    path: str
    version: str
    rows: int


def feature_table(ctx: StepContext, rows: int, seed: int, shift: float) -> str:
    """Active customers and their current features, as a parquet file (generated here;
    `shift` > 0 makes support calls and usage drop rise, to see monitoring react)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(rows)],
            "tenure_months": rng.integers(1, 73, rows).astype(float),
            "monthly_charges": rng.uniform(20, 120, rows).round(2),
            "support_calls": rng.poisson(2 + 2.5 * shift, rows).astype(float),
            "late_payments": rng.integers(0, 5, rows).astype(float),
            "usage_drop": rng.beta(2 + 3 * shift, 5 - 2 * shift, rows).round(3),
        }
    )
    folder = ctx.recipe.directory / "data"
    folder.mkdir(exist_ok=True)
    path = folder / "to_score.parquet"
    frame.to_parquet(path, index=False)
    return str(path)


def score(ctx: StepContext, feature_table: str, model: str, batch: str) -> Scored:
    """The serving version scores every row; scores are written back beside the table and
    recorded for monitoring under ids `<customer>@<date>` (what outcome labels will name)."""
    import pandas as pd

    session = ctx.session
    serving = session.registry.find_by_state(model, LifecycleState.SERVING)
    if not serving:
        raise StackError(f"no version of {model!r} is serving: promote one first")
    version = serving[0]
    registry = session.registry
    if not isinstance(registry, ModelLoader):
        raise StackError("this stack's registry cannot load models (capability load_model)")
    table = pd.read_parquet(feature_table)
    predictions = registry.load_model(version).predict(table[FEATURES])  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    scores = table[["customer_id"]].assign(
        churn=list(predictions), model_version=version.ref, scored_at=now
    )
    path = Path(feature_table).with_name("scores.parquet")
    scores.to_parquet(path, index=False)
    ids = [f"{cid}@{now:%Y-%m-%d}" for cid in table.customer_id]
    BatchPredictionLog(batch_root(session)).record(
        batch,
        version=version.ref,
        ids=ids,
        records=table[FEATURES].to_dict("records"),
        predictions=list(predictions),
        at=now,
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    session.spine.link(
        NodeRef(NodeKind.MODEL_VERSION, version.ref),
        NodeRef(NodeKind.DATA_SNAPSHOT, f"sha256:{digest}"),
        "scored",
    )
    print(f"    {len(scores)} customers scored by {version.ref} -> {path}")
    return Scored(str(path), version.ref, len(scores))


def monitor(ctx: StepContext, score: Scored, model: str) -> str:
    """The batch checked as an endpoint's window is (the recipe's `monitoring:`)."""
    outcome = MonitoringLoop(ctx.session).check(model)
    for check in outcome.checks:
        drifted = (", ".join(check.drift.drifted_columns) or "nothing") if check.drift else "-"
        print(f"    {check.version}: {check.status.upper()} over {check.rows} rows")
        print(f"      drifted: {drifted}")
        for reason in check.breaches:
            print(f"      breach: {reason}")
        for message in check.messages:
            print(f"      note: {message}")
    return "breach" if outcome.breached else "ok"
