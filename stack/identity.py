"""Who is acting: a signed token in CI (`MLSTACK_TOKEN`), else `MLSTACK_USER`, else the
operating-system user. Groups come from the stack file's `identity.groups`.

A token is `<payload>.<signature>`: the payload is base64url JSON `{"sub": user, "exp": unix
time}`, the signature HMAC-SHA256 over it with the stack's `identity.token_secret`. CI mints
one with `mlstack identity token USER` where the secret is available, so a pipeline acts as a
named identity that a developer's environment variable cannot fake.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass

from stack.errors import StackError


class IdentityError(StackError):
    """The token is malformed, forged or expired, or no secret is configured to check it."""


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    groups: frozenset[str]
    source: str  # "token", "MLSTACK_USER" or "os"

    def in_group(self, group: str) -> bool:
        return group in self.groups


def current_actor() -> str:
    """The acting user's name, without groups or token checks (for recording who ran what)."""
    explicit = os.environ.get("MLSTACK_USER", "").strip()
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid:{os.getuid()}"


def resolve_actor(groups: dict[str, tuple[str, ...]], token_secret: str | None) -> Actor:
    """The actor with their groups; a token in MLSTACK_TOKEN wins and must verify."""
    token = os.environ.get("MLSTACK_TOKEN", "").strip()
    if token:
        if not token_secret:
            raise IdentityError(
                "MLSTACK_TOKEN is set but the stack has no identity.token_secret to check it"
            )
        name, source = verify_token(token, token_secret), "token"
    else:
        name = current_actor()
        source = "MLSTACK_USER" if os.environ.get("MLSTACK_USER", "").strip() else "os"
    member_of = frozenset(group for group, members in groups.items() if name in members)
    return Actor(name=name, groups=member_of, source=source)


def mint_token(user: str, secret: str, *, ttl_seconds: int = 3600) -> str:
    payload = json.dumps({"sub": user, "exp": int(time.time()) + ttl_seconds}).encode()
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{body}.{_sign(body, secret)}"


def verify_token(token: str, secret: str) -> str:
    body, _, signature = token.partition(".")
    if not body or not signature:
        raise IdentityError("MLSTACK_TOKEN is not a token (expected <payload>.<signature>)")
    if not hmac.compare_digest(signature, _sign(body, secret)):
        raise IdentityError(
            "MLSTACK_TOKEN has a bad signature: it was not minted with this "
            "stack's identity.token_secret"
        )
    try:
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        user, expires = str(claims["sub"]), int(claims["exp"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IdentityError(f"MLSTACK_TOKEN payload is unreadable ({exc})") from exc
    if expires < time.time():
        raise IdentityError(f"MLSTACK_TOKEN for {user!r} expired")
    return user


def _sign(body: str, secret: str) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
