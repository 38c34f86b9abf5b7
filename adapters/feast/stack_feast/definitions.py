"""mlstack's feature definitions, checked, then turned into Feast objects."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float32, Float64, Int32, Int64, String

from stack.contract.features import FeatureDefinitions
from stack.errors import StackError

DTYPES = {
    "int64": Int64,
    "int32": Int32,
    "float64": Float64,
    "float32": Float32,
    "string": String,
    "bool": Bool,
}


KEY_TYPES = {"string": ValueType.STRING, "int64": ValueType.INT64}


def check(definitions: FeatureDefinitions) -> None:
    """Refuse definitions Feast would accept half-way: unknown names, types, empty sources."""
    entities = {e.name for e in definitions.entities}
    sources = {s.name: s for s in definitions.sources}
    problems = [
        f"entity {e.name!r}: key type {e.key_type!r}; types are {', '.join(sorted(KEY_TYPES))}"
        for e in definitions.entities
        if e.key_type not in KEY_TYPES
    ]
    for view in definitions.views:
        for entity in view.entities:
            if entity not in entities:
                problems.append(f"view {view.name!r}: unknown entity {entity!r}")
        if view.source not in sources:
            problems.append(f"view {view.name!r}: unknown source {view.source!r}")
        for field in view.features:
            if field.dtype not in DTYPES:
                problems.append(
                    f"view {view.name!r}: feature {field.name!r} has type {field.dtype!r}; "
                    f"types are {', '.join(sorted(DTYPES))}"
                )
    for source in definitions.sources:
        problems.extend(_source_problems(source.name, Path(source.path)))
    if problems:
        raise StackError("feature definitions refused:\n  " + "\n  ".join(problems))


def _source_problems(name: str, path: Path) -> list[str]:
    if not path.exists():
        return [f"source {name!r}: {path} does not exist"]
    import pyarrow.parquet as pq

    try:
        rows = pq.ParquetFile(path).metadata.num_rows if path.is_file() else None
    except Exception as exc:
        return [f"source {name!r}: {path} is not a parquet file ({exc})"]
    if rows == 0:
        return [f"source {name!r}: {path} has no rows"]
    return []


def feast_objects(definitions: FeatureDefinitions) -> list[Any]:
    entities = {
        e.name: Entity(name=e.name, join_keys=list(e.join_keys), value_type=KEY_TYPES[e.key_type])
        for e in definitions.entities
    }
    sources = {
        s.name: FileSource(name=s.name, path=s.path, timestamp_field=s.timestamp_field)
        for s in definitions.sources
    }
    views = [
        FeatureView(
            name=v.name,
            entities=[entities[e] for e in v.entities],
            ttl=timedelta(seconds=v.ttl_seconds) if v.ttl_seconds else timedelta(0),
            schema=[Field(name=f.name, dtype=DTYPES[f.dtype]) for f in v.features],
            source=sources[v.source],
        )
        for v in definitions.views
    ]
    return [*entities.values(), *sources.values(), *views]
