"""What a demanding MLflow user relies on, checked with MLflow's own client."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from stack.contract.tracking import DatasetFingerprint, RunStatus
from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowTrackerConfig
from stack_mlflow.tracker import MlflowTracker


def tracker_on(uri: str, context: AdapterContext, **options: object) -> MlflowTracker:
    return MlflowTracker(MlflowTrackerConfig(tracking_uri=uri, **options), context)


def test_metrics_go_out_in_batches_of_1000(sqlite_uri: str, context: AdapterContext) -> None:
    tracker = tracker_on(sqlite_uri, context, flush_interval_seconds=3600)
    calls: list[int] = []
    real_log_batch = tracker.client.log_batch

    def counting_log_batch(run_id: str, metrics=(), **kwargs):  # type: ignore[no-untyped-def]
        if metrics:
            calls.append(len(metrics))
        return real_log_batch(run_id, metrics=metrics, **kwargs)

    tracker.client.log_batch = counting_log_batch  # type: ignore[method-assign]
    run = tracker.start_run("batches")
    for step in range(2500):
        tracker.log_metrics(run, {"loss": 1 / (step + 1)}, step=step)
    assert calls == [1000, 1000]  # two full batches written, 500 still buffered
    tracker.finish_run(run)
    assert calls == [1000, 1000, 500]
    history = MlflowClient(tracker.uri).get_metric_history(run.run_id, "loss")
    assert len(history) == 2500


def test_code_version_is_recorded(sqlite_uri: str, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "train.py").write_text("print('v1')\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    (repo / "train.py").write_text("print('v2, uncommitted')\n")

    context = AdapterContext(home=tmp_path / ".mlstack", base_dir=repo)
    tracker = tracker_on(sqlite_uri, context)
    run = tracker.start_run("code")
    tracker.finish_run(run)
    record = tracker.get_run(run.run_id)
    assert record.code is not None
    assert (record.code.commit, record.code.dirty) == (commit.strip(), True)
    tags = MlflowClient(tracker.uri).get_run(run.run_id).data.tags
    assert tags["mlflow.source.git.commit"] == commit.strip()


def test_dataset_fingerprint_is_an_mlflow_dataset_input(
    sqlite_uri: str, context: AdapterContext
) -> None:
    tracker = tracker_on(sqlite_uri, context)
    run = tracker.start_run("data")
    digest = "sha256:" + "ab" * 32
    tracker.log_dataset(
        run,
        DatasetFingerprint("customers", digest, 1200, ("id", "tenure"), "s3://b/c.parquet"),
    )
    tracker.finish_run(run)
    [dataset_input] = MlflowClient(tracker.uri).get_run(run.run_id).inputs.dataset_inputs
    assert dataset_input.dataset.name == "customers"
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"
    [fingerprint] = tracker.get_run(run.run_id).datasets
    assert fingerprint == DatasetFingerprint(
        "customers", digest, 1200, ("id", "tenure"), "s3://b/c.parquet"
    )


def test_logged_model_registers_and_loads_by_alias(
    sqlite_uri: str, context: AdapterContext
) -> None:
    from sklearn.linear_model import LogisticRegression

    from stack.contract.states import LifecycleState as S
    from stack_mlflow.config import MlflowRegistryConfig
    from stack_mlflow.registry import MlflowRegistry

    model_name = f"churn-{uuid.uuid4().hex[:8]}"
    tracker = tracker_on(sqlite_uri, context)
    registry = MlflowRegistry(MlflowRegistryConfig(tracking_uri=tracker.uri), context)
    run = tracker.start_run("models")
    frame = pd.DataFrame({"tenure": [0.0, 1.0, 2.0, 3.0]})
    model = LogisticRegression().fit(frame, [0, 0, 1, 1])
    uri = tracker.log_model(
        run,
        model,
        name="churn",
        framework="sklearn",
        requirements=["scikit-learn"],
        input_example=frame,
    )
    tracker.finish_run(run)
    version = registry.register(model_name, uri, run_id=run.run_id)
    registry.set_state(model_name, version.version, S.APPROVED)
    registry.set_state(model_name, version.version, S.SERVING)

    client = MlflowClient(tracker.uri)
    by_alias = client.get_model_version_by_alias(model_name, "serving")
    assert int(by_alias.version) == version.version
    assert by_alias.tags["mlstack.state"] == "serving"
    assert by_alias.run_id == run.run_id
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracker.uri)
    try:
        loaded = mlflow.pyfunc.load_model(f"models:/{model_name}@serving")
    finally:
        mlflow.set_tracking_uri(previous)
    assert list(loaded.predict(pd.DataFrame({"tenure": [0.0, 3.0]}))) == [0, 1]


def test_requirements_are_the_ones_given(
    sqlite_uri: str, context: AdapterContext, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    tracker = tracker_on(sqlite_uri, context)
    run = tracker.start_run("models")
    frame = pd.DataFrame({"x": [0.0, 1.0]})
    model = LogisticRegression().fit(frame, [0, 1])
    uri = tracker.log_model(
        run,
        model,
        name="m",
        framework="sklearn",
        requirements=["scikit-learn==1.99"],
        input_example=frame,
    )
    tracker.finish_run(run)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=MlflowClient(tracker.uri)
        .get_logged_model(uri.split("/")[-1])
        .artifact_location,
        dst_path=str(tmp_path / "dl"),
    )
    requirements = (Path(local) / "requirements.txt").read_text().split()
    # MLflow adds itself; nothing else is inferred from the environment.
    assert requirements == [f"mlflow=={mlflow.__version__}", "scikit-learn==1.99"]


def test_failed_run_status_reaches_mlflow(sqlite_uri: str, context: AdapterContext) -> None:
    tracker = tracker_on(sqlite_uri, context)
    run = tracker.start_run("status")
    tracker.finish_run(run, RunStatus.FAILED)
    assert MlflowClient(tracker.uri).get_run(run.run_id).info.status == "FAILED"
