"""The inventory (`/`) and a model's page (`/models/{name}`), with its model cards."""

from __future__ import annotations

from collections import Counter
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from stack.ui.app import MAX_VERSION, bounded, console_of, paginate
from stack.ui.guard import SANDBOXED
from stack.ui.pages.inbox import waiting
from stack.ui.readmodel import ModelSummary, VersionRow

SORTS = ("model", "owner", "risk", "versions", "serving", "verdict", "pending")
#: The inventory's enumerated filters and the values each may take.
FILTERS = {
    "state": ("candidate", "approved", "shadow", "canary", "serving", "retired", "rejected"),
    "risk": ("minimal", "limited", "high"),
    "verdict": ("ok", "breach", "empty", "error"),
}


def routes() -> list[Route]:
    return [
        Route("/", inventory, name="inventory"),
        Route("/models/{name}", model_page, name="model"),
        Route("/models/{name}/cards/{number:int}", model_card, name="card"),
    ]


def _row(summary: ModelSummary, facts: tuple[str, str], waiting: int) -> dict[str, Any]:
    check = summary.last_check
    return {
        "model": summary.model,
        "owner": facts[0],
        "risk": facts[1],
        "versions": len(summary.versions),
        "latest": summary.latest,
        "serving": summary.serving or "",
        "endpoints": summary.endpoints,
        "states": summary.states,
        "verdict": check.status if check else "",
        "checked_at": check.at if check else None,
        "pending": waiting,
    }


def inventory(request: Request) -> Response:
    console = console_of(request)
    params = request.query_params
    # what waits, counted as the inbox lists it (an approval already met is not waiting)
    waiting_of = Counter(w.version.model for w in waiting(console, console.user(request)))
    rows = [
        _row(s, console.facts(s.model, request), waiting_of[s.model])
        for s in console.read.inventory()
    ]
    text = params.get("q", "").strip().lower()
    if text:
        rows = [r for r in rows if text in r["model"].lower() or text in r["owner"].lower()]
    for name, allowed in FILTERS.items():
        if params.get(name) and params[name] not in allowed:
            raise HTTPException(
                400, f"{name} must be one of {', '.join(allowed)}, not {params[name][:40]!r}"
            )
    if params.get("state"):
        rows = [r for r in rows if params["state"] in r["states"]]
    if params.get("risk"):
        rows = [r for r in rows if r["risk"] == params["risk"]]
    if params.get("verdict"):
        rows = [r for r in rows if r["verdict"] == params["verdict"]]
    sort = params.get("sort", "model")
    if sort not in SORTS:
        raise HTTPException(400, f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    order = params.get("order") or "asc"
    if order not in ("asc", "desc"):
        raise HTTPException(400, f"order must be one of asc, desc, not {order[:40]!r}")
    descending = order == "desc"
    filtered = any(params.get(name) for name in ("q", *FILTERS))
    rows.sort(key=lambda r: (r[sort] is None, r[sort]), reverse=descending)
    return console.render(
        request,
        "inventory.html",
        page=paginate(rows, request),
        sorts=SORTS,
        sort=sort,
        descending=descending,
        filtered=filtered,
        states=FILTERS["state"],
    )


def _metrics(request: Request, run_id: str | None) -> dict[str, float]:
    from stack.contract.roles import Role
    from stack.errors import StackError

    console = console_of(request)
    session = console.session
    if run_id is None or not session.has(Role.TRACKER):
        return {}
    try:
        return dict(session.tracker.get_run(run_id).metrics)
    except StackError:
        return {}
    except Exception as exc:  # the wrapped tool's own errors: the page degrades
        console.unreachable(request, "tracker", exc)
        return {}


def _comparison(request: Request, versions: list[VersionRow]) -> dict[str, Any] | None:
    """The champion (serving) against the newest challenger still waiting, metric by metric."""
    champion = next((v for v in reversed(versions) if v.state == "serving"), None)
    waiting = [v for v in versions if v.state in ("approved", "canary", "shadow", "candidate")]
    challenger = waiting[-1] if waiting else None
    if champion is None and challenger is None:
        return None
    ours = _metrics(request, champion.run_id) if champion else {}
    theirs = _metrics(request, challenger.run_id) if challenger else {}
    names = sorted(set(ours) | set(theirs))
    return {
        "champion": champion,
        "challenger": challenger,
        "rows": [(n, ours.get(n), theirs.get(n)) for n in names],
    }


def model_page(request: Request) -> Response:
    from stack.governance.cards import card_paths

    console = console_of(request)
    name = request.path_params["name"]
    versions = console.read.versions(name).get(name)
    if not versions:
        raise HTTPException(404, f"No model is called {name!r} in this stack.")
    newest_first = list(reversed(versions))
    page = paginate(newest_first, request, per=20)
    approvals = console.read.approvals_of([v.ref for v in page.items])
    cards = {v.ref: card_paths(console.session, v.ref).html.exists() for v in page.items}
    owner, risk = console.facts(name, request)
    return console.render(
        request,
        "model.html",
        model=name,
        owner=owner,
        risk=risk,
        page=page,
        approvals=approvals,
        cards=cards,
        comparison=_comparison(request, versions),
        checks=console.read.checks(name, limit=5)[0],
        mlflow_url=console.mlflow_url,
        endpoints=[
            e
            for e, splits in console.read.routed().items()
            if any(ref.startswith(f"{name}@") for ref in splits[-1][1])
        ],
    )


def model_card(request: Request) -> Response:
    from stack.governance.cards import card_paths

    console = console_of(request)
    number = bounded("number", request.path_params["number"], maximum=MAX_VERSION)
    ref = f"{request.path_params['name']}@{number}"
    known = console.read.versions(request.path_params["name"]).get(request.path_params["name"])
    if not any(v.number == number for v in known or ()):
        raise HTTPException(404, f"There is no version {ref}.")
    html = card_paths(console.session, ref).html
    if not html.is_file():
        raise HTTPException(404, f"{ref} has no model card yet (mlstack card {ref} writes one).")
    # its own inline scripts run sandboxed: they can read nothing of the console's origin
    return FileResponse(
        html, media_type="text/html", headers={"Content-Security-Policy": SANDBOXED}
    )
