"""`mlstack lineage MODEL@STATE | MODEL@VERSION | KIND:KEY [--json] [--as-of TIME]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from stack.cli.common import VERSION, open_existing_session, parse_moment
from stack.contract.registry import ModelSelector

if TYPE_CHECKING:
    from stack.session import StackSession
    from stack.spine.lineage import LineageEdge, NodeRef


class LineageTarget(click.ParamType["ModelSelector | NodeRef | str"]):
    """`MODEL@VERSION|STATE` (a ModelSelector), `KIND:KEY` (a lineage node), or, with
    --as-of, a MODEL name."""

    name = "MODEL@STATE|MODEL@VERSION|KIND:KEY"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> ModelSelector | NodeRef | str:
        from stack.spine.lineage import NodeRef

        if isinstance(value, ModelSelector | NodeRef):
            return value
        text = str(value)
        if ":" in text:
            try:
                return NodeRef.parse(text)
            except ValueError as exc:
                self.fail(str(exc), param, ctx)
        if "@" in text:
            return VERSION.convert(text, param, ctx)
        return text  # a model's name, for --as-of


@click.command()
@click.argument("target", metavar="MODEL@STATE|MODEL@VERSION|KIND:KEY", type=LineageTarget())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a tree.")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="With MODEL: the version that was serving at this ISO time.",
)
@click.option(
    "--openlineage",
    "emit",
    is_flag=True,
    help="Also export this lineage as OpenLineage events (file or endpoint from the stack).",
)
@click.pass_context
def lineage(
    ctx: click.Context,
    target: ModelSelector | NodeRef | str,
    as_json: bool,
    as_of: str | None,
    emit: bool,
) -> None:
    """What fed a model version (data → features → run → version) and what it fed
    (endpoint revisions → monitoring reports)."""
    from stack.governance.history import served_at
    from stack.governance.service import Governance
    from stack.spine.lineage import NodeKind, NodeRef

    with open_existing_session(ctx) as session:
        node: NodeRef
        if as_of is not None:
            model = target.model if isinstance(target, ModelSelector) else str(target)
            when = parse_moment(as_of)
            assert when is not None
            ref = served_at(session.spine, model, when)
            if ref is None:
                raise click.ClickException(f"no version of {model!r} was serving at {when}")
            node = NodeRef(NodeKind.MODEL_VERSION, ref)
        elif isinstance(target, ModelSelector):
            node = NodeRef(NodeKind.MODEL_VERSION, Governance(session).version(target).ref)
        elif isinstance(target, str):  # a model's name is a target only with --as-of
            try:
                node = NodeRef.parse(target)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="TARGET") from exc
        else:
            node = target
        upstream = session.spine.upstream(node)
        downstream = session.spine.downstream(node)
        notes = _run_notes(session, upstream)
        if emit:
            _export(session, upstream + downstream)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "node": str(node),
                    "upstream": [_edge(e) for e in upstream],
                    "downstream": [_edge(e) for e in downstream],
                    "runs": notes,
                },
                indent=2,
            )
        )
        return
    from rich.console import Console
    from rich.tree import Tree

    tree = Tree(f"[bold]{node}[/bold]")
    _grow(tree, node, upstream, notes, upstream_side=True)
    _grow(tree, node, downstream, notes, upstream_side=False)
    if not upstream and not downstream:
        tree.add("[dim]no lineage recorded[/dim]")
    Console(highlight=False).print(tree)


def _export(session: StackSession, edges: list[LineageEdge]) -> None:
    from stack.governance.openlineage import export

    settings = session.stack.openlineage
    file = Path(settings.file)
    file = file if file.is_absolute() else session.home / file
    count = export(
        edges,
        namespace=settings.namespace,
        file=file,
        url=settings.url,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
    )
    click.echo(f"sent {count} OpenLineage events to {settings.url or file}", err=True)


def _edge(edge: LineageEdge) -> dict[str, str]:
    return {"source": str(edge.source), "relation": edge.relation, "target": str(edge.target)}


def _grow(
    tree: Any,
    node: NodeRef,
    edges: list[LineageEdge],
    notes: dict[str, Any],
    *,
    upstream_side: bool,
) -> None:
    children = [e for e in edges if (e.target if upstream_side else e.source) == node]
    for edge in children:
        other = edge.source if upstream_side else edge.target
        arrow = "←" if upstream_side else "→"
        note = notes.get(str(other))
        label = f"{arrow} {other} [dim]({edge.relation})[/dim]"
        if note:
            dirty = " dirty" if note["dirty"] else ""
            label += f" [dim]commit {note['commit'] or 'unknown'}{dirty}[/dim]"
        _grow(tree.add(label), other, edges, notes, upstream_side=upstream_side)


def _run_notes(session: StackSession, edges: list[LineageEdge]) -> dict[str, Any]:
    """The code commit of each training run in the lineage, read from the tracker."""
    from stack.contract.roles import Role
    from stack.errors import StackError
    from stack.spine.lineage import NodeKind

    notes: dict[str, Any] = {}
    if not session.has(Role.TRACKER):
        return notes
    for edge in edges:
        for ref in (edge.source, edge.target):
            if ref.kind is NodeKind.RUN and str(ref) not in notes:
                try:
                    code = session.tracker.get_run(ref.key).code
                except StackError:
                    continue
                notes[str(ref)] = {
                    "commit": code.commit if code else None,
                    "dirty": bool(code and code.dirty),
                }
    return notes
