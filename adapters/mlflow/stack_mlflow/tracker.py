"""The Tracker role on MLflow: runs, params, buffered metrics, artifacts, datasets, models."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stack.contract.tracking import (
    PIPELINE_RUN_ENV,
    PIPELINE_RUN_TAG,
    CodeVersion,
    DatasetFingerprint,
    MetricPoint,
    RunRecord,
    RunRef,
    RunStatus,
)
from stack.errors import NotFound, TrackingUnavailable
from stack.plugins.manifest import AdapterContext
from stack_mlflow import exits, spill
from stack_mlflow.buffer import Deadline, MetricBuffer, RetryPolicy
from stack_mlflow.code_version import detect_code_version
from stack_mlflow.config import MlflowTrackerConfig
from stack_mlflow.connection import (
    default_artifact_location,
    make_client,
    safe_uri,
    tracking_uri,
)
from stack_mlflow.light import ClientReads, MlflowReads, StoredDataset, StoredRun, light_reads

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from stack_mlflow.tracing import MlflowTracer

COMMIT_TAG = "mlflow.source.git.commit"
DIRTY_TAG = "mlstack.git.dirty"
DATASET_SOURCE_TYPE = "mlstack"

_TO_MLFLOW = {
    RunStatus.RUNNING: "RUNNING",
    RunStatus.FINISHED: "FINISHED",
    RunStatus.FAILED: "FAILED",
    RunStatus.KILLED: "KILLED",
}
_FROM_MLFLOW = {v: k for k, v in _TO_MLFLOW.items()} | {"SCHEDULED": RunStatus.RUNNING}


class MlflowTracker:
    def __init__(self, config: MlflowTrackerConfig | None, context: AdapterContext) -> None:
        self.config = config or MlflowTrackerConfig()
        self.context = context
        self.uri = tracking_uri(self.config, context)
        spill_dir = Path(self.config.spill_dir)
        self.spill_dir = spill_dir if spill_dir.is_absolute() else context.home / spill_dir
        self.deadline = Deadline(self.config.call_timeout_seconds)
        self.buffer = MetricBuffer(
            write=lambda run_id, points: self.deadline.run(
                lambda: self._write_metrics(run_id, points)
            ),
            batch_size=self.config.batch_size,
            flush_interval=self.config.flush_interval_seconds,
            retry=RetryPolicy(
                self.config.retry_attempts,
                self.config.retry_backoff_seconds,
                self.config.retry_backoff_max_seconds,
            ),
            max_points=self.config.max_buffered_points,
            on_overflow=self._spill_points,
        )
        self._experiments: dict[str, str] = {}
        self._open_runs: set[str] = set()
        self._lock = threading.Lock()
        exits.watch(self)

    @cached_property
    def client(self) -> MlflowClient:
        """MLflow's client on this store (imports MLflow; built on first use)."""
        return make_client(self.config, self.context)

    @cached_property
    def _reads(self) -> MlflowReads:
        """Reads that skip importing MLflow where the store allows (the reads package)."""
        return light_reads(self.uri, self.config) or ClientReads(self.client)

    # -- runs ---------------------------------------------------------------------------

    def tracer(self, experiment: str) -> MlflowTracer:
        """MLflow tracing into `experiment` of this store (the `tracing` capability); the
        experiment is created with this stack's artifact location, so no trace data lands
        in a `./mlruns` of whatever folder the app runs in."""
        from stack_mlflow.tracing import MlflowTracer

        self._experiment_id(experiment)
        return MlflowTracer(self.uri, experiment)

    def start_run(
        self, experiment: str, *, name: str | None = None, tags: Mapping[str, str] | None = None
    ) -> RunRef:
        code = detect_code_version(self.context.base_dir)
        all_tags = {
            **(tags or {}),
            COMMIT_TAG: code.commit or "unknown",
            DIRTY_TAG: str(code.dirty).lower(),
        }
        pipeline_run = os.environ.get(PIPELINE_RUN_ENV)
        if pipeline_run:  # a step opens it: found and ended if the step's process dies
            all_tags.setdefault(PIPELINE_RUN_TAG, pipeline_run)
        run = self.client.create_run(self._experiment_id(experiment), run_name=name, tags=all_tags)
        self._open_runs.add(run.info.run_id)
        return RunRef(run.info.run_id, experiment)

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        if name in self._experiments:
            return self._experiments[name]
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            experiment_id: str = existing.experiment_id
        else:
            location = self.config.artifact_location
            if location is None and self.uri.startswith("sqlite:"):
                location = default_artifact_location(self.context)
            try:
                experiment_id = self.client.create_experiment(name, artifact_location=location)
            except MlflowException as exc:  # another process created it first
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                found = self.client.get_experiment_by_name(name)
                assert found is not None
                experiment_id = found.experiment_id
        self._experiments[name] = experiment_id
        return experiment_id

    def log_params(self, run: RunRef, params: Mapping[str, object]) -> None:
        """Raises TrackingDataRefused, logging none of `params`, if a key or value breaks
        MLflow's rules (see `stack_mlflow.validation`)."""
        from stack_mlflow import validation

        items = validation.params(run.run_id, params)
        for start in range(0, len(items), 100):  # MLflow's per-call limit for params
            self.client.log_batch(run.run_id, params=items[start : start + 100])

    def log_metrics(
        self, run: RunRef, metrics: Mapping[str, float], *, step: int | None = None
    ) -> None:
        """Buffer one point per key at `step` (default 0), written in batches.

        A key or value the store would refuse (MLflow's name rules, keys over 250 characters,
        a value that is not a number, ±inf) raises TrackingDataRefused naming it, and none of
        this call's points is buffered: the run's other points are not affected. NaN is kept.
        """
        from stack_mlflow import validation

        points = validation.metric_points(
            run.run_id, metrics, step=0 if step is None else step, timestamp=int(time.time() * 1000)
        )
        self.buffer.add(run.run_id, points)

    def set_tags(self, run: RunRef, tags: Mapping[str, str]) -> None:
        """Raises TrackingDataRefused, setting none of `tags`, if a key breaks MLflow's rules."""
        from stack_mlflow import validation

        self.client.log_batch(run.run_id, tags=validation.tags(run.run_id, tags))

    def log_artifact(self, run: RunRef, path: Path, *, artifact_path: str | None = None) -> str:
        self.client.log_artifact(run.run_id, str(path), artifact_path)
        root = self.client.get_run(run.run_id).info.artifact_uri
        inner = f"{artifact_path.strip('/')}/" if artifact_path else ""
        return f"{root}/{inner}{path.name}"

    def log_dataset(
        self, run: RunRef, dataset: DatasetFingerprint, *, context: str = "training"
    ) -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        entity = Dataset(
            name=dataset.name,
            digest=dataset.digest[:36],  # MLflow keeps at most 36 characters of a digest
            source_type=DATASET_SOURCE_TYPE,
            source=json.dumps({"uri": dataset.source, "digest": dataset.digest}),
            profile=json.dumps({"num_rows": dataset.rows, "columns": list(dataset.columns)}),
        )
        self.client.log_inputs(
            run.run_id,
            datasets=[DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])],
        )

    def log_model(
        self,
        run: RunRef,
        model: object,
        *,
        name: str,
        framework: str,
        requirements: Sequence[str],
        input_example: object | None = None,
        **options: Any,
    ) -> str:
        """A LoggedModel of `run` (MLflow 3), returned as `models:/<model id>`.

        `options` go to the flavor's `save_model` as they are (`pyfunc_predict_fn=`,
        `signature=`, `code_paths=`, `serialization_format=`…). The model is proven servable
        before anything is stored (see `stack_mlflow.models`): one that fails to load in a
        fresh process, to predict its input example, or to have a column signature raises
        ModelNotServable, and the LoggedModel is not created.
        """
        from mlflow.entities import LoggedModelStatus

        from stack_mlflow.models import save_model

        with tempfile.TemporaryDirectory(prefix="mlstack-model-") as folder:
            target = Path(folder) / "model"
            save_model(
                model,
                target,
                framework=framework,
                requirements=list(requirements),
                input_example=input_example,
                serialization=self.config.serialization,
                options=options,
                label=f"model {name!r} ({framework}, run {run.run_id})",
            )
            experiment_id = self.client.get_run(run.run_id).info.experiment_id
            logged = self.client.create_logged_model(
                experiment_id, source_run_id=run.run_id, name=name
            )
            try:
                self.client.log_model_artifacts(logged.model_id, str(target))
            except BaseException:
                self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
                raise
        self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        return f"models:/{logged.model_id}"

    def finish_run(self, run: RunRef, status: RunStatus = RunStatus.FINISHED) -> None:
        """Write every buffered point (with retries), then close the run.

        If the backend stays down, the points and the final status are saved to a spill file
        and TrackingUnavailable says where: nothing is dropped.
        """
        self._finish(run.run_id, _TO_MLFLOW[status], patient=True)

    def open_runs(self) -> frozenset[str]:
        """Ids of the runs this tracker started and has not finished yet."""
        with self._lock:
            return frozenset(self._open_runs)

    def end_open_runs(self, status: RunStatus, *, keep: frozenset[str] = frozenset()) -> list[str]:
        """End every open run not in `keep` with `status` (the `RunCloser` capability: a
        failed step's runs end FAILED); returns their ids.

        One attempt per run, no long retries (the step has failed already; its cause may be
        this very backend): what cannot be written goes to the spill file, and the first
        TrackingUnavailable is raised after every run was tried.
        """
        ended: list[str] = []
        unavailable: TrackingUnavailable | None = None
        for run_id in sorted(self.open_runs() - keep):
            try:
                self._finish(run_id, _TO_MLFLOW[status], patient=False)
            except TrackingUnavailable as exc:
                unavailable = unavailable or exc
            ended.append(run_id)
        if unavailable is not None:
            raise unavailable
        return ended

    def open_runs_by_pipeline_run(self) -> dict[str, tuple[str, ...]]:
        """RUNNING runs tagged with the pipeline run whose step opened them, by that run,
        across every experiment (the `OrphanRunCloser` capability)."""
        from stack_mlflow import orphans

        return orphans.open_runs_by_pipeline_run(self.client)

    def end_runs(self, run_ids: Sequence[str], status: RunStatus) -> None:
        """End runs another process opened and left open (it died) with `status`."""
        from mlflow.exceptions import MlflowException

        from stack_mlflow import orphans

        try:
            orphans.end_runs(self.client, run_ids, _TO_MLFLOW[status])
        except MlflowException as exc:
            raise TrackingUnavailable(
                f"MLflow at {safe_uri(self.uri)} did not end runs {', '.join(run_ids)}: {exc}"
            ) from exc

    def _finish(self, run_id: str, status: str, *, patient: bool) -> None:
        from mlflow.exceptions import MlflowException

        with self._lock:
            written = self.buffer.flush(run_id) if patient else self.buffer.try_flush(run_id)
            if written:
                try:
                    self.deadline.run(lambda: self.client.set_terminated(run_id, status))
                    self._open_runs.discard(run_id)
                    return
                except MlflowException as exc:
                    if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                        raise NotFound(f"no MLflow run {run_id!r}") from exc
                    self.buffer.last_error = exc
                except Exception as exc:
                    self.buffer.last_error = exc
            pending = self.buffer.take(run_id)
            path = self._spill_points(run_id, pending)
            spill.append_final_status(self.spill_dir, run_id, self.uri, status)
            self._open_runs.discard(run_id)
        raise TrackingUnavailable(
            f"MLflow at {safe_uri(self.uri)} is unreachable ({self.buffer.last_error}); "
            f"run {run_id} could not be finished and {len(pending)} metric points are saved in "
            f"{path}. Upload them when it is back: mlstack tracking replay {path}"
        )

    def _write_metrics(self, run_id: str, points: list[Metric]) -> None:
        """Write `points` (at most one batch); the buffer's writer.

        A batch the store refuses on its merits (INVALID_PARAMETER_VALUE: a point it will never
        take, not an outage) is split, so the good points are written and only the refused
        ones are reported (on stderr) and dropped; retrying them could never succeed. Any other
        failure propagates, and the buffer keeps every point for a retry or the spill file.
        """
        from stack_mlflow import refusals

        refused = refusals.write_splitting(
            lambda batch: self.client.log_batch(run_id, metrics=batch), points
        )
        if refused:
            print(f"mlstack: {refusals.describe(run_id, refused)}", file=sys.stderr)

    def _spill_points(self, run_id: str, points: list[Metric]) -> Path:
        path = spill.append_points(self.spill_dir, run_id, self.uri, points)
        if points:
            print(
                f"mlstack: {len(points)} metric points of run {run_id} saved to {path} "
                f"(MLflow unreachable: {self.buffer.last_error})",
                file=sys.stderr,
            )
        return path

    def shutdown(self, status: str) -> None:
        """At exit or SIGTERM: one attempt to flush and close open runs, then spill.

        No long retries here: a process being stopped has seconds, not minutes."""
        for run_id in list(self._open_runs):
            try:
                self._finish(run_id, status, patient=False)
            except TrackingUnavailable as exc:
                print(f"mlstack: {exc}", file=sys.stderr)
        for run_id in self.buffer.runs():
            if not self.buffer.try_flush(run_id):
                self._spill_points(run_id, self.buffer.take(run_id))

    def close(self) -> None:
        for run_id in self.buffer.runs():
            if not self.buffer.flush(run_id):
                self._spill_points(run_id, self.buffer.take(run_id))

    # -- reading back -------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        """The run's record. Read without importing MLflow (the reads package) while this
        tracker has not needed MLflow's client; through that client once it has (its writes,
        buffered metrics flushed first). Raises NotFound when there is no such run."""
        self.buffer.try_flush(run_id)
        reads = ClientReads(self.client) if "client" in self.__dict__ else self._reads
        run = reads.run(run_id)
        if run is None:
            raise NotFound(f"no MLflow run {run_id!r}")
        return _record(run)

    def metric_history(self, run: RunRef, key: str) -> list[MetricPoint]:
        self.buffer.try_flush(run.run_id)
        history = self.client.get_metric_history(run.run_id, key)
        return [
            MetricPoint(m.key, m.value, m.step, datetime.fromtimestamp(m.timestamp / 1000, UTC))
            for m in sorted(history, key=lambda m: (m.step, m.timestamp))
        ]

    # -- replay -------------------------------------------------------------------------

    def replay(self, path: Path) -> int:
        """Upload a spill file written while MLflow was unreachable; returns points written
        (replay.py: safe to run twice, refused points reported, the file kept `.replayed`)."""
        from stack_mlflow.replay import replay_spill

        return replay_spill(self.client, path, uri=self.uri, batch_size=self.config.batch_size)


def _record(run: StoredRun) -> RunRecord:
    commit = run.tags.get(COMMIT_TAG)
    return RunRecord(
        ref=RunRef(run.run_id, run.experiment),
        status=_FROM_MLFLOW.get(run.status, RunStatus.RUNNING),
        params=dict(run.params),
        metrics=dict(run.metrics),
        tags=dict(run.tags),
        datasets=tuple(_fingerprint(d) for d in run.datasets),
        code=CodeVersion(
            commit=None if commit in (None, "unknown") else commit,
            dirty=run.tags.get(DIRTY_TAG) == "true",
        ),
    )


def _fingerprint(dataset: StoredDataset) -> DatasetFingerprint:
    profile = json.loads(dataset.profile or "{}")
    source = (
        json.loads(dataset.source or "{}") if dataset.source_type == DATASET_SOURCE_TYPE else {}
    )
    return DatasetFingerprint(
        name=dataset.name,
        digest=source.get("digest", dataset.digest),
        rows=int(profile.get("num_rows", 0)),
        columns=tuple(profile.get("columns", ())),
        source=source.get("uri"),
    )
