"""`mlstack deploy`, `rollout status|history`, `rollback` and `undeploy`, as a user types them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.adapters.bentoml.conftest import STACK, free_port
from tests.adapters.bentoml.models import Registered, home
from tests.support.cli import Cli


def test_deploy_status_history_and_an_unjudgeable_canary(
    cli: Cli, workdir: Path, registered_template: Registered
) -> None:
    (workdir / "stack.yaml").write_text(STACK.format(port=free_port()))
    versions = registered_template.copy_to(home(workdir))
    first, second = versions.champion.ref, versions.challenger.ref

    refused = cli("deploy", first, "--strategy", "direct")
    assert refused.returncode == 1
    assert "candidate; it cannot move to serving" in refused.stderr
    cli("promote", first, "--to", "approved", check=True)
    deployed = cli("deploy", first, "--strategy", "direct", check=True)
    url = re.search(r"http://127\.0\.0\.1:\d+", deployed.stdout)
    assert url is not None, deployed.stdout
    assert (
        httpx.post(
            f"{url.group(0)}/predict",
            json={"tenure": 1, "monthly_spend": 2, "support_calls": 0, "late payments": 0},
        ).status_code
        == 200
    )
    before_canary = datetime.now(UTC).isoformat()

    status = cli("rollout", "status", check=True)
    assert "churn" in status.stdout and f"{first}" in status.stdout and "100%" in status.stdout

    cli("promote", second, "--to", "approved", check=True)
    canary = cli("deploy", second, "--steps", "50,100", "--bake", "1", "--hold", "1")
    assert canary.returncode == 4, canary.stdout + canary.stderr  # no traffic: no verdict
    assert "undecided" in canary.stdout
    assert "only 0 requests reached" in canary.stdout

    history = cli("rollout", "history", "churn", check=True).stdout.splitlines()
    assert len(history) == 3  # deploy, canary 50%, rollback
    assert "canary: 50%" in history[1] and "rollback" in history[2]
    at = cli("rollout", "history", "churn", "--at", before_canary, check=True)
    assert f"serving at {before_canary} (registry state): {first}" in at.stdout

    audited = cli("audit", "log", "--action", "endpoint.undeployed", check=True).stdout
    for name in ("nosuch", "../churn"):  # refused before anything is audited or removed
        assert cli("undeploy", name).returncode != 0
    assert cli("audit", "log", "--action", "endpoint.undeployed", check=True).stdout == audited
    cli("undeploy", "churn", check=True)
    assert "no endpoint is running" in cli("rollout", "status").stderr
