"""stack.yaml: a bad file fails naming the file, line and field, with a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.config.stack_file import read_stack_file
from stack.errors import StackConfigError


def write(tmp_path: Path, text: str, name: str = "stack.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_embedded_default_stack_is_valid() -> None:
    stack, _ = read_stack_file(None)
    assert stack.name == "local"
    assert stack.orchestrator.adapter == "local"
    assert stack.spine.url.startswith("sqlite:///")


def test_role_section_splits_adapter_from_its_options(tmp_path: Path) -> None:
    path = write(tmp_path, "name: s\ntracker: {adapter: mlflow, tracking_uri: 'sqlite:///x.db'}\n")
    stack, _ = read_stack_file(path)
    assert stack.tracker is not None
    assert stack.tracker.adapter == "mlflow"
    assert stack.tracker.options == {"tracking_uri": "sqlite:///x.db"}


def test_unknown_field_names_file_line_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, "name: s\norchestrator: {adapter: local}\nspine:\n  ulr: sqlite:///x\n")
    with pytest.raises(StackConfigError) as caught:
        read_stack_file(path)
    message = str(caught.value)
    assert f"{path}:4: spine.ulr" in message
    assert "did you mean 'url'?" in message


def test_misspelt_role_is_refused_with_the_role_names(tmp_path: Path) -> None:
    path = write(tmp_path, "name: s\ntraker: {adapter: mlflow}\n")
    with pytest.raises(StackConfigError, match=r"(?s):2: traker.*did you mean 'tracker'"):
        read_stack_file(path)


def test_missing_name_says_to_add_it(tmp_path: Path) -> None:
    path = write(tmp_path, "orchestrator: {adapter: local}\n")
    with pytest.raises(StackConfigError, match=r"name: Field required.*\n.*hint: add `name:`"):
        read_stack_file(path)


def test_env_values_are_interpolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINE_HOST", "db.internal")
    path = write(
        tmp_path,
        "name: ${STACK_NAME:-prod}\nspine: {url: 'postgresql://ml@${SPINE_HOST}/spine'}\n",
    )
    stack, _ = read_stack_file(path)
    assert stack.name == "prod"
    assert stack.spine.url == "postgresql://ml@db.internal/spine"


def test_literal_dollar_brace_is_kept_when_escaped(tmp_path: Path) -> None:
    path = write(tmp_path, "name: 'cost-$${X}'\n")
    stack, _ = read_stack_file(path)
    assert stack.name == "cost-${X}"


def test_unset_env_variable_names_line_field_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    path = write(tmp_path, "name: s\nspine:\n  url: ${NOPE_NOT_SET}\n")
    with pytest.raises(StackConfigError) as caught:
        read_stack_file(path)
    assert f"{path}:3: spine.url: environment variable NOPE_NOT_SET is not set" in str(caught.value)


def test_secret_password_never_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINE_PASSWORD", "hunter2-very-secret")
    path = write(
        tmp_path,
        "name: s\nspine:\n  url: postgresql://ml@db/spine\n  password: ${SPINE_PASSWORD}\n",
    )
    stack, _ = read_stack_file(path)
    assert "hunter2" not in repr(stack)
    assert "hunter2" not in str(stack.model_dump())
    assert "hunter2" not in stack.spine.safe_url
    assert stack.spine.connect_url() == "postgresql://ml:hunter2-very-secret@db/spine"


def test_a_password_with_url_characters_reaches_the_server_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.engine import make_url

    secret = "p@ss/w:rd%?#"
    monkeypatch.setenv("SPINE_PASSWORD", secret)
    path = write(
        tmp_path,
        "name: s\nspine:\n  url: postgresql://ml@db.example:5432/spine\n"
        "  password: ${SPINE_PASSWORD}\n",
    )
    stack, _ = read_stack_file(path)
    url = make_url(stack.spine.connect_url())  # as SQLAlchemy and psycopg read it
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "ml",
        secret,
        "db.example",
        5432,
        "spine",
    )
    assert secret not in stack.spine.safe_url


def test_password_inside_the_url_is_masked_when_shown(tmp_path: Path) -> None:
    path = write(tmp_path, "name: s\nspine: {url: 'postgresql://ml:pw123@db/spine'}\n")
    stack, _ = read_stack_file(path)
    assert stack.spine.safe_url == "postgresql://ml:***@db/spine"
    assert "pw123" not in repr(stack)


def test_duplicate_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\nhome: .x\nname: b\n")
    with pytest.raises(StackConfigError, match=r":3: duplicate key 'name' \(first at line 1\)"):
        read_stack_file(path)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: s\nspine: {url: x\n")
    with pytest.raises(StackConfigError, match=rf"{path}:\d+: not valid YAML"):
        read_stack_file(path)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n"])
def test_empty_or_non_mapping_file_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(StackConfigError, match=str(path)):
        read_stack_file(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StackConfigError, match="file not found"):
        read_stack_file(tmp_path / "nope.yaml")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "name: ''\nhome: 3\nspine: {ulr: x}\n")
    with pytest.raises(StackConfigError) as caught:
        read_stack_file(path)
    assert len(caught.value.problems) == 3
