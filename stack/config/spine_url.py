"""The spine store's URL: its form (checked when a stack file is read), its driver and whether
the database answers (checked by `stack validate` and before `run`, see `stack.preflight`).

The URL is never echoed in a message: it may hold a password.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

#: backend -> {driver named after `+` (None: none named): the module it needs}
DRIVERS: dict[str, dict[str | None, str]] = {
    "sqlite": {None: "sqlite3", "pysqlite": "sqlite3"},
    "postgresql": {None: "psycopg", "psycopg": "psycopg", "psycopg2": "psycopg2"},
}
_FORMS = "sqlite:///path/to/spine.db or postgresql://user@host:5432/database"
_SCHEME = re.compile(r"^(?P<backend>[A-Za-z][A-Za-z0-9]*)(?:\+(?P<driver>[A-Za-z0-9_]+))?://")
_SQLITE_HEADER = b"SQLite format 3\x00"
CONNECT_TIMEOUT_SECONDS = 5
_INSTALL = {
    "psycopg": "pip install 'mlstack[postgres]'",
    "psycopg2": "pip install psycopg2-binary, or write postgresql:// (psycopg 3)",
}


def form_problem(url: str) -> str | None:
    """Why `url` cannot be a spine URL, judged on its text alone (None when it can)."""
    match = _SCHEME.match(url)
    if match is None:
        return f"not a database URL; write {_FORMS}"
    backend, driver = match.group("backend"), match.group("driver")
    if backend == "postgres":
        return "the scheme is postgresql://, not postgres://"
    drivers = DRIVERS.get(backend)
    if drivers is None:
        return f"the spine runs on SQLite or PostgreSQL, not {backend!r}; write {_FORMS}"
    if driver not in drivers:
        known = ", ".join(f"{backend}+{d}" for d in drivers if d) or backend
        return f"unknown driver {driver!r} for {backend}; drivers: {known}"
    try:
        urlsplit(url).port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        return "the port is not a number"
    return None


def driver_problem(url: str) -> str | None:
    """Why the module the URL's driver needs cannot be imported (None when it can)."""
    match = _SCHEME.match(url)
    if match is None:
        return form_problem(url)
    module = DRIVERS.get(match.group("backend"), {}).get(match.group("driver"))
    if module is None:
        return form_problem(url)
    if importlib.util.find_spec(module) is None:
        return f"the driver {module!r} is not installed: {_INSTALL.get(module, 'install it')}"
    return None


def reach_problem(url: str) -> str | None:
    """Why the spine at `url` (with any relative SQLite path already anchored) cannot be
    opened, found without writing anything (None when it can). PostgreSQL is connected to,
    with a timeout of CONNECT_TIMEOUT_SECONDS; a SQLite file is looked at, not opened."""
    problem = driver_problem(url)
    if problem is not None:
        return problem
    if url.startswith("sqlite"):
        return _sqlite_problem(url)
    return _postgresql_problem(url)


def _sqlite_problem(url: str) -> str | None:
    path_text = url.split("://", 1)[1][1:].partition("?")[0]
    if not path_text or path_text == ":memory:":
        return None
    path = Path(path_text)
    if path.is_dir():
        return f"{path} is a folder, not a SQLite database file"
    if path.exists():
        try:
            with path.open("rb") as file:
                header = file.read(len(_SQLITE_HEADER))
        except OSError as exc:
            return f"{path} cannot be read ({exc.strerror})"
        if header and header != _SQLITE_HEADER:
            return f"{path} is not a SQLite database"
        if not os.access(path, os.W_OK):
            return f"{path} is read-only"
        return None
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, so the folder for {path.name} cannot be created"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable, so {path.name} cannot be created there"
    return None


def _postgresql_problem(url: str) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from stack.spine.engine import create_spine_engine

    try:
        parsed = make_url(url)
    except (ValueError, SQLAlchemyError) as exc:
        return f"not a database URL ({exc})"
    if "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_SECONDS)})
    engine = create_spine_engine(parsed.render_as_string(hide_password=False))
    try:
        with engine.connect():
            return None
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        detail = " ".join(str(cause).split())
        return f"the database does not answer: {detail}"
    finally:
        engine.dispose()
