"""Read commands on the embedded stack import no MLflow (about 2.5 s of every command before):
the registry is read from MLflow's tables (stack_mlflow/reads.py)."""

from __future__ import annotations

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
    [("rollout", "status"), ("lineage", "churn@serving"), ("audit", "log", "--model", "churn")],
)
def test_read_commands_import_no_mlflow(store: Path, argv: tuple[str, ...]) -> None:
    assert not command_loads(store, *argv) & NOT_ON_A_READ
