"""CSRF protection of every write: a token bound to the signed-in user and a browser cookie.

GET pages set a random cookie (`mlstack_csrf`, SameSite=Strict, HttpOnly) and put
HMAC(secret, cookie | user) in each form. A POST is accepted only when its form token is
that HMAC for the cookie it sent and the user it is made as: another site can neither read
the cookie nor compute the token, and a token minted for one user is no use to another.
The secret lives in the console's process (new at each start: forms are re-read then).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "mlstack_csrf"
FIELD = "csrf"


class CsrfTokens:
    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(32)

    def token(self, cookie: str, user: str) -> str:
        message = f"{cookie}|{user}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def valid(self, cookie: str | None, user: str, token: str | None) -> bool:
        if not cookie or not token:
            return False
        return hmac.compare_digest(self.token(cookie, user), token)
