"""The FeatureStore role: feature definitions, point-in-time training frames, online lookups.

Frames are the tool's native tabular type (a pandas DataFrame for Feast); the contract keeps
them as `object` so that the core never imports pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from stack.contract.tracking import DatasetFingerprint


@dataclass(frozen=True, slots=True)
class Entity:
    name: str
    join_keys: tuple[str, ...]
    key_type: str = "string"  # the join keys' type: "string" or "int64"


@dataclass(frozen=True, slots=True)
class FeatureField:
    name: str
    dtype: str


@dataclass(frozen=True, slots=True)
class FeatureSource:
    name: str
    path: str
    timestamp_field: str


@dataclass(frozen=True, slots=True)
class FeatureView:
    name: str
    entities: tuple[str, ...]
    source: str
    features: tuple[FeatureField, ...]
    ttl_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class FeatureDefinitions:
    entities: tuple[Entity, ...] = ()
    sources: tuple[FeatureSource, ...] = ()
    views: tuple[FeatureView, ...] = ()


@dataclass(frozen=True, slots=True)
class FeaturePlan:
    """What `apply` would change; `breaking` lists changes that would break existing views."""

    to_add: tuple[str, ...] = ()
    to_update: tuple[str, ...] = ()
    to_delete: tuple[str, ...] = ()
    breaking: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.to_add or self.to_update or self.to_delete)


@dataclass(frozen=True, slots=True)
class FeatureViewRef:
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class TrainingFrame:
    frame: object
    fingerprint: DatasetFingerprint
    feature_views: tuple[FeatureViewRef, ...]


@runtime_checkable
class FeatureRepoReader(Protocol):
    """Optional: read the definitions of a tool-native feature repo (e.g. a Feast repo)."""

    def read_repo(self, path: Path) -> FeatureDefinitions: ...


@runtime_checkable
class FeatureStore(Protocol):
    def plan(self, definitions: FeatureDefinitions) -> FeaturePlan: ...

    def apply(self, definitions: FeatureDefinitions) -> FeaturePlan:
        """Apply the plan whole or not at all; refuse a breaking change with a clear error."""
        ...

    def training_frame(self, entity_frame: object, features: Sequence[str]) -> TrainingFrame:
        """Join features as of each entity row's timestamp: nothing from its future leaks in."""
        ...

    def materialize(self, end: datetime, *, start: datetime | None = None) -> int:
        """Load the online store up to `end`; returns how many feature views were loaded."""
        ...

    def online_features(
        self, features: Sequence[str], entity_rows: Sequence[Mapping[str, object]]
    ) -> list[dict[str, object]]: ...
