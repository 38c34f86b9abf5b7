"""The approvals inbox (`/inbox`): what waits for the signed-in user's groups, and the
approve and reject forms, decided by `Governance.approve` / `Governance.reject` exactly as
`mlstack approve` / `mlstack reject` decide (same refusals, same audit entries)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from stack.ui.app import Console, console_of, paginate
from stack.ui.csrf import COOKIE, FIELD
from stack.ui.identity import ConsoleUser
from stack.ui.readmodel import PENDING, VersionRow

_RANK = {"candidate": 0, "approved": 1, "shadow": 2, "canary": 2, "serving": 3}


def routes() -> list[Route]:
    return [
        Route("/inbox", inbox, name="inbox"),
        Route("/inbox/approve", approve, methods=["POST"], name="approve"),
        Route("/inbox/reject", reject, methods=["POST"], name="reject"),
    ]


@dataclass(frozen=True, slots=True)
class Waiting:
    """A version waiting for approvals to enter `target`."""

    version: VersionRow
    target: str
    group: str | None
    needed: int
    approvers: tuple[str, ...]
    yours: bool  # the user may approve it (in the group, or the rule names no group)
    approved_by_you: bool
    authored_by_you: bool


def waiting(console: Console, user: ConsoleUser, model: str | None = None) -> list[Waiting]:
    """Every pending version whose next gates still need approvals, oldest first; the
    approvers are counted by the function the gate counts them with."""
    from stack.governance.gates import counted_approvers

    rows = [
        row
        for versions in console.read.versions(model).values()
        for row in versions
        if row.state in PENDING
    ]
    recorded = console.read.approvals_of([row.ref for row in rows])
    groups = console.session.stack.identity.groups
    found: list[Waiting] = []
    for row in rows:
        for target, rule in console.approval_rules(row.ref).items():
            if _RANK[target] <= _RANK[row.state] or rule is None:
                continue
            approvers = counted_approvers(
                ((actor, decision) for t, actor, decision, _ in recorded[row.ref] if t == target),
                rule,
                groups,
                row.author,
            )
            if len(approvers) >= rule.count:
                continue
            found.append(
                Waiting(
                    version=row,
                    target=target,
                    group=rule.group,
                    needed=rule.count,
                    approvers=approvers,
                    yours=not rule.group or rule.group in user.groups,
                    approved_by_you=user.name in approvers,
                    authored_by_you=row.author == user.name,
                )
            )
    return found


def inbox(request: Request) -> Response:
    console = console_of(request)
    user = console.user(request)
    model = request.query_params.get("model") or None
    everything = request.query_params.get("all") == "1"
    items = [w for w in waiting(console, user, model) if everything or w.yours]
    notice = _notice(console, user, request)
    return console.render(
        request,
        "inbox.html",
        user=user,
        page=paginate(items, request),
        everything=everything,
        model=model,
        notice=notice,
    )


def _notice(console: Console, user: ConsoleUser, request: Request) -> tuple[str, str] | None:
    """What the last form did, from the audit log (so the page tells what was recorded)."""
    params = request.query_params
    ref = params.get("ref", "")
    outcome = params.get("outcome")
    if not ref or outcome not in ("approved", "refused", "rejected", "failed"):
        return None
    if outcome == "failed":
        return "error", params.get("why", "the change failed")
    action = {
        "approved": "approval.approved",
        "refused": "approval.refused",
        "rejected": "state.changed",
    }[outcome]
    entries = console.session.spine.audit_entries(subject=ref, actor=user.name, action=action)
    if not entries:
        return None
    entry = entries[-1]
    if outcome == "refused":
        return "error", f"Refused: {entry.reason.rstrip('.')} (audit entry #{entry.seq})."
    if outcome == "rejected":
        return "ok", f"{ref} is now rejected (audit entry #{entry.seq})."
    target = entry.payload.get("target_state", "")
    return "ok", f"You approved {ref} for {target} (audit entry #{entry.seq})."


async def _form(request: Request, console: Console) -> tuple[ConsoleUser, dict[str, str]]:
    """The posted form, once its CSRF token checks out (else 403, nothing written)."""
    user = console.user(request)
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not console.csrf.valid(request.cookies.get(COOKIE), user.name, fields.get(FIELD)):
        raise HTTPException(
            403, "The form's security token is missing or wrong; reload the page and retry."
        )
    if not fields.get("ref"):
        raise HTTPException(400, "ref is missing: the version to decide (model@N)")
    return user, fields


def _back(ref: str, outcome: str, **extra: str) -> RedirectResponse:
    return RedirectResponse(
        "/inbox?" + urlencode({"ref": ref, "outcome": outcome, **extra}), status_code=303
    )


async def approve(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    from stack.contract.states import LifecycleState
    from stack.errors import ApprovalRefused, StackError
    from stack.governance.service import Governance

    console = console_of(request)
    user, fields = await _form(request, console)
    ref, target = fields["ref"], fields.get("target", "")
    if target not in _RANK or target == "candidate":
        raise HTTPException(400, f"target must be a state to approve for, not {target!r}")
    governance = Governance(console.session)
    try:
        await run_in_threadpool(
            governance.approve,
            ref,
            LifecycleState(target),
            reason=fields.get("reason", ""),
            as_actor=user.name,
        )
    except ApprovalRefused:
        return _back(ref, "refused")
    except StackError as exc:
        return _back(ref, "failed", why=str(exc))
    return _back(ref, "approved")


async def reject(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    from stack.errors import StackError
    from stack.governance.service import Governance

    console = console_of(request)
    user, fields = await _form(request, console)
    ref, reason = fields["ref"], fields.get("reason", "").strip()
    if not reason:
        raise HTTPException(400, "reason is required to reject a version (it is audited)")
    governance = Governance(console.session)
    try:
        await run_in_threadpool(governance.reject, ref, reason=reason, as_actor=user.name)
    except StackError as exc:
        return _back(ref, "failed", why=str(exc))
    return _back(ref, "rejected")
