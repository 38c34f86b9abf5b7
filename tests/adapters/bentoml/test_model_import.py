"""A version imported into BentoML's model store is that version: the store's tag is the
model's name and number alone, so a store shared by two stacks (a local quickstart's and
production's, both with a `churn` version 1) must not hand one stack the other's model."""

from __future__ import annotations

from pathlib import Path

from stack.plugins.manifest import AdapterContext
from stack_bentoml.models import import_version
from stack_mlflow.config import MlflowTrackerConfig
from stack_mlflow.tracker import MlflowTracker
from tests.adapters.bentoml.models import register_versions


def _registry(folder: Path) -> tuple[AdapterContext, str]:
    context = AdapterContext(folder / ".mlstack", folder)
    return context, MlflowTracker(MlflowTrackerConfig(), context).uri


def test_a_version_of_another_registry_under_the_same_tag_is_imported_anew(
    tmp_path: Path,
) -> None:
    import bentoml

    from stack_bentoml.models import model_store

    home = tmp_path / "bentoml"  # one store, two registries
    local, local_uri = _registry(tmp_path / "local")
    production, production_uri = _registry(tmp_path / "production")
    ours = register_versions(local).champion
    theirs = register_versions(production).champion
    assert ours.ref == theirs.ref == "churn@1" and ours.source_uri != theirs.source_uri

    first = import_version(ours, local_uri, home, artifact_location="")
    again = import_version(ours, local_uri, home, artifact_location="")
    assert again.model_dir == first.model_dir  # the same version: reused, not copied again
    other = import_version(theirs, production_uri, home, artifact_location="")

    stored = bentoml.models.get(other.model_tag, _model_store=model_store(home))
    assert stored.info.metadata["source_uri"] == theirs.source_uri
    assert stored.info.metadata["run_id"] == theirs.run_id
