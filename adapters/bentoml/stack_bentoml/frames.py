"""Validated rows as the pandas frame a model takes: each column with the dtype its MLflow
signature type names.

pandas frames Python ints as int64 and floats as float64, and MLflow's schema enforcement
will not narrow them: a pyfunc whose signature says `integer` (int32) or `float` (float32)
refuses such a frame. So each column is built with its own dtype:

    integer → int32, long → int64, float → float32, double → float64, boolean → bool,
    string / binary → object, datetime → datetime64[ns] (naive), array / object /
    map / any → object (values typed as MLflow checks them: numpy scalars for int32/float32)

A missing value in an optional column: NaN in a float column, None in an object one (a
boolean column becomes object, which MLflow passes through). An integer column cannot hold
one, and MLflow takes neither a nullable Int nor a float column there, only the column left
out; so a batch whose optional integer columns are null in some rows is split into groups,
each framed without the columns null in it (`Framer.groups`). A native scikit-learn model
(no MLflow enforcement) takes such a column as float64 with NaN instead (`Framer.frame`).

The plan is made once per version; framing a batch is one numpy conversion per column."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from stack_bentoml.spec import NESTED_TYPES, Column

Rows = Sequence[Sequence[Any]]
_NUMPY = {
    "integer": np.int32,
    "long": np.int64,
    "float": np.float32,
    "double": np.float64,
    "boolean": np.bool_,
}
_INTEGERS = ("integer", "long")


class Framer:
    """Frames rows (in `columns` order, as `RequestSchema.parse` returns them)."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.names = [c.name for c in columns]
        self.kinds = [c.type for c in columns]
        self.optional = [not c.required for c in columns]
        self._convert = [
            _cell_converter(c.type_json()) if c.type in NESTED_TYPES else None for c in columns
        ]
        # optional integer columns: where a null splits a batch (for MLflow)
        self.nullable_ints = [
            i for i, c in enumerate(columns) if not c.required and c.type in _INTEGERS
        ]

    def frame(self, rows: Rows, *, ints_with_nulls_as_float: bool = True) -> pd.DataFrame:
        """All rows as one frame (for a native model: an integer column holding a null is
        float64 with NaN)."""
        data = {
            name: self._column(i, [row[i] for row in rows], ints_with_nulls_as_float)
            for i, name in enumerate(self.names)
        }
        return pd.DataFrame(data, index=pd.RangeIndex(len(rows)), copy=False)

    def groups(self, rows: Rows) -> list[tuple[list[int], pd.DataFrame]]:
        """Frames for MLflow's enforcement: usually one, with every row; when optional
        integer columns are null in some rows, one per pattern of nulls, each without the
        columns null in it. Each group comes with the positions of its rows in `rows`."""
        nullable = self.nullable_ints
        if not nullable or not any(row[i] is None for row in rows for i in nullable):
            return [(list(range(len(rows))), self.frame(rows, ints_with_nulls_as_float=False))]
        by_pattern: dict[tuple[int, ...], list[int]] = {}
        for position, row in enumerate(rows):
            absent = tuple(i for i in self.nullable_ints if row[i] is None)
            by_pattern.setdefault(absent, []).append(position)
        found = []
        for absent, positions in by_pattern.items():
            subset = [rows[p] for p in positions]
            data = {
                name: self._column(i, [row[i] for row in subset], False)
                for i, name in enumerate(self.names)
                if i not in absent
            }
            found.append((positions, pd.DataFrame(data, index=pd.RangeIndex(len(subset)))))
        return found

    def _column(self, i: int, values: list[Any], ints_with_nulls_as_float: bool) -> Any:
        kind = self.kinds[i]
        dtype = _NUMPY.get(kind)
        if dtype is not None:
            if not self.optional[i] or None not in values:
                return np.array(values, dtype=dtype)
            if kind in ("float", "double"):
                return np.array(values, dtype=dtype)  # None becomes NaN
            if kind in _INTEGERS and ints_with_nulls_as_float:
                return np.array(values, dtype=np.float64)
        convert = self._convert[i]
        if convert is not None:
            values = [convert(v) for v in values]
        if kind == "datetime":
            return np.array(values, dtype="datetime64[ns]")  # None becomes NaT
        if kind not in NESTED_TYPES:
            return np.array(values, dtype=object)
        cells = np.empty(len(values), dtype=object)
        for j, value in enumerate(values):  # one by one: numpy would unpack equal-length lists
            cells[j] = value
        return cells


def _cell_converter(node: dict[str, Any]) -> Callable[[Any], Any] | None:
    """How a validated value becomes what MLflow's enforcement checks it as (None: as is).
    MLflow checks an element of an array or object by its pandas dtype, so a Python int
    (int64) is no `integer` there and a Python float (float64) no `float`."""
    kind = node.get("type")
    if kind == "integer":
        return _none_or(np.int32)
    if kind == "float":
        return _none_or(np.float32)
    if kind == "array":
        item = _cell_converter(node["items"])
        return None if item is None else _none_or(functools.partial(_each, item))
    if kind == "map":
        value = _cell_converter(node["values"])
        return None if value is None else _none_or(functools.partial(_each_value, value))
    if kind == "object":
        converters: dict[str, Callable[[Any], Any]] = {}
        for key, prop in node["properties"].items():
            if (converter := _cell_converter(prop)) is not None:
                converters[key] = converter
        if not converters:
            return None

        def convert_object(obj: dict[str, Any]) -> dict[str, Any]:
            return {k: (converters[k](v) if k in converters else v) for k, v in obj.items()}

        return _none_or(convert_object)
    return None


def _each(convert: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    return [convert(v) for v in values]


def _each_value(convert: Callable[[Any], Any], mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: convert(v) for k, v in mapping.items()}


def _none_or(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)
