"""Shared by the benchmarks: the machine description and the results file format."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Comparison:
    metric: str
    ours: str
    anchor: str
    ours_value: float
    anchor_value: float
    higher_is_better: bool

    @property
    def ratio(self) -> float:
        """ours / anchor, so a ratio below 1 is better when lower is better."""
        return self.ours_value / self.anchor_value


def machine() -> str:
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )


def write_results(name: str, comparisons: list[Comparison]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "name": name,
        "machine": machine(),
        "comparisons": [{**asdict(c), "ratio": round(c.ratio, 4)} for c in comparisons],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def print_table(title: str, comparisons: list[Comparison], unit: str) -> None:
    print(f"\n{title} ({machine()})")
    print(f"{'metric':<28} {'ours':<16} {'anchor':<16} {'ours':>10} {'anchor':>10} {'ratio':>7}")
    for c in comparisons:
        print(
            f"{c.metric:<28} {c.ours:<16} {c.anchor:<16} "
            f"{c.ours_value:>9.3f}{unit} {c.anchor_value:>9.3f}{unit} {c.ratio:>7.3f}"
        )


def median_wall_seconds(command: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    """Median wall time of `command` over `runs` runs, after one untimed warm-up run."""
    subprocess.run(command, capture_output=True, check=True, env=env, timeout=300)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env=env, timeout=300)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
