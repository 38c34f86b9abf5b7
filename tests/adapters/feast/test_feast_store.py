"""What a Feast user relies on beyond the suite: no breaking apply, clear errors on bad input."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from stack.contract.features import (
    Entity,
    FeatureDefinitions,
    FeatureField,
    FeatureSource,
    FeatureView,
)
from stack.errors import StackError
from stack.plugins.manifest import AdapterContext
from stack_feast.config import FeastConfig
from stack_feast.store import FeastFeatureStore

T = datetime(2026, 1, 2, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> FeastFeatureStore:
    return FeastFeatureStore(FeastConfig(), AdapterContext(tmp_path / ".mlstack", tmp_path))


def definitions(tmp_path: Path, *fields: FeatureField, rows: int = 2) -> FeatureDefinitions:
    path = tmp_path / "activity.parquet"
    pd.DataFrame(
        {
            "customer_id": ["C1", "C2"][:rows],
            "event_timestamp": [T, T][:rows],
            "calls": [1, 2][:rows],
            "spend": [1.0, 2.0][:rows],
        }
    ).to_parquet(path)
    return FeatureDefinitions(
        entities=(Entity("customer", ("customer_id",)),),
        sources=(FeatureSource("activity", str(path), "event_timestamp"),),
        views=(FeatureView("stats", ("customer",), "activity", fields),),
    )


CALLS = FeatureField("calls", "int64")
SPEND = FeatureField("spend", "float64")


def test_breaking_change_is_refused_and_applies_nothing(
    store: FeastFeatureStore, tmp_path: Path
) -> None:
    store.apply(definitions(tmp_path, CALLS, SPEND))
    changed = definitions(tmp_path, FeatureField("calls", "string"))
    plan = store.plan(changed)
    assert plan.to_update == ("stats",)
    assert "stats: feature 'spend' would be removed" in plan.breaking
    with pytest.raises(StackError, match=r"feature 'calls' would change type Int64 -> String"):
        store.apply(changed)
    [view] = store.store.list_feature_views()
    assert sorted(f.name for f in view.features) == ["calls", "spend"]


def test_adding_a_feature_is_not_breaking(store: FeastFeatureStore, tmp_path: Path) -> None:
    store.apply(definitions(tmp_path, CALLS))
    plan = store.apply(definitions(tmp_path, CALLS, SPEND))
    assert (plan.to_update, plan.breaking) == (("stats",), ())


def test_empty_source_is_refused_naming_it(store: FeastFeatureStore, tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"source 'activity': .* has no rows"):
        store.apply(definitions(tmp_path, CALLS, rows=0))
    assert store.store.list_feature_views() == []


def test_unknown_type_and_entity_are_refused(store: FeastFeatureStore, tmp_path: Path) -> None:
    bad = definitions(tmp_path, FeatureField("calls", "decimal"))
    bad = FeatureDefinitions(
        entities=bad.entities,
        sources=bad.sources,
        views=(*bad.views, FeatureView("other", ("account",), "activity", (CALLS,))),
    )
    with pytest.raises(StackError) as caught:
        store.apply(bad)
    assert "feature 'calls' has type 'decimal'" in str(caught.value)
    assert "view 'other': unknown entity 'account'" in str(caught.value)


def test_missing_entity_key_is_named(store: FeastFeatureStore, tmp_path: Path) -> None:
    store.apply(definitions(tmp_path, CALLS))
    with pytest.raises(StackError, match="missing entity key 'customer_id'"):
        store.training_frame(pd.DataFrame({"event_timestamp": [T]}), ["stats:calls"])
    with pytest.raises(StackError, match="missing entity key 'customer_id'"):
        store.online_features(["stats:calls"], [{"id": "C1"}])
