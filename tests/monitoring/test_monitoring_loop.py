"""The monitoring loop on a real stack: a served model's prediction log against its training
reference, labels arriving late by CSV and by `/feedback`, the recipe's policy, the webhook,
the drift hook, retraining with its cooldown. Phases run in order on one endpoint; each
check reads only its own phase's window."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.contract.states import LifecycleState
from stack.hooks.specs import hookimpl
from stack.monitoring.labels import read_labels
from stack.monitoring.loop import MonitoringLoop, MonitoringOutcome
from stack.monitoring.reference import save_reference
from stack.spine import NodeKind, NodeRef
from tests.monitoring.conftest import Served, moment
from tests.monitoring.recipe.steps import sample
from tests.support.cli import cli_in


class DriftSpy:
    def __init__(self) -> None:
        self.models: list[str] = []

    @hookimpl
    def on_drift_detected(self, model: str, report: Any) -> None:
        self.models.append(model)


def wait_for_log(served: Served, since: datetime, count: int) -> None:
    """Until the endpoint's log (written off the request path) holds `count` entries."""
    deadline = time.monotonic() + 15
    with served.session() as session:
        while time.monotonic() < deadline:
            if len(session.server.logged("churn", since=since)) >= count:  # type: ignore[attr-defined]
                return
            time.sleep(0.2)
    raise AssertionError(f"the log did not reach {count} entries")


def check(
    served: Served, start: datetime, end: datetime, spy: DriftSpy | None = None
) -> MonitoringOutcome:
    with served.session() as session:
        if spy is not None:
            session.hooks.register(spy, name="spy")
        return MonitoringLoop(session.with_recipe(served.recipe)).check(
            "churn", until=end, window=end - start
        )


@pytest.fixture(scope="module")
def steady(served: Served, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """400 requests like the training data; 200 labelled through /feedback, 100 by a CSV
    file (50 by request id, 50 by customer key), 100 never."""
    start = moment()
    records, truth = sample(400, seed=2)
    answers = served.send(records, "steady")
    with httpx.Client(timeout=10) as client:
        feedback = [
            {"request_id": request_id, "label": truth[i]}
            for i, (request_id, _) in enumerate(answers[:200])
        ]
        assert client.post(f"{served.url}/feedback", json=feedback).status_code == 202
    csv = tmp_path_factory.mktemp("labels") / "labels.csv"
    lines = ["request_id,customer,label,observed_at"]
    later = (moment() + timedelta(seconds=1)).isoformat()
    for i in range(200, 250):
        lines.append(f"{answers[i][0]},,{truth[i]},")
    for i in range(250, 300):
        lines.append(f",{records[i]['customer']},{truth[i]},{later}")
    csv.write_text("\n".join(lines) + "\n")
    result = cli_in(served.folder)(
        "labels", "ingest", str(csv), "--model", "churn", "--entity", "customer"
    )
    assert result.returncode == 0, result.stderr
    assert "ingested 100 labels" in result.stdout
    wait_for_log(served, start, 400 + 200)
    end = moment()
    expected = sum(answers[i][1] == truth[i] for i in range(300)) / 300
    return {"start": start, "end": end, "accuracy": expected}


def test_a_steady_window_passes_with_performance_from_late_labels(
    served: Served, steady: dict[str, Any]
) -> None:
    outcome = check(served, steady["start"], steady["end"])
    [result] = outcome.checks
    assert result.version == served.version.ref
    assert result.rows == 400
    assert result.status == "ok", result.messages + result.breaches
    assert result.drift is not None and result.drift.drifted_columns == ()
    assert {c.column for c in result.drift.columns} == {"tenure", "spend", "calls"}
    spend = next(c for c in result.drift.columns if c.column == "spend")
    assert (spend.method, spend.threshold) == ("psi", 0.2)  # the recipe's per-column setting
    assert result.drift.prediction is not None and not result.drift.prediction.drifted
    performance = result.performance
    assert performance is not None and performance.sufficient
    assert performance.labelled_rows == 300
    assert performance.label_coverage == pytest.approx(0.75)
    assert performance.metrics["accuracy"] == pytest.approx(steady["accuracy"])
    assert outcome.retrain is None
    with served.session() as session:
        [stored] = session.spine.checks("churn", limit=1)
    assert stored.id == result.id and stored.status == "ok"
    assert stored.result["performance"]["labelled_rows"] == 300


def test_a_window_larger_than_the_sample_is_judged_on_a_sample_and_counted_whole(
    served: Served, steady: dict[str, Any]
) -> None:
    monitoring = served.recipe.spec.monitoring.model_copy(update={"sample_rows": 200})
    sampling = dataclasses.replace(
        served.recipe, spec=served.recipe.spec.model_copy(update={"monitoring": monitoring})
    )
    end = steady["end"]
    with served.session() as session:
        [result] = (
            MonitoringLoop(session.with_recipe(sampling))
            .assess("churn", until=end, window=end - steady["start"])
            .checks
        )
    assert result.rows == 400  # one record per request: the estimate is the count
    assert any("uniform sample of 200 of about 400 rows" in m for m in result.messages)
    assert result.drift is not None and result.quality is not None
    assert result.quality.rows == 200
    # the 250 labels naming a request id are matched against every request answered
    assert result.labels is not None and 250 <= result.labels.matched <= 300
    assert result.performance is not None and result.performance.rows == 200


def test_the_html_report_is_saved_and_logged_to_the_tracker(
    served: Served, steady: dict[str, Any]
) -> None:
    outcome = check(served, steady["start"], steady["end"])
    [result] = outcome.checks
    assert result.drift is not None and result.drift.html_path is not None
    assert result.drift.html_path.read_text().lstrip().lower().startswith("<!doctype html")
    # logged to the tracker, as an artifact of a run in the `monitoring-churn` experiment
    assert result.report_uri is not None
    logged = Path(result.report_uri.removeprefix("file://"))
    assert logged.name == result.drift.html_path.name
    assert logged.read_bytes() == result.drift.html_path.read_bytes()
    assert "/monitoring/" in result.report_uri


@pytest.fixture(scope="module")
def drifted(served: Served, steady: dict[str, Any]) -> dict[str, Any]:
    """120 requests with tenure shifted far from the training data, no labels."""
    start = moment()
    records, _ = sample(120, seed=3, shift=2.5)
    served.send(records, "drifted")
    wait_for_log(served, start, 120)
    return {"start": start, "end": moment()}


def test_a_drifted_window_breaches_alerts_and_retrains_once(
    served: Served, drifted: dict[str, Any]
) -> None:
    spy = DriftSpy()
    outcome = check(served, drifted["start"], drifted["end"], spy)
    [result] = outcome.checks
    assert result.status == "breach"
    assert result.drift is not None and "tenure" in result.drift.drifted_columns
    assert any("watched feature drifted: tenure" in b for b in result.breaches)
    # no labels in this window: said, not reported as numbers
    assert result.performance is not None and not result.performance.sufficient
    assert result.performance.notes
    # the alert reached the webhook with the check's record (sent by the first check that saw
    # this breach; later ones send nothing until it resolves), the hook fired, the audit log
    # has it
    firing = [b for b in served.webhook.received if b["alert"]["status"] == "firing"]
    assert any(
        (b["alert"]["name"], b["version"], b["breaches"])
        == ("MlstackMonitoringBreach", result.version, result.breaches)
        for b in firing
    ), firing
    assert spy.models == ["churn"]
    with served.session() as session:
        audited = [e.action for e in session.spine.audit_entries()]
        assert "monitoring.breached" in audited
        report = NodeRef(NodeKind.REPORT, f"monitoring/{result.id}")
        linked = session.spine.upstream(report)
        assert any(e.source == NodeRef(NodeKind.MODEL_VERSION, served.version.ref) for e in linked)
        # retraining ran the recipe: a new candidate, not served until it passes its gate
        assert outcome.retrain is not None and outcome.retrain.started
        assert outcome.retrain.state == "succeeded"
        newest = session.registry.versions("churn")[-1]
        assert newest.version > served.version.version
        assert newest.state is LifecycleState.CANDIDATE
        assert "retraining.finished" in [e.action for e in session.spine.audit_entries()]
    again = check(served, drifted["start"], drifted["end"])
    assert again.breached
    assert again.retrain is not None and not again.retrain.started
    assert again.retrain.reason.startswith("cooldown")


def test_an_empty_window_says_so(served: Served) -> None:
    end = moment() - timedelta(days=30)
    [result] = check(served, end - timedelta(hours=1), end).checks
    assert result.status == "empty"
    assert "no answered requests" in result.messages[0]


def test_the_cli_checks_and_lists_history(served: Served, drifted: dict[str, Any]) -> None:
    cli = cli_in(served.folder)
    until = drifted["end"].isoformat()
    result = cli(
        "monitor",
        "run",
        "churn",
        "--recipe",
        str(served.recipe.directory),
        "--until",
        until,
        "--window",
        "5m",
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "BREACH: watched feature drifted: tenure" in result.stdout
    assert "retraining not started: cooldown" in result.stdout
    listed = cli("monitor", "history", "churn", check=True)
    assert "breach" in listed.stdout and served.version.ref in listed.stdout


def test_bad_labels_file_stores_nothing(served: Served, tmp_path: Path) -> None:
    bad = tmp_path / "labels.csv"
    bad.write_text("request_id,label\nr1,1\nr2,\n")
    cli = cli_in(served.folder)
    result = cli("labels", "ingest", str(bad), "--model", "churn")
    assert result.returncode == 1
    assert f"{bad}:3: column 'label' is empty" in result.stderr
    with served.session() as session:
        assert not [g for g in session.spine.labels("churn") if g.request_id == "r1"]
    with pytest.raises(Exception, match="no column 'outcome'"):
        read_labels(bad, model="churn", label_column="outcome")


def test_ingesting_a_label_file_again_replaces_its_labels(served: Served, tmp_path: Path) -> None:
    """Last write wins per request id: the same file twice stores its labels once, and a
    corrected file's label replaces the first."""
    file = tmp_path / "labels.csv"
    file.write_text("request_id,label\nagain-1,1\nagain-2,0\nagain-1,1\n")
    cli = cli_in(served.folder)
    for _ in range(2):
        result = cli("labels", "ingest", str(file), "--model", "churn", check=True)
        assert "ingested 2 labels" in result.stdout
    file.write_text("request_id,label\nagain-1,0\n")
    cli("labels", "ingest", str(file), "--model", "churn", check=True)
    with served.session() as session:
        stored = [
            g for g in session.spine.labels("churn") if g.request_id in {"again-1", "again-2"}
        ]
    assert sorted((g.request_id, g.label) for g in stored) == [("again-1", 0), ("again-2", 0)]


def test_bad_feedback_is_refused_by_name(served: Served) -> None:
    with httpx.Client(timeout=10) as client:
        url = f"{served.url}/feedback"
        missing = client.post(url, json={"label": 1})
        assert missing.status_code == 422
        assert missing.json()["fields"][0]["field"] == "request_id"
        extra = client.post(url, json={"request_id": "x", "label": 1, "colour": "red"})
        assert extra.status_code == 422 and extra.json()["fields"][0]["field"] == "colour"
        assert client.post(url, json={"request_id": "x", "label": [1]}).status_code == 422
        assert client.post(url, content=b"").status_code == 400
        assert client.post(url, content=b"{nope").status_code == 422
        assert client.post(url, json=[]).status_code == 422
        assert client.get(url).status_code == 405


def test_schema_changes_become_messages_not_crashes(served: Served, steady: dict[str, Any]) -> None:
    """A reference that no longer matches the requests: a renamed column and a column whose
    values changed kind. Runs last: it replaces the version's reference."""
    records, _ = sample(200, seed=4)
    reference = {
        "tenure_months": [r["tenure"] for r in records],  # the window calls it `tenure`
        "spend": [f"{r['spend']:.1f}" for r in records],  # text here, numbers in the window
        "calls": [r["calls"] for r in records],
    }
    with served.session() as session:
        assert served.version.run_id is not None
        save_reference(session, served.version.run_id, reference)
    outcome = check(served, steady["start"], steady["end"])
    [result] = outcome.checks
    messages = " | ".join(result.messages)
    assert "column 'tenure_months' is missing from the window" in messages
    assert "column 'spend' changed type: text in the reference, numeric in the window" in messages
    assert result.drift is not None
    assert [c.column for c in result.drift.columns] == ["calls"]


def test_the_drift_baseline_gate_check_sees_the_training_reference(served: Served) -> None:
    from stack.governance.service import Governance
    from stack.lifecycle import Lifecycle

    with served.session() as session:
        governance = Governance(session.with_recipe(served.recipe))
        with_reference = governance.check(served.version, LifecycleState.SERVING)
        assert "ok   check drift_baseline" in with_reference.explain()
        # a version whose training run saved no reference
        import pandas as pd
        from sklearn.dummy import DummyClassifier

        frame = pd.DataFrame({"tenure": [0.0, 1.0], "spend": [0.0, 1.0], "calls": [1.0, 0.0]})
        run = session.tracker.start_run("monitored")
        uri = session.tracker.log_model(
            run,
            DummyClassifier().fit(frame, [0, 1]),
            name="bare",
            framework="sklearn",
            requirements=["scikit-learn"],
            input_example=frame,
        )
        session.tracker.finish_run(run)
        bare = Lifecycle(session).register("churn", uri, run_id=run.run_id, recipe=served.recipe)
        without = governance.check(bare, LifecycleState.SERVING)
        assert "FAIL check drift_baseline" in without.explain()


def test_bake_and_test_traffic_stay_out_of_the_window_unless_the_recipe_keeps_them(
    served: Served,
) -> None:
    start = moment()
    records, _ = sample(40, seed=5)
    with httpx.Client(timeout=10) as client:
        for i, record in enumerate(records):
            kind = "test" if i % 4 == 0 else "bake"
            response = client.post(
                f"{served.url}/predict", json=record, headers={"x-mlstack-traffic": kind}
            )
            assert response.status_code == 200, response.text
        refused = client.post(
            f"{served.url}/predict", json=records[0], headers={"x-mlstack-traffic": "canary"}
        )
    assert refused.status_code == 400
    assert "x-mlstack-traffic" in refused.json()["error"]
    wait_for_log(served, start, 40)
    end = moment()
    [result] = check(served, start, end).checks
    assert result.status == "empty"
    assert "30 bake, 10 test left out" in result.messages[0]
    monitoring = served.recipe.spec.monitoring.model_copy(
        update={"include_traffic": ("live", "bake")}
    )
    keeping = dataclasses.replace(
        served.recipe, spec=served.recipe.spec.model_copy(update={"monitoring": monitoring})
    )
    with served.session() as session:
        [kept] = (
            MonitoringLoop(session.with_recipe(keeping))
            .check("churn", until=end, window=end - start)
            .checks
        )
    assert kept.rows == 30


def test_a_prediction_log_outage_is_said_in_the_check_and_alerted(served: Served) -> None:
    """The log made unwritable for root too: its folder replaced by a regular file."""
    from tests.support.readiness import readyz_until

    log_dir = served.folder / ".mlstack" / "predictions" / "churn"
    kept = log_dir.with_name("churn.kept")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_dir.rename(kept)
    log_dir.write_text("not a folder")
    start = moment()
    alerts_before = len(served.webhook.received)
    try:
        records, _ = sample(5, seed=6)
        served.send(records, "outage")
        with httpx.Client(timeout=10) as client:
            readyz_until(client, served.url, degraded=True)
        [result] = check(served, start, moment()).checks
        assert any("prediction log unwritable" in m for m in result.messages), result.messages
        [alert] = [
            body
            for body in served.webhook.received[alerts_before:]
            if body.get("kind") == "prediction_log"
        ]
        assert alert["alert"]["status"] == "firing" and alert["endpoint"] == "churn"
        assert "NotADirectoryError" in alert["breaches"][0]
    finally:
        log_dir.unlink()
        kept.rename(log_dir)
    with httpx.Client(timeout=10) as client:
        readyz_until(client, served.url, degraded=False)  # replayed: later checks see them


def test_a_breach_of_a_version_taken_off_the_endpoint_is_resolved_by_the_next_check(
    served: Served,
) -> None:
    """churn@0 breached, then stopped being served: the next check of churn (even of an
    empty window) resolves its alert, saying why, and `alerts firing` no longer lists it."""
    from stack.monitoring.results import CheckResult
    from stack.observability.alerts import breach_alert, router_for

    end = moment() - timedelta(days=30)
    gone = CheckResult("churn", "churn@0", "churn", (end, end), 40, "breach", breaches=["x"])
    section = served.recipe.spec.monitoring
    with served.session() as session:
        router_for(session, section.alerts).fire(breach_alert(gone))
    before = len(served.webhook.received)
    check(served, end - timedelta(hours=1), end)
    [resolved] = [
        body
        for body in served.webhook.received[before:]
        if body.get("alert", {}).get("labels", {}).get("version") == "churn@0"
    ]
    assert resolved["alert"]["status"] == "resolved"
    assert resolved["alert"]["reason"] == "churn@0 is no longer served on churn"
    with served.session() as session:
        versions = [alert.labels.get("version") for alert in session.spine.firing_alerts()]
    assert "churn@0" not in versions


def test_label_ids_are_looked_up_in_the_endpoints_log_by_id(served: Served) -> None:
    """What `labels ingest` checks a label file against: of the ids asked, those answered on
    the endpoint (live or by a fallback); an id only a shadow answered, or one that failed,
    is not. The endpoint's own writer wrote the log; nothing is stored."""
    from stack_bentoml.predictlog import ParquetSink, Prediction

    def row(request_id: str, role: str, status: int = 200) -> Prediction:
        return Prediction(
            request_id,
            time.time(),
            "lookup",
            served.version.ref,
            role,
            status,
            1.0,
            "[]",
            [1] if status == 200 else None,
        )

    with served.session() as session:
        ParquetSink(session.home / "predictions" / "lookup").write(
            [
                row("live", "live"),
                row("fallback", "fallback"),
                row("shadow", "shadow"),
                row("failed", "live", 500),
            ]
        )
        read, answered = MonitoringLoop(session.with_recipe(served.recipe)).answered_among(
            "churn", {"live", "fallback", "shadow", "failed", "never"}, endpoint="lookup"
        )
    assert (read, answered) == ("lookup", {"live", "fallback"})
