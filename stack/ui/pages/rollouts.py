"""Rollouts (`/rollouts`): per endpoint, a timeline of which versions served with which
weights when (read from the audit log's `endpoint.routed` entries, and its
`endpoint.undeployed` ones: nothing served from a stop on), what served at a chosen time,
and the live split with each version's health from the prediction log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stack.ui import plots
from stack.ui.app import Console, console_of, moment_param, paginate


def routes() -> list[Route]:
    return [Route("/rollouts", rollouts_page, name="rollouts")]


def _live(console: Console, names: list[str]) -> dict[str, dict[str, Any]]:
    """The running endpoints among `names`: their split, shadows and per-version health
    since the split's last change, as `mlstack rollout status` shows them."""
    from stack.contract.roles import Role
    from stack.errors import StackError

    session = console.session
    if not names or not session.has(Role.SERVER):
        return {}
    live: dict[str, dict[str, Any]] = {}
    try:
        running = {e.name: e for e in session.server.endpoints() if e.name in names}
    except (StackError, OSError):
        return {}
    routed = console.read.routed()
    for name, endpoint in running.items():
        since = routed[name][-1][0] if routed.get(name) else None
        try:
            health = session.server.health(name, since=since)
        except (StackError, OSError):
            health = None
        live[name] = {"endpoint": endpoint, "health": health}
    return live


#: A rollout's last word that says it is still going (`mlstack rollout status` prints it).
_IN_PROGRESS = ("rollout.started", "rollout.ab_running")


def in_progress(
    console: Console, name: str, splits: list[tuple[datetime, dict[str, float], str]], now: datetime
) -> dict[str, Any] | None:
    """The endpoint's running rollout as the spine records it (None when its last
    `rollout.*` entry ended one): strategy, champion and challenger, the step it is at
    (the challenger's share of the newest split among the plan's steps), and the bake time
    left at that step (the plan's bake_seconds from the split's change; past it, the
    controller holds while evidence is missing, up to max_hold_seconds)."""
    event = console.read.last_rollout_event(name)
    if event is None or event[1] not in _IN_PROGRESS:
        return None
    started, action, data, reason = event
    found = data.get("plan")
    plan: dict[str, Any] = found if isinstance(found, dict) else {}
    challenger = str(data.get("challenger", ""))
    steps = [float(s) for s in plan.get("steps", ()) if isinstance(s, (int, float))]
    changed = [s for s in splits if s[0] >= started]
    share = changed[-1][1].get(challenger, 0.0) if changed else 0.0
    step = next((i + 1 for i, s in enumerate(steps) if abs(s - share) < 1e-9), None)
    bake = float(plan.get("bake_seconds", 0) or 0)
    since = changed[-1][0] if changed else started
    left = max(0.0, bake - (now - since).total_seconds())
    return {
        "strategy": str(data.get("strategy", "")) if action == "rollout.started" else "ab",
        "champion": data.get("champion"),
        "challenger": challenger,
        "started": started,
        "reason": reason,
        "share": share,
        "step": step,
        "steps": len(steps),
        "bake_left_s": left,
        "holding": bake > 0 and left == 0.0,
        "max_hold_s": float(plan.get("max_hold_seconds", 0) or 0),
    }


def _shared_live(console: Console, request: Request, names: list[str]) -> dict[str, Any]:
    """`_live`, read once every few seconds for all the requests that ask (each read walks
    the prediction log since the split's last change)."""
    found = console.live.get(tuple(names), lambda: _live(console, names))
    if found is None:
        console.unreachable(request, "live split", TimeoutError("another request is reading it"))
        return {}
    return dict(found)


def rollouts_page(request: Request) -> Response:
    console = console_of(request)
    at = moment_param(request, "at")
    model = request.query_params.get("model", "")
    routed = console.read.routed()
    names = sorted(
        name
        for name, splits in routed.items()
        if not model or any(ref.startswith(f"{model}@") for s in splits for ref in s[1])
    )
    page = paginate(names, request, per=10)
    now = datetime.now(UTC)
    cards = []
    for name in page.items:
        splits = routed[name]
        shadows = console.read.shadows(name)[: len(splits)]  # read after: maybe longer
        served_then: dict[str, float] | None = None
        shadowed_then: tuple[str, ...] = ()
        if at is not None:
            before = [i for i, s in enumerate(splits) if s[0] <= at]
            served_then = splits[before[-1]][1] if before else {}
            shadowed_then = shadows[before[-1]] if before else ()
        cards.append(
            {
                "name": name,
                "svg": Markup(
                    plots.timeline(
                        [(t, w) for t, w, _ in splits],
                        until=now,
                        title=f"endpoint {name}",
                        shadows=shadows,
                    )
                ),
                "splits": [(*s, w) for s, w in zip(splits, shadows, strict=True)][::-1][:10],
                "changes": len(splits),
                "rollout": in_progress(console, name, splits, now),
                "served_then": served_then,
                "shadowed_then": shadowed_then,
            }
        )
    return console.render(
        request,
        "rollouts.html",
        page=page,
        cards=cards,
        live=_shared_live(console, request, list(page.items)),
        at=at,
        at_text=request.query_params.get("at", ""),
        model=model,
    )
