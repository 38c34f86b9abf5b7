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
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from stack.spine import audit as chain
from stack.spine.audit import AuditVerification
from stack.spine.schema import AuditEntryRow, AuditHeadRow
from stack.spine.store import SpineStore
from stack.ui.app import Paged, busy_page, console_of, int_param

_verified: dict[int, tuple[tuple[int, str], AuditVerification]] = {}
_verify_lock = threading.Lock()
#: How long a page waits for another request's walk of the chain.
VERIFY_WAIT_S = 10.0


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
    known = _verified.get(id(spine))
    if known is not None and known[0] == key:
        return known[1]
    # one walk at a time; a page that waits too long shows the last verdict (or is busy)
    if not _verify_lock.acquire(timeout=VERIFY_WAIT_S):
        if known is not None:
            return known[1]
        raise HTTPException(503, "The audit chain is being verified; try again in a moment.")
    try:
        known = _verified.get(id(spine))
        if known is None or known[0] != key:
            _verified[id(spine)] = (key, spine.verify_audit())
        return _verified[id(spine)][1]
    finally:
        _verify_lock.release()


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


#: How many exports stream at once; one more is answered 503 with Retry-After (before any
#: 200 header), so that exports never take every spine connection or server thread.
MAX_EXPORTS = 4
#: Entries read per short read transaction while an export streams (keyset on `seq`).
EXPORT_PAGE = 500
_exports = threading.BoundedSemaphore(MAX_EXPORTS)


class _Export(StreamingResponse):
    """A stream that gives its export slot back however it ends (sent, cut off by the
    client, failed)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            _exports.release()


def _pages(
    spine: SpineStore, where: list[Any], first: list[AuditEntryRow], last: int
) -> Iterator[str]:
    """The selected entries up to `last` (the newest when the export began), oldest first:
    `first` already read, then page after page, each its own brief read (no spine
    connection is held while the client reads)."""
    rows = first
    while rows:
        for row in rows:
            yield json.dumps(chain.to_entry(row).to_json(), sort_keys=True) + "\n"
        rows = _page_after(spine, where, rows[-1].seq, last)


def _page_after(spine: SpineStore, where: list[Any], after: int, last: int) -> list[AuditEntryRow]:
    with Session(spine._reads, expire_on_commit=False) as session:
        query = (
            select(AuditEntryRow)
            .where(*where, AuditEntryRow.seq > after, AuditEntryRow.seq <= last)
            .order_by(AuditEntryRow.seq)
            .limit(EXPORT_PAGE)
        )
        rows = list(session.execute(query).scalars())
        session.expunge_all()
        return rows


def export_name(request: Request) -> str:
    """`audit.jsonl`, or named by its filters: `audit-churn-lead-approval.approved.jsonl`."""
    params = request.query_params
    parts = [params.get(k, "") for k in ("model", "actor", "action")]
    safe = [
        "".join(c if c.isascii() and (c.isalnum() or c in "._@") else "_" for c in p)[:60]
        for p in parts
        if p
    ]
    return "-".join(["audit", *safe]) + ".jsonl"


def export(request: Request) -> Response:
    console = console_of(request)
    spine = console.session.spine
    if not _exports.acquire(blocking=False):
        return busy_page(console, request)
    try:
        where = _filters(request)
        selected = _model_selection(request, spine)
        if selected is not None:
            lines: Iterator[str] = (
                json.dumps(entry.to_json(), sort_keys=True) + "\n" for entry in selected
            )
        else:
            with Session(spine._reads) as session:
                last = session.execute(select(func.max(AuditEntryRow.seq))).scalar() or 0
            lines = _pages(spine, where, _page_after(spine, where, 0, last), last)
        response = _Export(
            lines,
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{export_name(request)}"'},
        )
    except BaseException:
        _exports.release()
        raise
    return response
