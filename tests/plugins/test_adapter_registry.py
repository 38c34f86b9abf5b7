"""Adapters are found through the `mlstack.adapters` entry point, as strings, and their
wrapped tool is imported only when the role is first used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stack.contract.capabilities import TrackerCapability
from stack.contract.roles import Role
from stack.errors import (
    AdapterConflict,
    AdapterNotInstalled,
    StackConfigError,
    StackError,
    UnknownAdapter,
)
from stack.plugins import AdapterManifest, AdapterRegistry, RoleBinding
from stack.session import StackSession
from tests.support.plugin_dist import build_acme_distribution

ROOT = Path(__file__).resolve().parents[2]

MEMORY = AdapterManifest(
    name="memory",
    package="mlstack-memory",
    roles={
        Role.TRACKER: RoleBinding(
            "tests.support.memory:MemoryTracker", None, frozenset({TrackerCapability.ARTIFACTS})
        ),
        Role.REGISTRY: RoleBinding("tests.support.memory:MemoryRegistry"),
    },
)


@pytest.fixture
def acme_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The acme adapter installed on sys.path (as pip would), for this process and children."""
    site = build_acme_distribution(tmp_path / "site")
    marker = tmp_path / "acme-imported"
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(ROOT)]))
    monkeypatch.setenv("ACME_MARKER", str(marker))
    return site


def mlstack(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_core_registers_its_local_orchestrator_through_the_entry_point() -> None:
    registry = AdapterRegistry()
    manifest, binding = registry.binding(Role.ORCHESTRATOR, "local")
    assert manifest.package == "mlstack"
    assert "resume" in binding.capabilities


def test_third_party_adapter_is_discovered_without_importing_its_tool(acme_site: Path) -> None:
    registry = AdapterRegistry()
    manifest, binding = registry.binding(Role.TRACKER, "acme")
    assert manifest.package == "mlstack-acme"
    assert binding.capabilities == {"datasets", "artifacts"}
    assert "acme_heavy_tool" not in sys.modules
    assert not Path(os.environ["ACME_MARKER"]).exists()


def test_cli_lists_adapters_with_capabilities_and_imports_no_tool(
    acme_site: Path, tmp_path: Path
) -> None:
    result = mlstack("adapters", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    rows = {(r["adapter"], r["role"]): r for r in listing["adapters"]}
    assert rows[("acme", "tracker")]["capabilities"] == ["artifacts", "datasets"]
    assert rows[("local", "orchestrator")]["package"] == "mlstack"
    assert "broken" in listing["broken"]  # a broken entry point is shown, not fatal
    assert not Path(os.environ["ACME_MARKER"]).exists()


def test_the_tool_is_imported_when_the_role_is_first_used(acme_site: Path, tmp_path: Path) -> None:
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text("name: s\ntracker: {adapter: acme, endpoint: 'http://127.0.0.1:1'}\n")
    with StackSession.open(stack_file, registry=AdapterRegistry(), base_dir=tmp_path) as session:
        assert not Path(os.environ["ACME_MARKER"]).exists()  # validated, not yet imported
        run = session.tracker.start_run("e")
        assert run.experiment == "e"
    assert Path(os.environ["ACME_MARKER"]).read_text() == "imported"


def test_missing_wrapped_tool_becomes_an_install_hint(acme_site: Path, tmp_path: Path) -> None:
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text("name: s\nmonitor: {adapter: acme}\n")
    registry = AdapterRegistry()
    with (
        StackSession.open(stack_file, registry=registry, base_dir=tmp_path) as session,
        pytest.raises(AdapterNotInstalled) as caught,
    ):
        session.role(Role.MONITOR)
    assert "pip install mlstack-acme" in str(caught.value)
    assert "acme_tool_that_is_not_installed" in str(caught.value)


def test_adapter_that_is_not_installed_names_the_package() -> None:
    registry = AdapterRegistry(discover=False)
    with pytest.raises(AdapterNotInstalled, match="pip install mlstack-mlflow"):
        registry.binding(Role.TRACKER, "mlflow")


def test_unknown_adapter_lists_what_is_installed() -> None:
    registry = AdapterRegistry(discover=False)
    registry.register(MEMORY)
    with pytest.raises(UnknownAdapter, match=r"did you mean 'mlflow'.*installed: memory"):
        registry.binding(Role.TRACKER, "mlflw")


def test_adapter_cannot_fill_a_role_it_does_not_declare() -> None:
    registry = AdapterRegistry(discover=False)
    registry.register(MEMORY)
    with pytest.raises(
        StackError, match="cannot fill role 'server'; it provides: tracker, registry"
    ):
        registry.binding(Role.SERVER, "memory")


def test_in_process_register_refuses_a_clash_unless_replacing() -> None:
    registry = AdapterRegistry(discover=False)
    registry.register(MEMORY)
    with pytest.raises(AdapterConflict, match="already registered"):
        registry.register(MEMORY)
    registry.register(MEMORY, replace=True)
    assert list(registry.manifests) == ["memory"]


def test_public_view_of_the_registry_is_read_only() -> None:
    registry = AdapterRegistry(discover=False)
    with pytest.raises(TypeError):
        registry.manifests["x"] = MEMORY  # type: ignore[index]


def test_manifest_targets_must_be_dotted_strings() -> None:
    with pytest.raises(StackError, match="must be 'module:attribute'"):
        AdapterManifest(
            "bad", "p", {Role.TRACKER: RoleBinding("tests.support.memory.MemoryTracker")}
        )


def test_adapter_options_are_validated_naming_line_and_field(
    acme_site: Path, tmp_path: Path
) -> None:
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text("name: s\ntracker:\n  adapter: acme\n  endpoit: x\n")
    with pytest.raises(StackConfigError) as caught:
        StackSession.open(stack_file, registry=AdapterRegistry())
    message = str(caught.value)
    assert f"{stack_file}:4: tracker.endpoit: Extra inputs are not permitted" in message
    assert "did you mean 'endpoint'?" in message
    assert f"{stack_file}:2: tracker.endpoint: Field required" in message


def test_adapter_without_options_refuses_options(tmp_path: Path) -> None:
    registry = AdapterRegistry(discover=False)
    registry.register(MEMORY)
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text("name: s\nregistry: {adapter: memory, uri: x}\n")
    with pytest.raises(StackConfigError, match=r":2: registry.uri: this adapter takes no options"):
        StackSession.open(stack_file, registry=registry)
