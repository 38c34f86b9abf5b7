"""A new embedded MLflow store is copied from an empty one made once per MLflow version: the
copy is the database MLflow makes itself (same tables, indexes and revision), MLflow opens it
as its own (the Default experiment made then), and an existing store is never replaced."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from mlflow import MlflowClient

from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowConnection
from stack_mlflow.connection import make_client
from stack_mlflow.schema_seed import cache_folder, seed_sqlite


def schema(path: Path) -> tuple[set[tuple[str, str, frozenset[str]]], list[tuple[str]]]:
    """Each table and index with the clauses of its definition, in any order: Alembic's
    batch migrations re-create a table with its constraints in an order that varies from one
    process to the next (a set's), so MLflow's own stores differ in that order alone."""
    with sqlite3.connect(path) as db:
        objects = db.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
        revision = db.execute("SELECT version_num FROM alembic_version").fetchall()
    return {
        (
            kind,
            name,
            frozenset(line.strip().rstrip(",").strip() for line in (sql or "").splitlines()),
        )
        for kind, name, sql in objects
    }, revision


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_a_seeded_store_is_the_one_mlflow_makes(tmp_path: Path) -> None:
    made = tmp_path / "made.db"
    MlflowClient(tracking_uri=f"sqlite:///{made}").search_experiments()  # MLflow's own
    context = AdapterContext(tmp_path / "project" / ".mlstack", tmp_path / "project")
    client = make_client(MlflowConnection(), context)
    seeded = context.home / "mlflow.db"
    assert seeded.is_file()  # copied before MLflow's client opened it
    assert list(cache_folder().glob("mlflow-*.db"))
    assert schema(seeded) == schema(made)
    [default] = client.search_experiments()
    assert default.name == "Default" and default.artifact_location
    run = client.create_run(client.create_experiment("churn"))
    client.log_metric(run.info.run_id, "auc", 0.9)
    assert client.get_run(run.info.run_id).data.metrics == {"auc": 0.9}


def test_an_existing_store_is_never_replaced(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    uri = f"sqlite:///{store}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("churn")
    seed_sqlite(uri)
    assert [m.name for m in client.search_registered_models()] == ["churn"]
    assert not list(tmp_path.glob(".mlflow.db.*"))  # no partial copy left behind
