"""`mlstack cost`: what each endpoint and model version costs, and which endpoints are idle."""

from __future__ import annotations

import json
from datetime import timedelta

import click

from stack.cli.common import DURATION, open_existing_session


@click.command("cost")
@click.option(
    "--period", type=DURATION, default="1d", show_default=True, help="Traffic window: 1h, 1d, 7d."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--alert",
    is_flag=True,
    help="Raise MlstackEndpointIdle for each idle endpoint through the stack's alert routing "
    "(and resolve it for the others).",
)
@click.option(
    "--log-metrics",
    is_flag=True,
    help="Log each version's cost_per_1k_predictions to its training run, for gates "
    "(`champion: {metric: cost_per_1k_predictions, max_ratio: 1.5}`).",
)
@click.pass_context
def cost(
    ctx: click.Context, period: timedelta, as_json: bool, alert: bool, log_metrics: bool
) -> None:
    """Resource use and its price per day and per 1,000 predictions, per endpoint and
    version (prices: `cost:` in stack.yaml); idle endpoints with the command to retire them."""
    from stack.observability.alerts import idle_alert, router_for
    from stack.observability.cost import log_cost_metrics, report
    from stack.spine.timeutil import now_utc

    with open_existing_session(ctx) as session:
        found = report(session, period, now_utc())
        errors = []
        if log_metrics:
            found.notes += log_cost_metrics(session, found)
        if alert:
            router = router_for(session)
            for endpoint in {line.endpoint for line in found.lines}:
                raised = idle_alert(endpoint, session.stack.cost.idle_after)
                sent = router.fire(raised) if endpoint in found.idle else router.resolve(raised)
                errors += [sent] if sent else []
    if as_json:
        click.echo(json.dumps(found.as_json(), indent=2, default=str))
    else:
        _show(found)
    for error in errors:
        click.echo(f"alert not delivered: {error}", err=True)


def _show(found: object) -> None:
    from stack.observability.cost import CostReport

    assert isinstance(found, CostReport)
    if not found.lines:
        click.echo("no endpoint")
    header = f"{'endpoint':<16} {'version':<20} {'pred/day':>10} {'cpu s/day':>10} "
    click.echo(header + f"{'mem GiB':>8} {'GPU h/day':>9} {'cost/day':>10} {'per 1k':>10}")
    for line in found.lines:
        per_1k = "-" if line.cost_per_1k is None else f"{line.cost_per_1k:.4f}"
        click.echo(
            f"{line.endpoint:<16} {line.version:<20} {line.predictions_per_day:>10.0f} "
            f"{line.cpu_seconds_per_day:>10.0f} {line.memory_gib:>8.2f} "
            f"{line.gpu_hours_per_day:>9.1f} {line.cost_per_day:>10.4f} {per_1k:>10} "
            f"{line.currency}"
        )
    for endpoint, command in sorted(found.idle.items()):
        click.echo(f"idle: {endpoint} answered no live request lately; retire it: {command}")
    for note in found.notes:
        click.echo(f"note: {note}")
