"""`mlstack alerts test|firing`: the stack's alert routes (the `alerts:` section)."""

from __future__ import annotations

import click

from stack.cli.common import open_session


@click.group("alerts")
def alerts_group() -> None:
    """mlstack's own alerts: Alertmanager or Apprise URLs, once per breach."""


@alerts_group.command("test")
@click.pass_context
def test_routes(ctx: click.Context) -> None:
    """Send a test alert on every route the stack names; exit 1 when one fails."""
    from stack.observability.alerts import router_for

    with open_session(ctx) as session:
        router = router_for(session)
        if not router.configured:
            raise click.ClickException(
                "no alert route: name one in stack.yaml under `alerts:` "
                "(alertmanager: URL, or notify: [apprise URLs])"
            )
        lines = router.test()
    for line in lines:
        click.echo(line)
    if not all(line.endswith((": sent", ": accepted")) for line in lines):
        ctx.exit(1)


@alerts_group.command("firing")
@click.pass_context
def firing(ctx: click.Context) -> None:
    """The alerts notified and not yet resolved."""
    with open_session(ctx) as session:
        alerts = session.spine.firing_alerts()
    if not alerts:
        click.echo("no alert firing")
    for alert in alerts:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        click.echo(f"{alert.since:%Y-%m-%d %H:%M:%S} UTC  {alert.name}  {labels}")
