"""The console's ASGI app: pages, static files, identity, CSRF and the error pages.

`create_app(session)` serves one opened stack. Every page reads through `Console` (the
session, its read model, the templates); a bad URL or an unknown model is a 404 page, any
other failure a 500 page that names no internals (the traceback goes to the server's log).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from stack.config.policy import ApprovalRule
from stack.contract.states import LifecycleState
from stack.session import StackSession
from stack.ui.csrf import COOKIE, FIELD, CsrfTokens
from stack.ui.identity import ConsoleUser, NotSignedIn, identify
from stack.ui.readmodel import PENDING, ReadModel

HERE = Path(__file__).resolve().parent
LOG = logging.getLogger("mlstack.ui")
PER_PAGE = 50
#: States a version is approved for (the inbox offers each whose gate asks for approvals).
APPROVABLE = (
    LifecycleState.APPROVED,
    LifecycleState.SHADOW,
    LifecycleState.CANARY,
    LifecycleState.SERVING,
)


@dataclass(frozen=True, slots=True)
class Paged:
    """One page of a list: `items`, its number (from 1), the page size and the total."""

    items: list[Any]
    page: int
    per: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per))


def paginate(items: list[Any], request: Request, per: int = PER_PAGE) -> Paged:
    page = int_param(request, "page", 1, minimum=1)
    per = int_param(request, "per", per, minimum=1, maximum=500)
    return Paged(items[(page - 1) * per : page * per], page, per, len(items))


def int_param(
    request: Request, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
) -> int:
    """A whole-number query parameter; a bad one is a 400 page naming it."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise HTTPException(400, f"{name} must be between {minimum} and {maximum or '∞'}")
    return value


def moment_param(request: Request, name: str) -> datetime | None:
    """An ISO date or time query parameter (UTC unless it names a zone); a bad one is a 400
    page naming it."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be an ISO date or time, not {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Console:
    """What every page shares: the session, the read model, identity, CSRF, templates."""

    def __init__(self, session: StackSession, *, mlflow_url: str | None = None) -> None:
        self.session = session
        self.read = ReadModel(session.spine)
        self.csrf = CsrfTokens()
        self.mlflow_url = mlflow_url.rstrip("/") if mlflow_url else None
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals["query"] = _query
        self.templates.filters["when"] = _when
        self._facts: dict[str, tuple[str, str]] = {}
        self._rules: dict[str, dict[str, ApprovalRule | None]] = {}

    def user(self, request: Request) -> ConsoleUser:
        headers = {k.lower(): v for k, v in request.headers.items()}
        host = request.client.host if request.client else None
        return identify(self.session.stack.identity, headers, host)

    def facts(self, model: str) -> tuple[str, str]:
        """(owner, risk tier) of `model`, from its newest version's registry tags (set at
        registration, never changed: read once per model and kept)."""
        if model not in self._facts:
            from stack.errors import StackError
            from stack.lifecycle import OWNER_TAG, RISK_TAG

            try:
                versions = self.session.registry.versions(model)
            except StackError:
                versions = []
            tags = versions[-1].tags if versions else {}
            self._facts[model] = (tags.get(OWNER_TAG, "—"), tags.get(RISK_TAG, "—"))
        return self._facts[model]

    def approval_rules(self, ref: str) -> dict[str, ApprovalRule | None]:
        """The `approvals` rule of each gated state `ref` may still enter, by state, from
        the policy it was built under (fixed at registration: read once and kept). Empty
        when the version is gone from the registry or its recipe is not on disk."""
        if ref not in self._rules:
            from stack.errors import StackError
            from stack.governance.service import Governance

            governance = Governance(self.session)
            try:
                version = governance.version(ref)
                rules = {
                    state.value: (gate.approvals if gate else None)
                    for state in APPROVABLE
                    if (gate := governance.gate_for(version, state)) is not None
                }
            except StackError:
                return {}
            self._rules[ref] = rules
        return self._rules[ref]

    def render(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        user = context.pop("user", None) or self.user(request)
        cookie = request.cookies.get(COOKIE) or CsrfTokens.new_cookie()
        html = self.templates.get_template(template).render(
            request=request,
            user=user,
            csrf_field=FIELD,
            csrf_token=self.csrf.token(cookie, user.name),
            stack_name=self.session.stack.name,
            path=request.url.path,
            **context,
        )
        response = HTMLResponse(html, status_code=status_code)
        if COOKIE not in request.cookies:
            response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict")
        return response

    def error_page(self, request: Request, status: int, title: str, detail: str) -> Response:
        html = self.templates.get_template("error.html").render(
            request=request,
            user=None,
            status=status,
            title=title,
            detail=detail,
            stack_name=self.session.stack.name,
            path=request.url.path,
        )
        return HTMLResponse(html, status_code=status)


def _query(request: Request, **changes: Any) -> str:
    """The current URL's query string with `changes` applied (None removes a key)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else "?"


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def create_app(
    session: StackSession, *, mlflow_url: str | None = None, warm: bool = False
) -> Starlette:
    """The console over `session` (kept open for the app's life; the caller closes it).
    `warm`: read what the first pages need in a background thread as the server starts."""
    from stack.ui.pages import audit, inbox, lineage, models, monitoring, rollouts

    console = Console(session, mlflow_url=mlflow_url)

    async def not_found(request: Request, exc: Exception) -> Response:
        detail = exc.detail if isinstance(exc, HTTPException) else "Not found."
        if detail == "Not Found":
            detail = f"There is no page at {request.url.path}."
        return console.error_page(request, 404, "Not found", str(detail))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        titles = {400: "Bad request", 403: "Forbidden", 405: "Method not allowed"}
        title = titles.get(exc.status_code, "Error")
        return console.error_page(request, exc.status_code, title, str(exc.detail))

    async def signed_out(request: Request, exc: Exception) -> Response:
        return console.error_page(request, 403, "Not signed in", str(exc))

    async def server_error(request: Request, exc: Exception) -> Response:
        LOG.exception("the console failed on %s", request.url.path, exc_info=exc)
        return console.error_page(
            request,
            500,
            "Something went wrong",
            "The console could not show this page; the details are in the server's log.",
        )

    routes = [
        *models.routes(),
        *inbox.routes(),
        *audit.routes(),
        *lineage.routes(),
        *rollouts.routes(),
        *monitoring.routes(),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    def warm_up() -> None:
        """Fold the audit log in, read each model's owner and each waiting version's
        approval rules from the registry, and verify the chain once, off the request path,
        so that the first person to open a page does not wait for it."""
        from stack.ui.pages.audit import verification

        try:
            for model in console.read.inventory():
                console.facts(model.model)
                for version in model.versions:
                    if version.state in PENDING:  # what the inbox asks of each
                        console.approval_rules(version.ref)
            verification(session.spine)
        except Exception:  # a page will meet (and show) the same problem
            LOG.debug("warming the console up failed", exc_info=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if warm:
            threading.Thread(target=warm_up, name="mlstack-ui-warm-up", daemon=True).start()
        yield

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            404: not_found,
            HTTPException: http_error,
            NotSignedIn: signed_out,
            Exception: server_error,
        },
    )
    app.state.console = console
    return app


__all__ = ["Console", "Paged", "Route", "console_of", "create_app", "int_param", "paginate"]
