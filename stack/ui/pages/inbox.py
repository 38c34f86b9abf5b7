"""The approvals inbox (`/inbox`): what waits for the signed-in user's groups, and the
approve and reject forms, decided by `Governance.approve` / `Governance.reject` exactly as
`mlstack approve` / `mlstack reject` decide (same refusals, same audit entries)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from stack.contract.states import LifecycleState as S
from stack.contract.states import approvable_for
from stack.ui.app import LOG, MAX_VERSION, Console, bounded, console_of, paginate
from stack.ui.csrf import COOKIE, FIELD
from stack.ui.flash import COOKIE as FLASH
from stack.ui.flash import LIFETIME_S
from stack.ui.identity import ConsoleUser
from stack.ui.readmodel import PENDING, VersionRow, split_ref

#: The longest reason a form may give (it is audited, and shown on pages).
MAX_REASON = 2000


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


def waiting(
    console: Console, user: ConsoleUser, model: str | None = None, request: Request | None = None
) -> list[Waiting]:
    """Every pending version whose next gates still need approvals, oldest first; the
    approvers are counted by the function the gate counts them with. With the registry
    out of reach, none (and `request`'s page says why)."""
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
        for target, rule in console.approval_rules(row.ref, request).items():
            if rule is None or not approvable_for(S(target), S(row.state)):
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
    items = [w for w in waiting(console, user, model, request) if everything or w.yours]
    notice = _notice(console, user, request)
    response = console.render(
        request,
        "inbox.html",
        user=user,
        page=paginate(items, request),
        everything=everything,
        model=model,
        notice=notice,
    )
    if FLASH in request.cookies:  # shown once
        response.delete_cookie(FLASH, path="/inbox", httponly=True, samesite="strict")
    return response


def _notice(console: Console, user: ConsoleUser, request: Request) -> tuple[str, str] | None:
    """What the last form did, from the audit log (so the page tells what was recorded)."""
    params = request.query_params
    ref = params.get("ref", "")
    outcome = params.get("outcome")
    if not ref or outcome not in ("approved", "refused", "rejected", "failed"):
        return None
    if outcome == "failed":  # the reason comes from the signed cookie, never the URL
        why = console.flash.open(request.cookies.get(FLASH), user.name)
        return None if why is None else ("error", f"The change to {ref} failed: {why}")
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
    ref = fields.get("ref", "")
    parts = split_ref(ref)
    if parts is None:
        raise HTTPException(400, f"ref must be the version to decide (model@N), not {ref[:80]!r}")
    bounded("ref's version number", parts[1], minimum=1, maximum=MAX_VERSION)
    if len(fields.get("reason", "")) > MAX_REASON:
        raise HTTPException(400, f"reason must be at most {MAX_REASON:,} characters")
    return user, fields


def _back(ref: str, outcome: str) -> RedirectResponse:
    return RedirectResponse(
        "/inbox?" + urlencode({"ref": ref, "outcome": outcome}), status_code=303
    )


def _failed(console: Console, user: ConsoleUser, ref: str, exc: Exception) -> RedirectResponse:
    """Back to the inbox saying why the change failed (in a signed cookie, not the URL)."""
    from stack.errors import StackError

    if isinstance(exc, StackError):
        why = str(exc)
    else:  # the wrapped tool's own error (the registry down...): its reason, the rest logged
        LOG.warning("a decision on %s failed", ref, exc_info=exc)
        why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    response = _back(ref, "failed")
    response.set_cookie(
        FLASH,
        console.flash.seal(why[:1000], user.name),
        max_age=LIFETIME_S,
        path="/inbox",
        httponly=True,
        samesite="strict",
    )
    return response


async def approve(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    from stack.contract.states import LifecycleState
    from stack.errors import ApprovalRefused
    from stack.governance.service import Governance

    console = console_of(request)
    user, fields = await _form(request, console)
    ref, target = fields["ref"], fields.get("target", "")
    if target not in {s.value for s in S} or not approvable_for(S(target), S.CANDIDATE):
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
    except OperationalError:
        raise  # the spine's: "busy, try again" (503)
    except Exception as exc:
        return _failed(console, user, ref, exc)
    return _back(ref, "approved")


async def reject(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    from stack.governance.service import Governance

    console = console_of(request)
    user, fields = await _form(request, console)
    ref, reason = fields["ref"], fields.get("reason", "").strip()
    if not reason:
        raise HTTPException(400, "reason is required to reject a version (it is audited)")
    governance = Governance(console.session)
    try:
        await run_in_threadpool(governance.reject, ref, reason=reason, as_actor=user.name)
    except OperationalError:
        raise  # the spine's: "busy, try again" (503)
    except Exception as exc:
        return _failed(console, user, ref, exc)
    return _back(ref, "rejected")
