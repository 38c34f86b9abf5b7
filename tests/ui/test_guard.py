"""What every request passes and every answer carries: the Host rule (DNS rebinding), the
Origin rule on forms, the spine file still being the one opened, and security headers."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from stack.governance.cards import card_paths
from stack.session import StackSession
from stack.ui.app import create_app
from stack.ui.guard import host_allowed
from tests.ui.conftest import CONSOLE, PORT, csrf_token, new_version, write_stack


def written(session: StackSession) -> int:
    return len(session.spine.audit_entries())


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8765", True),
        ("localhost:8765", True),
        ("[::1]:8765", True),
        ("LOCALHOST:8765", True),
        ("127.0.0.1:9999", False),  # another port: another service's pages
        ("127.0.0.1", False),  # port 80
        ("evil.example:8765", False),  # a rebound name
        ("127.0.0.1.evil.example:8765", False),
        ("[::1]x:8765", False),
        ("", False),
    ],
)
def test_the_host_must_name_the_console_on_its_port(host: str, allowed: bool) -> None:
    assert host_allowed(host, PORT, ()) is allowed


def test_a_rebound_host_is_refused_before_any_page(session: StackSession) -> None:
    with TestClient(create_app(session, port=PORT), base_url="http://evil.example:8765") as tc:
        answer = tc.get("/inbox")
    assert answer.status_code == 421
    assert "not as 'evil.example:8765'" in unescape(answer.text)
    assert "identity.proxy.hosts" in answer.text
    assert 'name="csrf-token"' not in answer.text  # no form token for the rebound page


def test_behind_a_proxy_only_the_hosts_it_lists_are_answered(tmp_path: Path) -> None:
    write_stack(tmp_path, "  proxy: {trust: true, hosts: [console.example.com]}\n")
    with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as opened:
        app = create_app(opened, port=PORT)
        user = {"X-Forwarded-User": "lead"}
        with TestClient(app, base_url="https://console.example.com") as listed:
            assert listed.get("/audit", headers=user).status_code == 200
        with TestClient(app, base_url="https://other.example.com") as other:
            assert other.get("/audit", headers=user).status_code == 421
        # a proxy that rewrites Host to the console's own: its public origin may post
        with TestClient(app, base_url=CONSOLE) as rewritten:
            origin = {**user, "Origin": "https://console.example.com"}
            answer = rewritten.post("/inbox/reject", data={"ref": "churn@1"}, headers=origin)
            assert answer.status_code == 403 and "security token" in answer.text


def test_a_form_from_another_origin_or_none_is_refused_and_writes_nothing(
    client: TestClient, session: StackSession
) -> None:
    ref = new_version(session, "ana")
    token = csrf_token(client)
    before = written(session)
    form = {"csrf": token, "ref": ref, "reason": "from elsewhere"}
    for headers, says in (
        ({"Origin": "http://evil.example:8765"}, "sent from 'http://evil.example:8765'"),
        ({"Origin": "null"}, "sent from 'null'"),  # a sandboxed report's scripts
        ({"Origin": "", "Referer": "http://127.0.0.1:9999/x"}, "sent from"),
        ({"Origin": ""}, "no Origin or Referer"),
    ):
        answer = client.post("/inbox/reject", data=form, headers=headers)
        assert answer.status_code == 403, headers
        assert says in unescape(answer.text) and "Nothing was written" in answer.text
    assert written(session) == before
    # the console's own page as Referer (a browser that sends no Origin) is accepted
    answer = client.post(
        "/inbox/reject",
        data=form,
        headers={"Origin": "", "Referer": f"{CONSOLE}/inbox"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert written(session) > before


@pytest.mark.parametrize("page", ["/", "/inbox", "/no/such/page", "/static/console.css"])
def test_every_answer_carries_the_security_headers(client: TestClient, page: str) -> None:
    headers = client.get(page).headers
    policy = headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self';" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"


def test_the_console_pages_have_no_inline_script_or_handler(client: TestClient) -> None:
    import re

    for page in ("/", "/models/churn", "/inbox", "/monitoring?model=churn", "/lineage?model=churn"):
        html = client.get(page).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page
        assert not re.search(r"\son[a-z]+\s*=", html), page


def test_reports_and_model_cards_run_sandboxed(
    client: TestClient, session: StackSession, tmp_path: Path
) -> None:
    script = "<html><script>document.title = document.cookie</script></html>"
    card = card_paths(session, "churn@1").html
    card.parent.mkdir(parents=True, exist_ok=True)
    card.write_text(script)
    report = tmp_path / "report.html"
    report.write_text(script)
    now = datetime.now(UTC)
    check = session.spine.record_check(
        model="churn",
        version="churn@1",
        endpoint="churn",
        window=(now - timedelta(hours=1), now),
        status="ok",
        result={},
        report_uri=report.as_uri(),
    )
    for page in ("/models/churn/cards/1", f"/monitoring/checks/{check}/report"):
        answer = client.get(page)
        assert answer.status_code == 200 and "document.cookie" in answer.text, page
        assert answer.headers["content-security-policy"].startswith("sandbox allow-scripts")
        assert "allow-same-origin" not in answer.headers["content-security-policy"]


@pytest.fixture
def own_spine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("MLSTACK_USER", "lead")
    write_stack(tmp_path)
    with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as opened:
        opened.spine.audit(
            actor="bob", action="model.registered", subject="fraud@1", payload={"state": "x"}
        )
        with TestClient(create_app(opened, port=PORT), base_url=CONSOLE) as tc:
            yield tc


def test_a_spine_file_replaced_while_the_console_runs_is_a_503_naming_it(
    own_spine: TestClient, tmp_path: Path
) -> None:
    assert own_spine.get("/audit").status_code == 200
    spine = tmp_path / "spine.db"
    shutil.copy(spine, tmp_path / "copy.db")
    (tmp_path / "copy.db").replace(spine)  # same content, another file
    answer = own_spine.get("/audit")
    assert answer.status_code == 503
    assert f"The spine file {spine} was deleted or replaced" in answer.text
    spine.unlink()
    assert own_spine.get("/").status_code == 503


def test_a_write_while_another_holds_the_spine_is_a_503_spine_is_busy(
    client: TestClient, session: StackSession, stack_dir: Path
) -> None:
    ref = new_version(session, "ana")
    token = csrf_token(client)
    before = written(session)
    holder = sqlite3.connect(stack_dir / "spine.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write, holding the lock
    try:
        answer = client.post("/inbox/reject", data={"csrf": token, "ref": ref, "reason": "no"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert answer.status_code == 503
    assert "The spine is busy (another write holds it); try again." in answer.text
    assert written(session) == before
