"""`mlstack schedule`: a recipe on a cron schedule, kept by the orchestrator that runs it.

mlstack schedules nothing itself. An orchestrator with the `schedule` capability creates its
own schedule (a Prefect deployment, a KFP recurring run); for the local orchestrator, the
answer is the crontab line that runs the recipe."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import cast

from stack.config.recipe_file import Recipe
from stack.contract.capabilities import OrchestratorCapability
from stack.contract.orchestration import Scheduler
from stack.errors import StackError
from stack.plugins.capabilities import declares
from stack.session import StackSession

_FIELDS = 5


def check_cron(cron: str) -> str:
    """Five fields (minute hour day month weekday), each made of the characters cron knows."""
    fields = cron.split()
    allowed = set("0123456789*/,-")
    if len(fields) != _FIELDS or any(not set(f) <= allowed for f in fields):
        raise StackError(
            f"{cron!r} is not a cron expression: give five fields, minute hour day month "
            "weekday, e.g. '0 2 * * *' for 02:00 every day"
        )
    return " ".join(fields)


def schedule(session: StackSession, recipe: Recipe, *, cron: str, name: str | None = None) -> str:
    cron = check_cron(cron)
    if declares(session, OrchestratorCapability.SCHEDULE):
        scheduler = cast(Scheduler, session.orchestrator)  # the registry checked it
        return scheduler.schedule(recipe, session, cron=cron, name=name or recipe.name)
    return crontab_line(session, recipe, cron)


def crontab_line(session: StackSession, recipe: Recipe, cron: str) -> str:
    """The line for `crontab -e` that runs the recipe here, logging under the stack's home."""
    mlstack = Path(sys.executable).parent / "mlstack"
    stack = f" --stack {shlex.quote(str(session.source.resolve()))}" if session.source else ""
    log = session.home / "logs" / f"{recipe.name}.log"
    return (
        f"{cron} cd {shlex.quote(str(session.base_dir))} && {shlex.quote(str(mlstack))}{stack} "
        f"run {shlex.quote(str(recipe.path))} >> {shlex.quote(str(log))} 2>&1"
    )
