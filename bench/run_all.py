"""`make bench`: run every benchmark in this folder, each in its own process, then print
each result's figure, its goal and whether it is met (from bench/results/*.json)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import RESULTS, goal_line  # noqa: E402


def summary() -> None:
    """Every results file, one line per figure: the figure, its anchor, goal and verdict."""
    for path in sorted(RESULTS.glob("*.json")):
        results = json.loads(path.read_text())
        print(f"\n{results['name']} ({results['machine']})")
        for item in results["comparisons"]:
            print(f"  {goal_line(item)}")


def main() -> int:
    failed = []
    for script in sorted(HERE.glob("*.py")):
        if script.name.startswith("_") or script.name == "run_all.py":
            continue
        print(f"\n=== {script.name} ===", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode != 0:
            failed.append(script.name)
    summary()
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--summary"]:  # the last results, without running anything
        summary()
        raise SystemExit(0)
    raise SystemExit(main())
