"""The quickstart from a fresh clone (issue #25, item 4): `git clone`, then `make demo` with a
warm package cache, until the endpoint serves; and the `make demo` run after install, whole
and per step.

A temporary `git clone` of this checkout runs the repository's own Makefile: `make sync`
(uv, found on PATH or in this checkout's .tools/, with the machine's warm uv cache), then
`make demo`, whose output is timestamped line by line to find when the `deploy` step
succeeded (the endpoint answers then). `make demo-clean` stops the endpoints and the clone
is removed. Goals: clone to a serving endpoint <= 90 s; `make demo` <= 45 s after install.
Anchors, measured in the same run: the install alone (`git clone` + `make sync`), and the
sum of the demo's own steps (so what `make demo` adds around them shows).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Comparison, print_table, write_results

ROOT = Path(__file__).resolve().parents[1]
SERVING_GOAL_S = 90.0
DEMO_GOAL_S = 45.0
#: The line `mlstack run` prints when a step succeeded (`  ✓ deploy succeeded`).
DEPLOYED = re.compile(r"\bdeploy\b.*\bsucceeded\b")


def environment() -> dict[str, str]:
    """This machine's environment, with this checkout's bootstrapped uv on PATH when uv is
    not already there (a user with uv installed); the clone's own .venv, not ours."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
    }
    tools = ROOT / ".tools" / "bin"
    if shutil.which("uv") is None and (tools / "uv").exists():
        env["PATH"] = f"{tools}{os.pathsep}{env.get('PATH', '')}"
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", BENTOML_DO_NOT_TRACK="true")
    return env


def timed_lines(
    command: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> list[tuple[float, str]]:
    """Run `command`, returning each output line with the seconds since it started."""
    started = time.perf_counter()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.perf_counter() - started, line.rstrip()))
            if time.perf_counter() - started > timeout:
                process.kill()
                raise TimeoutError(f"{' '.join(command)}: over {timeout:.0f} s")
        if process.wait() != 0:
            tail = "\n".join(text for _, text in lines[-40:])
            raise RuntimeError(f"{' '.join(command)} failed:\n{tail}")
    lines.append((time.perf_counter() - started, ""))
    return lines


def step_durations(clone: Path) -> list[tuple[str, float]]:
    from stack.session import StackSession

    with StackSession.open(None, base_dir=clone) as session:
        runs = session.spine.pipeline_runs(limit=5)
        return [
            (f"{run.recipe}.{s.step}", (s.finished_at - s.started_at).total_seconds())
            for run in reversed(runs)
            for s in run.steps
            if s.finished_at is not None
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per make call")
    args = parser.parse_args()
    env = environment()
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "mlstack"
        started = time.perf_counter()
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        cloned = time.perf_counter() - started
        try:
            sync = timed_lines(["make", "sync"], clone, env, args.timeout)
            installed = cloned + sync[-1][0]
            demo = timed_lines(["make", "demo"], clone, env, args.timeout)
            deployed = next((at for at, line in demo if DEPLOYED.search(line)), None)
            if deployed is None:
                print("\n".join(line for _, line in demo[-40:]))
                print("no `deploy succeeded` line in the demo's output", file=sys.stderr)
                return 1
            steps = step_durations(clone)
        finally:
            subprocess.run(["make", "demo-clean"], cwd=clone, env=env, capture_output=True)
    demo_seconds = demo[-1][0]
    serving = installed + deployed
    work = sum(seconds for _, seconds in steps)
    print(
        f"clone {cloned:.1f} s, install {installed - cloned:.1f} s, demo {demo_seconds:.1f} s "
        f"(endpoint serving {deployed:.1f} s in); clone to serving {serving:.1f} s"
    )
    comparisons = [
        Comparison(
            "clone to serving s",
            "git clone + make demo until deployed",
            "git clone + make sync",
            serving,
            installed,
            False,
            goal=SERVING_GOAL_S,
            goal_on="ours",
        ),
        Comparison(
            "demo wall s (after install)",
            "make demo",
            "sum of its steps",
            demo_seconds,
            work,
            False,
            goal=DEMO_GOAL_S,
            goal_on="ours",
        ),
    ]
    comparisons += [
        Comparison(f"step s: {name}", name, "whole demo", seconds, demo_seconds, False)
        for name, seconds in steps
    ]
    print_table("quickstart from a fresh clone", comparisons, "s")
    print(f"results: {write_results('quickstart', comparisons)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
