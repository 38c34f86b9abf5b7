"""`mlstack lineage KIND:KEY`."""

from __future__ import annotations

import click

from stack.cli.common import open_session


@click.command()
@click.argument("node")
@click.pass_context
def lineage(ctx: click.Context, node: str) -> None:
    """Print what fed NODE (KIND:KEY, e.g. model_version:churn@3) and what it fed."""
    from stack.spine.lineage import NodeRef

    try:
        ref = NodeRef.parse(node)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NODE") from exc
    with open_session(ctx) as session:
        upstream = session.spine.upstream(ref)
        downstream = session.spine.downstream(ref)
    if not upstream and not downstream:
        click.echo(f"{ref}: no lineage recorded")
        return
    click.echo(f"{ref}")
    for edge in upstream:
        click.echo(f"  ← {edge.source}  ({edge.relation} → {edge.target})")
    for edge in downstream:
        click.echo(f"  → {edge.target}  ({edge.source} {edge.relation})")
