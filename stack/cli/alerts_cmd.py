"""`mlstack alerts test|firing`: the stack's alert routes (the `alerts:` section)."""

from __future__ import annotations

from pathlib import Path

import click

from stack.cli.common import open_existing_session, open_session


@click.group("alerts")
def alerts_group() -> None:
    """mlstack's own alerts: Alertmanager or Apprise URLs, once per breach."""


@alerts_group.command("test")
@click.option(
    "--recipe",
    "recipe_location",
    type=click.Path(exists=True),
    help="Also the recipe's own route (monitoring.alerts.webhook).",
)
@click.pass_context
def test_routes(ctx: click.Context, recipe_location: str | None) -> None:
    """Send a test alert on every route the stack names (and the recipe's, with --recipe);
    exit 1 when one fails."""
    from stack.observability.alerts import router_for

    section = None
    if recipe_location is not None:
        from stack.config.recipe_file import load_recipe

        section = load_recipe(Path(recipe_location)).spec.monitoring.alerts
    with open_session(ctx) as session:
        router = router_for(session, section)
        if not router.configured:
            raise click.ClickException(
                "no alert route: name one in stack.yaml under `alerts:` "
                "(alertmanager: URL, or notify: [apprise URLs]) or in the recipe's "
                "monitoring.alerts.webhook"
            )
        lines = router.test()
    for line in lines:
        click.echo(line)
    if not all(line.endswith((": sent", ": accepted")) for line in lines):
        ctx.exit(1)


@alerts_group.command("firing")
@click.pass_context
def firing(ctx: click.Context) -> None:
    """The alerts firing, and those resolved that a route has not been told of yet."""
    with open_existing_session(ctx) as session:
        alerts = session.spine.firing_alerts()
    if not alerts:
        click.echo("no alert firing")
    for alert in alerts:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        line = f"{alert.since:%Y-%m-%d %H:%M:%S} UTC  {alert.name}  {labels}"
        if alert.resolved is not None:
            waiting = sorted(route for route, told in alert.told.items() if told == "firing")
            line += f"  resolved {alert.resolved:%Y-%m-%d %H:%M:%S} UTC, not yet told: "
            line += ", ".join(waiting)
        else:
            untold = "" if alert.told else "  (no route told yet)"
            line += untold
        click.echo(line)
