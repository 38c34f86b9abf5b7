"""The writes of a lifecycle change (`mlstack approve`, `promote`, `reject`), without importing
MLflow: a version's tag set, the `serving` alias set or deleted. Same three ways as the reads
(`SqlWrites` on MLflow's tables, `RestWrites` on its REST API, `ClientWrites` through its
client), each making the change MLflow's client makes on that store
(tests/adapters/mlflow/test_light_writes.py).

MLflow's client refuses these calls on a prompt (its `_raise_if_prompt`) and on a missing model
or deleted version; so do these (`NotFound`). A race on a new alias fails as MLflow's does, on
the table's unique key (lifecycle.py retries it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from stack.errors import NotFound
from stack_mlflow.light.records import DEFAULT_WORKSPACE, DELETED_STAGE, IS_PROMPT_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from sqlalchemy.engine import Connection

    from stack_mlflow.light.rest import RestReads
    from stack_mlflow.light.sql import SqlReads


MISSING = ("RESOURCE_DOES_NOT_EXIST",)


class MlflowWrites(Protocol):
    def set_version_tag(self, model: str, version: int, key: str, value: str) -> None: ...

    def set_alias(self, model: str, alias: str, version: int) -> None: ...

    def delete_alias(self, model: str, alias: str) -> None: ...


class ClientWrites:
    """MLflow's own client (every store the light writes cannot write)."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client

    def set_version_tag(self, model: str, version: int, key: str, value: str) -> None:
        self.client.set_model_version_tag(model, str(version), key, value)

    def set_alias(self, model: str, alias: str, version: int) -> None:
        self.client.set_registered_model_alias(model, alias, str(version))

    def delete_alias(self, model: str, alias: str) -> None:
        self.client.delete_registered_model_alias(model, alias)


class SqlWrites:
    """The rows MLflow's SQLAlchemy store writes (sqlalchemy_store.py, mlflow 3.x): an upsert
    of `model_version_tags` / `registered_model_aliases` keyed by (workspace, name, version,
    key) / (workspace, name, alias), or the alias row deleted; nothing else (none of the three
    touches `last_updated_time`). Each write and its checks are one transaction."""

    def __init__(self, reads: SqlReads) -> None:
        self.tables = reads

    def set_version_tag(self, model: str, version: int, key: str, value: str) -> None:
        from sqlalchemy import insert, update

        t = self.tables.version_tags
        where = (
            t.c.workspace == DEFAULT_WORKSPACE,
            t.c.name == model,
            t.c.version == version,
            t.c.key == key,
        )
        with self.tables.engine.begin() as connection:
            self._check_version(connection, model, version)
            if self._exists(connection, t, *where):
                connection.execute(update(t).where(*where).values(value=value))
            else:
                row = {"name": model, "version": version, "key": key, "value": value}
                connection.execute(insert(t).values(workspace=DEFAULT_WORKSPACE, **row))

    def set_alias(self, model: str, alias: str, version: int) -> None:
        from sqlalchemy import insert, update

        a = self.tables.aliases
        where = (a.c.workspace == DEFAULT_WORKSPACE, a.c.name == model, a.c.alias == alias)
        with self.tables.engine.begin() as connection:
            self._check_version(connection, model, version)
            if self._exists(connection, a, *where):
                connection.execute(update(a).where(*where).values(version=version))
            else:
                row = {"name": model, "alias": alias, "version": version}
                connection.execute(insert(a).values(workspace=DEFAULT_WORKSPACE, **row))

    def delete_alias(self, model: str, alias: str) -> None:
        from sqlalchemy import delete

        a = self.tables.aliases
        with self.tables.engine.begin() as connection:
            self._check_model(connection, model)
            connection.execute(
                delete(a).where(
                    a.c.workspace == DEFAULT_WORKSPACE, a.c.name == model, a.c.alias == alias
                )
            )

    def _check_model(self, connection: Connection, model: str) -> None:
        """MLflow's client: the model exists and is not a prompt."""
        m, t = self.tables.models, self.tables.model_tags
        if not self._exists(connection, m, m.c.workspace == DEFAULT_WORKSPACE, m.c.name == model):
            raise NotFound(f"no registered model {model!r}")
        prompt = self._exists(
            connection,
            t,
            t.c.workspace == DEFAULT_WORKSPACE,
            t.c.name == model,
            t.c.key == IS_PROMPT_TAG,
            t.c.value == "true",
        )
        if prompt:
            raise NotFound(f"no registered model {model!r} (it is a prompt)")

    def _check_version(self, connection: Connection, model: str, version: int) -> None:
        """MLflow's client and store: the model as above, and the version live."""
        self._check_model(connection, model)
        v = self.tables.versions_t
        live = self._exists(
            connection,
            v,
            v.c.workspace == DEFAULT_WORKSPACE,
            v.c.name == model,
            v.c.version == version,
            v.c.current_stage != DELETED_STAGE,
        )
        if not live:
            raise NotFound(f"no model version {model}@{version}")

    @staticmethod
    def _exists(connection: Connection, table: Any, *where: Any) -> bool:
        from sqlalchemy import literal, select

        found = connection.execute(select(literal(1)).select_from(table).where(*where))
        return found.first() is not None


class RestWrites:
    """The requests MLflow's client sends to a tracking server (REST API 2.0): its prompt
    check (`registered-models/get`), then `model-versions/set-tag` (POST),
    `registered-models/alias` (POST to set, DELETE to delete), each with a JSON body; over
    the reads' httpx client (same credentials and TLS settings)."""

    def __init__(self, reads: RestReads) -> None:
        self.reads = reads

    def set_version_tag(self, model: str, version: int, key: str, value: str) -> None:
        self._check_model(model)
        body = {"name": model, "version": str(version), "key": key, "value": value}
        self._send("POST", "model-versions/set-tag", body)

    def set_alias(self, model: str, alias: str, version: int) -> None:
        self._check_model(model)
        body = {"name": model, "alias": alias, "version": str(version)}
        self._send("POST", "registered-models/alias", body)

    def delete_alias(self, model: str, alias: str) -> None:
        self._check_model(model)
        self._send("DELETE", "registered-models/alias", {"name": model, "alias": alias})

    def _check_model(self, model: str) -> None:
        found = self.reads.request("GET", "registered-models/get", params={"name": model})
        if found is None:
            raise NotFound(f"no registered model {model!r}")
        tags = {t["key"]: t.get("value") for t in found["registered_model"].get("tags", [])}
        if tags.get(IS_PROMPT_TAG) == "true":
            raise NotFound(f"no registered model {model!r} (it is a prompt)")

    def _send(self, method: str, path: str, body: dict[str, str]) -> None:
        # MLflow answers RESOURCE_DOES_NOT_EXIST for a missing or deleted version; any other
        # error (a bad value, a unique-key race) is raised with the server's words.
        if self.reads.request(method, path, json=body, missing=MISSING) is None:
            raise NotFound(f"MLflow server: {path} {body}: does not exist")
