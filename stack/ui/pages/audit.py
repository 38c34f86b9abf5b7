"""The audit log (`/audit`): filtered by model, actor and action, newest first, a page at a
time, with the chain's `verify` status; `/audit/export` gives the same selection as JSONL
(what `mlstack audit log --jsonl` prints)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from stack.spine import audit as chain
from stack.spine.audit import AuditVerification
from stack.spine.engine import is_postgresql
from stack.spine.schema import AuditEntryRow, AuditHeadRow
from stack.spine.store import SpineStore
from stack.ui.app import Paged, console_of, int_param

_verified: dict[int, tuple[tuple[int, str], AuditVerification]] = {}
_verify_lock = threading.Lock()


def routes() -> list[Route]:
    return [
        Route("/audit", audit_page, name="audit"),
        Route("/audit/export", export, name="audit_export"),
    ]


def verification(spine: SpineStore) -> AuditVerification:
    """`verify` of the whole chain, walked again only when the chain's head has moved."""
    with Session(spine._reads) as session:
        head = session.execute(select(AuditHeadRow.seq, AuditHeadRow.hash)).first()
    key = (int(head[0]), str(head[1])) if head else (0, "")
    with _verify_lock:
        known = _verified.get(id(spine))
        if known is None or known[0] != key:
            _verified[id(spine)] = (key, spine.verify_audit())
        return _verified[id(spine)][1]


def _model_entries(spine: SpineStore, model: str) -> Any:
    """Entries of `model` and its versions (`churn`, `churn@3`), as `mlstack audit log
    --model` selects them. On SQLite (bytewise text order) the versions are a range of the
    subject index: `churn@` <= subject < `churnA` ('A' follows '@'), where LIKE would scan
    every entry; PostgreSQL's collations do not order so, and it is asked with LIKE."""
    subject = AuditEntryRow.subject
    if is_postgresql(spine.engine):
        escaped = model.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return (subject == model) | subject.like(f"{escaped}@%", escape="\\")
    return (subject == model) | ((subject >= f"{model}@") & (subject < f"{model}A"))


def _filters(request: Request, spine: SpineStore) -> list[Any]:
    params = request.query_params
    where: list[Any] = []
    if params.get("model"):
        where.append(_model_entries(spine, params["model"]))
    if params.get("actor"):
        where.append(AuditEntryRow.actor == params["actor"])
    if params.get("action"):
        where.append(AuditEntryRow.action == params["action"])
    return where


def audit_page(request: Request) -> Response:
    console = console_of(request)
    spine = console.session.spine
    page = int_param(request, "page", 1, minimum=1)
    per = int_param(request, "per", 50, minimum=1, maximum=500)
    where = _filters(request, spine)
    with Session(spine._reads) as session:
        total = session.execute(select(func.count()).select_from(AuditEntryRow).where(*where))
        rows = session.execute(
            select(AuditEntryRow)
            .where(*where)
            .order_by(AuditEntryRow.seq.desc())
            .limit(per)
            .offset((page - 1) * per)
        ).scalars()
        entries = [chain.to_entry(row) for row in rows]
        count = int(total.scalar_one())
        actions = session.execute(select(AuditEntryRow.action).distinct()).scalars().all()
    return console.render(
        request,
        "audit.html",
        page=Paged(entries, page, per, count),
        verified=verification(spine),
        actions=sorted(actions),
    )


def export(request: Request) -> Response:
    console = console_of(request)
    spine = console.session.spine
    where = _filters(request, spine)

    def lines() -> Iterator[str]:
        with Session(spine._reads) as session:
            query = select(AuditEntryRow).where(*where).order_by(AuditEntryRow.seq)
            for row in session.execute(query.execution_options(yield_per=1000)).scalars():
                yield json.dumps(chain.to_entry(row).to_json(), sort_keys=True) + "\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
    )
