"""In-memory reference adapters for every role, in plain Python.

They exist to prove the conformance suites in `stack.testing` (each suite must pass on a
correct implementation and its tests must be able to fail) and to exercise the registry and
session. They wrap no tool, so they stand in for none: adapter tests use the real tools.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stack.contract import (
    ColumnDrift,
    ColumnPolicy,
    ColumnQuality,
    DatasetFingerprint,
    DriftReport,
    Endpoint,
    FeatureDefinitions,
    FeaturePlan,
    FeatureViewRef,
    HealthReport,
    LifecycleState,
    MetricPoint,
    ModelVersion,
    PerformanceReport,
    QualityReport,
    RunRecord,
    RunRef,
    RunStatus,
    TaskKind,
    TrafficSplit,
    TrainingFrame,
    can_transition,
)
from stack.contract.states import EXCLUSIVE_STATES
from stack.errors import InvalidTransition, NotFound, StackError

Columns = dict[str, list[Any]]
_ids = itertools.count(1)


class ListFrames:
    """FrameIO for the memory adapters: a frame is a dict of equal-length lists."""

    def from_columns(self, columns: Mapping[str, Sequence[Any]]) -> object:
        return {k: list(v) for k, v in columns.items()}

    def to_rows(self, frame: Any) -> list[dict[str, Any]]:
        keys = list(frame)
        return [
            dict(zip(keys, values, strict=True)) for values in zip(*frame.values(), strict=True)
        ]

    def write_source(self, columns: Mapping[str, Sequence[Any]], path: Path) -> None:
        rows = self.to_rows(self.from_columns(columns))
        path.write_text(json.dumps(rows, default=lambda d: d.isoformat()))


class MemoryTracker:
    def __init__(self, config: object, context: object) -> None:
        self.runs: dict[str, dict[str, Any]] = {}

    def start_run(
        self, experiment: str, *, name: str | None = None, tags: Mapping[str, str] | None = None
    ) -> RunRef:
        ref = RunRef(f"mem-{next(_ids)}", experiment)
        self.runs[ref.run_id] = {
            "ref": ref,
            "status": RunStatus.RUNNING,
            "params": {},
            "tags": dict(tags or {}),
            "metrics": defaultdict(list),
            "datasets": [],
        }
        return ref

    def _run(self, run_id: str) -> dict[str, Any]:
        if run_id not in self.runs:
            raise NotFound(f"no run {run_id!r}")
        return self.runs[run_id]

    def log_params(self, run: RunRef, params: Mapping[str, object]) -> None:
        self._run(run.run_id)["params"].update({k: str(v) for k, v in params.items()})

    def log_metrics(
        self, run: RunRef, metrics: Mapping[str, float], *, step: int | None = None
    ) -> None:
        history = self._run(run.run_id)["metrics"]
        for key, value in metrics.items():
            history[key].append(MetricPoint(key, value, step or 0, datetime.now(UTC)))

    def set_tags(self, run: RunRef, tags: Mapping[str, str]) -> None:
        self._run(run.run_id)["tags"].update(tags)

    def log_artifact(self, run: RunRef, path: Path, *, artifact_path: str | None = None) -> str:
        return f"memory://{run.run_id}/{artifact_path or ''}/{path.name}"

    def log_dataset(
        self, run: RunRef, dataset: DatasetFingerprint, *, context: str = "training"
    ) -> None:
        self._run(run.run_id)["datasets"].append(dataset)

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
        self._run(run.run_id).setdefault("models", {})[name] = model
        return f"memory://{run.run_id}/models/{name}"

    def finish_run(self, run: RunRef, status: RunStatus = RunStatus.FINISHED) -> None:
        self._run(run.run_id)["status"] = status

    def get_run(self, run_id: str) -> RunRecord:
        run = self._run(run_id)
        return RunRecord(
            ref=run["ref"],
            status=run["status"],
            params=dict(run["params"]),
            metrics={k: v[-1].value for k, v in run["metrics"].items()},
            tags=dict(run["tags"]),
            datasets=tuple(run["datasets"]),
        )

    def metric_history(self, run: RunRef, key: str) -> list[MetricPoint]:
        return list(self._run(run.run_id)["metrics"][key])


class MemoryRegistry:
    def __init__(self, config: object, context: object) -> None:
        self.models_: dict[str, list[ModelVersion]] = defaultdict(list)

    def register(
        self,
        model: str,
        source_uri: str,
        *,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        version = ModelVersion(
            model,
            len(self.models_[model]) + 1,
            LifecycleState.CANDIDATE,
            source_uri,
            run_id,
            datetime.now(UTC),
            dict(tags or {}),
        )
        self.models_[model].append(version)
        return version

    def models(self) -> list[str]:
        return sorted(name for name, versions in self.models_.items() if versions)

    def get_version(self, model: str, version: int) -> ModelVersion:
        if not 1 <= version <= len(self.models_.get(model, [])):
            raise NotFound(f"no version {model}@{version}")
        return self.models_[model][version - 1]

    def versions(self, model: str) -> list[ModelVersion]:
        return list(self.models_.get(model, []))

    def find_by_state(self, model: str, state: LifecycleState) -> list[ModelVersion]:
        return [v for v in self.versions(model) if v.state == state]

    def find_by_run(self, run_id: str) -> list[ModelVersion]:
        return [v for vs in self.models_.values() for v in vs if v.run_id == run_id]

    def set_state(self, model: str, version: int, state: LifecycleState) -> ModelVersion:
        current = self.get_version(model, version)
        if not can_transition(current.state, state):
            raise InvalidTransition(f"{current.ref}: {current.state} -> {state} is not allowed")
        if state in EXCLUSIVE_STATES:
            for other in self.find_by_state(model, state):
                self._replace(other, LifecycleState.RETIRED)
        return self._replace(current, state)

    def _replace(self, version: ModelVersion, state: LifecycleState) -> ModelVersion:
        updated = ModelVersion(
            version.model,
            version.version,
            state,
            version.source_uri,
            version.run_id,
            version.created_at,
            version.tags,
        )
        self.models_[version.model][version.version - 1] = updated
        return updated


class MemoryFeatureStore:
    def __init__(self, config: object, context: object) -> None:
        self.applied: FeatureDefinitions = FeatureDefinitions()
        self.online: dict[tuple[str, str], dict[str, Any]] = {}

    def plan(self, definitions: FeatureDefinitions) -> FeaturePlan:
        have = {v.name: v for v in self.applied.views}
        return FeaturePlan(
            to_add=tuple(v.name for v in definitions.views if v.name not in have),
            to_update=tuple(
                v.name for v in definitions.views if v.name in have and have[v.name] != v
            ),
        )

    def apply(self, definitions: FeatureDefinitions) -> FeaturePlan:
        plan = self.plan(definitions)
        self.applied = definitions
        return plan

    def _source_rows(self, view_name: str) -> tuple[Any, list[dict[str, Any]]]:
        view = next((v for v in self.applied.views if v.name == view_name), None)
        if view is None:
            raise StackError(f"unknown feature view {view_name!r}")
        source = next(s for s in self.applied.sources if s.name == view.source)
        rows = json.loads(Path(source.path).read_text())
        for row in rows:
            row[source.timestamp_field] = datetime.fromisoformat(row[source.timestamp_field])
        return view, sorted(rows, key=lambda r: r[source.timestamp_field])

    def _resolve(self, features: Sequence[str]) -> list[tuple[Any, str, list[dict[str, Any]]]]:
        resolved = []
        for ref in features:
            view_name, _, feature = ref.partition(":")
            view, rows = self._source_rows(view_name)
            if feature not in {f.name for f in view.features}:
                raise StackError(f"unknown feature {ref!r}")
            resolved.append((view, feature, rows))
        return resolved

    def training_frame(self, entity_frame: Any, features: Sequence[str]) -> TrainingFrame:
        if "event_timestamp" not in entity_frame:
            raise StackError("the entity frame needs an 'event_timestamp' column")
        resolved = self._resolve(features)
        out = {k: list(v) for k, v in entity_frame.items()}
        for _view, feature, rows in resolved:
            key = self.applied.entities[0].join_keys[0]
            values = []
            for entity, moment in zip(
                entity_frame[key], entity_frame["event_timestamp"], strict=True
            ):
                past = [r for r in rows if r[key] == entity and r["event_timestamp"] <= moment]
                values.append(past[-1][feature] if past else None)
            out[feature] = values
        n = len(entity_frame["event_timestamp"])
        views = tuple(
            FeatureViewRef(v.name, "1") for v in {r[0].name: r[0] for r in resolved}.values()
        )
        return TrainingFrame(out, DatasetFingerprint("training", "mem", n, tuple(out)), views)

    def materialize(self, end: datetime, *, start: datetime | None = None) -> int:
        for view in self.applied.views:
            _, rows = self._source_rows(view.name)
            key = self.applied.entities[0].join_keys[0]
            for row in rows:
                if row["event_timestamp"] <= end:
                    self.online[(view.name, row[key])] = row
        return len(self.applied.views)

    def online_features(
        self, features: Sequence[str], entity_rows: Sequence[Mapping[str, object]]
    ) -> list[dict[str, object]]:
        resolved = self._resolve(features)
        key = self.applied.entities[0].join_keys[0]
        return [
            {
                feature: self.online.get((view.name, row[key]), {}).get(feature)
                for view, feature, _ in resolved
            }
            for row in entity_rows
        ]


class MemoryServer:
    def __init__(self, config: object, context: object) -> None:
        self.live: dict[str, Endpoint] = {}
        self.versions: dict[str, ModelVersion] = {}

    def deploy(self, version: ModelVersion, *, endpoint: str) -> Endpoint:
        self.versions[version.ref] = version
        revision = self.live[endpoint].revision + 1 if endpoint in self.live else 1
        self.live[endpoint] = Endpoint(
            endpoint, f"memory://{endpoint}", revision, TrafficSplit({version.ref: 1.0})
        )
        return self.live[endpoint]

    def add_version(self, version: ModelVersion, *, endpoint: str) -> None:
        self._get(endpoint)
        self.versions[version.ref] = version

    def route(self, endpoint: str, split: TrafficSplit) -> Endpoint:
        current = self._get(endpoint)
        unknown = [ref for ref in [*split.weights, *split.shadows] if ref not in self.versions]
        if unknown:
            raise StackError(f"versions not deployed: {unknown}")
        self.live[endpoint] = Endpoint(endpoint, current.url, current.revision + 1, split)
        return self.live[endpoint]

    def _get(self, endpoint: str) -> Endpoint:
        if endpoint not in self.live:
            raise NotFound(f"no endpoint {endpoint!r}")
        return self.live[endpoint]

    def health(self, endpoint: str, *, since: datetime | None = None) -> HealthReport:
        self._get(endpoint)
        return HealthReport(endpoint, ready=True, requests=0, error_rate=0.0, p99_latency_ms=None)

    def endpoints(self) -> list[Endpoint]:
        return list(self.live.values())

    def undeploy(self, endpoint: str) -> None:
        self._get(endpoint)
        del self.live[endpoint]


class MemoryMonitor:
    """Drift as the mean shift in reference standard deviations (threshold 0.1)."""

    def __init__(self, config: object, context: object) -> None:
        pass

    def _column(self, reference: Any, current: Any, policy: ColumnPolicy) -> ColumnDrift:
        ref, cur = reference[policy.column], current[policy.column]
        score = abs(statistics.fmean(cur) - statistics.fmean(ref)) / (statistics.pstdev(ref) or 1.0)
        threshold = policy.threshold if policy.threshold is not None else 0.1
        return ColumnDrift(
            policy.column, policy.method or "mean_shift", score, threshold, score >= threshold
        )

    def drift(
        self,
        reference: Any,
        current: Any,
        *,
        columns: Sequence[ColumnPolicy],
        prediction_column: str | None = None,
        html_path: Path | None = None,
    ) -> DriftReport:
        names = [c.column for c in columns] + ([prediction_column] if prediction_column else [])
        for name in names:
            if all(v is None or (isinstance(v, float) and math.isnan(v)) for v in reference[name]):
                raise StackError(f"the reference has no value in column {name!r}")
        prediction = (
            self._column(reference, current, ColumnPolicy(prediction_column))
            if prediction_column
            else None
        )
        return DriftReport(tuple(self._column(reference, current, c) for c in columns), prediction)

    def quality(self, reference: Any, current: Any, *, columns: Sequence[str]) -> QualityReport:
        def missing(value: Any) -> bool:
            return value is None or (isinstance(value, float) and math.isnan(value))

        found = []
        rows = len(next(iter(current.values()))) if current else 0
        for name in columns:
            before = [v for v in reference[name] if not missing(v)]
            now = list(current[name])
            present = [v for v in now if not missing(v)]
            gone = (len(now) - len(present)) / len(now) if now else 0.0
            if all(isinstance(v, int | float) for v in before + present):
                low, high = min(before), max(before)
                outside = sum(1 for v in present if v < low or v > high)
                found.append(ColumnQuality(name, gone, outside / len(now) if now else 0.0))
            else:
                new = sorted({str(v) for v in present} - {str(v) for v in before})
                found.append(ColumnQuality(name, gone, new_categories=tuple(new)))
        return QualityReport(rows, tuple(found))

    def performance(
        self,
        frame: Any,
        *,
        task: TaskKind,
        target: str,
        prediction: str,
        min_labelled_rows: int = 30,
    ) -> PerformanceReport:
        pairs = [
            (y, p)
            for y, p in zip(frame[target], frame[prediction], strict=True)
            if y is not None and not (isinstance(y, float) and math.isnan(y))
        ]
        rows = len(frame[target])
        if len(pairs) < min_labelled_rows:
            return PerformanceReport(
                {},
                rows,
                len(pairs),
                False,
                (f"only {len(pairs)} labelled rows; need {min_labelled_rows}",),
            )
        accuracy = sum(y == p for y, p in pairs) / len(pairs)
        return PerformanceReport({"accuracy": accuracy}, rows, len(pairs), True)
