"""MLflow's registry read and written without importing MLflow (~2.5 s or more): the
light client of mlstack's read commands and lifecycle changes.

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
- `ClientReads`: MLflow's own client (every other store).

Each answers what `MlflowClient` answers on the same store (tests/adapters/mlflow/
test_light_reads.py): prompts and deleted versions left out, the default workspace only.

The few writes of a lifecycle change (a version's tag, the `serving` alias) go the same three
ways (writes.py: `SqlWrites`, `RestWrites`, `ClientWrites`; `light_writes` picks the one that
matches the reads), so `mlstack approve` / `promote` import no MLflow either."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from stack_mlflow.light.client import ClientReads, from_entity
from stack_mlflow.light.records import (
    DEFAULT_WORKSPACE,
    DELETED_STAGE,
    IS_PROMPT_TAG,
    PAGE,
    MlflowReads,
    StoredDataset,
    StoredRun,
    StoredVersion,
)
from stack_mlflow.light.rest import RestReads
from stack_mlflow.light.sql import KNOWN_SCHEMAS, SqlReads
from stack_mlflow.light.writes import ClientWrites, MlflowWrites, RestWrites, SqlWrites

if TYPE_CHECKING:
    from stack_mlflow.config import MlflowConnection

__all__ = [
    "DEFAULT_WORKSPACE",
    "DELETED_STAGE",
    "IS_PROMPT_TAG",
    "KNOWN_SCHEMAS",
    "PAGE",
    "ClientReads",
    "ClientWrites",
    "MlflowReads",
    "MlflowWrites",
    "RestReads",
    "RestWrites",
    "SqlReads",
    "SqlWrites",
    "StoredDataset",
    "StoredRun",
    "StoredVersion",
    "from_entity",
    "light_reads",
    "light_writes",
]


def light_reads(uri: str, config: MlflowConnection) -> MlflowReads | None:
    """The reads for registry URI `uri` that do not import MLflow, or None when only MLflow's
    client can read that store (a file store, an unknown schema, a database not yet made)."""
    scheme = urlsplit(uri).scheme.partition("+")[0]
    if scheme in ("http", "https"):
        return RestReads(uri, config)
    if scheme in ("sqlite", "postgresql", "mysql"):
        return SqlReads.open(uri)
    return None


def light_writes(reads: MlflowReads) -> MlflowWrites | None:
    """The writes that do not import MLflow on the store `reads` reads (light reads only);
    None when only MLflow's client can write it."""
    if isinstance(reads, SqlReads):
        return SqlWrites(reads)
    if isinstance(reads, RestReads):
        return RestWrites(reads)
    return None
