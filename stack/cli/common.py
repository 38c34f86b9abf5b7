"""Helpers shared by the subcommands: finding the stack file, opening a session, printing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from stack.contract.registry import ModelSelector
from stack.errors import StackError

if TYPE_CHECKING:
    from stack.config.recipe_file import Recipe
    from stack.session import StackSession

LOCAL_STACK_FILE = Path("stack.yaml")


def stack_path(ctx: click.Context, explicit: str | None = None) -> Path | None:
    """The stack file to use: explicit, then --stack/MLSTACK_STACK, then ./stack.yaml."""
    chosen = explicit or (ctx.obj or {}).get("stack_file")
    if chosen:
        return Path(chosen)
    return LOCAL_STACK_FILE if LOCAL_STACK_FILE.is_file() else None


class VersionSelector(click.ParamType[ModelSelector]):
    """`MODEL@VERSION` or `MODEL@STATE` on the command line (`churn@3`, `churn@serving`),
    parsed here, once, into a ModelSelector; a malformed one is a usage error naming it."""

    name = "MODEL@VERSION"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> ModelSelector:
        if isinstance(value, ModelSelector):
            return value
        try:
            return ModelSelector.parse(str(value))
        except StackError as exc:
            self.fail(str(exc), param, ctx)


#: The click type of a `MODEL@VERSION|STATE` argument.
VERSION = VersionSelector()


def parse_moment(value: str | None) -> datetime | None:
    """An ISO date or time from the command line; UTC unless it names a zone."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO date or time ({exc})") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def open_session(ctx: click.Context, recipe: Recipe | None = None) -> StackSession:
    from stack.session import StackSession

    return StackSession.open(stack_path(ctx), recipe=recipe)


def open_existing_session(ctx: click.Context) -> StackSession:
    """A session for a command that reads what the stack holds (the audit log, runs): a SQLite
    spine that does not exist yet is an error naming the file, not an empty log created on
    the spot (a cron job run from the wrong folder would verify nothing and pass)."""
    session = open_session(ctx)
    spine = session.spine_file()
    if spine is not None and not spine.exists():
        session.close()
        raise click.ClickException(
            f"no spine at {spine}: nothing was ever recorded for this stack here. Run from the "
            "project folder, or give its stack file with --stack"
        )
    return session
