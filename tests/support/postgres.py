"""A real PostgreSQL for the tests: given by MLSTACK_TEST_POSTGRES_URL, else the machine's
server on 127.0.0.1:5432 when it answers, else a throwaway cluster started from the
machine's binaries (initdb/pg_ctl) on 127.0.0.1 and stopped afterwards. Only when none of
these works are the PostgreSQL tests skipped, with the reason."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from tests.support.ports import free_port

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class PostgresServer:
    """An admin URL plus how we got it; `database()` makes a fresh database per test."""

    admin_url: str
    origin: str

    @contextmanager
    def database(self) -> Iterator[str]:
        name = f"mlstack_test_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
            url = sa.engine.make_url(self.admin_url).set(database=name)
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


def answers(url: str) -> bool:
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        engine.dispose()
        return True
    except Exception:
        return False


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl (Debian keeps them off PATH)."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


class ThrowawayPostgres:
    """A private cluster in a temp folder, on 127.0.0.1 and a free port."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.root = Path(tempfile.mkdtemp(prefix="mlstack-pg-"))
        self.port = free_port()
        self.user = "postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.binaries / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: drop to `nobody`-like user
            command = ["runuser", "-u", _unprivileged_user(), "--", *command]
            shutil.chown(self.root, user=_unprivileged_user())
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-U", self.user, "-A", "trust", "--no-sync")
        self._run(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.root} -F",
            "start",
        )
        url = f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"
        deadline = time.monotonic() + 30
        while not answers(url):
            if time.monotonic() > deadline:
                raise RuntimeError(f"throwaway PostgreSQL did not answer: {self.root / 'log'}")
            time.sleep(0.2)
        return url

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            import pwd

            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user to run PostgreSQL as")
