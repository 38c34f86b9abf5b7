"""What served at a time, once an endpoint was stopped: its history says nothing took
traffic from the stop on, apart from the version the registry still holds as serving."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.adapters.bentoml.conftest import STACK, free_port
from tests.adapters.bentoml.models import Registered, home
from tests.support.cli import Cli


def _approved_version(cli: Cli, workdir: Path, registered: Registered) -> str:
    """A project served by BentoML with a registered version, approved: its ref."""
    (workdir / "stack.yaml").write_text(STACK.format(port=free_port()))
    first = registered.copy_to(home(workdir)).champion.ref
    cli("promote", first, "--to", "approved", check=True)
    return first


def test_after_an_undeploy_history_says_the_endpoint_took_no_traffic(
    cli: Cli, workdir: Path, registered_template: Registered
) -> None:
    first = _approved_version(cli, workdir, registered_template)
    cli("deploy", first, "--strategy", "direct", check=True)
    cli("undeploy", "churn", check=True)

    listed = cli("rollout", "history", "churn", check=True).stdout.splitlines()
    assert "endpoint stopped: nothing takes traffic  undeployed by tester" in listed[-1]
    now = datetime.now(UTC).isoformat()
    at = cli("rollout", "history", "churn", "--at", now, check=True).stdout
    assert f"serving at {now} (registry state): {first}" in at
    assert f"traffic at {now} on endpoint 'churn': none (the endpoint was stopped at" in at
    assert f"{first} 100%" not in at


def test_a_first_canary_left_undecided_ends_stopped_and_shown_stopped(
    cli: Cli, workdir: Path, registered_template: Registered
) -> None:
    first = _approved_version(cli, workdir, registered_template)

    canary = cli("deploy", first, "--bake", "1", "--hold", "1")
    assert canary.returncode == 4, canary.stdout + canary.stderr  # no traffic: no verdict
    assert f"undecided: {first}; endpoint churn stopped: nothing takes its traffic" in canary.stdout
    assert "http://" not in canary.stdout and "revision" not in canary.stdout

    now = datetime.now(UTC).isoformat()
    at = cli("rollout", "history", "churn", "--at", now, check=True).stdout
    assert f"serving at {now} (registry state): none" in at
    assert "none (the endpoint was stopped at" in at and "undecided: only 0 requests" in at
