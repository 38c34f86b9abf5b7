"""Two processes promoting two versions to `serving` at the same moment leave exactly one
serving version, whichever backend holds the registry."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from mlflow import MlflowClient

from stack.contract.states import LifecycleState as S
from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowRegistryConfig, MlflowTrackerConfig
from stack_mlflow.registry import MlflowRegistry
from stack_mlflow.tracker import MlflowTracker

PROMOTER = """
import sys, time
from pathlib import Path
from stack.contract.states import LifecycleState
from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowRegistryConfig
from stack_mlflow.registry import MlflowRegistry

uri, model, version, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
registry = MlflowRegistry(
    MlflowRegistryConfig(tracking_uri=uri), AdapterContext(Path(".mlstack"), Path("."))
)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
registry.set_state(model, version, LifecycleState.SERVING)
"""


def test_racing_promotions_leave_one_serving_version(
    tracking_uri: str, context: AdapterContext, tmp_path: Path
) -> None:
    tracker = MlflowTracker(MlflowTrackerConfig(tracking_uri=tracking_uri), context)
    registry = MlflowRegistry(MlflowRegistryConfig(tracking_uri=tracking_uri), context)
    model = f"race-{uuid.uuid4().hex[:8]}"
    run = tracker.start_run("race")
    experiment = tracker.client.get_run(run.run_id).info.experiment_id
    for round_number in range(2):
        versions = []
        for _ in range(2):
            logged = tracker.client.create_logged_model(experiment, source_run_id=run.run_id)
            version = registry.register(model, f"models:/{logged.model_id}", run_id=run.run_id)
            registry.set_state(model, version.version, S.APPROVED)
            versions.append(version.version)
        go = tmp_path / f"go-{round_number}"
        promoters = [
            subprocess.Popen(
                [sys.executable, "-c", PROMOTER, tracking_uri, model, str(v), str(go)],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for v in versions
        ]
        for promoter in promoters:
            assert promoter.stdout is not None
            assert promoter.stdout.readline().strip() == "ready"
        go.write_text("")
        for promoter in promoters:
            _, err = promoter.communicate(timeout=240)
            assert promoter.returncode == 0, err

        serving = registry.find_by_state(model, S.SERVING)
        assert len(serving) == 1
        states = [v.state for v in registry.versions(model)]
        assert states.count(S.SERVING) == 1
        winner = serving[0].version
        assert winner in versions
        alias = MlflowClient(tracking_uri).get_model_version_by_alias(model, "serving")
        assert int(alias.version) == winner
        loser = next(v for v in versions if v != winner)
        assert registry.get_version(model, loser).state == S.RETIRED
    tracker.finish_run(run)
