"""Traces of an LLM app in MLflow (MLflow tracing), and feedback written onto them.

MLflow's tracing API works through the process's tracking URI and active experiment: a
Tracer points them at this stack's store and experiment once, under the adapter's lock, and
every span then lands there, with its inputs, outputs, attributes (token counts, versions)
and timing. Traces are flushed before they are read back, so a check sees what was traced."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from stack.contract.tracking import SpanRecord, TraceRecord

SOURCE_ID = "mlstack-online-evaluation"  # who wrote a feedback: read back as scores


class _Span:
    def __init__(self, span: Any) -> None:
        self._span = span

    def set_outputs(self, outputs: object) -> None:
        self._span.set_outputs(outputs)

    def set_attribute(self, key: str, value: object) -> None:
        self._span.set_attribute(key, value)


class MlflowTracer:
    def __init__(self, tracking_uri: str, experiment: str) -> None:
        import mlflow

        self.experiment = experiment
        mlflow.set_tracking_uri(tracking_uri)
        self.experiment_id = mlflow.set_experiment(experiment).experiment_id
        self._client = mlflow.MlflowClient(tracking_uri=tracking_uri)

    @contextmanager
    def span(
        self,
        name: str,
        *,
        kind: str = "CHAIN",
        inputs: Mapping[str, object] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Iterator[_Span]:
        import mlflow

        with mlflow.start_span(name=name, span_type=kind) as span:
            if inputs is not None:
                span.set_inputs(dict(inputs))
            if tags:
                mlflow.update_current_trace(tags=dict(tags))
            yield _Span(span)

    def flush(self) -> None:
        import mlflow

        mlflow.flush_trace_async_logging()

    def traces(self, *, since: datetime | None = None, limit: int = 100) -> list[TraceRecord]:
        self.flush()
        where = f"trace.timestamp_ms >= {int(since.timestamp() * 1000)}" if since else None
        found = self._client.search_traces(
            experiment_ids=[self.experiment_id],
            filter_string=where,
            max_results=limit,
            order_by=["timestamp_ms DESC"],
        )
        records = []
        for trace in found:
            if "IN_PROGRESS" in str(trace.info.state):  # no spans or tags yet: next check
                continue
            spans = sorted(
                trace.data.spans, key=lambda s: (s.parent_id is not None, s.start_time_ns)
            )
            records.append(
                TraceRecord(
                    trace_id=trace.info.trace_id,
                    tags=dict(trace.info.tags or {}),
                    started_at=datetime.fromtimestamp(trace.info.request_time / 1000, UTC),
                    scores=_scores(trace.info.assessments or ()),
                    spans=tuple(
                        SpanRecord(
                            s.name,
                            _mapping(s.inputs),
                            s.outputs,
                            root=s.parent_id is None,
                            attributes=dict(s.attributes or {}),
                        )
                        for s in spans
                    ),
                )
            )
        return records

    def log_feedback(
        self, trace_id: str, name: str, value: float, *, rationale: str | None = None
    ) -> None:
        import mlflow
        from mlflow.entities import AssessmentSource

        mlflow.log_feedback(
            trace_id=trace_id,
            name=name,
            value=value,
            rationale=rationale,
            source=AssessmentSource(source_type="CODE", source_id=SOURCE_ID),
        )


def _mapping(inputs: Any) -> dict[str, object]:
    """Span inputs as a mapping (a span given one plain value keeps it under `value`)."""
    if isinstance(inputs, dict):
        return dict(inputs)
    return {} if inputs is None else {"value": inputs}


def _scores(assessments: Any) -> dict[str, float]:
    """The numeric feedback online evaluation already wrote on a trace."""
    found: dict[str, float] = {}
    for assessment in assessments:
        source = getattr(assessment, "source", None)
        value = getattr(assessment, "value", None)
        if getattr(source, "source_id", None) == SOURCE_ID and isinstance(value, int | float):
            found[assessment.name] = float(value)
    return found
