"""`mlstack spine upgrade|status`."""

from __future__ import annotations

import click

from stack.cli.common import open_session


@click.group("spine")
def spine_group() -> None:
    """Create or upgrade the spine store schema."""


@spine_group.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Bring the spine store's schema to this version of mlstack (idempotent)."""
    with open_session(ctx) as session:
        store = session.spine  # opening migrates
        click.echo(f"{session.stack.spine.safe_url}: schema {store.schema_revision()}")


@spine_group.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Where the spine store is and its schema revision, without changing it."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from stack.spine.store import SpineStore

    with open_session(ctx) as session:
        revision = None
        file = session.spine_file()
        if file is None or file.exists():  # opening a SQLite file that is not there makes it
            store = SpineStore.open(session.stack.spine.connect_url(), migrate=False)
            try:
                revision = store.schema_revision()
            except (OperationalError, ProgrammingError):
                revision = None
            finally:
                store.close()
        shown = revision or "not created yet (run `mlstack spine upgrade`)"
        click.echo(f"{session.stack.spine.safe_url}: schema {shown}")
