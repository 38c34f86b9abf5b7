"""Who is looking at the console, and which groups they approve for.

By default the console answers loopback requests only, as the local user (`MLSTACK_TOKEN`,
`MLSTACK_USER` or the OS user, as the CLI resolves them). Behind an authenticating proxy
(oauth2-proxy and similar) the stack file's `identity.proxy.trust: true` takes the user from
the proxy's headers instead, and only then. The groups that decide approvals are always the
stack file's `identity.groups`, the ones gates count, so the console can never allow an
approval a gate would then ignore; the proxy's groups are shown beside them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from stack.config.stack_file import IdentitySection
from stack.identity import IdentityError, resolve_actor


class NotSignedIn(Exception):
    """The request carries no identity the console may accept; `str()` says why."""


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    name: str
    groups: frozenset[str]  # from the stack file: what approvals are checked against
    proxy_groups: tuple[str, ...]  # what the proxy said, shown only
    source: str  # "proxy", "token", "MLSTACK_USER" or "os"


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host in ("localhost", "testclient"):  # starlette's TestClient names itself so
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def identify(
    identity: IdentitySection, headers: dict[str, str], client_host: str | None
) -> ConsoleUser:
    """The user behind one request; `headers` with lower-case names. Raises NotSignedIn."""
    proxy = identity.proxy
    if proxy.trust:
        name = headers.get(proxy.user_header.lower(), "").strip()
        name = name or headers.get(proxy.email_header.lower(), "").strip()
        if not name:
            raise NotSignedIn(
                f"the proxy sent no {proxy.user_header} or {proxy.email_header} header "
                "(identity.proxy.trust is true in the stack file)"
            )
        sent = headers.get(proxy.groups_header.lower(), "")
        return ConsoleUser(
            name=name,
            groups=_member_of(identity, name),
            proxy_groups=tuple(g.strip() for g in sent.split(",") if g.strip()),
            source="proxy",
        )
    if not is_loopback(client_host):
        raise NotSignedIn(
            f"the console answers this machine only (the request came from {client_host}); "
            "behind an authenticating proxy set identity.proxy.trust in the stack file"
        )
    secret = identity.token_secret.get_secret_value() if identity.token_secret else None
    try:
        actor = resolve_actor(dict(identity.groups), secret)
    except IdentityError as exc:  # an expired or forged MLSTACK_TOKEN: nobody is signed in
        raise NotSignedIn(
            f"{exc}; mint a new one (mlstack identity token USER) and restart mlstack ui"
        ) from exc
    return ConsoleUser(actor.name, actor.groups, (), actor.source)


def _member_of(identity: IdentitySection, name: str) -> frozenset[str]:
    return frozenset(group for group, members in identity.groups.items() if name in members)
