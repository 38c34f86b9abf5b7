"""Shared fixtures: a working folder per test, spine URLs on SQLite and a real PostgreSQL."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.cli import Cli, cli_in
from tests.support.postgres import (
    DEFAULT_URL,
    PostgresServer,
    ThrowawayPostgres,
    answers,
    find_binaries,
)

if TYPE_CHECKING:
    from tests.adapters.bentoml.models import Registered

# Each of these runs whole recipes or many `mlstack` processes: minutes on two cores, more when
# the machine is busy. They get 15 minutes before pytest-timeout calls them hung (300 s for the
# rest), and under xdist they are handed out first, so that none starts last and runs alone.
END_TO_END = (
    "tests/orchestration/test_killed_quickstart.py",
    "tests/recipes/test_quickstart.py",
    "tests/recipes/test_rag_qa.py",
    "tests/recipes/test_model_flavors.py",
    "tests/recipes/test_regression.py",
    "tests/recipes/test_batch_scoring.py",
    "tests/cli/test_governance_commands.py",
    "tests/adapters/bentoml/test_serving_cli.py",
    "tests/docs/test_your_model.py",
    "tests/adapters/feast/test_recipe_features.py",
    "tests/llm/test_prompts.py",
    "tests/cli/test_killed_runs.py",
    "tests/adapters/bentoml/test_rollout.py",
    "tests/adapters/mlflow/test_log_model.py",
    "tests/adapters/mlflow/test_registry_race.py",
    "tests/adapters/bentoml/test_kubernetes.py",
    "tests/infra/test_terraform.py",
    "tests/ui/test_browser.py",
    "tests/observability/test_prometheus.py",
    "tests/observability/test_cost.py",
    "tests/adapters/bentoml/test_cluster_router.py",
    "tests/bench/test_scale_bench.py",
)
END_TO_END_TIMEOUT = 900


def _module(item: pytest.Item) -> str:
    return item.nodeid.partition("::")[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end modules' timeout; under xdist (`make test`: `--dist loadfile`, each
    module on one worker, in order) they are handed out first."""
    for item in items:
        if _module(item) in END_TO_END and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(END_TO_END_TIMEOUT))
    if os.environ.get("PYTEST_XDIST_WORKER"):  # a plain run keeps the files' order
        rank = {module: i for i, module in enumerate(END_TO_END)}
        items.sort(key=lambda item: rank.get(_module(item), len(END_TO_END)))


@pytest.fixture(scope="session", autouse=True)
def main_module_file() -> None:
    """A pytest-xdist worker's `__main__` is `python -c`, with no file; ZenML takes its source
    root from the main module's file (in a notebook it asks for `zenml init`). The worker gets
    pytest's, as a plain `python -m pytest` has."""
    main = sys.modules.get("__main__")
    if main is not None and not getattr(main, "__file__", None):
        main.__file__ = str(Path(pytest.__file__).parent / "__main__.py")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside an empty folder, as a user would run mlstack in their project."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSTACK_USER", "tester")
    monkeypatch.delenv("MLSTACK_STACK", raising=False)
    return tmp_path


@pytest.fixture
def cli(workdir: Path) -> Cli:
    """Run the installed `mlstack` command in the test's working folder."""
    return cli_in(workdir)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    given = os.environ.get("MLSTACK_TEST_POSTGRES_URL")
    if given:
        if not answers(given):
            pytest.fail(f"MLSTACK_TEST_POSTGRES_URL={given} does not answer")
        yield PostgresServer(given, "MLSTACK_TEST_POSTGRES_URL")
        return
    if answers(DEFAULT_URL):
        yield PostgresServer(DEFAULT_URL, "the machine's server on 127.0.0.1:5432")
        return
    binaries = find_binaries()
    if binaries is None:
        pytest.skip(
            "no PostgreSQL: MLSTACK_TEST_POSTGRES_URL is unset, nothing answers on "
            "127.0.0.1:5432, and initdb/pg_ctl are not installed (apt-get install postgresql)"
        )
    server = ThrowawayPostgres(binaries)
    url = server.start()
    try:
        yield PostgresServer(url, f"a throwaway cluster from {binaries}")
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def spine_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty spine database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'spine.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as url:
        yield url


@pytest.fixture(scope="session")
def registered_template(tmp_path_factory: pytest.TempPathFactory) -> Registered:
    """Three model versions (tests/adapters/bentoml/models.py) logged and registered once per
    session (per xdist worker), for the tests that each need them in a fresh embedded store
    of their own (`Registered.copy_to`)."""
    from tests.adapters.bentoml.models import Registered, home, register_versions

    context = home(tmp_path_factory.mktemp("registered-template"))
    return Registered(context.home, register_versions(context))
