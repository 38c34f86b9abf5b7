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


def _orders_store(store: FeastFeatureStore, tmp_path: Path) -> None:
    """Customers with values on days 1 and 3, products with a value on day 1."""
    day = lambda d: datetime(2026, 1, d, tzinfo=UTC)  # noqa: E731
    customers = tmp_path / "customers.parquet"
    pd.DataFrame(
        {
            "customer_id": ["C1", "C1", "C2"],
            "event_timestamp": [day(1), day(3), day(1)],
            "calls": [10, 30, 20],
        }
    ).to_parquet(customers)
    products = tmp_path / "products.parquet"
    pd.DataFrame(
        {"product_id": ["P1", "P2"], "event_timestamp": [day(1), day(1)], "price": [1.5, 2.5]}
    ).to_parquet(products)
    store.apply(
        FeatureDefinitions(
            entities=(Entity("customer", ("customer_id",)), Entity("product", ("product_id",))),
            sources=(
                FeatureSource("customers", str(customers), "event_timestamp"),
                FeatureSource("products", str(products), "event_timestamp"),
            ),
            views=(
                FeatureView("stats", ("customer",), "customers", (CALLS,)),
                FeatureView(
                    "catalog", ("product",), "products", (FeatureField("price", "float64"),)
                ),
            ),
        )
    )


def test_rows_sharing_key_and_timestamp_each_keep_their_features(
    store: FeastFeatureStore, tmp_path: Path
) -> None:
    # Feast's file offline store keeps one row per (join keys, timestamp): two orders in the
    # same second, or two identical rows, must still each get the value as of their time.
    _orders_store(store, tmp_path)
    noon = pd.Timestamp("2026-01-04 12:00", tz="UTC")
    rows = [  # (customer, order, label, time); A1 twice: an exact duplicate row
        ("C1", "A1", 1, noon),
        ("C2", "B1", 0, noon),
        ("C1", "A2", 0, noon),  # same key and time as A1, another label
        ("C1", "A1", 1, noon),
        ("C2", "B2", 1, noon),
        ("C1", "A0", 1, pd.Timestamp("2026-01-02", tz="UTC")),  # before C1's day-3 value
        ("C2", "B0", 1, pd.Timestamp("2025-12-31", tz="UTC")),  # before any C2 value
    ]
    entities = pd.DataFrame(rows, columns=["customer_id", "order_id", "label", "event_timestamp"])
    frame = store.training_frame(entities, ["stats:calls"]).frame
    assert list(frame.columns) == ["customer_id", "order_id", "label", "event_timestamp", "calls"]
    pd.testing.assert_frame_equal(frame[list(entities.columns)], entities)
    assert frame["calls"].tolist()[:6] == [30, 20, 30, 30, 20, 10]
    assert pd.isna(frame["calls"].iloc[6])


def test_naive_and_aware_timestamps_of_one_moment_get_the_same_features(
    store: FeastFeatureStore, tmp_path: Path
) -> None:
    _orders_store(store, tmp_path)
    moments = ["2026-01-02 23:59", "2026-01-03 00:00", "2026-01-03 00:00"]
    naive = pd.DataFrame({"customer_id": ["C1"] * 3, "event_timestamp": pd.to_datetime(moments)})
    athens = naive.assign(
        event_timestamp=naive["event_timestamp"]
        .dt.tz_localize("UTC")
        .dt.tz_convert("Europe/Athens")
    )
    mixed = naive.assign(
        event_timestamp=pd.Series(
            [naive["event_timestamp"][0], *athens["event_timestamp"][1:]], dtype=object
        )
    )
    for entities in (naive, athens, mixed):
        frame = store.training_frame(entities, ["stats:calls"]).frame
        assert frame["calls"].tolist() == [10, 30, 30], entities["event_timestamp"].tolist()
        assert frame["event_timestamp"].tolist() == entities["event_timestamp"].tolist()


def test_rows_sharing_one_views_key_keep_the_other_views_features(
    store: FeastFeatureStore, tmp_path: Path
) -> None:
    # One customer buying two products in the same second: the customer view's key and time
    # are shared, the product view's are not.
    _orders_store(store, tmp_path)
    entities = pd.DataFrame(
        {
            "customer_id": ["C1", "C1", "C2"],
            "product_id": ["P1", "P2", "P2"],
            "event_timestamp": [pd.Timestamp("2026-01-04 12:00", tz="UTC")] * 3,
        }
    )
    frame = store.training_frame(entities, ["stats:calls", "catalog:price"]).frame
    assert frame["calls"].tolist() == [30, 30, 20]
    assert frame["price"].tolist() == [1.5, 2.5, 2.5]
    assert frame["product_id"].tolist() == ["P1", "P2", "P2"]


def test_entity_frames_that_would_lie_are_refused_naming_the_column(
    store: FeastFeatureStore, tmp_path: Path
) -> None:
    _orders_store(store, tmp_path)
    entities = pd.DataFrame({"customer_id": ["C1"], "calls": [99], "event_timestamp": [T]})
    with pytest.raises(
        StackError, match="feature 'stats:calls': the entity frame already has a column 'calls'"
    ):
        store.training_frame(entities, ["stats:calls"])
    dates = pd.DataFrame({"customer_id": ["C1"], "event_timestamp": ["next tuesday"]})
    with pytest.raises(StackError, match="column 'event_timestamp' must hold timestamps"):
        store.training_frame(dates, ["stats:calls"])
