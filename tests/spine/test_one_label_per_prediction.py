"""One label per prediction, kept by the database: ingests racing on one spine store each
request's label once (the last committed wins), and a spine upgraded from before the unique
index keeps the later of labels stored twice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import sqlalchemy as sa

from stack.spine.records import GroundTruth
from stack.spine.store import SpineStore

AT = datetime(2026, 11, 1, tzinfo=UTC)
REQUESTS = [f"r{i}" for i in range(50)]


def test_racing_ingests_store_each_predictions_label_once(spine_url: str) -> None:
    stores = [SpineStore.open(spine_url) for _ in range(4)]
    start = threading.Barrier(len(stores))
    failures: list[BaseException] = []

    def ingest(store: SpineStore, label: int) -> None:
        batch = [GroundTruth("churn", label, AT, f"{label}.csv", request_id=r) for r in REQUESTS]
        try:
            for _ in range(5):
                start.wait(timeout=30)
                store.record_labels(batch)
        except BaseException as exc:  # reported below, with the thread's label
            failures.append(exc)

    threads = [threading.Thread(target=ingest, args=(s, i)) for i, s in enumerate(stores)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert failures == []
        stored = stores[0].labels("churn")
        assert sorted(g.request_id or "" for g in stored) == sorted(REQUESTS)
        assert len({g.source for g in stored}) >= 1
    finally:
        for store in stores:
            store.close()


def test_a_label_given_twice_in_one_ingest_is_stored_once_the_last_wins(spine_url: str) -> None:
    store = SpineStore.open(spine_url)
    try:
        labels = [
            GroundTruth("churn", 1, AT, "a.csv", request_id="r1"),
            GroundTruth("churn", 0, AT, "a.csv", request_id="r1"),
            GroundTruth("churn", 1, AT, "a.csv", entity={"customer": "7"}),
            GroundTruth("churn", 1, AT, "a.csv", entity={"customer": "7"}),
        ]
        assert store.record_labels(labels) == 3
        stored = [(g.request_id, g.label) for g in store.labels("churn")]
        assert sorted(stored, key=str) == sorted([("r1", 0), (None, 1), (None, 1)], key=str)
    finally:
        store.close()


def test_labels_stored_twice_before_the_index_keep_the_later_one(spine_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from stack.spine.store import MIGRATIONS

    engine = sa.create_engine(spine_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    insert = sa.text(
        "INSERT INTO ground_truth (model, request_id, row, entity, observed_at, label, source, "
        "ingested_at) VALUES ('churn', :request, 0, NULL, '2026-11-01T00:00:00.000000Z', "
        ":label, :source, '2026-11-01T00:00:00.000000Z')"
    )
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0007")
        for request, label, source in [("r1", "1", "a"), ("r1", "0", "b"), ("r2", "1", "a")]:
            connection.execute(insert, {"request": request, "label": label, "source": source})
    engine.dispose()
    store = SpineStore.open(spine_url)
    try:
        stored = sorted((g.request_id, g.label, g.source) for g in store.labels("churn"))
        assert stored == [("r1", 0, "b"), ("r2", 1, "a")]
    finally:
        store.close()
