"""Read commands on the embedded stack import no MLflow (about 2.5 s of every command before):
the registry and the inventory's runs are read from MLflow's tables (stack_mlflow/light/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from stack.contract.states import LifecycleState as S
from stack.plugins.manifest import AdapterContext
from stack.session import StackSession
from stack_mlflow.config import MlflowRegistryConfig
from stack_mlflow.registry import MlflowRegistry
from tests.core.test_import_cost import loaded_after

NOT_ON_A_READ = {"mlflow", "pandas", "alembic"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quickstart-like embedded store: models with versions from runs, one serving each,
    and a current spine."""
    folder = tmp_path_factory.mktemp("store")
    registry = MlflowRegistry(MlflowRegistryConfig(), AdapterContext(folder / ".mlstack", folder))
    client: MlflowClient = registry.client
    experiment = client.create_experiment("churn")
    for model in ("churn", "fraud"):
        for number in (1, 2):
            run = client.create_run(experiment).info.run_id
            client.log_metric(run, "auc", 0.8)  # the inventory's last evaluation
            registry.register(model, f"s3://bucket/{model}/{number}", run_id=run)
        registry.set_state(model, 2, S.APPROVED)
        registry.set_state(model, 2, S.SERVING)
    with StackSession.open(None, base_dir=folder) as session:
        session.spine.verify_audit()  # the spine made, at its newest migration
    return folder


def command_loads(folder: Path, *argv: str) -> set[str]:
    body = f"""
import contextlib, io, os
os.chdir({str(folder)!r})
from stack.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main({list(argv)!r})
    except SystemExit:
        pass
"""
    return loaded_after(body)


@pytest.mark.parametrize(
    "argv",
    [
        ("models",),
        ("rollout", "status"),
        ("lineage", "churn@serving"),
        ("audit", "log", "--model", "churn"),
    ],
)
def test_read_commands_import_no_mlflow(store: Path, argv: tuple[str, ...]) -> None:
    assert not command_loads(store, *argv) & NOT_ON_A_READ


def test_the_inventory_without_mlflow_shows_serving_versions_and_metrics(store: Path) -> None:
    body = f"""
import contextlib, io, os
os.chdir({str(store)!r})
from stack.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main(["models", "--format", "json"])
    except SystemExit:
        pass
print(json.dumps(json.loads(out.getvalue())))
print(json.dumps(sorted(m.split(".")[0] for m in sys.modules)))
"""
    result = subprocess.run(
        [sys.executable, "-c", "import json, sys\n" + body],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows, loaded = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert [(r["model"], r["serving"], r["last_evaluation"]) for r in rows] == [
        ("churn", "churn@2", {"auc": 0.8}),
        ("fraud", "fraud@2", {"auc": 0.8}),
    ]
    assert "mlflow" not in loaded


@pytest.mark.parametrize("argv", [("models",), ("runs",), ("audit", "verify")])
def test_read_commands_import_no_recipe_models(store: Path, argv: tuple[str, ...]) -> None:
    """No read command reads a recipe, so none imports the recipe models (pydantic models of
    every recipe section: a fifth of `mlstack models`' imports)."""
    body = f"""
import contextlib, io, json, os, sys
os.chdir({str(store)!r})
from stack.cli.main import main
code = 0
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main({list(argv)!r})
    except SystemExit as stop:
        code = stop.code
print(json.dumps([code, sorted(sys.modules)]))
"""
    done = subprocess.run(
        [sys.executable, "-c", body], capture_output=True, text=True, check=True, timeout=120
    )
    code, modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert code in (0, None)
    assert "stack.session" in modules and "stack.config.recipe_file" not in modules
