"""What a new user found wrong in the console, each held by the page's HTTP answer."""

from __future__ import annotations

import html
import json
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from starlette.testclient import TestClient

from stack.cli import main
from stack.contract.states import LifecycleState
from stack.governance.service import Governance
from stack.session import StackSession
from stack.spine.lineage import NodeKind, NodeRef
from tests.ui.conftest import csrf_token, new_version


def test_a_lineage_node_link_escapes_its_key(session: StackSession, client: TestClient) -> None:
    session.spine.link(
        NodeRef(NodeKind.MODEL_VERSION, "churn@1"),
        NodeRef(NodeKind.ENDPOINT_REVISION, "churn#3"),
        "deployed_as",
    )
    page = client.get("/lineage?node=model_version:churn@1")
    assert page.status_code == 200
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page.text)]
    assert "/lineage?node=endpoint_revision%3Achurn%233" in hrefs
    followed = client.get("/lineage?node=endpoint_revision%3Achurn%233")
    assert followed.status_code == 200
    assert "endpoint_revision:churn#3" in html.unescape(followed.text)


def test_the_audit_page_of_a_model_selects_what_the_cli_selects(
    stack_dir: Path, client: TestClient
) -> None:
    cli = CliRunner().invoke(
        main.cli,
        ["--stack", str(stack_dir / "stack.yaml"), "audit", "log", "--model", "churn", "--jsonl"],
    )
    assert cli.exit_code == 0, cli.output
    expected = [json.loads(line) for line in cli.output.splitlines()]
    exported = [
        json.loads(line) for line in client.get("/audit/export?model=churn").text.splitlines()
    ]
    assert exported == expected
    assert any(e["subject"] == "endpoint:churn" for e in exported)
    page = client.get("/audit?model=churn&per=500").text
    shown = [int(seq) for seq in re.findall(r"<tr><td>(\d+)</td>", page)]
    assert shown == [e["seq"] for e in reversed(expected)]


def _inventory_row(client: TestClient, model: str) -> str:
    rows = re.findall(r"<tr>\s*<td><a href=\"/models/[^\"]+\">.*?</tr>", client.get("/").text, re.S)
    found: list[str] = [row for row in rows if f'href="/models/{model}"' in row]
    assert len(found) == 1, f"no inventory row for {model}"
    return found[0]


def _waiting_in_inventory(client: TestClient, model: str) -> int:
    found = re.search(
        rf"/inbox\?model={model}&amp;all=1\">(\d+)</a>", _inventory_row(client, model)
    )
    return int(found.group(1)) if found else 0


def _waiting_in_inbox(client: TestClient, model: str) -> int:
    return client.get(f"/inbox?model={model}&all=1").text.count('<article class="waiting"')


def test_the_inventorys_waiting_count_is_what_the_inbox_lists(
    session: StackSession, client: TestClient
) -> None:
    assert _waiting_in_inventory(client, "churn") == _waiting_in_inbox(client, "churn") == 1
    # known to the spine only: the inbox offers no approval for it, and nothing waits
    assert _waiting_in_inventory(client, "fraud") == _waiting_in_inbox(client, "fraud") == 0
    Governance(session).approve("churn@2", LifecycleState.SERVING, reason="ok", as_actor="lead2")
    # the approval is met: churn@2 waits for its promotion, for nobody's approval
    assert _waiting_in_inventory(client, "churn") == _waiting_in_inbox(client, "churn") == 0


def test_the_inventory_shows_the_serving_versions_verdict(
    session: StackSession, client: TestClient
) -> None:
    now = datetime.now(UTC)
    window = (now - timedelta(hours=1), now)
    session.spine.record_check(
        model="churn", version="churn@2", endpoint="churn", window=window, status="ok", result={}
    )
    # churn@1 serves: its own last verdict, not the newer check of churn@2
    assert "verdict-breach" in _inventory_row(client, "churn")
    # alpha@1 serves and was never checked; a retired version's breach is not its verdict
    session.spine.audit(
        actor="bob", action="state.changed", subject="alpha@1", payload={"to": "serving"}
    )
    session.spine.record_check(
        model="alpha",
        version="alpha@0",
        endpoint="alpha",
        window=window,
        status="breach",
        result={},
    )
    row = _inventory_row(client, "alpha")
    assert "not checked yet" in row and "verdict-breach" not in row


def test_a_refusal_banner_names_its_audit_entry(session: StackSession, client: TestClient) -> None:
    ref = new_version(session, "lead")
    answer = client.post(
        "/inbox/approve",
        data={"csrf": csrf_token(client), "ref": ref, "target": "serving"},
        follow_redirects=True,
    )
    [refused] = session.spine.audit_entries(subject=ref, action="approval.refused")
    banner = html.unescape(re.sub(r"<[^>]+>", "", answer.text))
    assert f"Refused: lead registered {ref} and cannot approve it" in banner
    assert f"(audit entry #{refused.seq})" in banner


def test_the_findings_column_says_how_many_more_breaches_the_check_has(
    session: StackSession, client: TestClient
) -> None:
    now = datetime.now(UTC)
    breaches = [f"watched feature drifted: f{i}" for i in range(5)]
    check = session.spine.record_check(
        model="churn",
        version="churn@1",
        endpoint="churn",
        window=(now - timedelta(minutes=30), now),
        status="breach",
        result={"breaches": breaches},
    )
    page = html.unescape(client.get("/monitoring?model=churn").text)
    assert all(b in page for b in breaches[:3])
    assert f'<a href="/monitoring/checks/{check}">+2 more</a>' in page
    assert all(b in client.get(f"/monitoring/checks/{check}").text for b in breaches)


def test_a_distance_above_its_threshold_plots_above_the_line_captioned_as_drift(
    session: StackSession, client: TestClient
) -> None:
    now = datetime.now(UTC)
    for hours, score in ((2, 0.3), (1, 1.7)):  # a normed Wasserstein distance may pass 1
        session.spine.record_check(
            model="beta",
            version="beta@1",
            endpoint="beta",
            window=(now - timedelta(hours=hours + 1), now - timedelta(hours=hours)),
            status="breach",
            result={
                "drift": {
                    "columns": [
                        {
                            "column": "income",
                            "method": "wasserstein",
                            "score": score,
                            "threshold": 0.1,
                            "drifted": True,
                        }
                    ]
                }
            },
        )
    page = client.get("/monitoring?model=beta").text
    assert "distance: above the dashed line is drift" in page
    assert "p-value" not in page
    [limit] = re.findall(r'<line [^>]*y1="([\d.]+)"[^>]*class="threshold"', page)
    heights = {
        float(score): float(cy)
        for cy, score in re.findall(r'cy="([\d.]+)"[^>]*><title>income ([\d.]+) at', page)
    }
    assert heights[0.3] < float(limit) and heights[1.7] < heights[0.3]  # SVG y grows down
    assert ">1.7</text>" in page  # the axis reaches the largest score: nothing is clipped


def test_bad_inventory_filters_pages_and_card_versions_are_named(client: TestClient) -> None:
    for query, name in (
        ("state=bogus", "state"),
        ("risk=extreme", "risk"),
        ("verdict=x", "verdict"),
    ):
        answer = client.get(f"/?{query}")
        assert answer.status_code == 400 and f"{name} must be one of" in answer.text
    assert client.get("/?state=serving").status_code == 200
    past = client.get("/?page=999")
    assert past.status_code == 404 and "There is no page 999: the last is page 1." in past.text
    assert client.get("/audit?page=999").status_code == 404
    first = client.get("/audit?page=0")
    assert first.status_code == 400 and "page must be at least 1" in first.text
    card = client.get("/models/churn/cards/9")
    assert card.status_code == 404 and "There is no version churn@9." in card.text


def test_rollouts_show_the_shadow_phase_as_rollout_history_does(
    session: StackSession, client: TestClient
) -> None:
    session.spine.audit(
        actor="ana",
        action="endpoint.routed",
        subject="endpoint:beta",
        reason="shadow",
        payload={"weights": {"beta@1": 1.0}, "shadows": ["beta@2"], "sticky": False},
    )
    page = html.unescape(client.get("/rollouts?model=beta").text)
    assert "beta@1 100% (shadow: beta@2) — shadow" in page
    now = (datetime.now(UTC) + timedelta(minutes=1)).isoformat(timespec="seconds")[:19]
    then = html.unescape(client.get(f"/rollouts?model=beta&at={now}").text)
    assert "beta@1 100% (shadow: beta@2)." in then


def test_rollouts_show_an_undeployed_endpoint_served_nothing_from_its_stop(
    session: StackSession, client: TestClient
) -> None:
    session.spine.audit(
        actor="ana",
        action="endpoint.routed",
        subject="endpoint:gamma",
        reason="direct",
        payload={"weights": {"gamma@1": 1.0}, "shadows": [], "sticky": False},
    )
    session.spine.audit(
        actor="ana", action="endpoint.undeployed", subject="endpoint:gamma", reason=""
    )
    page = html.unescape(client.get("/rollouts?model=gamma").text)
    assert "endpoint stopped: undeployed by ana" in page
    now = (datetime.now(UTC) + timedelta(minutes=1)).isoformat(timespec="seconds")[:19]
    then = html.unescape(client.get(f"/rollouts?model=gamma&at={now}").text)
    assert "nothing served" in then and "gamma@1 100%." not in then


def test_mlstack_ui_on_a_taken_port_names_it_and_prints_no_url(stack_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main.cli, ["ui", "--stack", str(stack_dir / "stack.yaml"), "--port", str(port)]
        )
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "http://" not in result.output


def test_lineage_as_of_an_early_year_shows_nothing_recorded_since(client: TestClient) -> None:
    today = html.unescape(client.get("/lineage?node=model_version:churn@1").text)
    assert "report:monitoring/" in today
    for year in ("0001", "0999", "1000"):
        page = client.get(f"/lineage?node=model_version:churn@1&at={year}-06-01T00:00")
        assert page.status_code == 200, year
        assert "report:monitoring/" not in html.unescape(page.text), year


def test_the_time_pickers_say_they_read_utc_and_show_the_moment_chosen(
    client: TestClient,
) -> None:
    for page, params, label in (
        ("/lineage", {"model": "churn"}, "as of (UTC)"),
        ("/rollouts", {}, "what served at (UTC)"),
    ):
        chosen = client.get(page, params={**params, "at": "2026-01-02T03:04:05+02:00"})
        assert chosen.status_code == 200, page
        text = html.unescape(chosen.text)
        assert label in text, page
        assert "2026-01-02 01:04:05 UTC" in text, page


def test_an_error_page_links_back_to_the_console_page_and_names_the_user(
    client: TestClient,
) -> None:
    came_from = "http://127.0.0.1:8765/audit?actor=ana"
    page = client.get("/models/nosuch", headers={"Referer": came_from})
    assert page.status_code == 404
    assert 'href="/audit?actor=ana">Back to the page you came from' in page.text
    assert '<span class="who"' in page.text and "lead" in page.text
    elsewhere = client.get("/models/nosuch", headers={"Referer": "http://evil.example/x"})
    assert "evil.example" not in elsewhere.text
    assert "Back to the page you came from" not in elsewhere.text


def test_an_empty_filter_result_says_so_with_a_way_back_and_order_is_checked(
    client: TestClient,
) -> None:
    page = html.unescape(client.get("/?q=no-such-model-anywhere").text)
    assert "No model matches these filters." in page and "Run a recipe" not in page
    assert '<a href="/">Clear the filters</a>' in page
    bad = client.get("/?sort=model&order=sideways")
    assert bad.status_code == 400
    assert "order must be one of asc, desc" in html.unescape(bad.text)
    assert client.get("/?sort=model&order=desc").status_code == 200


def test_an_export_is_named_by_its_filters(client: TestClient) -> None:
    named = client.get("/audit/export?model=churn&action=state.changed")
    assert named.headers["content-disposition"] == (
        'attachment; filename="audit-churn-state.changed.jsonl"'
    )
    plain = client.get("/audit/export")
    assert plain.headers["content-disposition"] == 'attachment; filename="audit.jsonl"'


def test_the_rollouts_page_shows_a_rollout_in_progress_until_it_ends(
    session: StackSession, client: TestClient
) -> None:
    spine = session.spine
    plan = {"strategy": "canary", "steps": [0.1, 0.5, 1.0], "bake_seconds": 3600.0}
    spine.audit(
        actor="ana",
        action="endpoint.routed",
        subject="endpoint:fraud-api",
        payload={"weights": {"fraud@1": 1.0}, "shadows": []},
    )
    spine.audit(
        actor="ana",
        action="rollout.started",
        subject="endpoint:fraud-api",
        payload={
            "strategy": "canary",
            "champion": "fraud@1",
            "challenger": "fraud@2",
            "plan": plan,
        },
    )
    spine.audit(
        actor="ana",
        action="endpoint.routed",
        subject="endpoint:fraud-api",
        payload={"weights": {"fraud@1": 0.9, "fraud@2": 0.1}, "shadows": []},
    )
    page = html.unescape(re.sub(r"\s+", " ", client.get("/rollouts?model=fraud").text))
    assert "Rollout in progress (canary, since" in page
    assert "fraud@1 → fraud@2 at 10%, step 1 of 3;" in page
    assert "s of bake time left at this step" in page
    spine.audit(
        actor="ana",
        action="rollout.completed",
        subject="endpoint:fraud-api",
        payload={"version": "fraud@2"},
    )
    assert "Rollout in progress" not in client.get("/rollouts?model=fraud").text


def test_a_shadow_period_has_its_own_colour_in_the_timeline(
    session: StackSession, client: TestClient
) -> None:
    from stack.ui.plots import SHADOW_COLOR

    session.spine.audit(
        actor="ana",
        action="endpoint.routed",
        subject="endpoint:shade-api",
        payload={"weights": {"shade@1": 1.0}, "shadows": ["shade@2"]},
    )
    page = client.get("/rollouts?model=shade").text
    strip = re.search(r'<rect class="shadow"[^>]*fill="([^"]+)"><title>([^<]+)</title>', page)
    assert strip is not None, "no shadow period drawn"
    assert strip.group(1) == SHADOW_COLOR
    assert html.unescape(strip.group(2)).startswith("shadow: shade@2 from ")
    colours = set(re.findall(r'<rect x="[^"]+" y="4\.0"[^>]*fill="([^"]+)"', page))
    assert colours and SHADOW_COLOR not in colours


def test_a_lineage_node_name_is_shown_whole_up_to_36_characters_with_a_tooltip(
    session: StackSession, client: TestClient
) -> None:
    long_name = "feature_view:customer_activity_stats@v12"  # 42 characters
    session.spine.link(
        NodeRef(NodeKind.FEATURE_VIEW, "customer_activity@v3"),  # 34 with its kind
        NodeRef(NodeKind.MODEL_VERSION, "churn@1"),
        "fed",
    )
    session.spine.link(NodeRef.parse(long_name), NodeRef(NodeKind.MODEL_VERSION, "churn@1"), "fed")
    page = html.unescape(client.get("/lineage?node=model_version:churn@1").text)
    labels = re.findall(r'class="label">([^<]+)</text><title>([^<]+)</title>', page)
    shown = dict((whole, short) for short, whole in labels)
    assert shown["feature_view:customer_activity@v3"] == "feature_view:customer_activity@v3"
    assert shown[long_name].startswith("feature_view:cust") and shown[long_name].endswith(
        "activity_stats@v12"
    )


def test_a_drift_plot_of_one_check_names_its_method_and_stands_off_the_axis(
    session: StackSession, client: TestClient
) -> None:
    now = datetime.now(UTC)
    column = {"column": "amount", "score": 0.4, "threshold": 0.1, "method": "wasserstein"}
    session.spine.record_check(
        model="solo",
        version="solo@1",
        endpoint="solo",
        window=(now - timedelta(hours=1), now),
        status="breach",
        result={"drift": {"columns": [{**column, "drifted": True}]}},
    )
    page = html.unescape(client.get("/monitoring?model=solo").text)
    assert "wasserstein distance</text>" in page
    axis = re.search(
        r'<line x1="([\d.]+)" y1="[\d.]+" x2="[\d.]+" y2="[\d.]+" class="axis"/>', page
    )
    points = re.findall(r'<circle cx="([\d.]+)"[^>]*><title>amount ', page)
    assert axis is not None and points
    assert all(float(x) > float(axis.group(1)) + 50 for x in points)
