"""Each page of the console over a small real stack, through HTTP (starlette's TestClient):
what it shows, its filters, sorting and pages, and its error pages."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from starlette.testclient import TestClient

from stack.session import StackSession
from stack.ui.app import create_app
from tests.ui.conftest import browser, new_version

PAGES = (
    "/",
    "/models/churn",
    "/inbox",
    "/audit",
    "/rollouts",
    "/monitoring",
    "/monitoring?model=churn",
    "/lineage",
    "/lineage?model=churn",
    "/monitoring/checks/1",
)


def text(html: str) -> str:
    """The page's words, tags and runs of blanks folded to one space."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_answers_with_html_as_the_local_user(client: TestClient, page: str) -> None:
    answer = client.get(page)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "lead · ml-leads" in text(answer.text)


def test_the_inventory_shows_each_model_with_its_serving_version_owner_and_verdict(
    client: TestClient,
) -> None:
    row = re.search(r"<tr>\s*<td><a href=\"/models/churn\">.*?</tr>", client.get("/").text, re.S)
    assert row is not None
    words = text(row.group(0))
    assert "data-science" in words and "limited" in words
    assert "churn@1" in words and "breach" in words
    assert 'href="/rollouts?model=churn">churn<' in row.group(0)
    assert "qa-system" not in client.get("/").text  # a prompt's version is not a model's


def test_the_inventory_filters_sorts_and_pages_by_query_parameters(client: TestClient) -> None:
    def models(query: str) -> list[str]:
        html = client.get(f"/{query}").text
        return re.findall(r'<td><a href="/models/([^"]+)">', html)

    assert models("") == ["alpha", "churn", "fraud"]
    assert models("?sort=model&order=desc") == ["fraud", "churn", "alpha"]
    assert models("?q=fra") == ["fraud"]
    assert models("?state=serving") == ["churn"]
    assert models("?verdict=breach") == ["churn"]
    assert models("?per=2") == ["alpha", "churn"]
    second = client.get("/?per=2&page=2").text
    assert re.findall(r'<td><a href="/models/([^"]+)">', second) == ["fraud"]
    assert "page 2 of 2 · 3 in all" in text(second)


def test_a_model_page_shows_each_gate_rule_with_its_numbers_and_the_approvals(
    client: TestClient,
) -> None:
    words = text(client.get("/models/churn").text)
    assert "gate to serving: passed" in words
    assert re.search(r"ok threshold auc: 0\.8 \(needs >= 0\.7\)", words), words
    assert "ok approvals: 1 of 1 from ml-leads (lead)" in words
    assert "lead approved for serving — “ok”" in words
    assert "champion churn@1" in words and "challenger churn@" in words


def test_an_unknown_model_or_address_is_a_404_page_not_a_traceback(client: TestClient) -> None:
    for page, says in (
        ("/models/nope", "No model is called 'nope'"),
        ("/no/such/page", "There is no page at /no/such/page"),
        ("/monitoring/checks/999", "There is no monitoring check 999"),
        ("/monitoring?model=nope", "No model is called 'nope'"),
        ("/lineage?node=run:nothing", "Nothing in the lineage is called run:nothing"),
        ("/models/churn/cards/99", "There is no version churn@99."),
    ):
        answer = client.get(page)
        assert answer.status_code == 404, page
        assert says in text(answer.text) and "Traceback" not in answer.text


def test_a_bad_query_parameter_is_a_400_page_naming_it(client: TestClient) -> None:
    for page, says in (
        ("/audit?page=x", "page must be a whole number"),
        ("/?sort=colour", "sort must be one of"),
        ("/lineage?node=churn", "node must be KIND:KEY"),
        ("/rollouts?at=yesterday", "at must be an ISO date or time"),
    ):
        answer = client.get(page)
        assert answer.status_code == 400, page
        assert says in text(answer.text)


def test_an_internal_error_is_a_500_page_without_internals(
    session: StackSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(session)

    def broken() -> None:
        raise RuntimeError("password=hunter2 in /secret/path")

    monkeypatch.setattr(app.state.console.read, "inventory", broken)
    with browser(app, raise_server_exceptions=False) as test_client:
        answer = test_client.get("/")
    assert answer.status_code == 500
    assert "Something went wrong" in answer.text
    assert "hunter2" not in answer.text and "Traceback" not in answer.text
    assert answer.headers["x-frame-options"] == "DENY"  # error pages carry the headers too
    assert "default-src 'self'" in answer.headers["content-security-policy"]


def test_the_audit_page_filters_by_actor_and_action_and_shows_verify(client: TestClient) -> None:
    html = client.get("/audit?actor=lead&action=approval.approved").text
    rows = re.findall(r"<tr><td>(\d+)</td>", html)
    assert len(rows) >= 1
    assert all(
        "approval.approved" in row for row in re.findall(r"<tr><td>\d+</td>.*?</tr>", html, re.S)
    )
    assert "Chain verified" in html


def test_the_audit_export_is_the_selection_as_jsonl(
    client: TestClient, session: StackSession
) -> None:
    answer = client.get("/audit/export?model=churn&action=state.changed")
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    exported = [json.loads(line) for line in answer.text.splitlines()]
    expected = [
        e.to_json() for e in session.spine.audit_entries(subject="churn", action="state.changed")
    ]
    assert exported == expected and exported


def test_lineage_is_a_graph_as_of_a_chosen_time(client: TestClient) -> None:
    now = client.get("/lineage?node=model_version:churn@1").text
    assert "<svg" in now and "report:monitoring/1" in now and "run:" in now
    before = client.get("/lineage?node=model_version:churn@1&at=2000-01-01T00:00:00").text
    assert "report:monitoring/1" not in before


def test_rollouts_draw_the_timeline_and_say_what_served_at_a_time(client: TestClient) -> None:
    html = client.get("/rollouts").text
    assert 'class="plot timeline"' in html and "3 traffic changes" in text(html)
    later = text(client.get("/rollouts?at=2999-01-01T00:00:00").text)
    assert "churn@1 100%" in later
    earlier = text(client.get("/rollouts?at=2000-01-01T00:00:00").text)
    assert "nothing served" in earlier


def test_monitoring_plots_drift_per_feature_and_lists_alerts_and_checks(
    client: TestClient,
) -> None:
    html = client.get("/monitoring?model=churn").text
    assert html.count("<polyline") >= 4  # two features, accuracy, label coverage
    assert ">usage_drop</text>" in html and ">label coverage</text>" in html
    assert "watched feature drifted: usage_drop" in text(html)
    assert re.findall(r'<td><a href="/monitoring/checks/(\d+)">', html) == ["3", "2", "1"]


def test_what_is_audited_after_a_page_was_read_shows_on_the_next_request(
    client: TestClient, session: StackSession
) -> None:
    """The pages fold the append-only audit log in as it grows: nothing is read twice and
    nothing new is missed."""
    before = re.findall(r'<article class="version" id="v(\d+)">', client.get("/models/churn").text)
    ref = new_version(session, "ana")
    after = client.get("/models/churn?per=100").text
    number = ref.partition("@")[2]
    assert number not in before
    assert f'<article class="version" id="v{number}">' in after
    assert re.search(rf"{re.escape(ref)}\s*<span class=\"state state-approved\">", after)
