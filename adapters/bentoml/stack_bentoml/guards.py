"""What every route that takes a body checks before reading it as JSON.

- its media type: `application/json` (UTF-8, the only charset JSON has), or none named
  (a client that names no type is read as JSON); anything else, or a compressed body,
  is answered 415 — a form or text body is never guessed at;
- its size: over the endpoint's `max_body_bytes` is 413, counted as the body arrives;
- how deeply its JSON nests, where nothing else bounds it: both routes parse with
  pydantic's parser, which refuses nesting past 200 at once, and a signature's shape
  refuses anything deeper than itself; a column of type `any` takes any JSON, so a
  request schema with one has its bodies counted here, deeper than `max_depth` → 422.

The count costs nothing for a usual request: a body with no more brackets than the limit
cannot nest deeper. A body with more is scanned in linear time and in C: escapes and
strings are removed (a bracket in a string does not nest), then the depth is a running sum
over the brackets left."""

from __future__ import annotations

import re
from typing import Any

JSON_MEDIA_TYPE = b"application/json"
_STRING = re.compile(rb'"[^"]*"')  # once escapes are gone: linear, no backtracking
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def unsupported_media(headers: dict[bytes, bytes]) -> str | None:
    """Why a body with these (ASGI, lower-case) headers is not read as JSON, for the 415;
    None when it is."""
    encoding = headers.get(b"content-encoding", b"").strip().lower()
    if encoding not in (b"", b"identity"):
        return (
            f"content-encoding {_shown(encoding)} is not taken: send the body uncompressed, "
            "as application/json"
        )
    given = headers.get(b"content-type")
    if given is None:
        return None
    media, _, parameters = given.partition(b";")
    if media.strip().lower() == JSON_MEDIA_TYPE:
        charset = _parameter(parameters, b"charset")
        if charset is None or charset.lower() in (b"utf-8", b"utf8"):
            return None
    return f"content-type {_shown(given)} is not taken: send application/json (UTF-8)"


def _parameter(parameters: bytes, name: bytes) -> bytes | None:
    for parameter in parameters.split(b";"):
        key, _, value = parameter.partition(b"=")
        if key.strip().lower() == name:
            return value.strip().strip(b'"')
    return None


def _shown(value: bytes) -> str:
    text = value.decode("latin-1").strip()
    return repr(text if len(text) <= 60 else text[:57] + "...")


async def read_body(receive: Any, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows past `limit` bytes (the rest unread)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def nests_deeper_than(body: bytes, limit: int) -> bool:
    """Whether the JSON in `body` opens more than `limit` arrays or objects inside one
    another (strings skipped; a body that is not JSON is judged on its brackets)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    import numpy as np

    # `\\` pairs first (so that `\\"` still closes a string), then escaped quotes
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = np.frombuffer(_STRING.sub(b"", unescaped).translate(None, _NOT_BRACKETS), np.uint8)
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    return bool(np.cumsum(steps).max(initial=0) > limit)
