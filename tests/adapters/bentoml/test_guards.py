"""What every body-taking route checks before parsing (guards.py): media type and depth."""

from __future__ import annotations

import json

import pytest

from stack_bentoml.guards import nests_deeper_than, unsupported_media


@pytest.mark.parametrize(
    ("body", "deeper"),
    [
        (b"[[[1]]]", False),
        (b"[[[[1]]]]", True),
        (b'["[[[[[[[[", {"a": "{{{{{{"}]', False),  # brackets in strings do not nest
        (b'["\\"[[[[[[", 1]', False),  # nor after an escaped quote
        (b'["\\\\", [[[1]]]]', True),  # an escaped backslash ends the string: these nest
        (json.dumps([{"a": [1, 2]}] * 1000).encode(), False),  # a batch: wide, not deep
        (b"[" * 100_000, True),  # not JSON: judged on its brackets
    ],
)
def test_depth_counts_the_brackets_outside_strings(body: bytes, deeper: bool) -> None:
    assert nests_deeper_than(body, 3) is deeper


def test_a_body_of_escapes_is_scanned_in_one_pass() -> None:
    body = b'["' + b'\\"' * 400_000 + b"[" * 10  # quadratic for a backtracking string regex
    assert nests_deeper_than(body, 3) is True


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {b"content-type": b"application/json"},
        {b"content-type": b"Application/JSON; charset=UTF-8"},
        {b"content-type": b'application/json; charset="utf-8"', b"content-encoding": b"identity"},
    ],
)
def test_json_in_utf8_or_an_unnamed_type_is_read(headers: dict[bytes, bytes]) -> None:
    assert unsupported_media(headers) is None


@pytest.mark.parametrize(
    "headers",
    [
        {b"content-type": b"text/plain"},
        {b"content-type": b"application/x-www-form-urlencoded"},
        {b"content-type": b"application/json; charset=utf-16"},
        {b"content-type": b"application/jsonx"},
        {b"content-type": b"application/json", b"content-encoding": b"gzip"},
    ],
)
def test_another_type_charset_or_encoding_is_refused_naming_it(
    headers: dict[bytes, bytes],
) -> None:
    reason = unsupported_media(headers)
    assert reason is not None and "application/json" in reason
    named = headers.get(b"content-encoding", headers[b"content-type"]).decode()
    assert named in reason
