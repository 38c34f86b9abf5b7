"""The approvals inbox (`/inbox`): what waits for the signed-in user's groups, and the
approve and reject forms, decided by `Governance.approve` / `Governance.reject` exactly as
`mlstack approve` / `mlstack reject` decide (same refusals, same audit entries)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
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


@dataclass(frozen=True, slots=True)
class Notice:
    """What the last form did: `kind` ok or error, `text`, the audit entry it wrote
    (`seq`, linked to /audit with `audit_query`) and what to do next (`next`)."""

    kind: str
    text: str
    seq: int | None = None
    audit_query: str = ""
    next: str = ""


def _notice(console: Console, user: ConsoleUser, request: Request) -> Notice | None:
    """What the last form did, from the signed flash cookie it set (never from the URL: a
    link replayed later, or sent by someone else, shows nothing)."""
    sealed = console.flash.open(request.cookies.get(FLASH), user.name)
    if sealed is None:
        return None
    try:
        data = json.loads(sealed)
        return Notice(**data) if isinstance(data, dict) else None
    except (ValueError, TypeError):
        return None


def _recorded(console: Console, user: ConsoleUser, ref: str, action: str) -> Notice:
    """The notice for the entry `user`'s decision on `ref` just wrote (`action`)."""
    model = ref.rpartition("@")[0]
    entries = console.session.spine.audit_entries(subject=ref, actor=user.name, action=action)
    entry = entries[-1]
    audit = urlencode({"model": model, "action": action, "actor": user.name})
    if action == "approval.refused":
        return Notice("error", f"Refused: {entry.reason.rstrip('.')}", entry.seq, audit)
    if action == "state.changed":
        return Notice("ok", f"{ref} is now rejected", entry.seq, audit)
    target = str(entry.payload.get("target_state", ""))
    return Notice(
        "ok",
        f"You approved {ref} for {target}",
        entry.seq,
        audit,
        _next_step(console, ref, target),
    )


def _next_step(console: Console, ref: str, target: str) -> str:
    """What the version needs now to enter `target`: more approvals, or the promotion."""
    from stack.governance.gates import counted_approvers

    rule = console.approval_rules(ref).get(target)
    parts = split_ref(ref)
    rows = console.read.versions(parts[0]).get(parts[0], []) if parts else []
    row = next((r for r in rows if r.ref == ref), None)
    if rule is not None and row is not None:
        recorded = console.read.approvals_of([ref])[ref]
        approvers = counted_approvers(
            ((actor, decision) for t, actor, decision, _ in recorded if t == target),
            rule,
            console.session.stack.identity.groups,
            row.author,
        )
        left = rule.count - len(approvers)
        if left > 0:
            group = f" from {rule.group}" if rule.group else ""
            return f"It still needs {left} more approval{'s' if left != 1 else ''}{group}."
    return f"Next: mlstack promote {ref} --to {target}"


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


def _back(console: Console, user: ConsoleUser, notice: Notice) -> RedirectResponse:
    """Back to the inbox, `notice` riding in the signed flash cookie (shown once)."""
    response = RedirectResponse("/inbox", status_code=303)
    response.set_cookie(
        FLASH,
        console.flash.seal(json.dumps(asdict(notice)), user.name),
        max_age=LIFETIME_S,
        path="/inbox",
        httponly=True,
        samesite="strict",
    )
    return response


def _failed(console: Console, user: ConsoleUser, ref: str, exc: Exception) -> RedirectResponse:
    """Back to the inbox saying why the change failed (in a signed cookie, not the URL)."""
    from stack.errors import StackError

    if isinstance(exc, StackError):
        why = str(exc)
    else:  # the wrapped tool's own error (the registry down...): its reason, the rest logged
        LOG.warning("a decision on %s failed", ref, exc_info=exc)
        why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    return _back(console, user, Notice("error", f"The change to {ref} failed: {why[:1000]}"))


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
        return _back(console, user, _recorded(console, user, ref, "approval.refused"))
    except OperationalError:
        raise  # the spine's: "busy, try again" (503)
    except Exception as exc:
        return _failed(console, user, ref, exc)
    return _back(console, user, _recorded(console, user, ref, "approval.approved"))


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
    return _back(console, user, _recorded(console, user, ref, "state.changed"))
