"""Who the console says is signed in: the local user on loopback by default, the proxy's
user only when the stack file trusts its headers, and the stack file's field checked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from stack.config.stack_file import read_stack_file
from stack.errors import StackConfigError
from stack.session import StackSession
from stack.ui.app import create_app
from tests.ui.conftest import write_stack

PROXY = """
  proxy: {trust: true, hosts: [console.example.com]}
"""


def who(client: TestClient, **headers: str) -> str:
    import re

    html = client.get("/audit", headers=headers).text
    found = re.search(r'<span class="who"[^>]*>\s*(.*?)\s*</span>', html, re.S)
    return found.group(1) if found else html


def test_the_local_user_on_loopback_and_proxy_headers_ignored_by_default(
    client: TestClient,
) -> None:
    assert who(client) == "lead · ml-leads"
    assert who(client, **{"X-Forwarded-User": "lead2"}) == "lead · ml-leads"


def test_a_request_from_another_machine_is_refused_without_a_trusted_proxy(
    session: StackSession,
) -> None:
    with TestClient(
        create_app(session), base_url="http://127.0.0.1", client=("10.1.2.3", 5000)
    ) as remote:
        answer = remote.get("/")
    assert answer.status_code == 403
    assert "answers this machine only (the request came from 10.1.2.3)" in answer.text


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[TestClient]:
    write_stack(tmp_path, PROXY)
    with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as session:
        yield TestClient(
            create_app(session), base_url="https://console.example.com", client=("10.1.2.3", 5000)
        )


def test_behind_a_trusted_proxy_the_user_comes_from_its_headers(proxied: TestClient) -> None:
    with proxied:
        # groups that decide approvals are the stack file's; the proxy's are shown beside
        assert who(proxied, **{"X-Forwarded-User": "lead2", "X-Forwarded-Groups": "a,b"}) == (
            "lead2 · ml-leads"
        )
        assert who(proxied, **{"X-Forwarded-Email": "ana@example.com"}) == "ana@example.com"
        answer = proxied.get("/")
        assert answer.status_code == 403 and "the proxy sent no X-Forwarded-User" in answer.text


def test_a_bad_proxy_setting_names_its_field(tmp_path: Path) -> None:
    write_stack(tmp_path, "  proxy: {trust: perhaps}\n")
    with pytest.raises(StackConfigError, match=r"identity\.proxy\.trust"):
        read_stack_file(tmp_path / "stack.yaml")
    write_stack(tmp_path, "  proxy: {trust: true, user_heder: X-User}\n")
    with pytest.raises(StackConfigError, match=r"identity\.proxy\.user_heder"):
        read_stack_file(tmp_path / "stack.yaml")
