"""SpineStore: the one door to the spine's tables, on SQLite or PostgreSQL.

Each family of tables has a module of its own (audit_log, lineage_graph, decisions, runs,
monitoring_records, alert_states); the store is all of them over one engine, plus the
schema's migrations and the locks every process shares. Every write is one short
transaction; an approval and its audit entry are written together or not at all.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from stack.errors import SpineError
from stack.spine.alert_states import AlertStates
from stack.spine.audit_log import AuditLog
from stack.spine.decisions import Decisions
from stack.spine.engine import create_spine_engine, is_postgresql
from stack.spine.lineage_graph import LineageGraph
from stack.spine.locks import NamedLocks
from stack.spine.monitoring_records import MonitoringRecords
from stack.spine.runs import PipelineRuns

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same for every mlstack process.
_MIGRATION_LOCK_KEY = 0x6D6C737461636B


def head_revision() -> str:
    """The newest migration's revision: migrations are `versions/NNNN_<what>.py`, each with
    `revision = "NNNN"` (tests/spine check it against alembic's own head)."""
    names = (p.name for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    return max(name[:4] for name in names)


class SpineStore(AuditLog, LineageGraph, Decisions, PipelineRuns, MonitoringRecords, AlertStates):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        #: Locks every process using this spine shares (`locks.hold(name)`).
        self.locks = NamedLocks(engine)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> SpineStore:
        """Connect, and bring the schema to this version of mlstack (safe to race)."""
        store = cls(create_spine_engine(url))
        if migrate:
            store.migrate()
        return store

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> None:
        """Bring the schema to `head_revision()`. A spine already there is read with one
        query and alembic is not imported (most commands only read: it is their start-up)."""
        try:
            if self.schema_revision() == head_revision():
                return
        except SQLAlchemyError:  # no version table yet: a new spine
            pass
        from alembic import command
        from alembic.config import Config
        from alembic.util.exc import CommandError

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                if is_postgresql(self.engine):  # one migrating process at a time
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except CommandError as exc:
            raise SpineError(
                f"the spine store at {self.engine.url.render_as_string(hide_password=True)} "
                f"has a schema this mlstack does not know ({exc}); upgrade mlstack"
            ) from exc

    def schema_revision(self) -> str | None:
        with self.engine.connect() as connection:
            row = connection.execute(text("SELECT version_num FROM spine_schema_version")).first()
            return None if row is None else str(row[0])
