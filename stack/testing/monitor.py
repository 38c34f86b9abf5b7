"""Behaviour every Monitor adapter must have. Provide `monitor` and `frames` (a FrameIO)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from stack.contract.capabilities import MonitorCapability
from stack.contract.monitoring import ColumnPolicy, Monitor, TaskKind
from stack.errors import StackError
from stack.testing.base import RoleSuite
from stack.testing.frames import FrameIO


def _sample(seed: int, rows: int, shift: float = 0.0) -> dict[str, list[float]]:
    rng = random.Random(seed)
    return {
        "stable": [rng.gauss(0, 1) for _ in range(rows)],
        "moving": [rng.gauss(shift, 1) for _ in range(rows)],
        "score": [rng.random() + shift / 4 for _ in range(rows)],
    }


COLUMNS = [ColumnPolicy("stable"), ColumnPolicy("moving")]


class MonitorSuite(RoleSuite):
    def test_it_implements_what_it_declares(self, monitor: Monitor) -> None:
        self.check_declared(monitor)

    def test_same_distribution_shows_no_drift(self, monitor: Monitor, frames: FrameIO) -> None:
        report = monitor.drift(
            frames.from_columns(_sample(1, 2000)),
            frames.from_columns(_sample(2, 2000)),
            columns=COLUMNS,
        )
        assert report.drifted_columns == ()
        assert report.drifted_share == 0.0
        assert {c.column for c in report.columns} == {"stable", "moving"}

    def test_a_reference_column_with_no_value_is_refused_by_name(
        self, monitor: Monitor, frames: FrameIO
    ) -> None:
        reference = _sample(1, 200)
        reference["moving"] = [float("nan")] * 200
        with pytest.raises(StackError, match="reference has no value in column 'moving'"):
            monitor.drift(
                frames.from_columns(reference),
                frames.from_columns(_sample(2, 200)),
                columns=COLUMNS,
            )

    def test_shifted_column_drifts_and_the_other_does_not(
        self, monitor: Monitor, frames: FrameIO
    ) -> None:
        report = monitor.drift(
            frames.from_columns(_sample(1, 2000)),
            frames.from_columns(_sample(2, 2000, shift=2.0)),
            columns=COLUMNS,
        )
        assert report.drifted_columns == ("moving",)
        assert report.drifted_share == 0.5
        moving = next(c for c in report.columns if c.column == "moving")
        assert moving.score >= moving.threshold

    def test_column_threshold_from_the_policy_is_used(
        self, monitor: Monitor, frames: FrameIO
    ) -> None:
        lenient = [ColumnPolicy("stable"), ColumnPolicy("moving", threshold=1e6)]
        report = monitor.drift(
            frames.from_columns(_sample(1, 2000)),
            frames.from_columns(_sample(2, 2000, shift=2.0)),
            columns=lenient,
        )
        assert report.drifted_columns == ()
        assert next(c for c in report.columns if c.column == "moving").threshold == 1e6

    def test_prediction_drift_is_reported_separately(
        self, monitor: Monitor, frames: FrameIO
    ) -> None:
        report = monitor.drift(
            frames.from_columns(_sample(1, 2000)),
            frames.from_columns(_sample(2, 2000, shift=2.0)),
            columns=COLUMNS,
            prediction_column="score",
        )
        assert report.prediction is not None
        assert report.prediction.column == "score"
        assert report.prediction.drifted

    def test_performance_with_full_labels(self, monitor: Monitor, frames: FrameIO) -> None:
        labels = [i % 2 for i in range(200)]
        predictions = [y if i % 10 else 1 - y for i, y in enumerate(labels)]  # 90% right
        report = monitor.performance(
            frames.from_columns({"y": labels, "p": predictions}),
            task=TaskKind.CLASSIFICATION,
            target="y",
            prediction="p",
        )
        assert report.sufficient
        assert report.label_coverage == 1.0
        assert report.metrics["accuracy"] == pytest.approx(0.9)

    def test_too_few_labels_says_so_instead_of_reporting_noise(
        self, monitor: Monitor, frames: FrameIO
    ) -> None:
        labels: list[int | None] = [1, 0, 1] + [None] * 97
        report = monitor.performance(
            frames.from_columns({"y": labels, "p": [1] * 100}),
            task=TaskKind.CLASSIFICATION,
            target="y",
            prediction="p",
            min_labelled_rows=30,
        )
        assert not report.sufficient
        assert report.labelled_rows == 3
        assert report.label_coverage == pytest.approx(0.03)
        assert report.notes

    def test_html_report_is_written(
        self, monitor: Monitor, frames: FrameIO, tmp_path: Path
    ) -> None:
        self.require(MonitorCapability.HTML_REPORT)
        path = tmp_path / "drift.html"
        report = monitor.drift(
            frames.from_columns(_sample(1, 500)),
            frames.from_columns(_sample(2, 500, 2.0)),
            columns=COLUMNS,
            html_path=path,
        )
        assert report.html_path == path
        assert path.read_text().lstrip().lower().startswith(("<!doctype html", "<html"))

    def test_quality_counts_missing_out_of_range_and_new_categories(
        self, monitor: Monitor, frames: FrameIO
    ) -> None:
        reference = frames.from_columns(
            {"amount": [float(i % 10) for i in range(100)], "plan": ["basic", "pro"] * 50}
        )
        current = frames.from_columns(
            {
                "amount": [None] * 10 + [5.0] * 80 + [50.0] * 10,
                "plan": ["basic"] * 90 + ["enterprise"] * 10,
            }
        )
        report = monitor.quality(reference, current, columns=["amount", "plan"])
        assert report.rows == 100
        by_name = {c.column: c for c in report.columns}
        assert by_name["amount"].missing_share == pytest.approx(0.1)
        assert by_name["amount"].out_of_range_share == pytest.approx(0.1)
        assert by_name["plan"].new_categories == ("enterprise",)
        assert by_name["plan"].missing_share == 0.0

    def test_columns_given_as_a_mapping_are_accepted(self, monitor: Monitor) -> None:
        rng = random.Random(3)
        reference = {"x": [rng.gauss(0, 1) for _ in range(1500)]}
        current = {"x": [rng.gauss(3, 1) for _ in range(1500)]}
        report = monitor.drift(reference, current, columns=[ColumnPolicy("x")])
        assert report.drifted_columns == ("x",)
