"""What a form did, carried to the page it redirects to in a short-lived signed cookie.

The inbox never shows text from its URL: a link anyone can send (`?outcome=failed&why=…`)
would otherwise put their words in the console's voice. The message rides in a cookie
(`mlstack_flash`: HttpOnly, SameSite=Strict, a minute long) signed with the console's
secret for the signed-in user; a cookie that is forged, stale or another user's says nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

COOKIE = "mlstack_flash"
LIFETIME_S = 60


class Flash:
    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _sign(self, body: str, user: str) -> str:
        return hmac.new(self._secret, f"{body}|{user}".encode(), hashlib.sha256).hexdigest()

    def seal(self, message: str, user: str, *, now: float | None = None) -> str:
        """The cookie's value carrying `message` for `user`."""
        expires = int((now if now is not None else time.time()) + LIFETIME_S)
        text = base64.urlsafe_b64encode(message.encode()).decode().rstrip("=")
        body = f"{expires}.{text}"
        return f"{body}.{self._sign(body, user)}"

    def open(self, value: str | None, user: str, *, now: float | None = None) -> str | None:
        """The message sealed for `user`, or None (absent, forged, expired, not theirs)."""
        if not value or value.count(".") != 2:
            return None
        body, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(body, user)):
            return None
        expires, _, text = body.partition(".")
        if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
            return None
        try:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        except ValueError:
            return None
