"""A new embedded MLflow store copied from an empty one made once per MLflow version.

MLflow makes a new SQLite store by creating its first tables and running every Alembic
migration since (about 60 in MLflow 3): 1.5-3 s on the first command of every new stack (the
demo's, each project's, each test's folder). The result is the same file every time, so it
is made once, in a temporary file beside the cache, by MLflow's own `_initialize_tables` (what
`SqlAlchemyStore` calls on a database without tables), kept in
`$XDG_CACHE_HOME/mlstack/mlflow-schema/mlflow-<version>.db` (`~/.cache` by default), and
copied to each new store: milliseconds. The copy holds MLflow's tables at its head revision
and no experiment; MLflow creates the Default experiment when it first opens the store, as it
does for a database it made itself. Anything that goes wrong here leaves the store to MLflow.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

SQLITE = "sqlite:///"


def seed_sqlite(uri: str, *, build: bool = True) -> None:
    """Copy the empty store into `uri`'s file when `uri` is a SQLite URI whose file does not
    exist yet; a store another process creates meanwhile is never overwritten. `build`:
    make the empty store first if this MLflow version has none yet (imports MLflow); without
    it, a read command that imports no MLflow seeds only from one already made."""
    if not uri.startswith(SQLITE):
        return
    path = Path(uri[len(SQLITE) :].partition("?")[0])
    if path.exists() or not path.parent.is_dir():
        return
    with contextlib.suppress(Exception):  # MLflow then creates the store itself, as ever
        template = _template() if build else _cached()
        if template is None:
            return
        partial = path.with_name(f".{path.name}.{os.getpid()}.seed")
        try:
            shutil.copyfile(template, partial)
            with contextlib.suppress(FileExistsError):  # another process seeded it first
                os.link(partial, path)
        finally:
            partial.unlink(missing_ok=True)


def cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlstack" / "mlflow-schema"


def _cached() -> Path | None:
    """The empty store for the installed MLflow (its distribution's version: MLflow is not
    imported), if one was made."""
    from importlib.metadata import version

    path = cache_folder() / f"mlflow-{version('mlflow')}.db"
    return path if path.is_file() else None


def _template() -> Path:
    """The empty store for the installed MLflow, made on first use (atomically: a process
    reading it never sees it half made)."""
    cached = _cached()
    if cached is not None:
        return cached
    from importlib.metadata import version

    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    folder = cache_folder()
    path = folder / f"mlflow-{version('mlflow')}.db"
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{path.name}.{os.getpid()}.partial"
    engine = sqlalchemy.create_engine(f"{SQLITE}{partial}")
    try:
        _initialize_tables(engine)  # type: ignore[no-untyped-call]
        engine.dispose()
        os.replace(partial, path)
    finally:
        engine.dispose()
        partial.unlink(missing_ok=True)
    return path
