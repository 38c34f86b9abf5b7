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
    #: The goal, if the issue set one: a bound on `ratio` (goal_on="ratio") or on
    #: `ours_value` itself (goal_on="ours"), upper when lower is better, else lower.
    goal: float | None = None
    goal_on: str = "ratio"

    @property
    def ratio(self) -> float:
        """ours / anchor, so a ratio below 1 is better when lower is better."""
        return self.ours_value / self.anchor_value

    @property
    def met(self) -> bool | None:
        """Whether the goal is met; None without a goal."""
        if self.goal is None:
            return None
        figure = self.ratio if self.goal_on == "ratio" else self.ours_value
        return figure >= self.goal if self.higher_is_better else figure <= self.goal


def machine() -> str:
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )


def write_results(
    name: str,
    comparisons: list[Comparison],
    notes: list[str] | None = None,
    folder: Path = RESULTS,
) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.json"
    payload = {
        "name": name,
        "machine": machine(),
        **({"notes": notes} if notes else {}),
        "comparisons": [
            {**asdict(c), "ratio": round(c.ratio, 4), "met": c.met} for c in comparisons
        ],
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


def goal_line(item: dict[str, object]) -> str:
    """One result of a results file as `metric: figure (goal ...): met|MISSED|no goal`."""
    ours, anchor = float(str(item["ours_value"])), float(str(item["anchor_value"]))
    ratio = ours / anchor if anchor else float("inf")
    goal, on = item.get("goal"), item.get("goal_on", "ratio")
    higher = bool(item.get("higher_is_better"))
    figure = f"{ours:.4g} vs {item['anchor']} {anchor:.4g} ({ratio:.3g}x)"
    if goal is None:
        return f"{item['metric']}: {figure}; no goal"
    bound = float(str(goal))
    value = ratio if on == "ratio" else ours
    met = value >= bound if higher else value <= bound
    what = f"{'ratio' if on == 'ratio' else 'value'} {'>=' if higher else '<='} {bound:g}"
    return f"{item['metric']}: {figure}; goal {what}: {'met' if met else 'MISSED'}"
