"""What a model takes in its numeric columns, found by asking it (probe.py): models here are
plain functions of the rows, failing as real ones do (overflow, a guard of their own)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from stack_bentoml.probe import probe_bounds
from stack_bentoml.spec import Column

F64_MAX = 1.7976931348623157e308
COLUMNS = (
    Column(name="tenure", type="double"),
    Column(name="spend", type="double"),
    Column(name="calls", type="long"),
    Column(name="plan", type="string"),
)
BASE = [1.0, 0.5, 3, "basic"]


class Model:
    """Counts its calls; `check` raises on the rows it cannot take."""

    def __init__(self, check: Any) -> None:
        self.check = check
        self.calls = 0

    def __call__(self, rows: list[list[Any]]) -> list[int]:
        self.calls += 1
        self.check(rows)
        return [0] * len(rows)


def probe(model: Model, **options: Any) -> dict[str, tuple[float, float]]:
    return probe_bounds(model, COLUMNS, list(BASE), ref="m@1", **options)


def scaled_overflow(rows: list[list[Any]]) -> None:
    """A scaler with a spread of 0.01 in `spend`: beyond ~1.8e306 it makes an infinity."""
    with np.errstate(over="ignore"):
        scaled = np.asarray([row[:3] for row in rows], dtype=float) / [1.0, 0.01, 1.0]
    if not np.isfinite(scaled).all():
        raise ValueError("Input X contains infinity or a value too large for dtype('float64')")


def test_a_model_that_takes_every_value_is_asked_three_times_and_keeps_the_types_ranges() -> None:
    model = Model(lambda rows: None)
    assert probe(model) == {}
    assert model.calls == 3  # its example, each column at each end, all columns at once


def test_a_column_that_overflows_is_bounded_by_the_largest_power_of_ten_it_takes() -> None:
    assert probe(Model(scaled_overflow)) == {"spend": (-1e306, 1e306)}


def test_a_guard_on_one_side_bounds_that_side_only() -> None:
    def guard(rows: list[list[Any]]) -> None:
        if any(row[0] >= 1000 for row in rows):
            raise RuntimeError("tenure >= 1000")

    assert probe(Model(guard)) == {"tenure": (-F64_MAX, 100.0)}


def test_an_integer_column_is_bounded_in_integers() -> None:
    def guard(rows: list[list[Any]]) -> None:
        if any(abs(row[2]) > 2**40 for row in rows):
            raise OverflowError("calls")

    bounds = probe(Model(guard))
    assert bounds == {"calls": (-(10**12), 10**12)}
    assert all(isinstance(v, int) for v in bounds["calls"])


def test_columns_that_overflow_together_are_shrunk_until_the_model_takes_them_at_once() -> None:
    def summed(rows: list[list[Any]]) -> None:
        with np.errstate(over="ignore"):
            total = np.asarray([row[:2] for row in rows], dtype=float).sum(axis=1)
        if not np.isfinite(total).all():
            raise ValueError("sum overflows")

    bounds = probe(Model(summed))
    (low_t, high_t), (low_s, high_s) = bounds["tenure"], bounds["spend"]
    assert math.isfinite(high_t + high_s) and math.isfinite(low_t + low_s)
    assert high_t >= 1e306 and high_s >= 1e306  # shrunk by one power of ten, no more


def test_a_model_failing_on_its_own_example_or_without_one_is_not_probed() -> None:
    def always(rows: list[list[Any]]) -> None:
        raise RuntimeError("broken")

    broken = Model(always)
    assert probe(broken) == {} and broken.calls == 1
    assert probe_bounds(Model(scaled_overflow), COLUMNS, None, ref="m@1") == {}


def test_probing_stops_at_its_budget_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    model = Model(scaled_overflow)
    assert probe(model, budget_seconds=0.0) == {}  # a slow model: no time left after two calls
    assert model.calls == 2  # the example, each column at each end; no search
    assert "tenure, spend, calls keep their dtype's range" in capsys.readouterr().out
