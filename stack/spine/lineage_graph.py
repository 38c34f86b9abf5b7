"""The lineage tables: nodes (with attributes) and the edges between them, walked either way."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stack.spine.audit import canonical_payload
from stack.spine.lineage import LineageEdge, NodeKind, NodeRef
from stack.spine.schema import LineageEdgeRow, LineageNodeRow
from stack.spine.tables import SpineTables
from stack.spine.timeutil import now_utc, to_text


class LineageGraph(SpineTables):
    def link(
        self,
        source: NodeRef,
        target: NodeRef,
        relation: str,
        *,
        attributes: Mapping[NodeRef, Mapping[str, Any]] | None = None,
    ) -> LineageEdge:
        """Record that `source` fed `target`; recording the same edge twice is harmless."""
        attributes = attributes or {}
        with self._transaction() as session:
            src = _node(session, source, attributes.get(source))
            dst = _node(session, target, attributes.get(target))
            exists = session.execute(
                select(LineageEdgeRow.id).where(
                    LineageEdgeRow.src_id == src.id,
                    LineageEdgeRow.dst_id == dst.id,
                    LineageEdgeRow.relation == relation,
                )
            ).first()
            if exists is None:
                session.add(
                    LineageEdgeRow(
                        src_id=src.id,
                        dst_id=dst.id,
                        relation=relation,
                        created_at=to_text(now_utc()),
                    )
                )
        return LineageEdge(source, target, relation)

    def node_attributes(self, node: NodeRef) -> dict[str, Any] | None:
        with Session(self._reads) as session:
            row = _find_node(session, node)
            return None if row is None else dict(json.loads(row.attributes))

    def upstream(self, node: NodeRef) -> list[LineageEdge]:
        """Every edge that leads into `node`, transitively, nearest first."""
        return self._walk(node, upstream=True)

    def downstream(self, node: NodeRef) -> list[LineageEdge]:
        """Every edge that leads out of `node`, transitively, nearest first."""
        return self._walk(node, upstream=False)

    def _walk(self, start: NodeRef, *, upstream: bool) -> list[LineageEdge]:
        """Breadth first from `start`, each node expanded once, each level's edges in the
        order they were recorded. SQL finds what is reachable (one recursive query, through
        the edge indexes), Python orders it: a query per level with the whole frontier in an
        IN list makes SQLite scan the edge table once the frontier is large."""
        with Session(self._reads) as session:
            first = _find_node(session, start)
            if first is None:
                return []
            rows = session.execute(_reachable_edges(first.id, upstream=upstream)).all()
        leaving: dict[int, list[Any]] = {}
        for row in rows:
            leaving.setdefault(row.dst_id if upstream else row.src_id, []).append(row)
        edges: list[LineageEdge] = []
        frontier, seen = [first.id], {first.id}
        while frontier:
            level = sorted((row for node in frontier for row in leaving.get(node, ())), key=_id)
            frontier = []
            for row in level:
                edges.append(
                    LineageEdge(
                        NodeRef(NodeKind(row.src_kind), row.src_key),
                        NodeRef(NodeKind(row.dst_kind), row.dst_key),
                        row.relation,
                    )
                )
                next_id = row.src_id if upstream else row.dst_id
                if next_id not in seen:
                    seen.add(next_id)
                    frontier.append(next_id)
        return edges


def _id(row: Any) -> int:
    return int(row.id)


def _reachable_edges(start: int, *, upstream: bool) -> Select[Any]:
    """Every edge leading into (`upstream`) or out of the nodes reachable from `start`, with
    both ends' kind and key: a recursive CTE over node ids (UNION: each node once, so a
    cycle ends), joined to the edges by the index on the near end."""
    edge = LineageEdgeRow.__table__.alias("edge")
    step = LineageEdgeRow.__table__.alias("step")
    near, far = ("dst_id", "src_id") if upstream else ("src_id", "dst_id")
    reach = select(literal(start).label("node")).cte("reach", recursive=True)
    reach = reach.union(select(step.c[far]).join(reach, step.c[near] == reach.c.node))
    src = LineageNodeRow.__table__.alias("src")
    dst = LineageNodeRow.__table__.alias("dst")
    return (
        select(
            edge.c.id,
            edge.c.src_id,
            edge.c.dst_id,
            edge.c.relation,
            src.c.kind.label("src_kind"),
            src.c.key.label("src_key"),
            dst.c.kind.label("dst_kind"),
            dst.c.key.label("dst_key"),
        )
        .select_from(edge)
        .join(reach, edge.c[near] == reach.c.node)
        .join(src, src.c.id == edge.c.src_id)
        .join(dst, dst.c.id == edge.c.dst_id)
    )


def _find_node(session: Session, node: NodeRef) -> LineageNodeRow | None:
    return session.execute(
        select(LineageNodeRow).where(
            LineageNodeRow.kind == node.kind.value, LineageNodeRow.key == node.key
        )
    ).scalar_one_or_none()


def _node(session: Session, node: NodeRef, attributes: Mapping[str, Any] | None) -> LineageNodeRow:
    row = _find_node(session, node)
    if row is None:
        row = LineageNodeRow(
            kind=node.kind.value,
            key=node.key,
            attributes=canonical_payload(attributes or {}),
            created_at=to_text(now_utc()),
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # another writer created it first (PostgreSQL)
            found = _find_node(session, node)
            assert found is not None
            row = found
    elif attributes:
        merged = {**json.loads(row.attributes), **attributes}
        row.attributes = canonical_payload(merged)
    session.flush()
    return row
