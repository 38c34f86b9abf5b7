"""The reads of mlstack's read commands, without importing MLflow (~2.5 s or more).

`mlstack models`, `rollout status`, `lineage M@serving` only read MLflow's model registry
(the registered models, a model's versions with their tags, the version an alias names) and
a run's record (the inventory's last evaluation). Three
ways to read them, one interface (`MlflowReads`):

- `SqlReads`: SQLAlchemy Core queries on MLflow's own registry tables, for a database-backed
  MLflow (`sqlite:`, `postgresql:`, `mysql:` URIs; the embedded stack). Only on a schema this
  module knows (`KNOWN_SCHEMAS`, MLflow's alembic revisions it was checked against): any other
  database is read through MLflow's client.
- `RestReads`: MLflow's public REST API (`/api/2.0/mlflow/...`) over httpx, for an
  `http(s)://` tracking server.
- `ClientReads`: MLflow's own client (every other store, and every write).

Each answers what `MlflowClient` answers on the same store (tests/adapters/mlflow/
test_light_reads.py): prompts and deleted versions left out, the default workspace only."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from sqlalchemy.engine import Engine

    from stack_mlflow.config import MlflowConnection

#: MLflow's alembic revisions whose registry tables `SqlReads` was checked against (the head
#: of mlflow 3.17). A test fails when the installed MLflow's head is not here: check the
#: registry tables in its migrations, then add it.
KNOWN_SCHEMAS = frozenset({"dc11669786a5"})
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


def light_reads(uri: str, config: MlflowConnection) -> MlflowReads | None:
    """The reads for registry URI `uri` that do not import MLflow, or None when only MLflow's
    client can read that store (a file store, an unknown schema, a database not yet made)."""
    scheme = urlsplit(uri).scheme.partition("+")[0]
    if scheme in ("http", "https"):
        return RestReads(uri, config)
    if scheme in ("sqlite", "postgresql", "mysql"):
        return SqlReads.open(uri)
    return None


# -- MLflow's client --------------------------------------------------------------------


class ClientReads:
    def __init__(self, client: MlflowClient) -> None:
        self.client = client

    def model_names(self) -> list[str]:
        names: list[str] = []
        token = None
        while True:
            page = self.client.search_registered_models(page_token=token)
            names.extend(m.name for m in page)
            token = page.token
            if not token:
                return sorted(names)

    def versions(self, model: str) -> list[StoredVersion]:
        return sorted(self._search(f"name='{model}'"), key=lambda v: v.version)

    def by_run(self, run_id: str) -> list[StoredVersion]:
        return self._search(f"run_id='{run_id}'")

    def version(self, model: str, number: int) -> StoredVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            return from_entity(self.client.get_model_version(model, str(number)))
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def alias(self, model: str, alias: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(model, alias).version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def run(self, run_id: str) -> StoredRun | None:
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        inputs = run.inputs.dataset_inputs if run.inputs else []
        return StoredRun(
            run_id=run.info.run_id,
            experiment=self.client.get_experiment(run.info.experiment_id).name,
            status=run.info.status,
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            tags=dict(run.data.tags),
            datasets=_in_order(
                StoredDataset(
                    i.dataset.name,
                    i.dataset.digest,
                    i.dataset.source_type,
                    i.dataset.source,
                    i.dataset.profile,
                )
                for i in inputs
            ),
        )

    def _search(self, filter_string: str) -> list[StoredVersion]:
        found: list[StoredVersion] = []
        token = None
        while True:
            page = self.client.search_model_versions(filter_string, page_token=token)
            found.extend(from_entity(v) for v in page)
            token = page.token
            if not token:
                return found


def _in_order(datasets: Iterable[StoredDataset]) -> tuple[StoredDataset, ...]:
    """A run's datasets by name and digest (MLflow answers them in the database's order)."""
    return tuple(sorted(datasets, key=lambda d: (d.name, d.digest, d.source)))


def from_entity(version: Any) -> StoredVersion:
    return StoredVersion(
        name=version.name,
        version=int(version.version),
        source=version.source or "",
        run_id=version.run_id or None,
        created_ms=int(version.creation_timestamp or 0),
        tags=dict(version.tags),
    )


# -- MLflow's database, read with SQLAlchemy Core ---------------------------------------


class SqlReads:
    """MLflow's registry tables, as its SQLAlchemy store reads them (sqlalchemy_store.py):
    the default workspace, versions whose stage is not `Deleted_Internal`, and no prompts
    (models or versions tagged `mlflow.prompt.is_prompt=true`)."""

    def __init__(self, engine: Engine) -> None:
        from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

        self.engine = engine
        meta = MetaData()
        self.models = Table(
            "registered_models", meta, Column("workspace", String), Column("name", String)
        )
        self.model_tags = Table(
            "registered_model_tags",
            meta,
            Column("workspace", String),
            Column("name", String),
            Column("key", String),
            Column("value", String),
        )
        self.versions_t = Table(
            "model_versions",
            meta,
            Column("workspace", String),
            Column("name", String),
            Column("version", Integer),
            Column("creation_time", BigInteger),
            Column("current_stage", String),
            Column("source", String),
            Column("run_id", String),
        )
        self.version_tags = Table(
            "model_version_tags",
            meta,
            Column("workspace", String),
            Column("name", String),
            Column("version", Integer),
            Column("key", String),
            Column("value", Text),
        )
        self.aliases = Table(
            "registered_model_aliases",
            meta,
            Column("workspace", String),
            Column("name", String),
            Column("alias", String),
            Column("version", Integer),
        )

    @classmethod
    def open(cls, uri: str) -> SqlReads | None:
        """The reads of the database at `uri`; None when it does not exist yet or its schema
        is not one of KNOWN_SCHEMAS (MLflow's client reads it, and migrates it)."""
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError
        from sqlalchemy.pool import NullPool

        if uri.startswith("sqlite:"):
            path = uri.partition(":///")[2].partition("?")[0]
            if not path or path == ":memory:":
                return None
            from pathlib import Path

            if not Path(path).is_file():
                return None
        try:
            engine = create_engine(uri, poolclass=NullPool)
        except (SQLAlchemyError, ImportError):  # a driver this environment lacks
            return None
        try:
            with engine.connect() as connection:
                revision = connection.execute(
                    text("SELECT version_num FROM alembic_version")
                ).scalar()
        except SQLAlchemyError:
            engine.dispose()
            return None
        if revision not in KNOWN_SCHEMAS:
            engine.dispose()
            return None
        return cls(engine)

    def model_names(self) -> list[str]:
        from sqlalchemy import select

        m = self.models
        query = (
            select(m.c.name)
            .where(m.c.workspace == DEFAULT_WORKSPACE, m.c.name.not_in(self._prompts()))
            .order_by(m.c.name)
        )
        with self.engine.connect() as connection:
            return sorted(connection.execute(query).scalars())

    def versions(self, model: str) -> list[StoredVersion]:
        return sorted(self._versions(self.versions_t.c.name == model), key=lambda v: v.version)

    def by_run(self, run_id: str) -> list[StoredVersion]:
        return self._versions(self.versions_t.c.run_id == run_id)

    def version(self, model: str, number: int) -> StoredVersion | None:
        v = self.versions_t.c
        found = self._versions(v.name == model, v.version == number, prompts=True)
        return found[0] if found else None

    def alias(self, model: str, alias: str) -> int | None:
        from sqlalchemy import select

        a = self.aliases.c
        query = select(a.version).where(
            a.workspace == DEFAULT_WORKSPACE, a.name == model, a.alias == alias
        )
        with self.engine.connect() as connection:
            number = connection.execute(query).scalar()
        return None if number is None else int(number)

    def run(self, run_id: str) -> StoredRun | None:
        from sqlalchemy import text

        with self.engine.connect() as connection:
            head = connection.execute(
                text(
                    "SELECT r.status, e.name FROM runs r JOIN experiments e "
                    "ON e.experiment_id = r.experiment_id WHERE r.run_uuid = :run"
                ),
                {"run": run_id},
            ).first()
            if head is None:
                return None

            def pairs(sql: str) -> list[Any]:
                return list(connection.execute(text(sql), {"run": run_id}))

            params = pairs("SELECT key, value FROM params WHERE run_uuid = :run")
            tags = pairs("SELECT key, value FROM tags WHERE run_uuid = :run")
            metrics = pairs("SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = :run")
            datasets = pairs(
                "SELECT DISTINCT d.dataset_uuid, d.name, d.digest, d.dataset_source_type, "
                "d.dataset_source, d.dataset_profile FROM inputs i JOIN datasets d "
                "ON d.dataset_uuid = i.source_id "
                "WHERE i.destination_type = 'RUN' AND i.destination_id = :run"
            )
        return StoredRun(
            run_id=run_id,
            experiment=head[1],
            status=head[0],
            params={k: v for k, v in params},
            metrics={k: float("nan") if nan else float(v) for k, v, nan in metrics},
            tags={k: v for k, v in tags},
            datasets=_in_order(StoredDataset(*row[1:]) for row in datasets),
        )

    def _prompts(self) -> Any:
        from sqlalchemy import select

        t = self.model_tags.c
        return select(t.name).where(
            t.workspace == DEFAULT_WORKSPACE, t.key == IS_PROMPT_TAG, t.value == "true"
        )

    def _versions(self, *where: Any, prompts: bool = False) -> list[StoredVersion]:
        """Live versions matching `where`, with their tags (prompt versions only with
        `prompts`, as MLflow's get_model_version answers them)."""
        from sqlalchemy import and_, select

        v, t = self.versions_t.c, self.version_tags.c
        conditions = [v.workspace == DEFAULT_WORKSPACE, v.current_stage != DELETED_STAGE, *where]
        if not prompts:
            prompt_versions = select(t.name).where(
                t.workspace == DEFAULT_WORKSPACE, t.key == IS_PROMPT_TAG, t.value == "true"
            )
            conditions.append(v.name.not_in(prompt_versions))
        query = (
            select(v.name, v.version, v.source, v.run_id, v.creation_time, t.key, t.value)
            .select_from(
                self.versions_t.outerjoin(
                    self.version_tags,
                    and_(t.workspace == v.workspace, t.name == v.name, t.version == v.version),
                )
            )
            .where(*conditions)
        )
        found: dict[tuple[str, int], StoredVersion] = {}
        with self.engine.connect() as connection:
            for name, number, source, run_id, created, key, value in connection.execute(query):
                stored = found.get((name, number))
                if stored is None:
                    stored = found[(name, number)] = StoredVersion(
                        name=name,
                        version=int(number),
                        source=source or "",
                        run_id=run_id or None,
                        created_ms=int(created or 0),
                    )
                if key is not None:
                    stored.tags[key] = value
        return list(found.values())


# -- an MLflow tracking server, over its REST API ---------------------------------------


class RestReads:
    """MLflow's REST API 2.0 (the calls MLflow's own client makes), with the credentials and
    TLS settings MLflow's client would use: the stack's connection first, then MLflow's
    environment variables (basic auth from username/password, else a bearer token)."""

    def __init__(self, uri: str, config: MlflowConnection) -> None:
        import httpx

        env = os.environ.get
        username = config.username or env("MLFLOW_TRACKING_USERNAME")
        password = (config.password.get_secret_value() if config.password else None) or env(
            "MLFLOW_TRACKING_PASSWORD"
        )
        token = (config.token.get_secret_value() if config.token else None) or env(
            "MLFLOW_TRACKING_TOKEN"
        )
        headers = {}
        if username and password:
            pair = f"{username}:{password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif token:
            headers["Authorization"] = "Bearer " + token
        # MLflow's own TLS settings, as its client reads them
        verify: bool | str = env("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
        if env("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            verify = False
        self.page_size = PAGE
        self.http = httpx.Client(
            base_url=uri.rstrip("/") + "/api/2.0/mlflow/",
            headers=headers,
            timeout=float(env("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")),
            verify=verify,
        )

    def model_names(self) -> list[str]:
        found = self._pages("registered-models/search", "registered_models", {})
        return sorted(m["name"] for m in found)

    def versions(self, model: str) -> list[StoredVersion]:
        found = self._pages(
            "model-versions/search", "model_versions", {"filter": f"name='{model}'"}
        )
        return sorted((_from_json(v) for v in found), key=lambda v: v.version)

    def by_run(self, run_id: str) -> list[StoredVersion]:
        found = self._pages(
            "model-versions/search", "model_versions", {"filter": f"run_id='{run_id}'"}
        )
        return [_from_json(v) for v in found]

    def version(self, model: str, number: int) -> StoredVersion | None:
        body = self._get("model-versions/get", {"name": model, "version": str(number)})
        return None if body is None else _from_json(body["model_version"])

    def alias(self, model: str, alias: str) -> int | None:
        body = self._get("registered-models/alias", {"name": model, "alias": alias})
        return None if body is None else int(body["model_version"]["version"])

    def run(self, run_id: str) -> StoredRun | None:
        body = self._get("runs/get", {"run_id": run_id})
        if body is None:
            return None
        run = body["run"]
        info, data = run["info"], run.get("data", {})
        experiment = self._get("experiments/get", {"experiment_id": info["experiment_id"]})
        inputs = run.get("inputs", {}).get("dataset_inputs", [])
        return StoredRun(
            run_id=info["run_id"],
            experiment=experiment["experiment"]["name"] if experiment else "",
            status=info["status"],
            params={p["key"]: p.get("value", "") for p in data.get("params", [])},
            metrics={m["key"]: float(m["value"]) for m in data.get("metrics", [])},
            tags={t["key"]: t.get("value", "") for t in data.get("tags", [])},
            datasets=_in_order(
                StoredDataset(
                    d["name"], d["digest"], d["source_type"], d["source"], d.get("profile")
                )
                for d in (i["dataset"] for i in inputs)
            ),
        )

    def _pages(self, path: str, key: str, params: Mapping[str, str]) -> Iterator[Any]:
        token = None
        while True:
            query = {**params, "max_results": str(self.page_size)}
            if token:
                query["page_token"] = token
            body = self._get(path, query) or {}
            yield from body.get(key, [])
            token = body.get("next_page_token")
            if not token:
                return

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        """The answer's JSON; None when MLflow says the thing does not exist. Raises
        StackError naming the call when the server fails or cannot be reached."""
        import httpx

        from stack.errors import StackError

        try:
            response = self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise StackError(f"MLflow server {self.http.base_url}: {exc}") from exc
        if response.status_code in (400, 404):
            code = _error_code(response)
            if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
        if response.is_error:
            raise StackError(
                f"MLflow server {response.request.url}: HTTP {response.status_code} "
                f"{response.text[:300]}"
            )
        return response.json()


def _error_code(response: Any) -> str | None:
    try:
        return str(response.json().get("error_code"))
    except ValueError:
        return None


def _from_json(version: Mapping[str, Any]) -> StoredVersion:
    return StoredVersion(
        name=version["name"],
        version=int(version["version"]),
        source=version.get("source") or "",
        run_id=version.get("run_id") or None,
        created_ms=int(version.get("creation_timestamp") or 0),
        tags={t["key"]: t.get("value", "") for t in version.get("tags", [])},
    )
