"""What every request to the console passes before a page sees it, and what every answer
carries: the Host and Origin rules (against DNS rebinding and cross-site forms), the
spine file still being the one the console opened, and the security headers.

A page on another site can make a browser send requests to 127.0.0.1 under its own name
(DNS rebinding): the console answers only a Host that names it — 127.0.0.1, localhost or
[::1] on its port, or a host listed in `identity.proxy.hosts` behind a trusted proxy — and
accepts a POST only when its Origin (or, without one, its Referer) is the console's own.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
#: The console's own pages: its script and style sheet, inline SVG, no inline script.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: Evidently reports and model cards (inline scripts of their own): run in an opaque
#: origin, so their scripts can read nothing of the console's.
SANDBOXED = "sandbox allow-scripts; frame-ancestors 'none'"
HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}

ErrorPage = Callable[[Request, int, str, str], Response]


def host_allowed(host: str, port: int | None, proxy_hosts: tuple[str, ...]) -> bool:
    """Whether a Host header names the console: a loopback name on `port` (any port when
    None), or one of `proxy_hosts` (compared without case)."""
    host = host.strip().lower()
    if host in (h.lower() for h in proxy_hosts):
        return True
    if host.startswith("["):
        name, _, rest = host.partition("]")
        name += "]"
        if rest and not rest.startswith(":"):
            return False
        given = rest[1:] or None
    else:
        name, sep, given_port = host.rpartition(":")
        name, given = (name, given_port) if sep else (host, None)
    if name not in LOOPBACK_NAMES:
        return False
    if port is None:
        return True
    return (given or "80") == str(port)


def same_origin(headers: Headers, proxy_hosts: tuple[str, ...] = ()) -> str | None:
    """None when an unsafe request comes from the console's own pages (its Origin, or its
    Referer without one, names the request's Host or one of `proxy_hosts`); else why not."""
    source = headers.get("origin") or headers.get("referer")
    if not source:
        return "it has no Origin or Referer header to show it comes from the console's own pages"
    parts = urlsplit(source)
    own = {headers.get("host", "").lower(), *(h.lower() for h in proxy_hosts)}
    if parts.scheme not in ("http", "https") or parts.netloc.lower() not in own:
        return f"it was sent from {source[:100]!r}, not from the console's own pages"
    return None


class SpineFile:
    """The spine's SQLite file as the console opened it: (st_dev, st_ino), checked again
    on each request (a file deleted or replaced meanwhile is written to no more)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._identity = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        if not self.path:
            return None
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return found.st_dev, found.st_ino

    def changed(self) -> bool:
        return self._identity is not None and self._stat() != self._identity


class Guard:
    """ASGI middleware around the whole console (outside its error handling, so that
    error pages carry the headers too)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        port: int | None,
        proxy_hosts: tuple[str, ...],
        spine: SpineFile,
        error_page: ErrorPage,
    ) -> None:
        self.app = app
        self.port = port
        self.proxy_hosts = proxy_hosts
        self.spine = spine
        self.error_page = error_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        refusal = self._refusal(Request(scope))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, request: Request) -> Response | None:
        host = request.headers.get("host", "")
        if not host_allowed(host, self.port, self.proxy_hosts):
            where = f"127.0.0.1:{self.port}" if self.port else "127.0.0.1"
            return self.error_page(
                request,
                421,
                "Wrong host",
                f"This console answers as {where} (or localhost, [::1]), not as {host!r}. "
                "Behind a proxy, list the name it forwards in the stack file's "
                "identity.proxy.hosts.",
            )
        if request.method not in SAFE_METHODS:
            why = same_origin(request.headers, self.proxy_hosts)
            if why is not None:
                return self.error_page(
                    request,
                    403,
                    "Forbidden",
                    f"This form was refused: {why}. Nothing was written.",
                )
        if self.spine.changed():
            return self.error_page(
                request,
                503,
                "Spine file replaced",
                f"The spine file {self.spine.path} was deleted or replaced while the console "
                "ran; restart mlstack ui to read the new one.",
            )
        return None


def _with_headers(send: Send) -> Callable[[Message], Awaitable[None]]:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in HEADERS.items():
                headers.setdefault(name, value)
            headers.setdefault("content-security-policy", PAGE_POLICY)
        await send(message)

    return sending
