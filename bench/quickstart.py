"""The quickstart's duration, whole and per step (the Quickstart issue: under 3 minutes on
2 cores, warm environment).

Runs `mlstack run quickstart` on a copy of the recipe in a temporary folder (its own stack,
a free port), then reads each step's start and end from the spine, the retraining run's too.
The whole demo is compared with the 3-minute goal; each step with the whole demo (its share),
so a slow step stands out."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Comparison, print_table, write_results

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 180.0
STACK = """
name: quickstart-bench
home: .mlstack
tracker: {{adapter: mlflow}}
registry: {{adapter: mlflow}}
features: {{adapter: feast}}
server: {{adapter: bentoml, port: {port}}}
monitor: {{adapter: evidently}}
orchestrator: {{adapter: local}}
spine: {{url: "sqlite:///.mlstack/spine.db"}}
identity: {{groups: {{ml-leads: [ml-lead]}}}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def main() -> int:
    from stack.session import StackSession

    mlstack = str(Path(sys.executable).parent / "mlstack")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copytree(
            ROOT / "recipes" / "quickstart",
            folder / "quickstart",
            ignore=shutil.ignore_patterns("data", "__pycache__"),
        )
        (folder / "stack.yaml").write_text(STACK.format(port=free_port()))
        started = time.perf_counter()
        done = subprocess.run(
            [mlstack, "run", "quickstart"], cwd=folder, capture_output=True, text=True
        )
        total = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
            return 1
        with StackSession.open(folder / "stack.yaml", base_dir=folder) as session:
            runs = session.spine.pipeline_runs(limit=5)
            steps = [
                (f"{run.recipe}.{s.step}", (s.finished_at - s.started_at).total_seconds())
                for run in reversed(runs)
                for s in run.steps
                if s.finished_at is not None
            ]
            for endpoint in session.server.endpoints():
                session.server.undeploy(endpoint.name)
    comparisons = [
        Comparison("demo wall s", "run quickstart", "3-minute goal", total, GOAL_SECONDS, False)
    ]
    comparisons += [
        Comparison(f"step s: {name}", name, "whole demo", seconds, total, False)
        for name, seconds in steps
    ]
    print_table("quickstart duration", comparisons, "s")
    write_results("quickstart", comparisons)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
