"""Helpers shared by the subcommands: finding the stack file, opening a session, printing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

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


def open_session(ctx: click.Context, recipe: Recipe | None = None) -> StackSession:
    from stack.session import StackSession

    return StackSession.open(stack_path(ctx), recipe=recipe)
