"""What every family of the spine's tables shares: the engine, its snapshot reader, and one
short write transaction at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from stack.spine.engine import reader


class SpineTables:
    """Base of the per-family stores (audit log, lineage, decisions, runs, monitoring);
    `SpineStore` is all of them over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reads = reader(engine)

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session
