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
