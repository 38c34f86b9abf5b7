"""StackSession: roles built on demand, events recorded in the spine, missing roles explained."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.contract.roles import Role
from stack.errors import StackError, Vetoed
from stack.hooks import Veto, hookimpl
from stack.plugins import AdapterManifest, RoleBinding
from stack.session import StackSession
from tests.support.sessions import memory_session

MEMORY = AdapterManifest(
    name="memory",
    package="mlstack-memory",
    roles={
        Role.REGISTRY: RoleBinding("tests.support.memory:MemoryRegistry"),
        Role.SERVER: RoleBinding("tests.support.memory:MemoryRegistry"),  # wrong on purpose
    },
)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[StackSession]:
    with memory_session(tmp_path, MEMORY, "registry: memory\nserver: memory\n") as opened:
        yield opened


def test_role_is_built_once_and_reused(session: StackSession) -> None:
    assert session.registry is session.registry
    assert session.registry.register("m", "file:///m").version == 1


def test_missing_role_says_how_to_add_it(session: StackSession) -> None:
    with pytest.raises(StackError, match=r"stack 't' has no tracker; add `tracker: \{adapter"):
        session.role(Role.TRACKER)


def test_adapter_that_does_not_implement_its_role_is_refused(session: StackSession) -> None:
    with pytest.raises(StackError, match="does not implement the server role"):
        session.role(Role.SERVER)


def test_home_is_relative_to_the_base_folder(session: StackSession, tmp_path: Path) -> None:
    assert session.home == tmp_path / ".state"


def test_emitted_events_are_recorded(session: StackSession) -> None:
    session.emit("on_run_started", subject="run-1", run_id="run-1", recipe="q")
    [event] = session.spine.events(subject="run-1")
    assert event.name == "on_run_started"
    assert event.payload == {"run_id": "run-1", "recipe": "q"}


def test_vetoed_event_is_recorded_with_its_reasons(session: StackSession) -> None:
    class Freeze:
        @hookimpl
        def on_promotion_requested(self, target_state: str) -> object:
            return Veto("release freeze")

    session.hooks.register(Freeze())
    with pytest.raises(Vetoed, match="release freeze"):
        session.emit(
            "on_promotion_requested",
            subject="m@1",
            version="m@1",
            target_state="serving",
            actor="alice",
        )
    [event] = session.spine.events(subject="m@1")
    assert event.payload["vetoed"] == ["release freeze"]


def test_a_spine_that_cannot_be_opened_is_named_not_a_traceback(tmp_path: Path) -> None:
    """Every command opens the spine through the session: a database that is not there is a
    StackError naming the stack file's field, not SQLAlchemy's OperationalError."""
    stack = tmp_path / "stack.yaml"
    stack.write_text("name: t\nspine: {url: 'sqlite:////proc/no-such-folder/spine.db'}\n")
    with StackSession.open(stack) as session, pytest.raises(StackError) as caught:
        session.spine  # noqa: B018 (opening is the point)
    assert str(caught.value).startswith(f"{stack}: spine.url: cannot open the spine at sqlite:")
