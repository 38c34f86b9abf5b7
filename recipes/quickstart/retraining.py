"""The quickstart's retraining: what monitoring starts when the policy is breached.

It trains on the production period's requests that have labels by now (their features as of
each request's time, from the feature store), evaluates the challenger and the serving
champion on the same later rows (the champion through its live endpoint, as any client
would), and puts the challenger in shadow: it answers a copy of live traffic, and only if it
held its SLOs does it meet the serving gate, which compares it with the champion."""

from __future__ import annotations

from churn import FEATURES, Frame, TrainedModel, holdout_fingerprint, point_in_time, split
from live import endpoint_url, requests, roll_out, stops_endpoint_on_interrupt

from stack.contract import RunRef
from stack.contract.states import LifecycleState
from stack.orchestration.steps import StepContext


def labelled_requests(ctx: StepContext) -> Frame:
    """Production requests that got a label, with their features as of the request's time."""
    import pandas as pd

    production = pd.read_parquet(ctx.recipe.directory / "data" / "production.parquet")
    labels = {g.request_id: g.label for g in ctx.session.spine.labels("churn") if g.request_id}
    known = production[production.request_id.isin(labels)].copy()
    known["churned"] = [int(labels[rid]) for rid in known.request_id]
    built = point_in_time(ctx, known)
    print(f"    {len(built.frame)} labelled production requests, {built.leaked} saw their future")
    return built


def evaluate_against_champion(
    ctx: StepContext, training_frame: Frame, train: TrainedModel, holdout: str
) -> dict[str, float]:
    """Challenger and champion on the same later rows: the challenger's run and the
    champion's run both record accuracy on that dataset (by its fingerprint), which is what
    the serving gate compares. The champion answers through its endpoint."""
    import httpx
    from sklearn.metrics import accuracy_score, roc_auc_score

    _, test = split(training_frame.frame)
    x, y = test[list(FEATURES)], test["churned"]
    scores = train.model.predict_proba(x)[:, 1]
    ours = {
        "auc": round(float(roc_auc_score(y, scores)), 4),
        "accuracy": round(float(accuracy_score(y, (scores >= 0.5).astype(int))), 4),
    }
    tracker = ctx.session.tracker
    dataset = holdout_fingerprint(test, holdout)
    run = RunRef(train.run_id, train.experiment)
    tracker.log_metrics(run, ours)
    tracker.log_dataset(run, dataset, context="evaluation")
    tracker.finish_run(run)
    champion = ctx.session.registry.find_by_state("churn", LifecycleState.SERVING)
    url = endpoint_url(ctx)
    line = f"    challenger accuracy={ours['accuracy']:.3f} auc={ours['auc']:.3f}"
    if champion and champion[0].run_id and url:
        records = x.to_dict("records")
        answer = httpx.post(f"{url}/predict", json=records, timeout=30)
        answer.raise_for_status()
        theirs = round(float(accuracy_score(y, answer.json()["predictions"])), 4)
        record = tracker.get_run(champion[0].run_id)
        tracker.log_metrics(record.ref, {"accuracy": theirs})
        tracker.log_dataset(record.ref, dataset, context="evaluation")
        line += f"; champion {champion[0].ref} accuracy={theirs:.3f} on the same {len(test)} rows"
    print(line)
    return ours


@stops_endpoint_on_interrupt
def shadow(ctx: StepContext, approve: str) -> str:
    """The challenger answers a copy of every request; the serving gate then decides."""
    production = ctx.recipe.directory / "data" / "production.parquet"
    records = [record for _, record in requests(str(production))[:400]]
    return roll_out(ctx, approve, records)
