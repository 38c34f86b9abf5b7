"""Lineage as a graph (`/lineage?node=model_version:churn@2&at=…`): what fed a node and
what it fed (data snapshot → feature views → run → version → endpoint revision →
monitoring reports), as the spine knew it at a chosen time (edges recorded after `at` are
left out)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stack.spine.lineage import NodeKind, NodeRef
from stack.spine.schema import LineageEdgeRow, LineageNodeRow
from stack.spine.store import SpineStore
from stack.spine.timeutil import to_text
from stack.ui import plots
from stack.ui.app import console_of, moment_param

COLUMNS = (
    ("data", (NodeKind.DATA_SNAPSHOT,)),
    ("features", (NodeKind.FEATURE_VIEW,)),
    ("run", (NodeKind.PIPELINE_RUN, NodeKind.RUN)),
    ("version", (NodeKind.MODEL_VERSION, NodeKind.PROMPT_VERSION)),
    ("endpoint revision", (NodeKind.ENDPOINT_REVISION,)),
    ("monitoring", (NodeKind.REPORT,)),
)
MAX_EDGES = 400  # a page stays readable and quick; the CLI walks everything


def routes() -> list[Route]:
    return [Route("/lineage", lineage_page, name="lineage")]


def walk(
    spine: SpineStore, start: NodeRef, at: datetime
) -> tuple[bool, list[tuple[NodeRef, NodeRef, str]]]:
    """(whether `start` exists, the edges upstream and downstream of it recorded by `at`)."""
    moment = to_text(at)
    edges: list[tuple[NodeRef, NodeRef, str]] = []
    with Session(spine._reads) as session:
        first = session.execute(
            select(LineageNodeRow.id).where(
                LineageNodeRow.kind == start.kind.value, LineageNodeRow.key == start.key
            )
        ).scalar_one_or_none()
        if first is None:
            return False, edges
        names: dict[int, NodeRef] = {}
        for upstream in (True, False):
            near = LineageEdgeRow.dst_id if upstream else LineageEdgeRow.src_id
            frontier, seen = [first], {first}
            while frontier and len(edges) < MAX_EDGES:
                rows = (
                    session.execute(
                        select(LineageEdgeRow)
                        .where(near.in_(frontier), LineageEdgeRow.created_at <= moment)
                        .order_by(LineageEdgeRow.id)
                    )
                    .scalars()
                    .all()
                )
                missing = {r.src_id for r in rows} | {r.dst_id for r in rows}
                missing -= set(names)
                for node in session.execute(
                    select(LineageNodeRow).where(LineageNodeRow.id.in_(missing))
                ).scalars():
                    names[node.id] = NodeRef(NodeKind(node.kind), node.key)
                frontier = []
                for row in rows:
                    edges.append((names[row.src_id], names[row.dst_id], row.relation))
                    step = row.src_id if upstream else row.dst_id
                    if step not in seen:
                        seen.add(step)
                        frontier.append(step)
    return True, edges[:MAX_EDGES]


def _link(node: NodeRef) -> str:
    """A node's page; every part taken from the node is URL-escaped (an endpoint
    revision's key `churn#3` would otherwise end the URL at its fragment)."""
    if node.kind is NodeKind.MODEL_VERSION:
        return f"/models/{quote(node.key.rpartition('@')[0], safe='')}"
    if node.kind is NodeKind.REPORT and node.key.startswith("monitoring/"):
        return f"/monitoring/checks/{quote(node.key.removeprefix('monitoring/'), safe='')}"
    return "/lineage?" + urlencode({"node": str(node)})


def lineage_page(request: Request) -> Response:
    console = console_of(request)
    params = request.query_params
    raw = params.get("node", "").strip()
    model = params.get("model", "").strip()
    if not raw and model:
        versions = console.read.versions(model).get(model)
        if not versions:
            raise HTTPException(404, f"No model is called {model!r} in this stack.")
        serving = [v for v in versions if v.state == "serving"]
        raw = f"model_version:{(serving or versions)[-1].ref}"
    at = moment_param(request, "at") or datetime.now(UTC)
    svg, node = None, None
    if raw:
        try:
            node = NodeRef.parse(raw)
        except ValueError:
            raise HTTPException(
                400, f"node must be KIND:KEY (e.g. model_version:churn@3), not {raw!r}"
            ) from None
        exists, edges = walk(console.session.spine, node, at)
        if not exists:
            raise HTTPException(404, f"Nothing in the lineage is called {raw}.")
        nodes = {node} | {e[0] for e in edges} | {e[1] for e in edges}
        columns = [
            (title, sorted(str(n) for n in nodes if n.kind in kinds)) for title, kinds in COLUMNS
        ]
        svg = Markup(
            plots.graph(
                columns,
                [(str(s), str(t), r) for s, t, r in edges],
                title=f"lineage of {node}",
                links={str(n): _link(n) for n in nodes},
                highlight=str(node),
            )
        )
    return console.render(
        request,
        "lineage.html",
        node=node,
        raw=raw,
        at=at,
        at_text=params.get("at", ""),
        svg=svg,
        models=[] if svg else sorted(console.read.versions()),
    )
