"""`mlstack tracking replay FILE`."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click

from stack.cli.common import open_session
from stack.contract.roles import Role


@click.group("tracking")
def tracking_group() -> None:
    """Work with the tracker's data (upload metrics saved while it was down)."""


@tracking_group.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def replay(ctx: click.Context, file: Path) -> None:
    """Upload FILE, metrics a run saved while its tracking server was unreachable."""
    from stack.contract.capabilities import TrackerCapability
    from stack.contract.tracking import SpillReplayer
    from stack.errors import CapabilityMissing
    from stack.plugins.capabilities import declares

    with open_session(ctx) as session:
        if not declares(session, TrackerCapability.REPLAY):
            resolved = session.resolved.get(Role.TRACKER)
            adapter = resolved.adapter if resolved else "none"
            raise CapabilityMissing(f"the stack's tracker ({adapter}) cannot replay spill files")
        replayer = cast(SpillReplayer, session.tracker)  # the registry checked it
        written = replayer.replay(file)
    click.echo(f"replayed {written} metric points from {file}")
