"""Helpers shared by the subcommands: finding the stack file, opening a session, printing."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from stack.contract.registry import ModelSelector
from stack.errors import StackError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from stack.config.recipe_file import Recipe
    from stack.session import StackSession

LOCAL_STACK_FILE = Path("stack.yaml")
T = TypeVar("T")


def print_table(table: Table) -> Console:
    """Print a rich table whole: on a terminal at the terminal's width (rich folds what does
    not fit); piped or redirected, as wide as its widest row, so that a script reading it
    (grep, awk) gets every cell whole, not cut at 80 columns with an ellipsis. Returns the
    console it printed with (for what follows the table)."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        wide = Console(width=100_000)
        console = Console(width=max(wide.measure(table).maximum, 20))
    console.print(table)
    return console


def stack_path(ctx: click.Context, explicit: str | None = None) -> Path | None:
    """The stack file to use: explicit, then --stack/MLSTACK_STACK, then ./stack.yaml."""
    chosen = explicit or (ctx.obj or {}).get("stack_file")
    if chosen:
        return Path(chosen)
    return local_stack_file(LOCAL_STACK_FILE)


def local_stack_file(path: Path) -> Path | None:
    """`path` (./stack.yaml) when it is a file, None when nothing is there (the embedded
    local stack is used). Raises StackError naming it when something else is: a folder, a
    link to nothing, a socket: never the embedded stack in its place (a broken link to a
    production stack would otherwise act on a local store)."""
    if path.is_file():
        return path
    if path.is_symlink():
        target = os.readlink(path)
        raise StackError(
            f"{path}: a link to {target}, which does not exist (or is not a file); fix the "
            "link, or give the stack file with --stack"
        )
    if path.exists():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise StackError(
            f"{path}: {kind}, not a stack file; give the stack file with --stack, or move it "
            "away to use the embedded local stack"
        )
    return None


class Parsed(click.ParamType[T]):
    """A value parsed once, by the command line, with `parse`: a `kind` is taken as it is,
    text is parsed, and a StackError or ValueError from `parse` is a usage error naming the
    option or argument (`Invalid value for '--window': ...`, exit 2)."""

    def __init__(self, name: str, kind: type[T], parse: Callable[[str], T]) -> None:
        self.name = name
        self.kind = kind
        self.parse = parse

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> T:
        if isinstance(value, self.kind):
            return value
        try:
            return self.parse(str(value))
        except (StackError, ValueError) as exc:
            self.fail(str(exc), param, ctx)


def _duration(text: str) -> timedelta:
    from stack.config.duration import parse_duration  # pydantic: only when an option is given

    return parse_duration(text)


#: The click type of a `MODEL@VERSION|STATE` argument (`churn@3`, `churn@serving`).
VERSION = Parsed("MODEL@VERSION", ModelSelector, ModelSelector.parse)

#: The click type of an option that takes a duration as YAML does (`90s`, `15m`, `1h`, `7d`):
#: `0s`, `-5m` or `abc` is a usage error naming the option.
DURATION = Parsed("DURATION", timedelta, _duration)


class SecondsType(click.ParamType[float]):
    """A number of seconds on the command line: finite, and 0 or more (more than 0 when
    `positive`); anything else (`-5`, `nan`, `inf`) is a usage error naming the option."""

    name = "SECONDS"

    def __init__(self, *, positive: bool = False) -> None:
        self.positive = positive

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            seconds = float(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds < 0 or (self.positive and seconds == 0):
            least = "more than 0" if self.positive else "0 or more"
            self.fail(f"{value!r}: give a number of seconds, {least}", param, ctx)
        return seconds


#: Seconds that may be 0 (a bake, a hold) and seconds that may not (a period).
SECONDS = SecondsType()
POSITIVE_SECONDS = SecondsType(positive=True)


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


def store_of(session: StackSession) -> str:
    """Which stack file `session` read and where it keeps its store, in one line:
    `stack.yaml (store /p/.mlstack, spine /p/.mlstack/spine.db)`."""
    stack = str(session.source.resolve()) if session.source else "the embedded local stack"
    spine = session.spine_file() or session.stack.spine.safe_url
    return f"{stack} (store {session.home}, spine {spine})"


def open_existing_session(ctx: click.Context, recipe: Recipe | None = None) -> StackSession:
    """A session for a command that reads what the stack holds (the audit log, runs, the
    registry): a SQLite spine that does not exist yet is an error naming the file and the
    folder, not an empty store created on the spot (a cron job run from the wrong folder
    would verify nothing and pass; `mlstack models` would list an empty inventory). Nothing
    is created before the check: `.mlstack/` appears only when an adapter is first built."""
    from stack.config.home import refuse_home

    session = open_session(ctx, recipe)
    refuse_home(session.home, session.source)  # a home that cannot be: the first problem
    spine = session.spine_file()
    if spine is not None and not spine.exists():
        session.close()
        where = f"the stack file {session.source}" if session.source else "the embedded stack"
        raise click.ClickException(
            f"no spine at {spine}: nothing was ever recorded for {where} in {Path.cwd()}. "
            "Run from the project folder, or point at its stack file with --stack FILE (or "
            "MLSTACK_STACK=FILE)"
        )
    return session
