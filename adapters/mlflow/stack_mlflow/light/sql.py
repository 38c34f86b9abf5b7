"""`SqlReads`: SQLAlchemy Core queries on MLflow's own registry and tracking tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stack_mlflow.light.records import (
    DEFAULT_WORKSPACE,
    DELETED_STAGE,
    IS_PROMPT_TAG,
    StoredDataset,
    StoredRun,
    StoredVersion,
    datasets_in_order,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


#: MLflow's alembic revisions whose registry tables `SqlReads` was checked against (the head
#: of mlflow 3.17). A test fails when the installed MLflow's head is not here: check the
#: registry tables in its migrations, then add it.
KNOWN_SCHEMAS = frozenset({"dc11669786a5"})


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

            from stack_mlflow.schema_seed import seed_sqlite

            seed_sqlite(uri, build=False)  # a new store, from the empty one already made
            if not Path(path).is_file():
                return None
        try:
            # SQLite keeps its connections (the default pool): each new one parses MLflow's
            # whole schema (~200 tables and indexes) on its first query, a few ms per read,
            # which `mlstack models` pays twice per model. A server's connections are not kept.
            pool = {} if uri.startswith("sqlite:") else {"poolclass": NullPool}
            engine = create_engine(uri, **pool)
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
            datasets=datasets_in_order(StoredDataset(*row[1:]) for row in datasets),
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
