"""The Tracker role: runs with their params, metrics, artifacts, code version and datasets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"


@dataclass(frozen=True, slots=True)
class DatasetFingerprint:
    """What a run trained or evaluated on, precisely enough to tell two datasets apart."""

    name: str
    digest: str
    rows: int
    columns: tuple[str, ...]
    source: str | None = None


@dataclass(frozen=True, slots=True)
class CodeVersion:
    """The code a run came from; `dirty` marks uncommitted changes in the working tree."""

    commit: str | None
    dirty: bool


@dataclass(frozen=True, slots=True)
class RunRef:
    run_id: str
    experiment: str


@dataclass(frozen=True, slots=True)
class MetricPoint:
    key: str
    value: float
    step: int
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as the tracker stores it; `metrics` holds the latest value of each key."""

    ref: RunRef
    status: RunStatus
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    datasets: tuple[DatasetFingerprint, ...] = ()
    code: CodeVersion | None = None


@runtime_checkable
class Tracker(Protocol):
    """Records what a training or evaluation run did, so it can be compared and reproduced."""

    def start_run(
        self, experiment: str, *, name: str | None = None, tags: Mapping[str, str] | None = None
    ) -> RunRef:
        """Open a run in `experiment` (created if new) and return its reference. The code
        version (git commit, dirty or not) is recorded with it. Raises TrackingUnavailable
        when the backend cannot be reached."""
        ...

    def log_params(self, run: RunRef, params: Mapping[str, object]) -> None:
        """Record the run's parameters; each value is stored as its `str()`. A parameter is
        written once: logging the same key with another value raises the backend's error."""
        ...

    def log_metrics(
        self, run: RunRef, metrics: Mapping[str, float], *, step: int | None = None
    ) -> None:
        """Record metric values (floats, in the metric's own unit) at `step` (0 if None),
        timestamped now. Points are buffered and written in batches; `finish_run` makes
        them durable. Gates read the latest value of each key."""
        ...

    def set_tags(self, run: RunRef, tags: Mapping[str, str]) -> None:
        """Set string tags on the run (a later value replaces an earlier one)."""
        ...

    def log_artifact(self, run: RunRef, path: Path, *, artifact_path: str | None = None) -> str:
        """Store a local file with the run and return its URI."""
        ...

    def log_dataset(
        self, run: RunRef, dataset: DatasetFingerprint, *, context: str = "training"
    ) -> None:
        """Record a dataset the run used (`context`: training, evaluation, …), by name,
        content digest, row count and columns. A gate's `champion.same_dataset` compares
        these digests."""
        ...

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
        """Store a trained model with the run and return the URI the registry registers.

        `framework` names the flavor (`sklearn`, `xgboost`, `lightgbm`, `onnx`, `python` for a
        custom model class). `requirements` are pip requirement lines, given explicitly:
        inferring them means importing the model's code in a subprocess, which costs seconds
        per model. `input_example` is a few rows as the endpoint will receive them (a pandas
        DataFrame): the request schema is derived from it. `options` are the flavor's own
        (e.g. `pyfunc_predict_fn="predict_proba"` to serve scores).

        Raises StackError (ModelNotServable in the MLflow adapter) naming the cause and the
        fix when the model could not be served as logged; nothing is stored then.
        """
        ...

    def finish_run(self, run: RunRef, status: RunStatus = RunStatus.FINISHED) -> None:
        """End the run; everything logged before this call is durable after it."""
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """The run as stored (params, latest metrics, tags, datasets, code version). Raises
        NotFound for an unknown id."""
        ...

    def metric_history(self, run: RunRef, key: str) -> list[MetricPoint]:
        """Every point of metric `key`, ordered by step then time."""
        ...


@runtime_checkable
class SpillReplayer(Protocol):
    """Trackers with the `replay` capability upload metrics they saved while the backend was
    unreachable (`mlstack tracking replay FILE`)."""

    def replay(self, path: Path) -> int: ...


@runtime_checkable
class RunCloser(Protocol):
    """Trackers that can end the runs a step left open: when a step raises, the executor
    ends the runs opened during it as FAILED, so none reads FINISHED (or RUNNING) after it."""

    def open_runs(self) -> frozenset[str]:
        """Ids of the runs started and not finished yet."""
        ...

    def end_open_runs(self, status: RunStatus, *, keep: frozenset[str] = frozenset()) -> list[str]:
        """End every open run whose id is not in `keep` with `status`; their ids."""
        ...


#: Set by the executor while a step runs: the pipeline run the step works for.
PIPELINE_RUN_ENV = "MLSTACK_PIPELINE_RUN"
#: On a tracking run opened during a step: the pipeline run that opened it.
PIPELINE_RUN_TAG = "mlstack.pipeline_run"


@runtime_checkable
class OrphanRunCloser(Protocol):
    """Trackers that can find, from any process, the runs a pipeline run opened and left
    open (its process died), and end them: `mlstack doctor`, and `--resume` of a run
    whose process died, mark them KILLED."""

    def open_runs_by_pipeline_run(self) -> Mapping[str, tuple[str, ...]]:
        """Ids of the runs still open that carry PIPELINE_RUN_TAG, by that pipeline run."""
        ...

    def end_runs(self, run_ids: Sequence[str], status: RunStatus) -> None:
        """End each of `run_ids` with `status` (one attempt each; raises
        TrackingUnavailable when the backend cannot be reached)."""
        ...


#: On a model version: the experiment its server traces each request into.
TRACE_EXPERIMENT_TAG = "mlstack.trace_experiment"
#: On a served request's root span (attribute) and trace (tag): the version that answered.
SERVED_VERSION = "mlstack.version"


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One span of a trace: what it was given and what it returned."""

    name: str
    inputs: Mapping[str, object]
    outputs: object
    root: bool = False
    attributes: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One traced request: its spans (the root first), tags (the prompt and model versions
    that served it), and when it started."""

    trace_id: str
    tags: Mapping[str, str]
    started_at: datetime
    spans: tuple[SpanRecord, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict)  # online evaluation's, so far

    def span(self, name: str | None = None) -> SpanRecord | None:
        """The first span called `name` (the root when no name is given)."""
        return next((s for s in self.spans if (s.name == name if name else s.root)), None)

    @property
    def inputs(self) -> Mapping[str, object]:
        root = self.span()
        return root.inputs if root is not None else {}

    @property
    def outputs(self) -> object:
        root = self.span()
        return root.outputs if root is not None else None


class Span(Protocol):
    def set_outputs(self, outputs: object) -> None: ...

    def set_attribute(self, key: str, value: object) -> None: ...


@runtime_checkable
class Tracer(Protocol):
    """Traces of an LLM app: spans with inputs, outputs and attributes (latency is measured);
    read back for online evaluation, which writes its scores onto them as feedback."""

    def span(
        self,
        name: str,
        *,
        kind: str = "CHAIN",
        inputs: Mapping[str, object] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> AbstractContextManager[Span]: ...

    def traces(self, *, since: datetime | None = None, limit: int = 100) -> list[TraceRecord]: ...

    def log_feedback(
        self, trace_id: str, name: str, value: float, *, rationale: str | None = None
    ) -> None: ...

    def flush(self) -> None:
        """Write out traces still queued (tools export them in the background)."""
        ...


@runtime_checkable
class TracingTracker(Protocol):
    """Trackers with the `tracing` capability give a Tracer for an experiment."""

    def tracer(self, experiment: str) -> Tracer: ...
