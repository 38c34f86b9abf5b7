"""Production online stores through the same config: PostgreSQL and Redis, real servers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy.engine import make_url

from stack.contract.features import (
    Entity,
    FeatureDefinitions,
    FeatureField,
    FeatureSource,
    FeatureView,
)
from stack.plugins.manifest import AdapterContext
from stack_feast.config import FeastConfig
from stack_feast.store import FeastFeatureStore
from tests.support.postgres import PostgresServer
from tests.support.redis_server import redis_address

T1, T2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC)


def definitions(tmp_path: Path) -> FeatureDefinitions:
    path = tmp_path / "activity.parquet"
    pd.DataFrame(
        {"customer_id": ["C1", "C1", "C2"], "event_timestamp": [T1, T2, T1], "calls": [1, 4, 9]}
    ).to_parquet(path)
    return FeatureDefinitions(
        entities=(Entity("customer", ("customer_id",)),),
        sources=(FeatureSource("activity", str(path), "event_timestamp"),),
        views=(FeatureView("stats", ("customer",), "activity", (FeatureField("calls", "int64"),)),),
    )


def round_trip(tmp_path: Path, online_store: dict[str, Any]) -> list[object]:
    config = FeastConfig.model_validate(
        {"project": f"p{uuid.uuid4().hex[:10]}", "online_store": online_store}
    )
    store = FeastFeatureStore(config, AdapterContext(tmp_path / ".mlstack", tmp_path))
    store.apply(definitions(tmp_path))
    store.materialize(datetime(2026, 2, 1, tzinfo=UTC), start=datetime(2025, 12, 1, tzinfo=UTC))
    rows = store.online_features(["stats:calls"], [{"customer_id": "C1"}, {"customer_id": "C2"}])
    return [r["calls"] for r in rows]


@pytest.mark.postgres
def test_postgresql_online_store(postgres_server: PostgresServer, tmp_path: Path) -> None:
    with postgres_server.database() as url:
        parsed = make_url(url)
        online = {
            "type": "postgres",
            "host": parsed.host,
            "port": parsed.port or 5432,
            "database": parsed.database,
            "user": parsed.username or "postgres",
            "password": parsed.password or "",
        }
        assert round_trip(tmp_path, online) == [4, 9]


def test_redis_online_store(tmp_path: Path) -> None:
    with redis_address() as (host, port):
        assert round_trip(tmp_path, {"type": "redis", "connection_string": f"{host}:{port}"}) == [
            4,
            9,
        ]
