"""The writes of a lifecycle change that skip importing MLflow (stack_mlflow/light/writes.py)
leave a store as MLflow's client leaves it: the same tags, aliases, timestamps and search
answers, read back by MLflow's client, on SQLite, PostgreSQL and a real `mlflow server` (its
REST API); and they refuse what MLflow's client refuses (a missing model or version, a
deleted version, a prompt). On the embedded stack a promotion imports no MLflow."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from stack.contract.states import LifecycleState as S
from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowConnection, MlflowRegistryConfig
from stack_mlflow.light import (
    ClientWrites,
    MlflowWrites,
    RestWrites,
    SqlWrites,
    light_reads,
    light_writes,
)
from stack_mlflow.registry import MlflowRegistry
from tests.core.test_import_cost import loaded_after
from tests.support.postgres import PostgresServer

ODD = 'it\'s "quoted" %_ \\ line\nbreak ✓'
TOLERANCE_MS = 2000


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("server", marks=pytest.mark.postgres),
    ],
)
def store_uri(request: pytest.FixtureRequest) -> Iterator[str]:
    """A registry store, made once per module (tests keep apart by model names): an embedded
    SQLite file, a PostgreSQL database, an `mlflow server`."""
    if request.param == "sqlite":
        uri = str(request.getfixturevalue("sqlite_uri"))
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()  # made
        yield uri
    elif request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        with server.database() as url:
            MlflowClient(tracking_uri=url, registry_uri=url).search_registered_models()
            yield url
    else:
        yield request.getfixturevalue("mlflow_server").url


def make_model(client: MlflowClient, name: str) -> None:
    """A model of four versions (3 deleted), one already tagged and aliased."""
    client.create_registered_model(name, tags={"team": "x"})
    for number in range(1, 5):
        client.create_model_version(
            name, f"s3://mlstack-test/{name}/{number}", tags={"mlstack.state": "candidate"}
        )
    client.set_registered_model_alias(name, "other", "4")
    client.delete_model_version(name, "3")


#: A lifecycle's writes: tags inserted and updated, the alias created, moved, deleted (and
#: deleted when absent), another alias left alone.
SCRIPT: list[tuple[str, tuple[Any, ...]]] = [
    ("set_version_tag", (1, "mlstack.state", "approved")),
    ("set_version_tag", (1, "mlstack.state", "serving")),
    ("set_version_tag", (2, "odd key/ü.:-_ ", ODD)),
    ("set_alias", ("serving", 1)),
    ("set_alias", ("serving", 2)),
    ("set_version_tag", (1, "mlstack.state", "retired")),
    ("set_alias", ("next", 4)),
    ("delete_alias", ("next",)),
    ("delete_alias", ("never-set",)),
]


def apply(writes: MlflowWrites, model: str) -> None:
    for method, args in SCRIPT:
        getattr(writes, method)(model, *args)


def snapshot(client: MlflowClient, model: str, before: dict[str, int]) -> dict[str, Any]:
    """What MLflow's client reads back about `model`, its name left out, and how far each
    last_updated timestamp moved from `before`."""
    registered = client.get_registered_model(model)
    versions = client.search_model_versions(f"name='{model}'")
    by_alias = {
        alias: int(client.get_model_version_by_alias(model, alias).version)
        for alias in registered.aliases
    }
    return {
        "tags": registered.tags,
        "aliases": {alias: int(number) for alias, number in registered.aliases.items()},
        "moved_ms": {
            key: stamp - before[key] for key, stamp in last_updated(client, model).items()
        },
        "versions": sorted(
            (int(v.version), v.current_stage, v.tags, sorted(v.aliases)) for v in versions
        ),
        "by_alias": by_alias,
        "search_state": sorted(
            int(v.version)
            for v in client.search_model_versions(
                f"name='{model}' and tags.`mlstack.state` = 'retired'"
            )
        ),
    }


def last_updated(client: MlflowClient, model: str) -> dict[str, int]:
    found = {"model": int(client.get_registered_model(model).last_updated_timestamp)}
    for v in client.search_model_versions(f"name='{model}'"):
        found[f"v{v.version}"] = int(v.last_updated_timestamp)
    return found


def test_light_writes_leave_what_mlflows_client_leaves(store_uri: str) -> None:
    client = MlflowClient(tracking_uri=store_uri, registry_uri=store_uri)
    prefix = f"lw{uuid.uuid4().hex[:8]}"
    light_model, client_model = f"{prefix}-light", f"{prefix}-client"
    for name in (light_model, client_model):
        make_model(client, name)
    reads = light_reads(store_uri, MlflowConnection(tracking_uri=store_uri))
    assert reads is not None
    light = light_writes(reads)
    assert isinstance(light, RestWrites if store_uri.startswith("http") else SqlWrites)
    before = {m: last_updated(client, m) for m in (light_model, client_model)}

    apply(light, light_model)
    apply(ClientWrites(client), client_model)

    got = snapshot(client, light_model, before[light_model])
    want = snapshot(client, client_model, before[client_model])
    moved_got, moved_want = got.pop("moved_ms"), want.pop("moved_ms")
    assert got == want
    assert moved_got.keys() == moved_want.keys()
    for key, moved in moved_want.items():
        assert abs(moved_got[key] - moved) <= TOLERANCE_MS, key
    # the shape compared, as MLflow's client left it
    assert want["by_alias"] == {"serving": 2, "other": 4}
    assert want["aliases"] == {"serving": 2, "other": 4}
    assert want["versions"][1][2]["odd key/ü.:-_ "] == ODD


@pytest.mark.parametrize(
    "write",
    [
        lambda w, m: w.set_version_tag(m, 3, "k", "v"),  # a deleted version
        lambda w, m: w.set_version_tag(m, 99, "k", "v"),
        lambda w, m: w.set_alias(m, "serving", 3),
        lambda w, m: w.set_version_tag(m + "-missing", 1, "k", "v"),
        lambda w, m: w.set_alias(m + "-missing", "serving", 1),
        lambda w, m: w.delete_alias(m + "-missing", "serving"),
        lambda w, m: w.set_alias(m + "-prompt", "serving", 1),
        lambda w, m: w.set_version_tag(m + "-prompt", 1, "k", "v"),
        lambda w, m: w.delete_alias(m + "-prompt", "serving"),
    ],
    ids=[
        "tag-deleted-version",
        "tag-missing-version",
        "alias-deleted-version",
        "tag-missing-model",
        "alias-missing-model",
        "delete-alias-missing-model",
        "alias-prompt",
        "tag-prompt",
        "delete-alias-prompt",
    ],
)
def test_light_writes_refuse_what_mlflows_client_refuses(
    store_uri: str, write: Callable[[MlflowWrites, str], None]
) -> None:
    from stack.errors import NotFound

    client = MlflowClient(tracking_uri=store_uri, registry_uri=store_uri)
    model = f"lw{uuid.uuid4().hex[:8]}"
    make_model(client, model)
    client.register_prompt(f"{model}-prompt", "Say {{word}}")
    reads = light_reads(store_uri, MlflowConnection(tracking_uri=store_uri))
    assert reads is not None
    light = light_writes(reads)
    assert light is not None
    before = snapshot(client, model, last_updated(client, model))

    with pytest.raises(Exception) as by_client:
        write(ClientWrites(client), model)
    with pytest.raises(NotFound):
        write(light, model)

    assert getattr(by_client.value, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"
    assert snapshot(client, model, last_updated(client, model)) == before


def test_the_registry_promotes_through_the_light_writes(tmp_path: Path) -> None:
    """A registry on the embedded store promotes, displaces and retires without building
    MLflow's client, and MLflow's client reads the states it left."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    make_model(client, "churn")
    registry = MlflowRegistry(
        MlflowRegistryConfig(tracking_uri=uri), AdapterContext(tmp_path / ".mlstack", tmp_path)
    )
    for version in (1, 2):
        registry.set_state("churn", version, S.APPROVED)
        registry.set_state("churn", version, S.SERVING)
    registry.set_state("churn", 4, S.REJECTED)

    assert isinstance(registry.writes, SqlWrites)
    assert "client" not in registry.__dict__
    tags = {int(v.version): v.tags["mlstack.state"] for v in client.search_model_versions("")}
    assert tags == {1: "retired", 2: "serving", 4: "rejected"}
    assert int(client.get_model_version_by_alias("churn", "serving").version) == 2


def test_a_promotion_on_the_embedded_store_imports_no_mlflow(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    make_model(MlflowClient(tracking_uri=uri, registry_uri=uri), "churn")
    body = f"""
from pathlib import Path
from stack.contract.states import LifecycleState as S
from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowRegistryConfig
from stack_mlflow.registry import MlflowRegistry
registry = MlflowRegistry(
    MlflowRegistryConfig(tracking_uri={uri!r}),
    AdapterContext(Path({str(tmp_path)!r}) / ".mlstack", Path({str(tmp_path)!r})),
)
registry.set_state("churn", 1, S.APPROVED)
registry.set_state("churn", 1, S.SERVING)
registry.set_state("churn", 2, S.REJECTED)
assert registry.get_version("churn", 1).state is S.SERVING
"""
    loaded = loaded_after(body)
    assert "mlflow" not in loaded
