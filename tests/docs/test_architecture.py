"""docs/architecture.md is the map of the code as it is: what it names exists, and what the
code has (packages, distributions, spine tables, capabilities, file sections) is on it."""

from __future__ import annotations

import re
from importlib.metadata import entry_points

import pytest

from stack.config.recipe_file import RecipeFile
from stack.config.stack_file import StackFile
from stack.contract.capabilities import PROTOCOLS, VOCABULARIES
from stack.contract.roles import ROLE_PROTOCOLS
from stack.spine.schema import Base
from tests.support.cli import ROOT

DOC = ROOT / "docs" / "architecture.md"
TEXT = DOC.read_text()
CODE = {
    " ".join(span.split())
    for span in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", TEXT, flags=re.S))
}
#: Names of what a user writes or the stack creates, not files of this repository.
USERS = {"stack.yaml", ".mlstack/"}
SEARCHED = ("stack", "adapters", "infra", "recipes", "bench", "tests", "docs")


def _named_paths() -> list[str]:
    """Backticked words that are paths or file names (`stack/spine/`, `app.py`)."""
    return sorted(
        word
        for word in CODE - USERS
        if " " not in word and re.fullmatch(r"[\w./-]+\.(py|md|yaml|json)|[\w.-]+/[\w./-]*", word)
    )


def _exists(word: str) -> bool:
    if "/" in word:
        return (ROOT / word).exists()
    return any(any((ROOT / top).rglob(word)) for top in SEARCHED)


@pytest.mark.parametrize("word", _named_paths())
def test_every_path_it_names_exists(word: str) -> None:
    assert _exists(word), f"docs/architecture.md names `{word}`, which is not in the repository"


def test_every_package_of_the_core_is_on_it() -> None:
    packages = sorted(f"stack/{p.parent.name}/" for p in (ROOT / "stack").glob("*/__init__.py")) + [
        f"stack/{p.name}/" for p in (ROOT / "stack").iterdir() if p.name == "defaults"
    ]
    missing = [p for p in packages if p not in CODE]
    assert not missing, f"docs/architecture.md does not place {missing}"


def test_every_adapter_and_distribution_is_on_it() -> None:
    roles = TEXT.split("| role (stack.yaml key) |", 1)[1].split("\n\n", 1)[0]
    adapters = {ep.name for ep in entry_points(group="mlstack.adapters")}
    assert adapters, "no adapter is installed: the environment is not the project's"
    missing = sorted(name for name in adapters if not re.search(rf"\b{name}\b", roles))
    assert not missing, f"the roles table lists no adapter {missing}"
    registered = {ep.value.partition(".")[0] for ep in entry_points(group="mlstack.adapters")}
    others = [
        f"adapters/{d.name}/"
        for d in (ROOT / "adapters").iterdir()
        if d.is_dir() and not any(p.name in registered for p in d.glob("stack_*"))
    ]
    assert others and all(o in CODE for o in others), f"not on the map: {others}"


def test_every_spine_table_is_on_it() -> None:
    missing = sorted(t for t in Base.metadata.tables if t not in CODE)
    assert not missing, f"spine tables missing from docs/architecture.md: {missing}"


def test_every_role_capability_and_optional_protocol_is_on_it() -> None:
    missing = [p.__name__ for p in ROLE_PROTOCOLS.values() if p.__name__ not in CODE]
    for vocabulary in VOCABULARIES.values():
        missing += [c.value for c in vocabulary if c.value not in CODE]
    missing += [p.__name__ for p in PROTOCOLS.values() if p.__name__ not in CODE]
    assert not missing, f"docs/architecture.md does not name {missing}"


@pytest.mark.parametrize("model", [StackFile, RecipeFile], ids=["stack.yaml", "recipe.yaml"])
def test_every_section_a_user_writes_is_on_it(model: type) -> None:
    missing = sorted(f for f in model.model_fields if f not in CODE)
    assert not missing, f"{model.__name__} sections missing from docs/architecture.md: {missing}"
