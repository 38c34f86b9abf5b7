"""The `features:` part of a recipe: entities, sources and feature views written inline, or the
path of an existing Feast repo. Either way the FeatureStore role plans and applies them."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stack.contract.features import (
    Entity,
    FeatureDefinitions,
    FeatureField,
    FeatureSource,
    FeatureView,
)

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class EntitySpec(BaseModel):
    model_config = _FROZEN

    name: str = Field(pattern=_NAME)
    join_keys: tuple[str, ...] = Field(min_length=1)
    key_type: str = "string"


class SourceSpec(BaseModel):
    """A parquet file (or folder); a relative path is relative to the recipe folder."""

    model_config = _FROZEN

    name: str = Field(pattern=_NAME)
    path: str
    timestamp_field: str = "event_timestamp"


class ViewSpec(BaseModel):
    model_config = _FROZEN

    name: str = Field(pattern=_NAME)
    entities: tuple[str, ...] = Field(min_length=1)
    source: str
    features: dict[str, str] = Field(min_length=1, description="feature name -> type")
    ttl_days: float | None = Field(default=None, gt=0)


class FeaturesSection(BaseModel):
    """Inline definitions, or `repo:` naming a Feast feature repo (its Python files)."""

    model_config = _FROZEN

    repo: str | None = None
    entities: tuple[EntitySpec, ...] = ()
    sources: tuple[SourceSpec, ...] = ()
    views: tuple[ViewSpec, ...] = ()

    @model_validator(mode="after")
    def _one_kind(self) -> FeaturesSection:
        inline = bool(self.entities or self.sources or self.views)
        if self.repo is not None and inline:
            raise ValueError("give either `repo` or inline entities/sources/views, not both")
        if self.repo is None and not self.views:
            raise ValueError("declare at least one view (or name a Feast `repo`)")
        return self

    def repo_path(self, base: Path) -> Path | None:
        return None if self.repo is None else (base / self.repo).resolve()

    def definitions(self, base: Path) -> FeatureDefinitions:
        """The inline definitions, source paths resolved against the recipe folder."""
        return FeatureDefinitions(
            entities=tuple(Entity(e.name, e.join_keys, e.key_type) for e in self.entities),
            sources=tuple(
                FeatureSource(s.name, str((base / s.path).resolve()), s.timestamp_field)
                for s in self.sources
            ),
            views=tuple(
                FeatureView(
                    name=v.name,
                    entities=v.entities,
                    source=v.source,
                    features=tuple(FeatureField(n, t) for n, t in v.features.items()),
                    ttl_seconds=None if v.ttl_days is None else int(v.ttl_days * 86400),
                )
                for v in self.views
            ),
        )
