"""StackSession: roles built on demand, events recorded in the spine, missing roles explained."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.config.recipe_file import Recipe, load_recipe
from stack.contract.roles import Role
from stack.errors import StackError, Vetoed
from stack.hooks import Veto, hookimpl
from stack.plugins import AdapterManifest, RoleBinding
from stack.session import RECIPE_TAG, StackSession
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


def _recipe(folder: Path, model: str, hooks: str = "") -> Recipe:
    """A recipe of `model` in `folder` (its hooks module, when given, beside it)."""
    folder.mkdir(parents=True)
    (folder / "steps.py").write_text("def noop():\n    return None\n")
    listed = ""
    if hooks:
        (folder / f"{hooks}.py").write_text(
            "from stack.hooks import Veto, hookimpl\n\n\n"
            "@hookimpl\n"
            "def on_promotion_requested(target_state):\n"
            "    return Veto('release freeze')\n"
        )
        listed = f"hooks: [{hooks}]\n"
    steps = "steps:\n  - {name: noop, run: 'steps:noop'}\n"
    (folder / "recipe.yaml").write_text(f"name: r\nmodel: {{name: {model}}}\n{listed}{steps}")
    return load_recipe(folder)


def test_a_versions_recipe_is_read_once_while_its_file_is_unchanged(
    session: StackSession, tmp_path: Path
) -> None:
    recipe = _recipe(tmp_path / "built", "m")
    version = session.registry.register("m", "file:///m", tags={RECIPE_TAG: str(recipe.path)})
    first = session.recipe_for(version)
    assert first is not None and first.path == recipe.path
    assert session.recipe_for(version) is first  # not read again
    with recipe.path.open("a") as edited:
        edited.write("# edited\n")
    again = session.recipe_for(version)
    assert again is not None and again is not first  # the file changed: read again


def test_the_sessions_recipe_applies_to_its_model_only(
    session: StackSession, tmp_path: Path
) -> None:
    """The recipe a command is given is the policy of its model's versions; another model's
    version is not decided by it (nor silently by nothing)."""
    owned = session.with_recipe(_recipe(tmp_path / "given", "m"))
    mine = session.registry.register("m", "file:///m")
    theirs = session.registry.register("other", "file:///o")
    assert owned.recipe_for(mine) is owned.recipe
    with pytest.raises(StackError, match=r"did not build other@1 and declares model 'm'"):
        owned.recipe_for(theirs)
    assert owned.recipe_for(theirs, required=False) is None
    assert session.recipe is None and session.recipe_for(mine) is None


def test_a_recipe_not_on_disk_is_not_decided(session: StackSession, tmp_path: Path) -> None:
    gone = str(tmp_path / "moved" / "recipe.yaml")
    version = session.registry.register("m", "file:///m", tags={RECIPE_TAG: gone})
    with pytest.raises(StackError, match="which is not on disk"):
        session.recipe_for(version)
    assert session.recipe_for(version, required=False) is None


def test_a_recipe_owned_by_a_view_has_its_hooks_asked_and_the_view_closes_nothing(
    session: StackSession, tmp_path: Path
) -> None:
    recipe = _recipe(tmp_path / "frozen", "m", hooks="freeze_hooks_b")
    view = session.with_recipe(recipe)
    assert view.recipe is recipe and session.recipe is None
    session.with_recipe(recipe)  # registered once: the veto is not doubled
    version = session.registry.register("m", "file:///m")
    with pytest.raises(Vetoed) as vetoed:
        session.emit(
            "on_promotion_requested",
            subject=version.ref,
            version=version,
            target_state="serving",
            actor="alice",
        )
    assert vetoed.value.reasons == ["release freeze"]
    view.close()
    assert session.spine.events(subject=version.ref)  # the session's spine is still open


def test_step_code_that_still_passes_its_recipe_works_and_is_told_to_stop(
    session: StackSession, tmp_path: Path
) -> None:
    """`Governance(ctx.session, ctx.recipe)` (and the controller and loop alike) was the step
    API before sessions owned their recipe: such code keeps working, held to the recipe it
    passes, with a DeprecationWarning saying what to write."""
    from stack.governance.service import Governance
    from stack.monitoring.loop import MonitoringLoop
    from stack.rollout.controller import RolloutController

    recipe = _recipe(tmp_path / "passed", "m", hooks="freeze_hooks_c")
    owned = session.with_recipe(recipe)
    with pytest.warns(DeprecationWarning, match=r"call Governance\(session\)"):
        same = Governance(owned, recipe)
    assert same.session is owned  # its own recipe: the session itself
    with pytest.warns(DeprecationWarning, match=r"RolloutController\(session\)"):
        controller = RolloutController(session, recipe)
    assert controller.session.recipe is recipe  # another: a view owning it
    with pytest.warns(DeprecationWarning, match=r"MonitoringLoop\(session\)"):
        assert MonitoringLoop(session, recipe=recipe).session.recipe is recipe
    version = session.registry.register("m", "file:///m")
    assert controller.session.recipe_for(version) is recipe
    assert Governance(session).session is session  # no recipe passed: no warning, no view


def test_a_registry_view_sees_its_own_registry_and_shares_the_rest(
    session: StackSession, tmp_path: Path
) -> None:
    """The prompt store's view (`with_registry`): its registry and version kind are its own
    through every path a caller takes (the property, `role`, `opened`, a recipe view of it);
    spine and hooks are the session's, and closing the view closes nothing."""
    from tests.support.memory import MemoryRegistry

    prompts = MemoryRegistry(None, None)
    view = session.with_registry(prompts, "prompt_version")
    assert view.registry is prompts and view.role(Role.REGISTRY) is prompts
    assert view.opened(Role.REGISTRY) is prompts
    assert view.version_kind == "prompt_version" and session.version_kind == "model_version"
    assert session.registry is not prompts  # the session itself is unchanged
    recipe_view = view.with_recipe(_recipe(tmp_path / "qa", "qa"))
    assert recipe_view.registry is prompts and recipe_view.version_kind == "prompt_version"
    assert view.spine is session.spine and view.hooks is session.hooks
    view.close()
    version = session.registry.register("m", "file:///m")
    assert session.spine.events(subject=version.ref) == []  # the spine is still open
