"""Behaviour every Tracker adapter must have. Provide a `tracker` fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.contract.capabilities import TrackerCapability
from stack.contract.tracking import DatasetFingerprint, RunStatus, Tracker
from stack.errors import NotFound
from stack.testing.base import RoleSuite


class TrackerSuite(RoleSuite):
    def test_it_implements_what_it_declares(self, tracker: Tracker) -> None:
        self.check_declared(tracker)

    def test_new_run_is_running_in_its_experiment(self, tracker: Tracker) -> None:
        run = tracker.start_run("suite-exp", name="first", tags={"team": "ml"})
        record = tracker.get_run(run.run_id)
        assert record.ref == run
        assert run.experiment == "suite-exp"
        assert record.status == RunStatus.RUNNING
        assert record.tags["team"] == "ml"

    def test_params_are_kept_as_text(self, tracker: Tracker) -> None:
        run = tracker.start_run("suite-exp")
        tracker.log_params(run, {"epochs": 10, "lr": 0.1, "model": "logreg"})
        tracker.finish_run(run)
        params = tracker.get_run(run.run_id).params
        assert params["epochs"] == "10"
        assert params["lr"] == "0.1"
        assert params["model"] == "logreg"

    def test_metric_history_keeps_every_step_and_latest_wins(self, tracker: Tracker) -> None:
        run = tracker.start_run("suite-exp")
        for step in range(5):
            tracker.log_metrics(run, {"loss": 1.0 / (step + 1), "acc": step / 10}, step=step)
        tracker.finish_run(run)
        history = tracker.metric_history(run, "loss")
        assert [p.step for p in history] == [0, 1, 2, 3, 4]
        assert history[-1].value == pytest.approx(0.2)
        assert tracker.get_run(run.run_id).metrics["acc"] == pytest.approx(0.4)

    def test_nothing_logged_is_lost_at_finish(self, tracker: Tracker) -> None:
        run = tracker.start_run("suite-exp")
        for step in range(2500):  # more than one batch of any sane buffer
            tracker.log_metrics(run, {"x": float(step)}, step=step)
        tracker.finish_run(run)
        assert len(tracker.metric_history(run, "x")) == 2500

    def test_finish_records_the_final_status(self, tracker: Tracker) -> None:
        ok = tracker.start_run("suite-exp")
        tracker.finish_run(ok)
        failed = tracker.start_run("suite-exp")
        tracker.finish_run(failed, RunStatus.FAILED)
        assert tracker.get_run(ok.run_id).status == RunStatus.FINISHED
        assert tracker.get_run(failed.run_id).status == RunStatus.FAILED

    def test_tags_can_be_added_later(self, tracker: Tracker) -> None:
        run = tracker.start_run("suite-exp")
        tracker.set_tags(run, {"stage": "eval"})
        assert tracker.get_run(run.run_id).tags["stage"] == "eval"

    def test_unknown_run_is_not_found(self, tracker: Tracker) -> None:
        with pytest.raises(NotFound):
            tracker.get_run("no-such-run-0000")

    def test_artifact_is_stored_with_the_run(self, tracker: Tracker, tmp_path: Path) -> None:
        self.require(TrackerCapability.ARTIFACTS)
        run = tracker.start_run("suite-exp")
        file = tmp_path / "report.txt"
        file.write_text("hello")
        uri = tracker.log_artifact(run, file, artifact_path="reports")
        tracker.finish_run(run)
        assert "report.txt" in uri

    def test_dataset_fingerprint_is_an_input_of_the_run(self, tracker: Tracker) -> None:
        self.require(TrackerCapability.DATASETS)
        run = tracker.start_run("suite-exp")
        fingerprint = DatasetFingerprint(
            name="customers", digest="sha256:" + "a" * 64, rows=100, columns=("id", "x")
        )
        tracker.log_dataset(run, fingerprint)
        tracker.finish_run(run)
        datasets = tracker.get_run(run.run_id).datasets
        assert [d.digest for d in datasets] == [fingerprint.digest]
