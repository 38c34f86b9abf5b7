"""What the console answers to numbers too big, an unreachable registry, an expired token,
words put in its URL and reasons too long: a page that says so, never a 500."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from stack.identity import mint_token
from stack.session import StackSession
from stack.ui.app import REGISTRY_WAITS, create_app
from tests.ui.conftest import PORT, browser, csrf_token, new_version, write_stack

HUGE = "99999999999999999999"


@pytest.mark.parametrize(
    "page",
    [
        f"/audit?page={HUGE}",
        "/audit?page=9223372036854775807",
        f"/audit?per={HUGE}",
        f"/?page={HUGE}",
        f"/monitoring/checks/{HUGE}",
        f"/monitoring/checks/{HUGE}/report",
        "/monitoring/checks/9223372036854775808",
        f"/monitoring?model=x&page={HUGE}",
        f"/monitoring?model=churn&page={HUGE}",
        f"/models/churn/cards/{HUGE}",
        f"/models/churn?page={HUGE}",
        f"/inbox?page={HUGE}",
        f"/rollouts?page={HUGE}",
        "/lineage?node=model_version:churn@1&at=9999-12-31T23:59:59-12:00",
        "/lineage?node=model_version:churn@1&at=0001-01-01T00:00:00%2B05:00",
        "/rollouts?at=9999-12-31T23:59:59-12:00",
    ],
)
def test_overflowing_numbers_and_dates_are_a_page_not_a_500(client: TestClient, page: str) -> None:
    answer = client.get(page)
    assert answer.status_code < 500, answer.text[-600:]


@pytest.mark.parametrize(
    ("page", "names"),
    [
        (f"/audit?page={HUGE}", "page must be between 1 and"),
        (f"/monitoring/checks/{HUGE}", "check must be between 1 and"),
        ("/lineage?node=model_version:churn@1&at=9999-12-31T23:59:59-12:00", "at must be"),
    ],
)
def test_an_overflowing_parameter_is_a_400_naming_it(
    client: TestClient, page: str, names: str
) -> None:
    answer = client.get(page)
    assert answer.status_code == 400 and names in answer.text


@pytest.mark.parametrize("form", ["/inbox/approve", "/inbox/reject"])
def test_a_version_number_past_64_bits_is_refused_before_the_registry(
    client: TestClient, form: str
) -> None:
    data = {"csrf": csrf_token(client), "ref": f"churn@{HUGE}", "target": "serving"}
    answer = client.post(form, data={**data, "reason": "x"})
    assert answer.status_code == 400
    assert "ref&#39;s version number must be between 1 and" in answer.text


@pytest.mark.parametrize(
    ("form", "reason", "says"),
    [
        ("/inbox/reject", "", "reason is required"),
        ("/inbox/reject", "   ", "reason is required"),
        ("/inbox/reject", "x" * 2001, "reason must be at most 2,000 characters"),
        ("/inbox/approve", "x" * 2001, "reason must be at most 2,000 characters"),
    ],
)
def test_reasons_are_required_to_reject_and_capped(
    client: TestClient, session: StackSession, form: str, reason: str, says: str
) -> None:
    ref = new_version(session, "ana")
    before = len(session.spine.audit_entries())
    data = {"csrf": csrf_token(client), "ref": ref, "target": "serving", "reason": reason}
    answer = client.post(form, data=data)
    assert answer.status_code == 400 and says in answer.text
    assert len(session.spine.audit_entries()) == before


def test_words_put_in_the_inbox_url_are_not_shown(client: TestClient) -> None:
    lie = "Your session expired, sign in at evil.example"
    answer = client.get("/inbox", params={"ref": "churn@1", "outcome": "failed", "why": lie})
    assert answer.status_code == 200
    assert 'class="notice' not in answer.text  # no notice at all: nothing was decided


def test_a_failed_decision_says_why_after_the_redirect(client: TestClient) -> None:
    data = {"csrf": csrf_token(client), "ref": "nosuch@1", "reason": "gone"}
    answer = client.post("/inbox/reject", data=data)
    assert answer.status_code == 200  # after the redirect to the inbox
    notice = re.search(r'class="notice notice-error"[^>]*>(.*?)</p>', answer.text, re.S)
    assert notice, answer.text[-800:]
    assert unescape(notice.group(1)).startswith("The change to nosuch@1 failed: ")
    assert "nosuch" in unescape(notice.group(1)).removeprefix("The change to nosuch@1")
    # shown once: the signed cookie is spent, and the URL alone says nothing
    assert 'class="notice' not in client.get("/inbox?ref=nosuch@1&outcome=failed").text


def test_an_expired_token_is_the_not_signed_in_page_naming_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_stack(tmp_path, "  token_secret: s3cret-s3cret-s3cret\n")
    monkeypatch.setenv("MLSTACK_TOKEN", mint_token("lead", "s3cret-s3cret-s3cret", ttl_seconds=-5))
    with (
        StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as opened,
        browser(create_app(opened, port=PORT), raise_server_exceptions=False) as tc,
    ):
        for page in ("/", "/inbox", "/audit"):
            answer = tc.get(page)
            assert answer.status_code == 403, page
            assert "Not signed in" in answer.text
            assert "MLSTACK_TOKEN for &#39;lead&#39; expired" in answer.text


@pytest.fixture
def registry_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """A console whose tracker and registry are MLflow servers at a closed port, with the
    waits `mlstack ui` sets for its process; churn@1 is known to the spine."""
    for name, value in REGISTRY_WAITS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLSTACK_USER", "lead")
    monkeypatch.delenv("MLSTACK_TOKEN", raising=False)
    write_stack(tmp_path)
    stack = tmp_path / "stack.yaml"
    stack.write_text(
        re.sub(r"'sqlite:///[^']*mlflow\.db'", "'http://127.0.0.1:1'", stack.read_text())
    )
    with StackSession.open(stack, base_dir=tmp_path) as opened:
        opened.spine.audit(
            actor="ana",
            action="model.registered",
            subject="churn@1",
            payload={"state": "approved", "run_id": "r1"},
        )
        with browser(create_app(opened, port=PORT), raise_server_exceptions=False) as tc:
            yield tc


def test_pages_degrade_when_the_registry_is_unreachable(registry_down: TestClient) -> None:
    for page in ("/", "/models/churn", "/inbox"):
        answer = registry_down.get(page)
        assert answer.status_code == 200, (page, answer.text[-600:])
        assert "unreachable: " in answer.text, page
    assert "registry unreachable: " in registry_down.get("/").text


@pytest.mark.parametrize("form", ["/inbox/approve", "/inbox/reject"])
def test_a_decision_while_the_registry_is_unreachable_says_it_failed(
    registry_down: TestClient, form: str
) -> None:
    data = {"csrf": csrf_token(registry_down), "ref": "churn@1", "target": "serving"}
    answer = registry_down.post(form, data={**data, "reason": "ok"})
    assert answer.status_code == 200 and answer.url.path == "/inbox"
    assert "The change to churn@1 failed: " in unescape(answer.text)


@pytest.mark.parametrize("digit", ["\u00b2", "\u0661", "\U0001d7d3", "\u0663\u0664"])
@pytest.mark.parametrize(
    ("page", "names"),
    [
        ("/?page=", "page"),
        ("/audit?per=", "per"),
        ("/inbox?page=", "page"),
        ("/rollouts?page=", "page"),
        ("/monitoring?model=churn&page=", "page"),
    ],
)
def test_a_number_in_another_script_is_a_400_naming_the_parameter(
    client: TestClient, page: str, names: str, digit: str
) -> None:
    answer = client.get(page + digit)
    assert answer.status_code == 400
    assert f"{names} must be a whole number" in unescape(answer.text)


@pytest.mark.parametrize("form", ["/inbox/approve", "/inbox/reject"])
def test_a_version_number_in_another_script_is_a_400_naming_ref(
    client: TestClient, form: str
) -> None:
    data = {"csrf": csrf_token(client), "ref": "churn@²", "target": "serving", "reason": "x"}
    answer = client.post(form, data=data)
    assert answer.status_code == 400
    assert "ref must be the version to decide (model@N)" in unescape(answer.text)
