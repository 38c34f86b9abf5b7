"""`mlstack audit log|verify`."""

from __future__ import annotations

import json

import click

from stack.cli.common import open_session, parse_moment


@click.group("audit")
def audit_group() -> None:
    """Read, export and verify the audit log."""


@audit_group.command("log")
@click.option("--model", "subject", help="Entries about this model (or exact subject).")
@click.option("--actor", help="Entries by this person.")
@click.option("--action", help="Only this action (e.g. approval.approved).")
@click.option("--since", help="From this ISO date/time (UTC unless it says).")
@click.option("--until", help="Before this ISO date/time.")
@click.option("--jsonl", is_flag=True, help="Export as JSON lines, one entry per line.")
@click.pass_context
def log(
    ctx: click.Context,
    subject: str | None,
    actor: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
    jsonl: bool,
) -> None:
    """Print audit entries, oldest first, filtered by model, actor, action and time."""
    with open_session(ctx) as session:
        entries = session.spine.audit_entries(
            subject=subject,
            actor=actor,
            action=action,
            since=parse_moment(since),
            until=parse_moment(until),
        )
    for entry in entries:
        if jsonl:
            click.echo(json.dumps(entry.to_json(), sort_keys=True))
        else:
            reason = f"  — {entry.reason}" if entry.reason else ""
            click.echo(
                f"{entry.seq:>6}  {entry.at:%Y-%m-%d %H:%M:%S}  {entry.actor:<12} "
                f"{entry.action:<22} {entry.subject}{reason}"
            )


@audit_group.command()
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Check the hash chain; exit 1 naming every edited, reordered or deleted entry."""
    with open_session(ctx) as session:
        result = session.spine.verify_audit()
    if result.ok:
        click.echo(f"audit log verified: {result.entries} entries, chain intact")
        return
    click.secho(f"audit log BROKEN ({result.entries} entries read):", fg="red", err=True)
    for problem in result.problems:
        click.echo(f"  {problem}", err=True)
    raise SystemExit(1)
