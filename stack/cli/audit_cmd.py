"""`mlstack audit log|verify|keygen|anchor`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from stack.cli.common import open_existing_session, parse_moment

if TYPE_CHECKING:
    from stack.session import StackSession
    from stack.spine.audit import AuditFinding

#: The anchors file, under the stack's home, unless --anchors/--to or the variable says.
ANCHORS_FILE = "audit-anchors.jsonl"
ANCHORS_ENV = "MLSTACK_AUDIT_ANCHORS"
PUBLIC_KEY_ENV = "MLSTACK_AUDIT_PUBLIC_KEY"
PRIVATE_KEY_ENV = "MLSTACK_AUDIT_PRIVATE_KEY"

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.group("audit")
def audit_group() -> None:
    """Read, export and verify the audit log."""


@audit_group.command("log")
@click.option(
    "--model",
    "subject",
    help="Entries about this model, its versions and the endpoints that served them "
    "(or an exact subject such as endpoint:churn).",
)
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
    start, end = parse_moment(since), parse_moment(until)
    with open_existing_session(ctx) as session:
        if subject is not None and "@" not in subject and not subject.startswith("endpoint:"):
            entries = session.spine.model_audit_entries(
                subject, actor=actor, action=action, since=start, until=end
            )
        else:
            entries = session.spine.audit_entries(
                subject=subject, actor=actor, action=action, since=start, until=end
            )
        model = subject if subject and "@" not in subject and ":" not in subject else None
        if not entries and model and not session.spine.model_audit_entries(model):
            from stack.monitoring.known import require_model

            require_model(session, model)  # a misspelt model: say so, not print nothing
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
@click.option(
    "--anchors",
    type=_FILE,
    envvar=ANCHORS_ENV,
    help=f"Signed anchors to check the log against [default: <home>/{ANCHORS_FILE}; "
    f"env {ANCHORS_ENV}].",
)
@click.option(
    "--public-key",
    type=_FILE,
    envvar=PUBLIC_KEY_ENV,
    help=f"The public key the anchors were signed with (PEM) [env {PUBLIC_KEY_ENV}].",
)
@click.pass_context
def verify(ctx: click.Context, anchors: Path | None, public_key: Path | None) -> None:
    """Check the hash chain, and with --public-key the signed anchors; exit 1 naming each
    tampered entry and what was done to it (edited, re-hashed, forged, inserted, deleted,
    renumbered, cut back or rewritten since an anchor)."""
    from stack.spine import anchors as signed

    if anchors is not None and public_key is None:
        raise click.UsageError("--anchors needs --public-key: the key the anchors were signed with")
    key = signed.load_public_key(public_key) if public_key is not None else None
    with open_existing_session(ctx) as session:
        path = _anchors_path(session, anchors)
        held = signed.read(path, key) if key is not None else None
        result = session.spine.verify_audit(held.anchors if held else ())
    if held is None and path.is_file():
        click.echo(
            f"note: {path} holds signed anchors, not checked: give --public-key "
            f"(or {PUBLIC_KEY_ENV}) to check the log against them",
            err=True,
        )
    findings = (held.findings if held else ()) + result.findings
    if findings:
        _broken(result.entries, findings)
    summary = f"audit log verified: {result.entries} entries, chain intact"
    if held is not None and (latest := held.latest) is not None:
        summary += (
            f", {len(held.anchors)} signed anchor(s) hold (latest: entry {latest.seq}, "
            f"signed {latest.at:%Y-%m-%d %H:%M:%S} UTC)"
        )
    click.echo(summary)


@audit_group.command()
@click.argument("private_key", type=_FILE)
@click.option(
    "--public-key", type=_FILE, help="Where to write the public key [default: PRIVATE_KEY.pub]."
)
def keygen(private_key: Path, public_key: Path | None) -> None:
    """Create an Ed25519 key pair for `audit anchor`. Keep the private key where the spine's
    writers cannot read it (the job or person that anchors); give the public key to whoever
    runs `audit verify`."""
    from stack.spine import anchors as signed

    public_key = public_key or private_key.with_name(private_key.name + ".pub")
    fingerprint = signed.generate_keypair(private_key, public_key)
    click.echo(f"wrote {private_key} (private, mode 600) and {public_key} (key {fingerprint})")


@audit_group.command()
@click.option(
    "--to",
    "anchors",
    type=_FILE,
    envvar=ANCHORS_ENV,
    help=f"The anchors file to append to [default: <home>/{ANCHORS_FILE}; env {ANCHORS_ENV}].",
)
@click.option(
    "--private-key",
    type=_FILE,
    envvar=PRIVATE_KEY_ENV,
    required=True,
    help=f"The Ed25519 private key (PEM) that signs [env {PRIVATE_KEY_ENV}].",
)
@click.pass_context
def anchor(ctx: click.Context, anchors: Path | None, private_key: Path) -> None:
    """Sign the audit chain's head and append it to the anchors file. Refused, with nothing
    written, when the log does not verify against its chain and the anchors already there."""
    from stack.spine import anchors as signed

    key = signed.load_private_key(private_key)
    with open_existing_session(ctx) as session:
        path = _anchors_path(session, anchors)
        held = signed.read(path, key.public_key()) if path.is_file() else None
        result = session.spine.verify_audit(held.anchors if held else ())
    findings = (held.findings if held else ()) + result.findings
    if findings:
        _broken(result.entries, findings, "nothing anchored")
    latest = held.latest if held else None
    if latest is not None and (latest.seq, latest.hash) == (result.head_seq, result.head_hash):
        click.echo(f"entry {latest.seq} is already anchored in {path}: nothing to add")
        return
    signed.append(path, signed.sign(result.head_seq, result.head_hash, key))
    click.echo(f"anchored entry {result.head_seq} ({result.head_hash[:12]}…) in {path}")


def _anchors_path(session: StackSession, given: Path | None) -> Path:
    return given if given is not None else session.home / ANCHORS_FILE


def _broken(entries: int, findings: Sequence[AuditFinding], outcome: str = "") -> None:
    click.secho(
        f"audit log BROKEN ({entries} entries read){': ' + outcome if outcome else ''}:",
        fg="red",
        err=True,
    )
    for finding in findings:
        click.echo(f"  {finding}", err=True)
    raise SystemExit(1)
