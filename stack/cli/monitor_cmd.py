"""`mlstack monitor run|history` and `mlstack labels ingest`."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from stack.cli.common import (
    DURATION,
    POSITIVE_SECONDS,
    open_existing_session,
    open_session,
    parse_moment,
)

if TYPE_CHECKING:
    from stack.monitoring.loop import CheckResult, MonitoringOutcome
    from stack.session import StackSession


@click.group("monitor")
def monitor_group() -> None:
    """Check served models for drift, data quality and performance against late labels."""


@monitor_group.command("run")
@click.argument("model")
@click.option("--endpoint", help="The endpoint to read (default: the recipe's, or MODEL).")
@click.option(
    "--window",
    type=DURATION,
    help="How far back from --until: 90s, 15m, 1h, 7d (default: recipe).",
)
@click.option("--until", help="End of the window (ISO; default now).")
@click.option("--recipe", "recipe_location", type=click.Path(exists=True), help="Its policy.")
@click.option("--every", type=POSITIVE_SECONDS, help="Check again every this many seconds.")
@click.option(
    "--count", type=click.IntRange(min=1), default=1, show_default=True, help="Checks with --every."
)
@click.option("--json", "as_json", is_flag=True, help="Print each check as JSON.")
@click.option(
    "--textfile-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write each check's metrics to DIR/mlstack_monitor_MODEL.prom (for node_exporter's "
    "textfile collector).",
)
@click.pass_context
def run_checks(
    ctx: click.Context,
    model: str,
    endpoint: str | None,
    window: timedelta | None,
    until: str | None,
    recipe_location: str | None,
    every: float | None,
    count: int,
    as_json: bool,
    textfile_dir: Path | None,
) -> None:
    """Check MODEL's endpoint over a window; exit 3 when a policy was breached."""
    from stack.config.recipe_file import load_recipe
    from stack.monitoring.loop import MonitoringLoop

    recipe = load_recipe(Path(recipe_location)) if recipe_location else None
    breached = False
    with open_session(ctx, recipe) as session:  # the recipe's hooks included
        loop = MonitoringLoop(session)
        for turn in range(max(1, count if every else 1)):
            if turn:
                time.sleep(every or 0)
            outcome = loop.check(model, endpoint=endpoint, until=parse_moment(until), window=window)
            _show(outcome, as_json)
            if textfile_dir is not None:
                from stack.observability.checks import write_textfile

                write_textfile(textfile_dir, model, outcome.checks, time.time())
            breached = breached or outcome.breached
    if breached:
        ctx.exit(3)


@monitor_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=9410, show_default=True, type=click.IntRange(0, 65535))
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Export every model's latest monitoring checks on GET /metrics, read from the spine on
    each scrape (the checks' CronJobs need nothing more: no pushgateway, no shared folder).
    A SQLite spine that does not exist is refused (exit 1), never created: an exporter
    started from the wrong folder would answer an empty page for ever."""
    from stack.observability.exporter import MonitorExporter

    with open_existing_session(ctx) as session:
        _require_spine(session)
        try:
            exporter = MonitorExporter(session.spine, host, port)
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc
        click.echo(f"serving monitoring metrics on http://{host}:{exporter.port}/metrics")
        try:
            exporter.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            exporter.server.server_close()


def _require_spine(session: StackSession) -> None:
    """A server database (PostgreSQL) that holds no spine yet is refused, its tables never
    created (a SQLite file that does not exist is refused by open_existing_session)."""
    if session.spine_file() is not None:
        return
    from sqlalchemy.exc import SQLAlchemyError

    from stack.spine.store import SpineStore

    url = session.stack.spine.safe_url
    try:
        store = SpineStore.open(session.stack.spine.connect_url(), migrate=False)
        try:
            store.schema_revision()
        finally:
            store.close()
    except SQLAlchemyError as exc:
        cause = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
        raise click.ClickException(
            f"no spine at {url} (spine.url): {cause}. `mlstack monitor serve` reads the spine "
            "the checks record into and creates none: point spine.url at it"
        ) from exc


@monitor_group.command()
@click.argument("model")
@click.option("--limit", default=20, show_default=True)
@click.pass_context
def history(ctx: click.Context, model: str, limit: int) -> None:
    """The latest checks of MODEL, newest first."""
    with open_existing_session(ctx) as session:
        checks = session.spine.checks(model, limit=limit)
    if not checks:
        click.echo(f"no monitoring checks of {model} yet")
    for check in checks:
        drift = (check.result.get("drift") or {}).get("drifted_share")
        share = f"drift {drift:.0%}" if drift is not None else "drift -"
        click.echo(
            f"#{check.id}  {check.at:%Y-%m-%d %H:%M:%S}  {check.version:<12} {check.endpoint}  "
            f"{check.status:<7} {share}  {check.result.get('rows', 0)} rows"
        )
        for reason in check.result.get("breaches", []):
            click.echo(f"      breach: {reason}")


@click.group("labels")
def labels_group() -> None:
    """Late ground truth for logged predictions."""


@labels_group.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--model", required=True, help="The model whose predictions are labelled.")
@click.option("--label-column", default="label", show_default=True)
@click.option("--entity", multiple=True, help="Entity column to join on (repeat for several).")
@click.option("--time-column", default="observed_at", show_default=True)
@click.option(
    "--endpoint",
    help="The endpoint (or batch) whose log the request ids are checked against "
    "(default: the recipe's, or MODEL).",
)
@click.pass_context
def ingest(
    ctx: click.Context,
    file: str,
    model: str,
    label_column: str,
    entity: tuple[str, ...],
    time_column: str,
    endpoint: str | None,
) -> None:
    """Store the labels of FILE (CSV) whole, or none of them if a row is bad or MODEL is not
    in the registry. Labels naming a request id never answered on the model's endpoint are
    stored too, and counted and named in the output (a label file may arrive before the log
    is readable; a misspelt id shows there)."""
    from stack.errors import StackError
    from stack.monitoring.known import describe_unlogged, require_model, unlogged_request_ids
    from stack.monitoring.labels import read_labels
    from stack.monitoring.loop import MonitoringLoop

    labels = read_labels(
        Path(file), model=model, label_column=label_column, entity=entity, time_column=time_column
    )
    with open_session(ctx) as session:
        require_model(session, model)
        note: str | None = None
        if any(label.request_id is not None for label in labels):
            try:
                named = {label.request_id for label in labels if label.request_id is not None}
                read, answered = MonitoringLoop(session).answered_among(
                    model, named, endpoint=endpoint
                )
            except StackError as exc:
                note = f"request ids not checked against the log: {exc}"
            else:
                unlogged = unlogged_request_ids(labels, answered)
                note = describe_unlogged(unlogged, read) if unlogged else None
        stored = session.spine.record_labels(labels)
    click.echo(f"ingested {stored} labels for {model} from {file}")
    if note is not None:
        click.echo(f"  note: {note}")


def _show(outcome: MonitoringOutcome, as_json: bool) -> None:
    for check in outcome.checks:
        if as_json:
            click.echo(json.dumps({"check": check.id, **check.as_record()}, default=str))
        else:
            _print_check(check)
    for line in outcome.rolled_back:
        click.echo(f"ROLLBACK {line}")
    if outcome.retrain is not None:
        started = "started" if outcome.retrain.started else "not started"
        detail = (
            f" run {outcome.retrain.run_id}: {outcome.retrain.state}"
            if outcome.retrain.run_id
            else ""
        )
        click.echo(f"retraining {started}: {outcome.retrain.reason}{detail}")


def _print_check(check: CheckResult) -> None:
    start, end = check.window
    click.echo(
        f"check #{check.id} {check.version} on {check.endpoint} "
        f"[{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) UTC: {check.status.upper()}, "
        f"{check.rows} rows"
    )
    if check.drift is not None:
        drifted = ", ".join(check.drift.drifted_columns) or "none"
        click.echo(
            f"  drift: {len(check.drift.drifted_columns)}/{len(check.drift.columns)} columns "
            f"({drifted})"
        )
        if check.drift.prediction is not None:
            state = "drifted" if check.drift.prediction.drifted else "stable"
            click.echo(f"  predictions: {state} ({check.drift.prediction.method})")
    if check.quality is not None:
        for column in check.quality.columns:
            if column.missing_share or column.out_of_range_share or column.new_categories:
                click.echo(
                    f"  quality {column.column}: {column.missing_share:.1%} missing, "
                    f"{column.out_of_range_share:.1%} out of range"
                    + (
                        f", new: {', '.join(column.new_categories)}"
                        if column.new_categories
                        else ""
                    )
                )
    performance = check.performance
    if performance is not None:
        coverage = f"{performance.labelled_rows}/{performance.rows} labelled"
        if performance.sufficient:
            figures = ", ".join(f"{k} {v:.3f}" for k, v in sorted(performance.metrics.items()))
            click.echo(f"  performance ({coverage}): {figures}")
        else:
            click.echo(f"  performance ({coverage}): {'; '.join(performance.notes)}")
    for message in check.messages:
        click.echo(f"  note: {message}")
    for reason in check.breaches:
        click.echo(f"  BREACH: {reason}")
    if check.alert_error:
        click.echo(f"  alert not delivered: {check.alert_error}")
    if check.report_uri:
        click.echo(f"  report: {check.report_uri}")
