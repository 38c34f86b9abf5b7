"""What Prometheus metrics cost the hot path: the same endpoint (BentoML adapter, one worker
pinned to one core, prediction log on) with `/metrics` on and off, measured in turns in one
run (off, on, off, on, ...) so that the machine's drift falls on both alike.

Goal (observability issue): throughput with metrics at least 0.95x without; CPU per request
is printed alongside (the steadier measure on a shared machine)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Comparison, print_table, write_results
from serving import CLIENT_CPU, FEATURES, Target, free_port, measure, prepare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    os.sched_setaffinity(0, CLIENT_CPU)

    from stack_bentoml.config import BentoConfig
    from stack_bentoml.server import BentoServer

    row = [0.1 * i for i in range(20)]
    body = json.dumps(dict(zip(FEATURES, row, strict=True))).encode()
    runs: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="mlstack-metrics-bench-") as scratch:
        context, versions, _ = prepare(Path(scratch))
        targets = {}
        for name, enabled in (("off", False), ("on", True)):
            config = BentoConfig(port=free_port(), workers=1, metrics=enabled)
            endpoint = BentoServer(config, context).deploy(versions[0], endpoint=name)
            pid = int((context.home / "serving" / name / "server.pid").read_text())
            port = int(endpoint.url.rsplit(":", 1)[1])
            targets[name] = Target(f"metrics {name}", port, "/predict", body, pid)
        print(f"metrics benchmark: {args.rounds} rounds of {args.seconds:.0f} s each", flush=True)
        for _ in range(args.rounds):
            for name in ("off", "on"):
                result, cpu_ms = measure(targets[name], args.connections, args.seconds)
                runs[name].append((result.throughput, cpu_ms))
        for name in targets:
            BentoServer(BentoConfig(), context).undeploy(name)

    def median(name: str, index: int) -> float:
        return statistics.median(run[index] for run in runs[name])

    conns = args.connections
    comparisons = [
        Comparison(f"req/s @{conns} conns", "metrics on", "metrics off",
                   median("on", 0), median("off", 0), higher_is_better=True),
        Comparison(f"cpu ms/request @{conns}", "metrics on", "metrics off",
                   median("on", 1), median("off", 1), higher_is_better=False),
    ]  # fmt: skip
    print_table("Prometheus metrics on the hot path (medians)", comparisons, "")
    print(f"results: {write_results('metrics', comparisons)}")
    return 0 if comparisons[0].ratio >= 0.95 else 1


if __name__ == "__main__":
    raise SystemExit(main())
