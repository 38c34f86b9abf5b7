"""The registry reads that skip importing MLflow (stack_mlflow/light/) answer exactly what
MLflow's client answers on the same store: SQLite, PostgreSQL, and a real `mlflow server`
(its REST API) — models without versions, many versions, odd tags, deleted versions, aliases,
prompts left out. A database whose schema they do not know is read by MLflow's client."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param

from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowConnection, MlflowRegistryConfig
from stack_mlflow.light import (
    KNOWN_SCHEMAS,
    ClientReads,
    MlflowReads,
    RestReads,
    SqlReads,
    light_reads,
)
from stack_mlflow.registry import MlflowRegistry
from tests.support.postgres import PostgresServer

ODD_TAGS = {
    "odd key/ü.:-_ ": 'it\'s "quoted" %_ \\ line\nbreak ✓',
    "empty": "",
    "mlstack.state": "approved",
}


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("server", marks=pytest.mark.postgres),
    ]
)
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A registry store: an embedded SQLite file, a PostgreSQL database, an `mlflow server`."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mlflow.db'}"
    elif request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        with server.database() as url:
            yield url
    else:
        yield request.getfixturevalue("mlflow_server").url


def fill(client: MlflowClient, prefix: str) -> dict[str, str]:
    """Models of every shape under `prefix`; returns their names by shape."""
    names = {shape: f"{prefix}-{shape}" for shape in ("empty", "many", "odd", "gone", "prompt")}
    experiment = client.create_experiment(f"{prefix}-exp")
    run_id = client.create_run(experiment, tags={"mlflow.source.git.commit": "abc"}).info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric("auc", v, 0, s) for s, v in enumerate((0.7, 0.9, 0.8))],
        params=[Param("odd/ü", "it's\n%_")],
    )
    for data in ("train", "test"):
        dataset = Dataset(
            data, f"d-{data}", "mlstack", '{"uri": "s3://x"}', None, '{"num_rows": 3}'
        )
        client.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", data)])])
    client.create_registered_model(names["empty"])
    client.create_registered_model(names["many"])
    for number in range(1, 13):  # 4 and 7 tagged serving, 7 the alias's: 4 reads retired
        client.create_model_version(
            names["many"],
            f"s3://mlstack-test/{prefix}/model-{number}",
            run_id=run_id if number % 3 == 0 else None,
            tags={"mlstack.state": "serving" if number in (4, 7) else "candidate", "n": "x"},
        )
    client.set_registered_model_alias(names["many"], "serving", "7")
    client.set_registered_model_alias(names["many"], "other", "2")
    client.delete_model_version(names["many"], "5")
    client.create_registered_model(names["odd"], tags={"team": "x'y"})
    client.create_model_version(names["odd"], f"s3://mlstack-test/{prefix}/odd", tags=ODD_TAGS)
    client.create_registered_model(names["gone"])
    client.create_model_version(names["gone"], f"s3://mlstack-test/{prefix}/gone")
    client.delete_model_version(names["gone"], "1")
    client.register_prompt(names["prompt"], "Say {{word}}", tags={"mlstack.state": "candidate"})
    names["run"] = run_id
    return names


def answers(reads: MlflowReads, names: dict[str, str], prefix: str) -> dict[str, object]:
    """Everything a read command asks the registry, as `reads` answers it."""
    models = [name for name in names.values() if name != names["run"]]
    return {
        "models": [name for name in reads.model_names() if name.startswith(prefix)],
        "versions": {m: reads.versions(m) for m in [*models, f"{prefix}-missing"]},
        "by_run": sorted(reads.by_run(names["run"]), key=lambda v: v.version),
        "version": {
            (m, n): reads.version(m, n)
            for m in (names["many"], names["gone"], names["odd"], f"{prefix}-missing")
            for n in (1, 5, 7, 99)
        },
        "run": (reads.run(names["run"]), reads.run("0" * 32)),
        "alias": {
            (m, a): reads.alias(m, a)
            for m in (names["many"], names["odd"], f"{prefix}-missing")
            for a in ("serving", "other", "none")
        },
    }


def test_light_reads_answer_what_mlflows_client_answers(store_uri: str) -> None:
    client = MlflowClient(tracking_uri=store_uri, registry_uri=store_uri)
    prefix = f"lr{uuid.uuid4().hex[:8]}"
    names = fill(client, prefix)
    light = light_reads(store_uri, MlflowConnection(tracking_uri=store_uri))
    assert isinstance(light, RestReads if store_uri.startswith("http") else SqlReads)
    if isinstance(light, RestReads):
        light.page_size = 5  # several pages of models and of versions
    expected = answers(ClientReads(client), names, prefix)
    assert answers(light, names, prefix) == expected
    # the shapes the comparison covers, as MLflow answers them
    assert expected["models"] == sorted(n for k, n in names.items() if k not in ("run", "prompt"))
    many = expected["versions"][names["many"]]  # type: ignore[index]
    assert [v.version for v in many] == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12]
    [odd] = expected["versions"][names["odd"]]  # type: ignore[index]
    assert odd.tags == ODD_TAGS
    assert expected["versions"][names["gone"]] == []  # type: ignore[index]
    assert expected["alias"][(names["many"], "serving")] == 7  # type: ignore[index]
    run, missing = expected["run"]  # type: ignore[misc]
    assert (run.metrics, len(run.datasets), missing) == ({"auc": 0.8}, 2, None)


def test_the_registry_reads_the_same_states_either_way(tmp_path: Path) -> None:
    """mlstack's states (the state tag, the `serving` alias: lifecycle.state_of) come out the
    same through the light reads as through MLflow's client."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    names = fill(client, "states")
    registry = MlflowRegistry(
        MlflowRegistryConfig(tracking_uri=uri), AdapterContext(tmp_path / ".mlstack", tmp_path)
    )
    assert isinstance(registry.reads, SqlReads)
    models = registry.models()
    light = {m: registry.versions(m) for m in models}
    serving = registry.get_version(names["many"], 7)
    assert registry.client is not None  # from here on, MLflow's client
    assert isinstance(registry.reads, ClientReads)
    assert registry.models() == models
    assert {m: registry.versions(m) for m in models} == light
    assert registry.get_version(names["many"], 7) == serving
    states = {v.version: v.state.value for v in light[names["many"]]}
    assert states[7] == "serving" and states[4] == "retired" and states[1] == "candidate"


def test_a_database_of_another_mlflow_schema_is_read_by_mlflows_client(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        [(revision,)] = db.execute("SELECT version_num FROM alembic_version").fetchall()
        # the installed MLflow's schema is one the light reads were checked against
        assert revision in KNOWN_SCHEMAS
        db.execute("UPDATE alembic_version SET version_num = 'a_future_one'")
    assert light_reads(uri, MlflowConnection()) is None
    assert light_reads(f"file://{tmp_path / 'mlruns'}", MlflowConnection()) is None


def test_a_store_not_made_yet_is_read_light_once_an_empty_one_was_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new store is copied from the empty one MLflow made once (stack_mlflow.schema_seed);
    before any was made, the client makes it (and light reads step aside)."""
    from stack_mlflow.schema_seed import seed_sqlite

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = tmp_path / "first.db"
    assert light_reads(f"sqlite:///{first}", MlflowConnection()) is None
    assert not first.exists()
    seed_sqlite(f"sqlite:///{tmp_path / 'made.db'}")  # makes the empty store, then copies it
    reads = light_reads(f"sqlite:///{first}", MlflowConnection())
    assert reads is not None and first.is_file()
    assert reads.model_names() == []
    assert light_reads(f"file://{tmp_path / 'mlruns'}", MlflowConnection()) is None


def test_an_unreachable_server_is_named(tmp_path: Path) -> None:
    from stack.errors import StackError

    reads = light_reads("http://127.0.0.1:9", MlflowConnection())
    assert reads is not None
    with pytest.raises(StackError, match=r"MLflow server http://127\.0\.0\.1:9"):
        reads.model_names()
    with pytest.raises(StackError) as refused:
        reads.model_names()
    assert "port-forward" not in str(refused.value)  # the name resolves: the server is down


def test_a_cluster_name_that_does_not_resolve_here_says_how_to_reach_it() -> None:
    """The exported stack file names MLflow by its cluster Service, which resolves only
    inside the cluster: the error says how to reach it from a laptop."""
    from stack.errors import StackError

    reads = light_reads("http://mlflow.mlstack.invalid:5000", MlflowConnection())
    assert reads is not None
    with pytest.raises(StackError) as unresolved:
        reads.model_names()
    said = str(unresolved.value)
    assert said.startswith("MLflow server http://mlflow.mlstack.invalid:5000")
    assert "kubectl -n mlstack port-forward svc/mlflow 5000:5000" in said
    assert "export MLSTACK_MLFLOW_URI=http://127.0.0.1:5000" in said


def test_mlflows_own_client_on_a_name_that_does_not_resolve_says_how_to_reach_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write path (a run logged, a version registered) goes through MLflow's client,
    which would fail on its first request with a connection pool's traceback: the adapter
    says at once what the reads say."""
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)  # this machine resolves, not a proxy
    from stack.errors import StackError
    from stack.plugins.manifest import AdapterContext
    from stack_mlflow.connection import make_client

    context = AdapterContext(home=tmp_path / ".mlstack", base_dir=tmp_path)
    unreachable = MlflowConnection(tracking_uri="http://mlflow.mlstack.invalid:5000")
    with pytest.raises(StackError) as unresolved:
        make_client(unreachable, context)
    said = str(unresolved.value)
    assert said.startswith("MLflow server http://mlflow.mlstack.invalid:5000")
    assert "export MLSTACK_MLFLOW_URI=http://127.0.0.1:5000" in said
    # a name that resolves is left to the client, whether or not a server answers there
    assert make_client(MlflowConnection(tracking_uri="http://127.0.0.1:9"), context)


def test_a_name_only_the_proxy_resolves_is_left_to_the_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stack.errors import StackError
    from stack_mlflow.connection import check_resolvable

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    check_resolvable("http://mlflow.mlstack.invalid:5000")  # no error: the proxy's to resolve
    monkeypatch.setenv("NO_PROXY", "mlflow.mlstack.invalid")
    with pytest.raises(StackError, match="cannot resolve the server's name"):
        check_resolvable("http://mlflow.mlstack.invalid:5000")
