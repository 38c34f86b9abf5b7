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


def _filters(request: Request) -> list[Any]:
    params = request.query_params
    where: list[Any] = []
    if params.get("actor"):
        where.append(AuditEntryRow.actor == params["actor"])
    if params.get("action"):
        where.append(AuditEntryRow.action == params["action"])
    return where


def _model_selection(request: Request, spine: SpineStore) -> list[chain.AuditEntry] | None:
    """With `model=`: what `mlstack audit log --model` selects (the model, its versions and
    the endpoints that served them), oldest first, by the same function; else None."""
    model = request.query_params.get("model")
    if not model:
        return None
    params = request.query_params
    return spine.model_audit_entries(
        model, actor=params.get("actor") or None, action=params.get("action") or None
    )


def audit_page(request: Request) -> Response:
    console = console_of(request)
    spine = console.session.spine
    page = int_param(request, "page", 1, minimum=1)
    per = int_param(request, "per", 50, minimum=1, maximum=500)
    selected = _model_selection(request, spine)
    where = _filters(request)
    with Session(spine._reads) as session:
        if selected is not None:
            newest_first = selected[::-1]
            entries, count = newest_first[(page - 1) * per : page * per], len(selected)
        else:
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
    where = _filters(request)

    selected = _model_selection(request, spine)

    def lines() -> Iterator[str]:
        if selected is not None:
            for entry in selected:
                yield json.dumps(entry.to_json(), sort_keys=True) + "\n"
            return
        with Session(spine._reads) as session:
            query = select(AuditEntryRow).where(*where).order_by(AuditEntryRow.seq)
            for row in session.execute(query.execution_options(yield_per=1000)).scalars():
                yield json.dumps(chain.to_entry(row).to_json(), sort_keys=True) + "\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
    )
