"""`mlstack --help` against the wrapped tools' own `--help`, measured in the same run.

Goal (Core issue): mlstack under 0.25 s median and at least 4x faster than the fastest of
mlflow, zenml, bentoml and kfp. Each command runs once untimed (warm file cache), then
`--runs` times; the median is reported.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Comparison, median_wall_seconds, print_table, write_results

ANCHORS = ("mlflow", "zenml", "bentoml", "kfp")
GOAL_SECONDS = 0.25
GOAL_SPEEDUP = 4.0


def tool(name: str) -> str | None:
    """The console script in this environment's bin folder, else on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = {
        **os.environ,
        "ZENML_ANALYTICS_OPT_IN": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "BENTOML_DO_NOT_TRACK": "true",
        "DO_NOT_TRACK": "true",
    }

    ours_path = tool("mlstack")
    if ours_path is None:
        print("mlstack is not installed in this environment", file=sys.stderr)
        return 1
    ours = median_wall_seconds([ours_path, "--help"], args.runs, env)
    comparisons = []
    for name in ANCHORS:
        path = tool(name)
        if path is None:
            print(f"skipping {name}: not installed (make bench installs the bench group)")
            continue
        anchor = median_wall_seconds([path, "--help"], args.runs, env)
        comparisons.append(
            Comparison(
                metric="cli_help_median_seconds",
                ours="mlstack --help",
                anchor=f"{name} --help",
                ours_value=round(ours, 4),
                anchor_value=round(anchor, 4),
                higher_is_better=False,
            )
        )
    print_table("CLI start-up: median wall time of --help", comparisons, "s")
    if comparisons:
        fastest = min(comparisons, key=lambda c: c.anchor_value)
        speedup = fastest.anchor_value / ours
        met = ours < GOAL_SECONDS and speedup >= GOAL_SPEEDUP
        print(
            f"\nmlstack {ours:.3f}s; fastest anchor {fastest.anchor} {fastest.anchor_value:.3f}s "
            f"({speedup:.1f}x). Goal <{GOAL_SECONDS}s and >={GOAL_SPEEDUP}x: "
            f"{'met' if met else 'MISSED'}"
        )
        print(f"results: {write_results('cli_startup', comparisons)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
