"""Suites speak columns of plain values; an adapter's fixture converts to its native frame."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol


class FrameIO(Protocol):
    def from_columns(self, columns: Mapping[str, Sequence[Any]]) -> object: ...

    def to_rows(self, frame: object) -> list[dict[str, Any]]: ...

    def write_source(self, columns: Mapping[str, Sequence[Any]], path: Path) -> None:
        """Write a feature source file the adapter can read (parquet for Feast)."""
        ...


class PandasFrames:
    """The FrameIO for adapters whose tool works on pandas DataFrames (Feast, Evidently)."""

    def from_columns(self, columns: Mapping[str, Sequence[Any]]) -> object:
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]

        return pd.DataFrame({k: list(v) for k, v in columns.items()})

    def to_rows(self, frame: object) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = frame.to_dict(orient="records")  # type: ignore[attr-defined]
        return records

    def write_source(self, columns: Mapping[str, Sequence[Any]], path: Path) -> None:
        frame: Any = self.from_columns(columns)
        frame.to_parquet(path)
