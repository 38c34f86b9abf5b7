"""What a model takes in its numeric columns, found by asking it when it loads.

A dtype's range is not what a model can take: a scaler dividing 1e308 by a spread below 1
overflows float64, and the estimator after it raises on the infinity; a tree casts to
float32. Such a number is valid JSON and within the column's type, so without more the
request would reach the model and fail (a 5xx). So when the champion loads, each numeric
column (`double`, `float`, `long`, `integer`) is probed on a row of the model's own input
example: first the whole dtype range at once (one call: most models take it, and the probe
ends there), then, for a column that fails, the largest power of ten it takes on each side
(a binary search, about nine calls), and last every column at its bound together. The
request schema then refuses beyond those bounds with a 422 naming the column, and
`/openapi.json` states them.

The probe assumes that a model taking a magnitude takes every smaller one. It runs on the
untraced predict, in the worker, and within `budget_seconds` (a slow model keeps its dtype
ranges for the columns not reached; the server log says so). A model without an input
example, or that fails on its own example, is not probed."""

from __future__ import annotations

import base64
import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stack_bentoml.schema import FLOAT32_MAX, INT32, INT64, RequestSchema
from stack_bentoml.spec import Column

Bounds = dict[str, tuple[float, float]]
Predict = Callable[[list[list[Any]]], Any]
Taken = Callable[[Sequence[dict[int, Any]]], bool]  # whether the model answers these changes

#: Each numeric MLflow type's range, as the request schema checks it.
RANGES: dict[str, tuple[float, float]] = {
    "double": (-1.7976931348623157e308, 1.7976931348623157e308),
    "float": (-FLOAT32_MAX, FLOAT32_MAX),
    "long": INT64,
    "integer": INT32,
}


def example_body(model_dir: Path, columns: Sequence[Column]) -> bytes | None:
    """The first record of the model's saved input example as a request's JSON body
    (validated by the request schema); None when there is none or it does not validate."""
    try:
        import pandas as pd
        from mlflow.models import Model

        example: Any = Model.load(str(model_dir)).load_input_example(str(model_dir))
        frame = pd.DataFrame(example).iloc[:1]
        [record] = json.loads(frame.to_json(orient="records", date_format="iso"))
        for column in columns:  # pandas writes bytes as text; a request sends base64
            value = frame[column.name].iloc[0] if column.name in frame else None
            if column.type == "binary" and isinstance(value, bytes):
                record[column.name] = base64.b64encode(value).decode()
        body = json.dumps(record).encode()
        RequestSchema(tuple(columns), max_rows=1).parse(body)
    except Exception:
        return None
    return body


def example_row(model_dir: Path, columns: Sequence[Column]) -> list[Any] | None:
    """The first record of the model's saved input example, as a request would give it
    (validated by the request schema); None when there is none or it does not validate."""
    body = example_body(model_dir, columns)
    if body is None:
        return None
    [row] = RequestSchema(tuple(columns), max_rows=1).parse(body)
    return row


def probe_bounds(
    predict: Predict,
    columns: Sequence[Column],
    base: list[Any] | None,
    *,
    ref: str,
    budget_seconds: float = 2.0,
) -> Bounds:
    """The bounds narrower than their dtype's, by column name: `(lowest, highest)` value the
    model takes. Prints to the server log what it narrowed or could not probe."""
    numeric = [(i, c) for i, c in enumerate(columns) if c.type in RANGES]
    if not numeric or base is None:
        return {}
    import numpy as np

    deadline = time.monotonic() + budget_seconds

    def taken(changes: Sequence[dict[int, Any]]) -> bool:
        rows = []
        for change in changes:
            probe = list(base)
            for i, value in change.items():
                probe[i] = value
            rows.append(probe)
        try:
            with np.errstate(all="ignore"):  # this thread's overflow warnings: expected here
                predict(rows)
        except Exception:
            return False
        return True

    if not taken([{}]):
        print(f"mlstack endpoint: {ref} fails on its input example; not probed", flush=True)
        return {}
    full = {i: RANGES[c.type] for i, c in numeric}
    each_side = [{i: side} for i, (low, high) in full.items() for side in (low, high)]
    if taken(each_side) and _together(taken, full):
        return {}
    found: dict[int, tuple[float, float]] = {}
    for i, _ in numeric:
        if time.monotonic() > deadline:
            skipped = ", ".join(c.name for j, c in numeric if j not in found)
            print(
                f"mlstack endpoint: {ref}: probing stopped after {budget_seconds:g} s; "
                f"{skipped} keep their dtype's range",
                flush=True,
            )
            break
        low, high = full[i]
        top = _largest_taken(functools.partial(_one, taken, i, 1), _ladder(high))
        bottom = _largest_taken(functools.partial(_one, taken, i, -1), _ladder(-low))
        found[i] = (low if bottom is None else -bottom, high if top is None else top)
    if time.monotonic() <= deadline:
        found = _shrunk_together(taken, found)
    narrowed = {columns[i].name: b for i, b in found.items() if b != full[i]}
    for name, (low, high) in narrowed.items():
        print(
            f"mlstack endpoint: {ref} takes {name!r} within [{low:g}, {high:g}] "
            "(probed at load; beyond is refused with 422)",
            flush=True,
        )
    return narrowed


def _one(taken: Taken, i: int, sign: int, magnitude: float) -> bool:
    return taken([{i: sign * magnitude}])


def _together(taken: Taken, bounds: dict[int, Any]) -> bool:
    """Every column at its low bound in one row, and at its high bound in another."""
    return taken([{i: b[0] for i, b in bounds.items()}, {i: b[1] for i, b in bounds.items()}])


def _shrunk_together(
    taken: Taken, bounds: dict[int, tuple[float, float]]
) -> dict[int, tuple[float, float]]:
    """`bounds`, divided by the smallest power of ten that lets the model take every
    column at its bound at once (unchanged when it takes them, or when nothing does)."""
    if not bounds or _together(taken, bounds):
        return bounds

    def divided(power: int) -> dict[int, tuple[float, float]]:
        return {i: (_divide(low, power), _divide(high, power)) for i, (low, high) in bounds.items()}

    powers = list(range(1, 309))
    first = _first_true(lambda k: _together(taken, divided(powers[k])), len(powers))
    return bounds if first is None else divided(powers[first])


def _divide(value: float, power: int) -> float:
    if isinstance(value, int):
        return int(value / 10**power) if power < 19 else 0
    return value / 10.0**power


def _ladder(magnitude: float) -> list[float]:
    """`magnitude`, then the powers of ten below it down to 1, then 0 (descending), as
    integers for an integer type."""
    exponents = range(math.floor(math.log10(magnitude)), -1, -1)
    if isinstance(magnitude, int):
        return [magnitude, *(10**k for k in exponents if 10**k < magnitude), 0]
    return [magnitude, *(10.0**k for k in exponents if 10.0**k < magnitude), 0.0]


def _largest_taken(taken: Callable[[float], bool], ladder: list[float]) -> float | None:
    first = _first_true(lambda k: taken(ladder[k]), len(ladder))
    return None if first is None else ladder[first]


def _first_true(test: Callable[[int], bool], size: int) -> int | None:
    """The smallest k in [0, size) with test(k), when test is false then true (monotone):
    k = 0 first (the common answer), then a binary search."""
    if test(0):
        return 0
    low, high = 1, size - 1
    if high < low or not test(high):
        return None
    while low < high:
        middle = (low + high) // 2
        if test(middle):
            high = middle
        else:
            low = middle + 1
    return low
