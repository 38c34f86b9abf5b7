"""`POST /feedback`'s body: a label that is no value gets one error saying what a label is."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stack_bentoml.feedback import parse_feedback


@pytest.mark.parametrize(("raw", "given"), [(b"null", "null"), (b"[1]", "list"), (b"{}", "dict")])
def test_a_label_that_is_no_value_gets_one_error_saying_what_a_label_is(
    raw: bytes, given: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_feedback(b'{"request_id": "r", "label": ' + raw + b"}", 10)
    [error] = caught.value.errors()
    assert error["loc"] == ("label",)
    assert f"a label is a number, a boolean or a string, not {given}" in error["msg"]


def test_each_kind_of_label_is_kept_as_sent() -> None:
    body = b'[{"request_id": "a", "label": true}, {"request_id": "b", "label": 2},'
    body += b' {"request_id": "c", "label": 0.5}, {"request_id": "d", "label": "churned"}]'
    assert [f.label for f in parse_feedback(body, 10)] == [True, 2, 0.5, "churned"]
