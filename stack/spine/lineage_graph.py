"""The lineage tables: nodes (with attributes) and the edges between them, walked either way."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
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
        edges: list[LineageEdge] = []
        with Session(self._reads) as session:
            first = _find_node(session, start)
            if first is None:
                return edges
            frontier, seen = [first.id], {first.id}
            near = LineageEdgeRow.dst_id if upstream else LineageEdgeRow.src_id
            while frontier:
                rows = (
                    session.execute(
                        select(LineageEdgeRow).where(near.in_(frontier)).order_by(LineageEdgeRow.id)
                    )
                    .scalars()
                    .all()
                )
                ids = {r.src_id for r in rows} | {r.dst_id for r in rows}
                nodes = {
                    n.id: NodeRef(NodeKind(n.kind), n.key)
                    for n in session.execute(
                        select(LineageNodeRow).where(LineageNodeRow.id.in_(ids))
                    ).scalars()
                }
                frontier = []
                for row in rows:
                    edges.append(LineageEdge(nodes[row.src_id], nodes[row.dst_id], row.relation))
                    next_id = row.src_id if upstream else row.dst_id
                    if next_id not in seen:
                        seen.add(next_id)
                        frontier.append(next_id)
        return edges


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
