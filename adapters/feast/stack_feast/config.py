"""Options of the Feast adapter in stack.yaml (pydantic only: importing this loads no Feast).

The embedded default is Feast's local provider: parquet files offline, SQLite online, the
registry in a file, all under `<home>/feature_repo/`. A production stack names Redis or
PostgreSQL online stores and a PostgreSQL or Spark offline store here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class FileOffline(BaseModel):
    model_config = _FROZEN
    type: Literal["file"] = "file"


class PostgresConnection(BaseModel):
    model_config = _FROZEN
    host: str = "127.0.0.1"
    port: int = 5432
    database: str
    user: str
    password: SecretStr | None = None
    db_schema: str = "public"
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"


class PostgresOffline(PostgresConnection):
    type: Literal["postgres"]


class SparkOffline(BaseModel):
    model_config = _FROZEN
    type: Literal["spark"]
    spark_conf: dict[str, str] = Field(default_factory=dict)


class SqliteOnline(BaseModel):
    model_config = _FROZEN
    type: Literal["sqlite"] = "sqlite"
    path: str | None = Field(default=None, description="Default: <repo>/online.db")


class RedisOnline(BaseModel):
    model_config = _FROZEN
    type: Literal["redis"]
    connection_string: SecretStr = SecretStr("127.0.0.1:6379")


class PostgresOnline(PostgresConnection):
    type: Literal["postgres"]


Offline = Annotated[FileOffline | PostgresOffline | SparkOffline, Field(discriminator="type")]
Online = Annotated[SqliteOnline | RedisOnline | PostgresOnline, Field(discriminator="type")]


class FeastConfig(BaseModel):
    model_config = _FROZEN

    project: str = Field(default="mlstack", pattern=r"^[A-Za-z0-9_]+$")
    repo_dir: str = Field(default="feature_repo", description="Relative to the stack's home.")
    offline_store: Offline = FileOffline()
    online_store: Online = SqliteOnline()

    def feast_offline(self) -> dict[str, Any]:
        return _plain(self.offline_store)

    def feast_online(self, default_path: str) -> dict[str, Any]:
        store = _plain(self.online_store)
        if store["type"] == "sqlite" and not store.get("path"):
            store["path"] = default_path
        return store


def _plain(model: BaseModel) -> dict[str, Any]:
    """The store settings as Feast reads them, secrets revealed only here."""
    data: dict[str, Any] = {}
    for key, value in model:
        data[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return {k: v for k, v in data.items() if v is not None}
