"""What the light reads answer (the records MLflow's client would give), and their interface."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

IS_PROMPT_TAG = "mlflow.prompt.is_prompt"
DELETED_STAGE = "Deleted_Internal"
DEFAULT_WORKSPACE = "default"
PAGE = 1000


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """A model version as MLflow stores it. `created_ms`: milliseconds since the epoch."""

    name: str
    version: int
    source: str
    run_id: str | None
    created_ms: int
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredDataset:
    """A dataset a run used, as MLflow stores it (`source` and `profile`: JSON text)."""

    name: str
    digest: str
    source_type: str
    source: str
    profile: str | None


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A run as MLflow's `get_run` answers it: the latest value of each metric; its
    datasets in order of name and digest."""

    run_id: str
    experiment: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    datasets: tuple[StoredDataset, ...]


class MlflowReads(Protocol):
    """What the MLflow adapter reads: the model registry, and a run's record."""

    def model_names(self) -> list[str]:
        """Every registered model (prompts left out), sorted."""

    def versions(self, model: str) -> list[StoredVersion]:
        """The live versions of `model` (none when it does not exist), by number."""

    def by_run(self, run_id: str) -> list[StoredVersion]:
        """The live versions registered from run `run_id`."""

    def version(self, model: str, number: int) -> StoredVersion | None:
        """Version `number` of `model`; None when there is none (or it was deleted)."""

    def alias(self, model: str, alias: str) -> int | None:
        """The version `alias` names; None when the model or the alias does not exist."""

    def run(self, run_id: str) -> StoredRun | None:
        """Run `run_id` of the tracking store; None when there is none."""


def datasets_in_order(datasets: Iterable[StoredDataset]) -> tuple[StoredDataset, ...]:
    """A run's datasets by name and digest (MLflow answers them in the database's order)."""
    return tuple(sorted(datasets, key=lambda d: (d.name, d.digest, d.source)))
