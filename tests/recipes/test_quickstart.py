"""The quickstart end to end, as `make demo` runs it (fewer customers), checked through the
wrapped tools' own clients: MLflow's aliases, Feast's online store, the endpoint over HTTP,
the spine's audit chain. First a run interrupted with Ctrl-C during the live traffic (it must
stop the endpoint and record where it stopped), then a whole run on the same store (a
re-run is safe)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stack.contract.states import LifecycleState
from stack.session import StackSession
from tests.recipes.conftest import copy_recipe
from tests.support.cli import MLSTACK, mlstack


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("quickstart")
    copy_recipe("quickstart", folder, **{"customers: 2000": "customers: 1200"})
    yield folder
    with StackSession.open(folder / "stack.yaml", base_dir=folder) as session:
        for endpoint in session.server.endpoints():
            session.server.undeploy(endpoint.name)


def session(project: Path) -> StackSession:
    return StackSession.open(project / "stack.yaml", base_dir=project)


def interrupted(project: Path, at: str, after_s: float = 0.5) -> tuple[int, str]:
    """`mlstack run quickstart`, Ctrl-C `after_s` seconds after it prints a line with `at`:
    its exit code and output."""
    process = subprocess.Popen(
        [str(MLSTACK), "run", "quickstart"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line)
        if at in line:
            time.sleep(after_s)
            process.send_signal(signal.SIGINT)
            break
    output = "".join(seen) + process.communicate(timeout=120)[0]
    return process.returncode, output


def test_ctrl_c_during_live_traffic_stops_the_endpoint_and_records_the_stop(
    project: Path,
) -> None:
    returncode, output = interrupted(project, "… replay")  # inside the traffic loop
    assert returncode == 130, output
    assert "interrupted: stopped endpoint churn" in output
    with session(project) as opened:
        assert opened.server.endpoints() == []
        [run] = opened.spine.pipeline_runs(recipe="quickstart", limit=1)
        assert run.state == "failed"
        replay = next(s for s in run.steps if s.step == "replay")
        assert replay.status == "failed" and "KeyboardInterrupt" in (replay.error or "")
        assert opened.spine.verify_audit().ok


def test_the_whole_lifecycle_on_the_same_store(project: Path) -> None:
    import mlflow

    done = mlstack("run", "quickstart", cwd=project, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for step in ("apply_features", "deploy", "replay", "late_labels", "monitor", "summary"):
        assert f"✓ {step} succeeded" in output
    assert "0 rows saw their future" in output
    assert "ingested" in output and "labels" in output
    assert "BREACH" in output and "breach: watched feature drifted: usage_drop" in output
    assert "succeeded quickstart-retrain" in output  # drift started the retraining recipe

    with session(project) as opened:
        serving = opened.registry.find_by_state("churn", LifecycleState.SERVING)
        assert len(serving) == 1
        ref = serving[0].ref
        retrained = [
            v
            for v in opened.registry.versions("churn")
            if "retrain" in v.tags.get("mlstack.recipe", "")
        ]
        assert retrained, "the retraining registered a candidate"
        # MLflow's own client: the `serving` alias names the version the spine says serves
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{opened.home / 'mlflow.db'}")
        assert int(client.get_model_version_by_alias("churn", "serving").version) == (
            serving[0].version
        )
        # Feast's own store answers online lookups for a customer
        from stack_feast.config import FeastConfig
        from stack_feast.store import FeastFeatureStore

        feast = FeastFeatureStore(FeastConfig(), opened.adapter_context()).store
        online = feast.get_online_features(
            features=["customer_activity:tenure_months"], entity_rows=[{"customer_id": "C00001"}]
        ).to_dict()
        assert online["tenure_months"][0] is not None
        # the endpoint answers over HTTP, with the serving version
        [endpoint] = opened.server.endpoints()
        record = {
            "tenure_months": 12.0,
            "monthly_charges": 80.0,
            "support_calls": 5.0,
            "late_payments": 2.0,
            "usage_drop": 0.6,
        }
        answer = httpx.post(f"{endpoint.url}/predict", json=record, timeout=10)
        assert answer.status_code == 200
        assert answer.headers["x-model-version"] == ref
        # monitoring stored its checks, the drift report exists, the audit chain holds
        checks = opened.spine.checks("churn")
        assert any(c.status == "breach" for c in checks)
        reports = list((opened.home / "monitoring" / "reports" / "churn").glob("*.html"))
        assert reports
        actions = [e.action for e in opened.spine.audit_entries()]
        assert "monitoring.breached" in actions and "retraining.finished" in actions
        assert "rollout.completed" in actions
        assert opened.spine.verify_audit().ok


def test_ctrl_c_during_a_rerun_s_canary_then_resume_serves_again(project: Path) -> None:
    """A re-run's canary rolls out beside the serving version; Ctrl-C there stops the demo's
    endpoint, and `--resume` starts the serving version on it again and rolls the
    challenger out beside it (never alone, never stuck on a stopped endpoint)."""
    # at once: the line comes just before the canary starts, and a canary a loaded machine
    # rolls back at its first check would be over in half a second, the Ctrl-C then landing
    # in the next step
    returncode, output = interrupted(project, "beside the serving version", after_s=0)
    assert returncode == 130, output
    with session(project) as opened:
        assert opened.server.endpoints() == []
        [run] = opened.spine.pipeline_runs(recipe="quickstart", limit=1)
        [champion] = opened.registry.find_by_state("churn", LifecycleState.SERVING)
    deploy = next(s for s in run.steps if s.step == "deploy")
    assert deploy.status == "failed" and "KeyboardInterrupt" in (deploy.error or ""), output

    resumed = mlstack("run", "quickstart", "--resume", run.run_id, cwd=project, timeout=600)

    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output
    assert f"starting endpoint churn with {champion.ref} (the serving version)" in output, output
    with session(project) as opened:
        [endpoint] = opened.server.endpoints()
        [serving] = opened.registry.find_by_state("churn", LifecycleState.SERVING)
        assert endpoint.split.weights.get(serving.ref) == 1.0
