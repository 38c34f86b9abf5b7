"""Data the store refuses on its own merits is refused by name, and never holds back the rest
of the run: not at `log_metrics`, not in a batch, not in a spill file, not in a failed step."""

from __future__ import annotations

import math
from pathlib import Path
from textwrap import dedent

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from stack.errors import TrackingDataRefused
from stack.plugins.manifest import AdapterContext
from stack_mlflow import spill
from stack_mlflow.config import MlflowTrackerConfig
from stack_mlflow.tracker import MlflowTracker
from tests.support.cli import mlstack


def tracker_on(uri: str, context: AdapterContext) -> MlflowTracker:
    return MlflowTracker(MlflowTrackerConfig(tracking_uri=uri), context)


def loss_steps(client: MlflowClient, run_id: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, "loss"))


@pytest.mark.parametrize("bad", ["recall@5", "x" * 300, "../escape"])
def test_a_refused_metric_name_is_named_and_the_other_points_are_kept(
    sqlite_uri: str, context: AdapterContext, bad: str
) -> None:
    tracker = tracker_on(sqlite_uri, context)
    run = tracker.start_run("metric-names")
    for epoch in range(3):
        with pytest.raises(TrackingDataRefused) as caught:
            tracker.log_metrics(run, {"loss": 1.0 / (epoch + 1), bad: 0.5}, step=epoch)
        assert repr(bad) in str(caught.value)
        tracker.log_metrics(run, {"loss": 1.0 / (epoch + 1)}, step=epoch)
    tracker.finish_run(run)
    client = MlflowClient(sqlite_uri)
    assert loss_steps(client, run.run_id) == [0, 1, 2]
    assert client.get_run(run.run_id).info.status == "FINISHED"
    assert not list(tracker.spill_dir.glob("*.jsonl"))


def test_infinity_is_refused_and_nan_is_stored_as_nan(
    sqlite_uri: str, context: AdapterContext
) -> None:
    # MLflow's SQL store would read ±inf back as ±1.8e308, a value nobody logged.
    tracker = tracker_on(sqlite_uri, context)
    run = tracker.start_run("metric-values")
    for value in (math.inf, -math.inf):
        with pytest.raises(TrackingDataRefused, match=r"'loss'.*infinity"):
            tracker.log_metrics(run, {"loss": value}, step=0)
    with pytest.raises(TrackingDataRefused, match=r"'loss'.*not a number"):
        tracker.log_metrics(run, {"loss": "low"}, step=0)  # type: ignore[dict-item]
    tracker.log_metrics(run, {"loss": math.nan}, step=1)
    tracker.finish_run(run)
    history = MlflowClient(sqlite_uri).get_metric_history(run.run_id, "loss")
    assert [m.step for m in history] == [1] and math.isnan(history[0].value)


def test_refused_param_and_tag_keys_are_named_and_nothing_of_the_call_is_logged(
    sqlite_uri: str, context: AdapterContext
) -> None:
    tracker = tracker_on(sqlite_uri, context)
    run = tracker.start_run("param-names")
    with pytest.raises(TrackingDataRefused, match="param 'lr@warmup'"):
        tracker.log_params(run, {"depth": 3, "lr@warmup": 0.1})
    with pytest.raises(TrackingDataRefused, match="tag 'owner#1'"):
        tracker.set_tags(run, {"team": "ranking", "owner#1": "ana"})
    tracker.log_params(run, {"depth": 3})
    tracker.finish_run(run)
    data = MlflowClient(sqlite_uri).get_run(run.run_id).data
    assert data.params == {"depth": "3"}
    assert "team" not in data.tags


def test_a_batch_the_store_refuses_is_split_and_its_good_points_written(
    sqlite_uri: str, context: AdapterContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # As from a store whose rules are stricter than the check at log_metrics: the points
    # reach the buffer, and the store refuses the batch they are in.
    tracker = tracker_on(sqlite_uri, context)
    run = tracker.start_run("refused-batch")
    points = [Metric("loss", 1.0 / (s + 1), 1, s) for s in range(40)]
    points[17] = Metric("recall@5", 0.5, 1, 17)
    tracker.buffer.add(run.run_id, points)
    tracker.finish_run(run)
    client = MlflowClient(sqlite_uri)
    assert loss_steps(client, run.run_id) == [s for s in range(40) if s != 17]
    assert client.get_run(run.run_id).info.status == "FINISHED"
    stderr = capsys.readouterr().err
    assert "refused 1 metric point" in stderr and "'recall@5' (1 point, step 17)" in stderr
    assert "unreachable" not in stderr
    assert not list(tracker.spill_dir.glob("*.jsonl"))


def test_replaying_a_spill_file_with_a_refused_point_writes_the_others(tmp_path: Path) -> None:
    # A spill file written before names were checked holds a point no store will take.
    uri = f"sqlite:///{tmp_path / '.mlstack' / 'mlflow.db'}"
    tracker = tracker_on(uri, AdapterContext(home=tmp_path / ".mlstack", base_dir=tmp_path))
    run = tracker.start_run("old-spill")
    points = [Metric("loss", 1.0 / (s + 1), 1, s) for s in range(5)]
    points += [Metric("recall@5", 0.4, 1, s) for s in range(5)]
    spill.append_points(tracker.spill_dir, run.run_id, uri, points)
    path = spill.append_final_status(tracker.spill_dir, run.run_id, uri, "FINISHED")
    (tmp_path / "stack.yaml").write_text(
        f"name: local\ntracker: {{adapter: mlflow, tracking_uri: '{uri}'}}\n"
        f"spine: {{url: 'sqlite:///{tmp_path / 'spine.db'}'}}\n"
    )
    result = mlstack("--stack", "stack.yaml", "tracking", "replay", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "replayed 5 metric points" in result.stdout
    assert "'recall@5' (5 points, steps 0, 1, 2, 3, 4)" in result.stderr
    client = MlflowClient(uri)
    assert loss_steps(client, run.run_id) == [0, 1, 2, 3, 4]
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_a_failed_step_leaves_its_runs_failed(sqlite_uri: str, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "recipe.yaml").write_text(
        "name: broken\nsteps:\n  - {name: train, run: steps:train}\n"
    )
    (recipe / "steps.py").write_text(
        dedent(
            """
            from pathlib import Path

            def train(ctx):
                tracker = ctx.session.tracker
                run = tracker.start_run("broken")
                Path("run_id.txt").write_text(run.run_id)
                tracker.log_metrics(run, {"loss": 0.5}, step=0)
                raise RuntimeError("diverged")
            """
        )
    )
    (tmp_path / "stack.yaml").write_text(
        f"name: local\ntracker: {{adapter: mlflow, tracking_uri: '{sqlite_uri}'}}\n"
        f"spine: {{url: 'sqlite:///{tmp_path / 'spine.db'}'}}\n"
    )
    result = mlstack("--stack", "stack.yaml", "run", str(recipe), cwd=tmp_path)
    assert result.returncode == 1 and "RuntimeError: diverged" in result.stderr
    run = MlflowClient(sqlite_uri).get_run((tmp_path / "run_id.txt").read_text())
    assert run.info.status == "FAILED"
    assert run.data.metrics == {"loss": 0.5}  # its points were written before it ended
