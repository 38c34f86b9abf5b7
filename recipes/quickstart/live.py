"""The quickstart in production: deploy as a canary, live traffic, late labels, monitoring
(and the retraining it starts), and the summary.

Traffic is the production period's requests, sent over HTTP to the endpoint as a client
would. A step that runs while the endpoint is up stops it if the demo is interrupted
(Ctrl-C), so nothing the demo started outlives it; at the end the endpoint is left serving,
and the summary says how to stop it."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from churn import FEATURES, REFS, Generated

from stack import interrupts
from stack.contract.states import LifecycleState
from stack.monitoring.labels import read_labels
from stack.monitoring.loop import MonitoringLoop
from stack.orchestration.steps import StepContext
from stack.rollout.controller import RolloutController
from stack.spine import NodeKind, NodeRef

ENDPOINT = "churn"
F = TypeVar("F", bound=Callable[..., Any])


def stops_endpoint_on_interrupt(step: F) -> F:
    """Ctrl-C in this step stops the demo's endpoint before the run records the stop."""

    @functools.wraps(step)
    def wrapper(ctx: StepContext, *args: Any, **kwargs: Any) -> Any:
        try:
            result = step(ctx, *args, **kwargs)
            interrupts.check()  # pressed, but swallowed by a finalizer: still stop here
            return result
        except KeyboardInterrupt:
            if any(e.name == ENDPOINT for e in ctx.session.server.endpoints()):
                ctx.session.server.undeploy(ENDPOINT)
                print(f"\n    interrupted: stopped endpoint {ENDPOINT}")
            raise

    return wrapper  # type: ignore[return-value]


def requests(production: str) -> list[tuple[str, dict[str, float]]]:
    """The production period's requests (from its parquet file): (request id, record), in
    time order."""
    import pandas as pd

    frame = pd.read_parquet(production)
    return [
        (str(request_id), {name: float(record[name]) for name in FEATURES})
        for request_id, record in zip(frame.request_id, frame.to_dict("records"), strict=True)
    ]


@contextmanager
def background_traffic(url: str, records: list[dict[str, float]]) -> Iterator[list[int]]:
    """Requests sent in a loop from a thread while the block runs (a bake needs traffic);
    yields the status codes, filled in as answers come."""
    import httpx

    statuses: list[int] = []
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(timeout=10) as client:
            i = 0
            while not stop.is_set():
                try:
                    answer = client.post(f"{url}/predict", json=records[i % len(records)])
                    statuses.append(answer.status_code)
                except httpx.HTTPError:
                    statuses.append(0)
                    stop.wait(0.2)
                i += 1
                stop.wait(0.01)  # about a hundred requests a second, like a busy client

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        thread.join(15)


def endpoint_url(ctx: StepContext) -> str | None:
    return next((e.url for e in ctx.session.server.endpoints() if e.name == ENDPOINT), None)


def serving_version(ctx: StepContext) -> str | None:
    serving = ctx.session.registry.find_by_state(ENDPOINT, LifecycleState.SERVING)
    return serving[0].ref if serving else None


def running_endpoint(ctx: StepContext) -> str:
    """The endpoint's URL; a stopped endpoint (Ctrl-C stops it, and `--resume` goes on from
    the step after the deploy) is started again with the serving version."""
    from stack.config.rollout import RolloutPlan

    url = endpoint_url(ctx)
    if url is not None:
        return url
    ref = serving_version(ctx)
    if ref is None:
        raise RuntimeError(
            f"endpoint {ENDPOINT} is not running and no version of {ENDPOINT} is serving: "
            "run the recipe again (`mlstack run quickstart`)"
        )
    print(f"    endpoint {ENDPOINT} had stopped: starting it with {ref} (the serving version)")
    plan = RolloutPlan(strategy="direct", endpoint=ENDPOINT)
    return RolloutController(ctx.session).deploy(ref, plan).endpoint.url


def roll_out(ctx: StepContext, ref: str, records: list[dict[str, float]]) -> str:
    """Deploy `ref` by the recipe's rollout plan, with traffic flowing during the bake."""
    controller = RolloutController(ctx.session)
    plan = ctx.recipe.spec.rollout
    url = endpoint_url(ctx)
    if url is None:  # stopped: it starts with the serving version, else this one alone
        champion = serving_version(ctx)
        if champion is None or champion == ref:
            print(f"    starting endpoint {ENDPOINT} with {ref} as a canary")
        else:
            print(
                f"    starting endpoint {ENDPOINT} with {champion} (the serving version), "
                f"then the {plan.strategy} of {ref} beside it"
            )
        holder: dict[str, Any] = {}

        def start() -> None:
            try:
                holder["result"] = controller.deploy(ref)
            except BaseException as exc:  # handed to the step's thread below
                holder["error"] = exc

        starter = threading.Thread(target=start, daemon=True)
        starter.start()
        url = _wait_for_endpoint(ctx, starter)
        with background_traffic(url, records) as statuses:
            starter.join()
        if "error" in holder or "result" not in holder:
            raise holder.get("error") or RuntimeError("the deploy did not finish")
        result = holder["result"]
    else:
        print(f"    {plan.strategy} of {ref} beside the serving version on {url}")
        with background_traffic(url, records) as statuses:
            result = controller.deploy(ref)
    ok = sum(1 for s in statuses if s == 200)
    baked = f"{ok} of {len(statuses)} requests answered 200 while baking"
    print(f"    {result.outcome}: {result.version} ({baked})")
    for reason in result.reasons:
        print(f"      {reason}")
    return result.version


def _wait_for_endpoint(ctx: StepContext, starter: threading.Thread) -> str:
    """The endpoint's URL once it answers `/readyz` (its first version loaded), so that the
    bake's traffic starts on a server that takes requests, not on a port still closed."""
    import time

    import httpx

    while starter.is_alive():
        url = endpoint_url(ctx)
        if url is not None:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass  # not listening yet
        time.sleep(0.2)
    url = endpoint_url(ctx)
    if url is None:
        raise RuntimeError(f"endpoint {ENDPOINT} did not start")
    return url


@stops_endpoint_on_interrupt
def deploy(ctx: StepContext, approve: str, generate_data: Generated, bake_requests: int) -> str:
    """Canary: the version serves the first production traffic and holds its SLOs for the
    bake, then passes the serving gate (thresholds, model card, the approval)."""
    records = [record for _, record in requests(generate_data.production)[:bake_requests]]
    return roll_out(ctx, approve, records)


@stops_endpoint_on_interrupt
def replay(
    ctx: StepContext, deploy: str, generate_data: Generated, bake_requests: int
) -> list[str]:
    """The production period's requests, sent to the endpoint as clients would send them,
    each with its own request id (the key the business keeps with the outcome)."""
    import httpx
    from rich.progress import Progress

    url = running_endpoint(ctx)
    todo = requests(generate_data.production)[bake_requests:]
    answered: list[str] = []
    with Progress(transient=True) as progress, httpx.Client(timeout=10) as client:
        task = progress.add_task("    live traffic", total=len(todo))
        for request_id, record in todo:
            answer = client.post(
                f"{url}/predict", json=record, headers={"x-request-id": request_id}
            )
            if answer.status_code == 200:
                answered.append(request_id)
            progress.advance(task)
    print(f"    {len(answered)} of {len(todo)} requests answered by {url}")
    wait_for_log(ctx, answered[-1:])
    return answered


def wait_for_log(ctx: StepContext, request_ids: list[str], timeout: float = 30.0) -> None:
    """Until the endpoint's log (written off the request path, a flush a second) holds
    these requests: the checks that follow read the log."""
    import time
    from datetime import UTC, datetime, timedelta

    since = datetime.now(UTC) - timedelta(minutes=10)
    deadline = time.monotonic() + timeout
    while request_ids and time.monotonic() < deadline:
        server: Any = ctx.session.server
        logged = {r.request_id for r in server.logged(ENDPOINT, since=since)}
        if set(request_ids) <= logged:
            return
        time.sleep(0.5)


@stops_endpoint_on_interrupt
def late_labels(ctx: StepContext, replay: list[str], generate_data: Generated, share: float) -> int:
    """Weeks later the business knows who left: a CSV of outcomes by request id, ingested
    as `mlstack labels ingest` does (checked whole, then stored in the spine)."""
    import pandas as pd

    production = pd.read_parquet(generate_data.production).set_index("request_id")
    known = replay[: int(len(replay) * share)]
    path = ctx.recipe.directory / "data" / "labels.csv"
    rows = [f"{rid},{int(production.at[rid, 'churned'])}" for rid in known]
    path.write_text("request_id,label\n" + "\n".join(rows) + "\n")
    labels = read_labels(path, model="churn")
    stored = ctx.session.spine.record_labels(labels)
    print(f"    ingested {stored} labels ({share:.0%} of the requests) from {path.name}")
    return stored


@stops_endpoint_on_interrupt
def monitor(ctx: StepContext, late_labels: int) -> dict[str, Any]:
    """`mlstack monitor run churn`: the window against the training reference, the labels
    joined, the recipe's policy; a breach alerts and starts the retraining recipe."""
    loop = MonitoringLoop(ctx.session)
    outcome = loop.assess("churn")
    reports: list[str] = []
    for check in outcome.checks:
        print(f"    {check.version}: {check.status.upper()} over {check.rows} requests")
        if check.drift is not None:
            print(f"      drifted: {', '.join(check.drift.drifted_columns) or 'nothing'}")
        if check.performance is not None and check.performance.sufficient:
            p = check.performance
            print(
                f"      accuracy {p.metrics['accuracy']:.3f} on {p.labelled_rows}/{p.rows} "
                f"labelled (at evaluation: {check.baseline.get('accuracy', float('nan')):.3f})"
            )
        for reason in check.breaches:
            print(f"      breach: {reason}")
        if check.drift is not None and check.drift.html_path is not None:
            reports.append(str(check.drift.html_path))
    outcome.retrain = loop.retrain(outcome)
    if outcome.retrain is not None:
        state = outcome.retrain.state if outcome.retrain.started else "not started"
        print(
            f"    retraining: {state}"
            + ("" if outcome.retrain.started else f" ({outcome.retrain.reason})")
        )
    return {
        "breached": outcome.breached,
        "reports": reports,
        "retrained": bool(outcome.retrain and outcome.retrain.started),
    }


def summary(ctx: StepContext, monitor: dict[str, Any], generate_data: Generated) -> None:
    """Where to look next."""
    session = ctx.session
    serving = session.registry.find_by_state("churn", LifecycleState.SERVING)
    ref = serving[0].ref if serving else None
    verified = session.spine.verify_audit()
    customer = {"customer_id": "C00001"}
    online = session.features.online_features(REFS[:2], [customer])[0]
    print(f"    serving version : {ref or 'none'}")
    url = endpoint_url(ctx) or "not running"
    print(f"    endpoint        : {url}  ({command('mlstack')} undeploy churn stops it)")
    values = ", ".join(f"{k}={v}" for k, v in online.items() if k != "customer_id")
    print(f"    online features : {customer['customer_id']} -> {values} (Feast, online store)")
    if ref is not None:
        print(f"    lineage         : {command('mlstack')} lineage {ref}")
        for edge in session.spine.upstream(NodeRef(NodeKind.MODEL_VERSION, ref)):
            print(f"                      {edge.target} <-{edge.relation}- {edge.source}")
        print(f"    model card      : {session.home / 'cards' / f'{ref}.md'}")
    for report in monitor["reports"]:
        print(f"    drift report    : {report}")
    print(
        f"    audit log       : {verified.entries} entries, chain "
        f"{'intact' if verified.ok else 'BROKEN'} ({command('mlstack')} audit log --model churn)"
    )
    mlflow_ui = f"{command('mlflow')} ui --backend-store-uri sqlite:///{session.home}/mlflow.db"
    print(f"    MLflow UI       : {mlflow_ui}")
    print(
        f"    web console     : {command('mlstack')} ui  (then http://127.0.0.1:8765/; "
        "docs/console.md)"
    )


def command(name: str) -> str:
    """`name` as the user types it: bare when their PATH finds this environment's, else the
    environment's own (`.venv/bin/mlstack` after `make demo`, which does not activate it)."""
    import os
    import shutil
    import sys
    from pathlib import Path

    own = Path(sys.executable).parent / name
    found = shutil.which(name)
    if found is not None and Path(found).resolve() == own.resolve():
        return name
    return os.path.relpath(own) if own.is_relative_to(Path.cwd()) else str(own)
