"""Read an existing Feast feature repo (its Python files) as mlstack feature definitions.

Feast's own `feast apply` imports the repo's modules with the repo as working directory; the
same is done here, then the objects are translated so that they go through the one plan/apply
path (breaking changes refused, nothing half-applied). What that path cannot express (stream
or on-demand views, non-file sources, feature services) is refused by name, never dropped."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from stack.contract.features import (
    Entity,
    FeatureDefinitions,
    FeatureField,
    FeatureSource,
    FeatureView,
)
from stack.errors import StackError
from stack_feast.definitions import DTYPES, KEY_TYPES


def read_repo(path: Path) -> FeatureDefinitions:
    from feast import FileSource
    from feast.feature_view import DUMMY_ENTITY_NAME
    from feast.repo_operations import parse_repo

    root = path.resolve()
    if not root.is_dir():
        raise StackError(f"Feast repo {root} is not a folder")
    try:
        with _importing_from(root):
            contents = parse_repo(root)
    except Exception as exc:
        raise StackError(f"reading Feast repo {root}: {type(exc).__name__}: {exc}") from exc

    unsupported = [
        *(f"on-demand view {v.name!r}" for v in contents.on_demand_feature_views),
        *(f"stream view {v.name!r}" for v in contents.stream_feature_views),
        *(f"feature service {s.name!r}" for s in contents.feature_services),
        *(
            f"source {s.name!r} ({type(s).__name__})"
            for s in contents.data_sources
            if not isinstance(s, FileSource)
        ),
    ]
    if unsupported:
        raise StackError(
            f"Feast repo {root} uses what mlstack cannot plan yet: {', '.join(unsupported)}; "
            "use file sources and plain feature views, or apply this repo with `feast apply`"
        )
    key_names = {value: name for name, value in KEY_TYPES.items()}
    dtype_names = {str(dtype): name for name, dtype in DTYPES.items()}
    problems: list[str] = []
    entities = []
    for entity in contents.entities:
        if entity.name == DUMMY_ENTITY_NAME:  # Feast adds it for views without entities
            continue
        key_type = key_names.get(entity.value_type)
        if key_type is None:
            problems.append(f"entity {entity.name!r}: key type {entity.value_type.name}")
        entities.append(Entity(entity.name, (entity.join_key,), key_type or "string"))
    views = []
    for view in contents.feature_views:
        fields = []
        for feature in view.features:
            dtype = dtype_names.get(str(feature.dtype))
            if dtype is None:
                problems.append(f"view {view.name!r}: feature {feature.name!r} is {feature.dtype}")
            fields.append(FeatureField(feature.name, dtype or "string"))
        ttl = int(view.ttl.total_seconds()) if view.ttl else None
        source = view.batch_source.name if view.batch_source is not None else ""
        views.append(FeatureView(view.name, tuple(view.entities), source, tuple(fields), ttl))
    if problems:
        raise StackError(f"Feast repo {root} uses unsupported types: {'; '.join(problems)}")
    sources = tuple(
        FeatureSource(s.name, _resolved(root, s.path), s.timestamp_field)
        for s in contents.data_sources
        if isinstance(s, FileSource)
    )
    return FeatureDefinitions(tuple(entities), sources, tuple(views))


def _resolved(root: Path, path: str) -> str:
    return path if "://" in path or Path(path).is_absolute() else str(root / path)


@contextlib.contextmanager
def _importing_from(root: Path) -> Iterator[None]:
    """Import the repo's modules as `feast apply` does, and forget them afterwards, so that
    reading a second repo with a module of the same name does not get the first one's."""
    before = set(sys.modules)
    cwd = Path.cwd()
    sys.path.insert(0, str(root))
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path.remove(str(root))
        for name in set(sys.modules) - before:
            module = sys.modules.get(name)
            if module is not None and str(getattr(module, "__file__", "") or "").startswith(
                str(root)
            ):
                del sys.modules[name]
