"""What a new user found wrong in the console, each held by the page's HTTP answer."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from click.testing import CliRunner
from starlette.testclient import TestClient

from stack.cli import main
from stack.session import StackSession
from stack.spine.lineage import NodeKind, NodeRef


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
