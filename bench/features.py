"""Online feature lookups through the Feast adapter and through Feast directly, same store,
same run: p50 and p99 latency for 1 and 100 entities.

Goal (Feast issue): adapter overhead under 5%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Comparison, print_table, write_results

GOAL = 1.05


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


def timed_pair(
    ours: Callable[[], object], anchor: Callable[[], object], repeats: int
) -> tuple[list[float], list[float]]:
    """Interleaved, alternating which goes first, so caches and drift favour neither."""
    for _ in range(20):
        ours()
        anchor()  # warm caches and connections
    samples: tuple[list[float], list[float]] = ([], [])
    for i in range(repeats):
        order = ((0, ours), (1, anchor)) if i % 2 == 0 else ((1, anchor), (0, ours))
        for slot, call in order:
            start = time.perf_counter()
            call()
            samples[slot].append((time.perf_counter() - start) * 1000)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=600)
    args = parser.parse_args()

    import pandas as pd

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

    with tempfile.TemporaryDirectory(prefix="mlstack-bench-") as folder:
        home = Path(folder)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        customers = [f"C{i:05d}" for i in range(1000)]
        pd.DataFrame(
            {
                "customer_id": customers,
                "event_timestamp": [start + timedelta(minutes=i) for i in range(1000)],
                "calls": list(range(1000)),
                "spend": [float(i) for i in range(1000)],
            }
        ).to_parquet(home / "activity.parquet")
        adapter = FeastFeatureStore(FeastConfig(), AdapterContext(home / ".mlstack", home))
        adapter.apply(
            FeatureDefinitions(
                entities=(Entity("customer", ("customer_id",)),),
                sources=(
                    FeatureSource("activity", str(home / "activity.parquet"), "event_timestamp"),
                ),
                views=(
                    FeatureView(
                        "stats",
                        ("customer",),
                        "activity",
                        (FeatureField("calls", "int64"), FeatureField("spend", "float64")),
                    ),
                ),
            )
        )
        adapter.materialize(start + timedelta(days=2), start=start - timedelta(days=1))
        features = ["stats:calls", "stats:spend"]
        comparisons = []
        for size in (1, 100):
            rows = [{"customer_id": c} for c in customers[:size]]
            ours, direct = timed_pair(
                lambda rows=rows: adapter.online_features(features, rows),
                lambda rows=rows: adapter.store.get_online_features(
                    features=features, entity_rows=rows
                ).to_dict(),
                args.repeats,
            )
            for q in (50, 99):
                comparisons.append(
                    Comparison(
                        metric=f"online_lookup_{size}_entities_p{q}_ms",
                        ours="mlstack FeastFeatureStore.online_features",
                        anchor="feast FeatureStore.get_online_features().to_dict()",
                        ours_value=round(percentile(ours, q), 3),
                        anchor_value=round(percentile(direct, q), 3),
                        higher_is_better=False,
                    )
                )
    print_table("Online feature lookups (Feast, SQLite online store)", comparisons, "ms")
    worst = max(c.ratio for c in comparisons if c.metric.endswith("p50_ms"))
    print(
        f"\nworst p50 ratio {worst:.3f}. Goal overhead <5% (ratio <{GOAL}): "
        f"{'met' if worst < GOAL else 'MISSED'}"
    )
    print(f"results: {write_results('features', comparisons)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
