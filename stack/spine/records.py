"""Read-side value types of the spine store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    name: str
    subject: str
    payload: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class Approval:
    subject: str
    target_state: str
    actor: str
    decision: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class StepRecord:
    step: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    output_uri: str | None
    output_digest: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class RunLease:
    """The process driving a pipeline run: its pid and host, the kernel's start time of
    that pid (a token: equal only for the same process), and when it last renewed."""

    pid: int
    host: str
    started: str
    renewed_at: datetime


@dataclass(frozen=True, slots=True)
class PipelineRunRecord:
    run_id: str
    recipe: str
    orchestrator: str
    state: str
    resumed_from: str | None
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    steps: tuple[StepRecord, ...]
    # The `--param`s the run was started with, as typed ("train.epochs=20"), in order.
    param_overrides: tuple[str, ...] = ()
    # Who drives the run (None: a run from before leases, or one nobody drives).
    lease: RunLease | None = None


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """A late label: for `request_id` (and `row` of that request), or for the `entity` key
    as observed at `observed_at`."""

    model: str
    label: Any
    observed_at: datetime
    source: str
    request_id: str | None = None
    row: int = 0
    entity: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class MonitoringCheck:
    id: int
    model: str
    version: str
    endpoint: str
    window_start: datetime
    window_end: datetime
    at: datetime
    status: str
    result: Mapping[str, Any]
    report_uri: str | None
