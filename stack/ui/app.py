"""The console's ASGI app: pages, static files, identity, CSRF and the error pages.

`create_app(session)` serves one opened stack. Every page reads through `Console` (the
session, its read model, the templates); a bad URL or an unknown model is a 404 page, any
other failure a 500 page that names no internals (the traceback goes to the server's log).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from stack.config.policy import ApprovalRule
from stack.config.stack_file import IdentitySection
from stack.contract.states import LifecycleState
from stack.session import StackSession
from stack.ui.csrf import COOKIE, FIELD, CsrfTokens
from stack.ui.flash import Flash
from stack.ui.guard import Guard, SpineFile
from stack.ui.identity import ConsoleUser, NotSignedIn, identify
from stack.ui.readmodel import PENDING, ReadModel

HERE = Path(__file__).resolve().parent
LOG = logging.getLogger("mlstack.ui")
PER_PAGE = 50
#: The largest whole number a query parameter or an id in a path may be: a page or an id
#: beyond it is a 400 page naming it (an SQL offset or a registry's version is 64-bit).
MAX_NUMBER = 2**31 - 1
#: The largest version number or row id (64-bit signed, as the registry and the spine keep them).
MAX_VERSION = 2**63 - 1
#: How long the console waits for MLflow's HTTP API (a page answers, degraded, when the
#: registry is down): set for the console's process unless the user set them.
#: How long a console write waits for another writer's lock on a SQLite spine before the
#: page says "spine is busy" (503): appends take milliseconds, and a request held longer
#: would hold one of the server's few worker threads.
SPINE_BUSY_WAIT_MS = 5_000
#: How long the rollouts page's live health is shared, and how long a request waits for
#: another's read of it before showing the page without it.
LIVE_TTL_S = 5.0
LIVE_WAIT_S = 10.0
#: What a 503 "busy" page tells a client to wait before trying again (Retry-After).
RETRY_AFTER_S = 5
REGISTRY_WAITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
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

    def __post_init__(self) -> None:
        if self.page > self.pages:
            raise HTTPException(
                404, f"There is no page {self.page}: the last is page {self.pages}."
            )

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per))


def paginate(items: list[Any], request: Request, per: int = PER_PAGE) -> Paged:
    page = int_param(request, "page", 1, minimum=1)
    per = int_param(request, "per", per, minimum=1, maximum=500)
    return Paged(items[(page - 1) * per : page * per], page, per, len(items))


def int_param(
    request: Request, name: str, default: int, *, minimum: int = 0, maximum: int = MAX_NUMBER
) -> int:
    """A whole-number query parameter; a bad one is a 400 page naming it."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    return bounded(name, raw, minimum=minimum, maximum=maximum)


def bounded(name: str, raw: str | int, *, minimum: int = 0, maximum: int = MAX_NUMBER) -> int:
    """`raw` as a whole number in [minimum, maximum]; else a 400 page naming `name`."""
    text = str(raw)
    if not _WHOLE.fullmatch(text):  # ASCII digits only: int() takes other scripts too
        raise HTTPException(400, f"{name} must be a whole number, not {text[:40]!r}")
    if text.startswith("-") or int(text) < minimum:
        raise HTTPException(400, f"{name} must be at least {minimum}")
    if len(text.lstrip("0")) > 19 or int(text) > maximum:
        raise HTTPException(400, f"{name} must be between {minimum} and {maximum}")
    return int(text)


_WHOLE = re.compile(r"-?[0-9]+")


def moment_param(request: Request, name: str) -> datetime | None:
    """An ISO date or time query parameter (UTC unless it names a zone); a bad one is a 400
    page naming it."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # 9999-12-31T23:59:59-12:00 is past year 9999 in UTC
        raise HTTPException(
            400, f"{name} must be an ISO date or time between years 1 and 9999, not {raw[:40]!r}"
        ) from None


class Recent:
    """Values computed at most once per `ttl_s` seconds and shared by concurrent requests:
    one request computes, the others wait for it at most `wait_s` seconds, then take the
    value it left (or None: the page says the figure is not known right now)."""

    def __init__(self, ttl_s: float, wait_s: float) -> None:
        self.ttl_s, self.wait_s = ttl_s, wait_s
        self._lock = threading.Lock()
        self._values: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        known = self._values.get(key)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        if not self._lock.acquire(timeout=self.wait_s):
            return known[1] if known is not None else None
        try:
            known = self._values.get(key)
            if known is not None and known[0] > time.monotonic():
                return known[1]
            value = compute()
            self._values[key] = (time.monotonic() + self.ttl_s, value)
            return value
        finally:
            self._lock.release()


class Console:
    """What every page shares: the session, the read model, identity, CSRF, templates."""

    def __init__(self, session: StackSession, *, mlflow_url: str | None = None) -> None:
        self.session = session
        self.read = ReadModel(session.spine)
        self.csrf = CsrfTokens()
        self.flash = Flash()
        self.mlflow_url = mlflow_url.rstrip("/") if mlflow_url else None
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals["query"] = _query
        self.templates.filters["when"] = _when
        #: The rollouts page's live splits and per-version health (a read of the prediction
        #: log each): shared by every request for a few seconds.
        self.live = Recent(ttl_s=LIVE_TTL_S, wait_s=LIVE_WAIT_S)
        self._facts: dict[str, tuple[str, str]] = {}
        self._rules: dict[str, dict[str, ApprovalRule | None]] = {}

    def user(self, request: Request) -> ConsoleUser:
        headers = {k.lower(): v for k, v in request.headers.items()}
        host = request.client.host if request.client else None
        return identify(self.session.stack.identity, headers, host)

    def unreachable(self, request: Request | None, what: str, exc: Exception) -> None:
        """Note on `request`'s page that `what` could not be read (the page shows "—" for
        it and says why); the traceback goes to the log."""
        LOG.warning("the console could not reach the %s: %s", what, exc)
        LOG.debug("reaching the %s failed", what, exc_info=exc)
        if request is not None:
            problems: list[str] = getattr(request.state, "problems", [])
            request.state.problems = problems
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            if not any(p.startswith(f"{what} unreachable") for p in problems):
                problems.append(f"{what} unreachable: {reason}")

    def facts(self, model: str, request: Request | None = None) -> tuple[str, str]:
        """(owner, risk tier) of `model`, from its newest version's registry tags (set at
        registration, never changed: read once per model and kept). ("—", "—") while the
        registry cannot be reached (the page says why; read again next time)."""
        if model not in self._facts:
            from stack.session import OWNER_TAG, RISK_TAG

            try:
                versions = self.session.registry.versions(model)
            except Exception as exc:  # the wrapped tool's own errors too: the page degrades
                self.unreachable(request, "registry", exc)
                return ("—", "—")
            tags = versions[-1].tags if versions else {}
            self._facts[model] = (tags.get(OWNER_TAG, "—"), tags.get(RISK_TAG, "—"))
        return self._facts[model]

    def approval_rules(
        self, ref: str, request: Request | None = None
    ) -> dict[str, ApprovalRule | None]:
        """The `approvals` rule of each gated state `ref` may still enter, by state, from
        the policy it was built under (fixed at registration: read once and kept). Empty
        when the version is gone from the registry or its recipe is not on disk, or while
        the registry cannot be reached (the page says why)."""
        if ref not in self._rules:
            from stack.errors import NotFound, StackConfigError
            from stack.governance.service import Governance

            governance = Governance(self.session)
            try:
                version = governance.version(ref)
                rules = {
                    state.value: (gate.approvals if gate else None)
                    for state in APPROVABLE
                    if (gate := governance.gate_for(version, state)) is not None
                }
            except (NotFound, StackConfigError):  # gone from the registry, recipe not on disk
                return {}
            except Exception as exc:  # the registry out of reach (the adapter's StackError
                # naming the server, or the wrapped tool's own errors): the page degrades
                self.unreachable(request, "registry", exc)
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
            problems=getattr(request.state, "problems", []),
            **context,
        )
        response = HTMLResponse(html, status_code=status_code)
        if COOKIE not in request.cookies:
            response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict")
        return response

    def error_page(self, request: Request, status: int, title: str, detail: str) -> Response:
        """The error page: what went wrong, who is signed in (when anyone is), and a link
        back to the console page the browser came from (its Referer, on this origin only)."""
        try:
            user: ConsoleUser | None = self.user(request)
        except NotSignedIn:
            user = None
        html = self.templates.get_template("error.html").render(
            request=request,
            user=user,
            back=_came_from(request),
            status=status,
            title=title,
            detail=detail,
            stack_name=self.session.stack.name,
            path=request.url.path,
        )
        return HTMLResponse(html, status_code=status)


def _came_from(request: Request) -> str | None:
    """The path (and query) of the Referer when it is one of this console's pages (same
    scheme-less host as the request), else None: never a link to another site."""
    referer = request.headers.get("referer", "")
    parts = urlsplit(referer)
    if parts.scheme not in ("http", "https") or parts.netloc != request.headers.get("host"):
        return None
    back = parts.path or "/"
    if back == request.url.path and parts.query == request.url.query:
        return None  # the failing page itself
    return back + (f"?{parts.query}" if parts.query else "")


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


def _short_busy_wait(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    dbapi_connection.execute(f"PRAGMA busy_timeout = {SPINE_BUSY_WAIT_MS}")


def busy_page(console: Console, request: Request) -> Response:
    """503 "the console is busy" (every spine connection in use, or too many exports at
    once), with Retry-After: what a page answers instead of waiting on and on."""
    response = console.error_page(
        request,
        503,
        "Console is busy",
        "Too many requests are reading the spine at once; try again in a few seconds.",
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def server_options(identity: IdentitySection) -> dict[str, Any]:
    """uvicorn's options for the forwarded headers: believed only from a trusted proxy's
    own addresses (`identity.proxy.trust` and `.addresses`), else ignored, so that
    `X-Forwarded-For` from any client changes nothing of who the console thinks it is."""
    proxy = identity.proxy
    if proxy.trust and proxy.addresses:
        return {"proxy_headers": True, "forwarded_allow_ips": list(proxy.addresses)}
    return {"proxy_headers": False, "forwarded_allow_ips": []}


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


class _GuardedApp(Starlette):
    """Starlette with `Guard` outside everything, its error pages included."""

    guard: dict[str, Any]

    def build_middleware_stack(self) -> ASGIApp:
        return Guard(super().build_middleware_stack(), **self.guard)


def create_app(
    session: StackSession,
    *,
    mlflow_url: str | None = None,
    warm: bool = False,
    port: int | None = None,
) -> Starlette:
    """The console over `session` (kept open for the app's life; the caller closes it).
    `warm`: read what the first pages need in a background thread as the server starts.
    `port`: the one the console listens on, the only one a Host header may name (None or
    0: any port of a loopback name)."""
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

    async def spine_busy(request: Request, exc: Exception) -> Response:
        if "locked" not in str(exc) and "busy" not in str(exc):
            return await server_error(request, exc)
        return console.error_page(
            request, 503, "Spine is busy", "The spine is busy (another write holds it); try again."
        )

    async def pool_exhausted(request: Request, exc: Exception) -> Response:
        LOG.warning("no spine connection free for %s: %s", request.url.path, exc)
        return busy_page(console, request)

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

    app = _GuardedApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            404: not_found,
            HTTPException: http_error,
            NotSignedIn: signed_out,
            OperationalError: spine_busy,
            PoolTimeout: pool_exhausted,
            Exception: server_error,
        },
    )
    spine_url = session.spine.engine.url
    if spine_url.get_backend_name() == "sqlite":
        event.listen(session.spine.engine, "checkout", _short_busy_wait)
    app.guard = {
        "port": port or None,
        "proxy_hosts": session.stack.identity.proxy.hosts,
        "spine": SpineFile(
            spine_url.database if spine_url.get_backend_name() == "sqlite" else None
        ),
        "error_page": console.error_page,
    }
    app.state.console = console
    return app


__all__ = [
    "MAX_NUMBER",
    "MAX_VERSION",
    "REGISTRY_WAITS",
    "Console",
    "Paged",
    "Route",
    "bounded",
    "busy_page",
    "console_of",
    "create_app",
    "int_param",
    "paginate",
    "server_options",
]
