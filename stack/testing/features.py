"""Behaviour every FeatureStore adapter must have.

Provide `feature_store` (empty, its files under tmp_path) and `frames` (a FrameIO).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stack.contract.features import (
    Entity,
    FeatureDefinitions,
    FeatureField,
    FeatureSource,
    FeatureStore,
    FeatureView,
)
from stack.errors import StackError
from stack.testing.base import RoleSuite
from stack.testing.frames import FrameIO

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return DAY0 + timedelta(days=n)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class FeatureStoreSuite(RoleSuite):
    @pytest.fixture
    def definitions(self, frames: FrameIO, tmp_path: Path) -> FeatureDefinitions:
        path = tmp_path / "activity.parquet"
        frames.write_source(
            {
                "customer_id": ["C1", "C1", "C1", "C2"],
                "event_timestamp": [day(1), day(3), day(5), day(2)],
                "calls": [1, 3, 5, 20],
                "spend": [10.0, 30.0, 50.0, 200.0],
            },
            path,
        )
        return FeatureDefinitions(
            entities=(Entity("customer", ("customer_id",)),),
            sources=(FeatureSource("activity", str(path), "event_timestamp"),),
            views=(
                FeatureView(
                    name="activity_stats",
                    entities=("customer",),
                    source="activity",
                    features=(FeatureField("calls", "int64"), FeatureField("spend", "float64")),
                ),
            ),
        )

    def test_it_implements_what_it_declares(self, feature_store: FeatureStore) -> None:
        self.check_declared(feature_store)

    def test_plan_shows_changes_before_apply_and_none_after(
        self, feature_store: FeatureStore, definitions: FeatureDefinitions
    ) -> None:
        plan = feature_store.plan(definitions)
        assert "activity_stats" in plan.to_add
        feature_store.apply(definitions)
        assert feature_store.plan(definitions).is_empty

    def test_training_frame_never_sees_the_future(
        self, feature_store: FeatureStore, definitions: FeatureDefinitions, frames: FrameIO
    ) -> None:
        feature_store.apply(definitions)
        entities = frames.from_columns(
            {
                "customer_id": ["C1", "C1", "C1", "C2"],
                "event_timestamp": [day(2), day(4), day(6), day(1)],
            }
        )
        frame = feature_store.training_frame(entities, ["activity_stats:calls"])
        rows = sorted(
            frames.to_rows(frame.frame), key=lambda r: (r["customer_id"], r["event_timestamp"])
        )
        calls = [r["calls"] for r in rows]
        assert calls[:3] == [1, 3, 5]  # C1 as of days 2, 4, 6
        assert _missing(calls[3])  # C2 on day 1: its only value is from day 2
        assert frame.fingerprint.rows == 4
        assert [v.name for v in frame.feature_views] == ["activity_stats"]

    def test_online_lookup_after_materialize_returns_latest(
        self, feature_store: FeatureStore, definitions: FeatureDefinitions
    ) -> None:
        feature_store.apply(definitions)
        feature_store.materialize(day(10), start=day(0))
        rows = feature_store.online_features(
            ["activity_stats:calls", "activity_stats:spend"],
            [{"customer_id": "C1"}, {"customer_id": "C2"}],
        )
        assert [r["calls"] for r in rows] == [5, 20]
        assert [r["spend"] for r in rows] == [50.0, 200.0]

    def test_unknown_feature_is_named_in_the_error(
        self, feature_store: FeatureStore, definitions: FeatureDefinitions, frames: FrameIO
    ) -> None:
        feature_store.apply(definitions)
        entities = frames.from_columns({"customer_id": ["C1"], "event_timestamp": [day(2)]})
        with pytest.raises(StackError, match="activity_stats:nope"):
            feature_store.training_frame(entities, ["activity_stats:nope"])

    def test_entity_frame_without_timestamps_is_refused(
        self, feature_store: FeatureStore, definitions: FeatureDefinitions, frames: FrameIO
    ) -> None:
        feature_store.apply(definitions)
        entities = frames.from_columns({"customer_id": ["C1"]})
        with pytest.raises(StackError, match="event_timestamp"):
            feature_store.training_frame(entities, ["activity_stats:calls"])
