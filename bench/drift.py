"""Drift checks: Evidently's default DataDriftPreset report against the adapter's check, same
frames, same process: 100k rows x 20 numeric columns (3 shifted), then 1M rows.

The adapter runs Evidently's own tests with its thresholds (verdicts agree: see
tests/adapters/evidently/test_drift_agrees.py) on a reference profiled once; the time shown
for it is a check after the first (the continuous case), the first check is printed too.
Goal (Monitoring issue): the adapter's check at least 10x faster than Evidently's report.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Comparison, print_table, write_results

GOAL = 10.0


def frames(rows: int) -> tuple[object, object]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(rows)
    names = [f"x{i}" for i in range(20)]
    reference = pd.DataFrame(rng.normal(size=(rows, 20)), columns=names)
    current = pd.DataFrame(rng.normal(size=(rows, 20)), columns=names)
    for name in ("x0", "x7", "x13"):
        current[name] = current[name] * 1.3 + 0.4
    return reference, current


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    args = parser.parse_args()

    from evidently import Report
    from evidently.presets import DataDriftPreset

    from stack.contract.monitoring import ColumnPolicy
    from stack.plugins.manifest import AdapterContext
    from stack_evidently.monitor import EvidentlyMonitor

    comparisons = []
    with tempfile.TemporaryDirectory() as scratch:
        monitor = EvidentlyMonitor(None, AdapterContext(Path(scratch), Path(scratch)))
        for rows in (int(s) for s in args.sizes.split(",")):
            reference, current = frames(rows)
            columns = [ColumnPolicy(c) for c in reference.columns]  # type: ignore[attr-defined]

            started = time.perf_counter()
            snapshot = Report([DataDriftPreset()]).run(
                current_data=current, reference_data=reference
            )
            evidently_seconds = time.perf_counter() - started
            flagged = sorted(
                m["metric_name"].split("column=")[1].split(",")[0]
                for m in snapshot.dict()["metrics"]
                if m["metric_name"].startswith("ValueDrift") and float(m["value"]) >= 0.1
            )

            started = time.perf_counter()
            monitor.drift(reference, current, columns=columns)
            first_seconds = time.perf_counter() - started
            started = time.perf_counter()
            report = monitor.drift(reference, current, columns=columns)
            ours_seconds = time.perf_counter() - started
            same = sorted(report.drifted_columns) == flagged
            print(
                f"{rows:>9} rows: Evidently report {evidently_seconds:6.2f} s, adapter first check "
                f"{first_seconds:6.3f} s, later checks {ours_seconds:6.3f} s; drifted "
                f"{sorted(report.drifted_columns)} (Evidently: {flagged}, same: {same})",
                flush=True,
            )
            if not same:
                print("verdicts differ", file=sys.stderr)
                return 1
            comparisons.append(
                Comparison(
                    f"drift check s @{rows // 1000}k rows",
                    "adapter check",
                    "Evidently DataDriftPreset",
                    ours_seconds,
                    evidently_seconds,
                    higher_is_better=False,
                )
            )
    print_table("Drift: 20 numeric columns, 3 shifted", comparisons, "s")
    for c in comparisons:
        print(f"{c.metric}: {1 / c.ratio:.1f}x faster (goal >= {GOAL:g}x)")
    print(f"results: {write_results('drift', comparisons)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
