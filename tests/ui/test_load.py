"""The console under a burst of requests, on a real uvicorn over 127.0.0.1 with a small
spine connection pool: exports stream in short reads and are bounded (the rest answered
503 with Retry-After), other pages still answer, and a pool that has no connection free is
a 503 page, never a 500. No timing is asserted: only what each answer is."""

from __future__ import annotations

import functools
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from starlette.testclient import TestClient

from stack.session import StackSession
from stack.ui.app import create_app, server_options
from tests.ui.conftest import CONSOLE, PORT, write_stack

ENTRIES = 1_200  # three of the export's pages


def small_pool_session(folder: Path, monkeypatch: pytest.MonkeyPatch, **pool: Any) -> StackSession:
    """A session whose spine engine has the given pool settings (pool_size...)."""
    write_stack(folder)
    import stack.spine.engine as engine_module

    with monkeypatch.context() as patch:
        patch.setattr(
            engine_module, "create_engine", functools.partial(sqlalchemy.create_engine, **pool)
        )
        session = StackSession.open(folder / "stack.yaml", base_dir=folder)
        session.spine  # noqa: B018 -- built now, with the pool above
    return session


@pytest.fixture
def busy_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackSession]:
    monkeypatch.setenv("MLSTACK_USER", "lead")
    monkeypatch.delenv("MLSTACK_TOKEN", raising=False)
    session = small_pool_session(tmp_path, monkeypatch, pool_size=2, max_overflow=1)
    for n in range(ENTRIES):
        session.spine.audit(actor="ana", action="note.added", subject=f"churn@{n % 7}", payload={})
    yield session
    session.close()


def _serve(app: Any, **options: Any) -> tuple[Any, threading.Thread, int]:
    """`app` on a real uvicorn on 127.0.0.1 (a port the system chose), started."""
    import uvicorn

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(512)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    return server, thread, listening.getsockname()[1]


def _get(port: int, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        connection.request("GET", path, headers={"Host": f"127.0.0.1:{port}", **headers})
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def test_a_burst_of_exports_is_bounded_complete_and_leaves_pages_answering(
    busy_stack: StackSession,
) -> None:
    last_seq = busy_stack.spine.audit_entries()[-1].seq
    server, thread, port = _serve(create_app(busy_stack, port=0))
    try:
        with ThreadPoolExecutor(max_workers=64) as pool:
            exports = [pool.submit(_get, port, "/audit/export") for _ in range(60)]
            pages = [pool.submit(_get, port, path) for path in ("/audit", "/", "/rollouts")]
            answers = [e.result() for e in exports]
            others = [p.result() for p in pages]
    finally:
        server.should_exit = True
        thread.join(60)
    codes = {status for status, _, _ in answers + others}
    assert codes <= {200, 503}, codes
    complete = [body for status, _, body in answers if status == 200]
    assert complete, "no export was served"
    for body in complete:
        lines = body.decode().splitlines()
        assert len(lines) == ENTRIES
        assert json.loads(lines[-1])["seq"] == last_seq
    for status, headers, _ in answers + others:
        if status == 503:
            assert headers.get("retry-after")
    assert [status for status, _, _ in others] == [200, 200, 200]


def test_no_free_spine_connection_is_a_503_page_not_a_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSTACK_USER", "lead")
    session = small_pool_session(
        tmp_path, monkeypatch, pool_size=1, max_overflow=0, pool_timeout=0.1
    )
    try:
        session.spine.audit(actor="ana", action="note.added", subject="churn@1", payload={})
        app = create_app(session, port=PORT)
        with (
            TestClient(app, base_url=CONSOLE, raise_server_exceptions=False) as client,
            session.spine.engine.connect(),  # the only connection, held
        ):
            for path in ("/", "/audit", "/audit/export", "/rollouts", "/inbox"):
                page = client.get(path)
                assert page.status_code == 503, path
                assert page.headers["Retry-After"]
                assert "Console is busy" in page.text
    finally:
        session.close()


@pytest.mark.parametrize(
    "proxy",
    ["", "\n  proxy: {trust: true, addresses: ['10.9.9.9'], user_header: X-User}"],
)
def test_a_forwarded_for_header_from_a_client_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proxy: str
) -> None:
    """As `mlstack ui` serves it: X-Forwarded-For is believed from the trusted proxy's
    addresses only, so a local client naming 8.8.8.8 is still the local client."""
    monkeypatch.setenv("MLSTACK_USER", "lead")
    write_stack(tmp_path, proxy)
    with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as session:
        options = server_options(session.stack.identity)
        server, thread, port = _serve(create_app(session, port=0), **options)
        try:
            status, _, body = _get(
                port, "/audit", **{"X-Forwarded-For": "8.8.8.8", "X-User": "lead"}
            )
        finally:
            server.should_exit = True
            thread.join(60)
    assert status == 200, body.decode()[-500:]
    assert b"8.8.8.8" not in body
