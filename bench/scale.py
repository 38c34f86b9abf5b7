"""mlstack at a real team's size (issue #25): 200 models x 10 versions, a year of audit
(1,000,000 entries), 1,000,000 lineage edges, 5,000 pipeline runs, and a prediction log of
10,000,000 requests x 20 features in the endpoint's Parquet layout.

Each figure is measured against an anchor measured in the same run:

- read commands (`mlstack models`, `runs`, `lineage M@serving`, `audit log --model M`,
  `rollout history M --at T`), wall time including process start, median of `--runs`
  after one warm-up: against MLflow's own client doing the registry reads in a fresh
  process (`search_registered_models` + `get_model_version_by_alias` of each); goals
  <= 1 s and <= 1.2x that anchor;
- a write command (`mlstack reject`), on a copy of the store: against MLflow's client
  setting a tag and an alias in a fresh process; goal <= 2 s;
- `audit verify` over every entry: against hashlib hashing the same bytes (each entry's
  canonical JSON, streamed from a file) in a fresh process, goal <= 3x; its peak RSS
  against `mlstack runs` (a command that holds nothing), goal <= 1.5x (constant memory);
- "what served at T" and a lineage walk, in process: against SQLite answering the same
  question in SQL (sqlite3, no ORM); goal <= 100 ms;
- `monitor run`'s check of a window (the endpoint's Parquet log streamed in batches, a
  bounded sample judged by the Evidently adapter: drift and quality, 20 features against a
  reference) over the whole log, in a process limited to 3 GB: its time and peak RSS
  against a pyarrow dataset scan of the same window; goals <= 15 s and <= 2 GB at
  10,000,000 rows; and its drift verdicts against Evidently's own report on the same
  sample (they must be equal);
- the same check against Evidently's default report (`DataDriftPreset`) on windows of 10k
  rows up (x10), the window decoded into a DataFrame first (not timed: the anchor is the
  report alone), until Evidently fails (3 GB, 300 s); goal >= 50x faster (ratio <= 0.02)
  on the largest window Evidently completes.

The store is built once (bench/_scale_store.py) under the temp folder, keyed by its version
and sizes, and reused by later runs. `--small` is a smoke run on a tiny store; `--only
read,audit` measures those sections alone and keeps the others' figures in the results file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _scale_store as store
from _common import RESULTS, Comparison, print_table, write_results

READ_GOAL_S = 1.0
READ_GOAL_RATIO = 1.2
WRITE_GOAL_S = 2.0
VERIFY_GOAL_RATIO = 3.0
VERIFY_RSS_GOAL_RATIO = 1.5
QUERY_GOAL_S = 0.1
MONITOR_GOAL_S = 15.0
MONITOR_GOAL_MB = 2048.0
MONITOR_EVIDENTLY_GOAL_RATIO = 1 / 50
#: Rows of the drift reference the monitoring figures check the window against.
REFERENCE_ROWS = 20_000
#: The address space a monitoring read may take before it is stopped (protects the machine).
MONITOR_LIMIT_BYTES = 3 * 1024**3

ENV = {
    **os.environ,
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "BENTOML_DO_NOT_TRACK": "true",
}

MLFLOW_READS = """
from mlflow import MlflowClient
client = MlflowClient(tracking_uri="sqlite:///.mlstack/mlflow.db",
                      registry_uri="sqlite:///.mlstack/mlflow.db")
for model in client.search_registered_models(max_results=1000):
    client.get_model_version_by_alias(model.name, "serving")
"""

MLFLOW_WRITE = """
import sys
from mlflow import MlflowClient
client = MlflowClient(tracking_uri="sqlite:///.mlstack/mlflow.db",
                      registry_uri="sqlite:///.mlstack/mlflow.db")
client.set_model_version_tag(sys.argv[1], sys.argv[2], "mlstack.approved", "yes")
client.set_registered_model_alias(sys.argv[1], "bench", sys.argv[2])
"""

HASH_LINES = """
import hashlib, sys
with open(sys.argv[1], "rb") as lines:
    for line in lines:
        hashlib.sha256(line[:-1]).hexdigest()
"""

PEAK_RSS = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""

MONITOR_CHECK = """
import json, resource, sys, tempfile, time
from datetime import datetime
from pathlib import Path
limit = int(sys.argv[4])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import numpy as np
import pandas as pd
from stack.contract.monitoring import ColumnPolicy
from stack.monitoring.stream import stream_window
from stack.plugins.manifest import AdapterContext
from stack_bentoml.predictlog import scan_log
from stack_evidently.monitor import EvidentlyMonitor
features, compare = int(sys.argv[5]), sys.argv[6] == "compare"
names = [f"x{i}" for i in range(features)]
reference = pd.DataFrame(
    np.random.default_rng(1).normal(size=(REFERENCE_ROWS, features)).round(4), columns=names
)
since, until = datetime.fromisoformat(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
scratch = Path(tempfile.mkdtemp())
monitor = EvidentlyMonitor(None, AdapterContext(scratch, scratch))
import evidently.core.datasets, evidently.legacy.calculations.stattests  # as the anchor: not timed
started = time.perf_counter()
streamed = stream_window(scan_log(Path(sys.argv[1]), since=since, until=until), until)
window = next(iter(streamed.windows.values()))
current = window.columns(names)
report = monitor.drift(reference, current, columns=[ColumnPolicy(n) for n in names])
monitor.quality(reference, current, columns=names)
seconds = time.perf_counter() - started
rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
evidently = None
if compare:  # Evidently's own report on the sample the check judged (not timed)
    from evidently import Report
    from evidently.presets import DataDriftPreset
    snapshot = Report([DataDriftPreset()]).run(
        current_data=pd.DataFrame(current), reference_data=reference
    )
    evidently = sorted(
        m["metric_name"].split("column=")[1].split(",")[0]
        for m in snapshot.dict()["metrics"]
        if m["metric_name"].startswith("ValueDrift") and float(m["value"]) >= 0.1
    )
print(json.dumps({
    "requests": window.total_rows, "sampled": len(window.records), "seconds": seconds,
    "rss_kb": rss_kb, "drifted": sorted(report.drifted_columns), "evidently": evidently,
}))
"""

EVIDENTLY_REPORT = """
import json, resource, sys, time
from datetime import datetime
from pathlib import Path
limit = int(sys.argv[4])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import numpy as np
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
from stack_bentoml.predictlog import read_log
features = int(sys.argv[5])
names = [f"x{i}" for i in range(features)]
reference = pd.DataFrame(
    np.random.default_rng(1).normal(size=(REFERENCE_ROWS, features)).round(4), columns=names
)
since, until = datetime.fromisoformat(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
table = read_log(Path(sys.argv[1]), since=since, until=until)
current = pd.DataFrame.from_records(
    [json.loads(text)[0] for text in table["inputs"].to_pylist()], columns=names
)
del table
started = time.perf_counter()
Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
seconds = time.perf_counter() - started
print(json.dumps({"rows": len(current), "seconds": seconds}))
"""

DATASET_SCAN = """
import resource, sys, time
from datetime import datetime
import pyarrow.dataset as ds
started = time.perf_counter()
data = ds.dataset(sys.argv[1], format="parquet", partitioning="hive")
since, until = datetime.fromisoformat(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
window = (ds.field("ts") >= since) & (ds.field("ts") < until)
rows = 0
for batch in data.to_batches(columns=["ts", "model_version", "inputs", "output"], filter=window):
    rows += batch.num_rows
seconds = time.perf_counter() - started
print(rows, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def mlstack() -> str:
    return str(Path(sys.executable).parent / "mlstack")


def median_seconds(command: list[str], cwd: Path, runs: int) -> float:
    """Median wall time of `command` in `cwd` over `runs` runs, after one untimed run."""
    times = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        if attempt:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def in_process(call: Callable[[], object], runs: int) -> float:
    call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_rss_mb(command: list[str], cwd: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip()) / 1024


def prepared(sizes: store.Sizes, cache: Path) -> Path:
    folder = cache / sizes.key
    if (folder / "built").is_file():
        print(f"reusing the store in {folder}", flush=True)
        return folder
    if folder.exists():
        shutil.rmtree(folder)  # a build that did not finish
    print(f"building the store in {folder}", flush=True)
    store.build(folder, sizes)
    return folder


def read_commands(folder: Path, sizes: store.Sizes, runs: int) -> list[Comparison]:
    served = store.YEAR_START + timedelta(days=200)
    commands = {
        "models": ["models"],
        "runs": ["runs", "--limit", "20"],
        "lineage M@serving": ["lineage", f"{store.model_name(0)}@serving"],
        "audit log --model M": ["audit", "log", "--model", store.model_name(1)],
        "rollout history M --at T": [
            "rollout",
            "history",
            store.model_name(0),
            "--at",
            served.isoformat(),
        ],
    }
    anchor = median_seconds([sys.executable, "-c", MLFLOW_READS], folder, runs)
    print(f"  MLflow client reads: {anchor:.2f} s", flush=True)
    found = []
    for name, arguments in commands.items():
        seconds = median_seconds([mlstack(), *arguments], folder, runs)
        print(f"  mlstack {name}: {seconds:.2f} s", flush=True)
        for goal, on in ((READ_GOAL_RATIO, "ratio"), (READ_GOAL_S, "ours")):
            found.append(
                Comparison(
                    f"read s: {name}" + (" (<= 1 s)" if on == "ours" else ""),
                    f"mlstack {' '.join(arguments)}",
                    "MLflow client: models + serving aliases",
                    seconds,
                    anchor,
                    higher_is_better=False,
                    goal=goal,
                    goal_on=on,
                )
            )
    return found


def write_commands(folder: Path, sizes: store.Sizes, runs: int) -> list[Comparison]:
    """`mlstack reject` on a copy of the store (the cached one stays as built): a lifecycle
    write through governance (the registry's state tag and an audit entry). `approve` is
    refused on these versions: their stack has no recipe whose gate counts approvals."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch)
        (copy / ".mlstack").mkdir()
        shutil.copy(folder / "stack.yaml", copy)
        for name in ("mlflow.db", "spine.db"):  # the backup API: WAL contents included
            with (
                sqlite3.connect(folder / ".mlstack" / name) as source,
                sqlite3.connect(copy / ".mlstack" / name) as target,
            ):
                source.backup(target)
        times, anchors = [], []
        for attempt in range(runs + 1):  # version 1 of the last models (not read above)
            model, number = store.model_name(sizes.models - 1 - attempt % sizes.models), 1
            started = time.perf_counter()
            done = subprocess.run(
                [mlstack(), "reject", f"{model}@{number}", "--reason", "bench"],
                cwd=copy,
                env=ENV,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise RuntimeError(f"mlstack reject failed:\n{done.stdout}\n{done.stderr}")
            times.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", MLFLOW_WRITE, model, str(number)],
                cwd=copy,
                env=ENV,
                capture_output=True,
                check=True,
            )
            anchors.append(time.perf_counter() - started)
    ours, anchor = statistics.median(times[1:]), statistics.median(anchors[1:])
    print(f"  mlstack reject: {ours:.2f} s; MLflow tag + alias: {anchor:.2f} s", flush=True)
    return [
        Comparison(
            "write s: reject (<= 2 s)",
            "mlstack reject M@1",
            "MLflow client: tag + alias",
            ours,
            anchor,
            higher_is_better=False,
            goal=WRITE_GOAL_S,
            goal_on="ours",
        )
    ]


def audit_verify(folder: Path, runs: int) -> list[Comparison]:
    bodies = folder / "audit-bodies.jsonl"
    if not bodies.is_file():  # each entry's hashed bytes, one per line (JSON has no raw \n)
        db = sqlite3.connect(folder / ".mlstack" / "spine.db")
        partial = bodies.with_suffix(".tmp")
        with partial.open("wb") as out:
            query = (
                "SELECT seq, at, actor, action, subject, reason, payload, prev_hash, hash "
                "FROM audit_entries ORDER BY seq"
            )
            for seq, at, actor, action, subject, reason, payload, prev, digest in db.execute(query):
                body = json.dumps(
                    [seq, at, actor, action, subject, reason, payload, prev],
                    separators=(",", ":"),
                    ensure_ascii=False,
                ).encode()
                assert hashlib.sha256(body).hexdigest() == digest
                out.write(body + b"\n")
        db.close()
        partial.rename(bodies)
    ours = median_seconds([mlstack(), "audit", "verify"], folder, runs)
    anchor = median_seconds([sys.executable, "-c", HASH_LINES, str(bodies)], folder, runs)
    rss = peak_rss_mb([mlstack(), "audit", "verify"], folder)
    idle = peak_rss_mb([mlstack(), "runs", "--limit", "1"], folder)
    print(
        f"  audit verify: {ours:.2f} s, {rss:.0f} MB; hashlib: {anchor:.2f} s; "
        f"mlstack runs: {idle:.0f} MB",
        flush=True,
    )
    cores = len(os.sched_getaffinity(0))  # the processes a big log is read by on SQLite
    return [
        Comparison(
            "audit verify s",
            f"mlstack audit verify ({cores} cores)",
            "hashlib over the same bytes (1 core)",
            ours,
            anchor,
            higher_is_better=False,
            goal=VERIFY_GOAL_RATIO,
        ),
        Comparison(
            "audit verify peak RSS MB",
            "mlstack audit verify",
            "mlstack runs --limit 1",
            rss,
            idle,
            higher_is_better=False,
            goal=VERIFY_RSS_GOAL_RATIO,
        ),
    ]


def queries(folder: Path, sizes: store.Sizes, runs: int) -> list[Comparison]:
    from stack.governance.history import served_at
    from stack.spine import NodeKind, NodeRef, SpineStore

    model = store.model_name(0)
    when = store.YEAR_START + timedelta(days=200)
    node = NodeRef(NodeKind.MODEL_VERSION, f"{model}@{sizes.versions}")
    spine = SpineStore.open(f"sqlite:///{folder / '.mlstack' / 'spine.db'}")
    db = sqlite3.connect(folder / ".mlstack" / "spine.db")
    try:
        ours_served = in_process(lambda: served_at(spine, model, when), runs)
        anchor_served = in_process(
            lambda: db.execute(
                "SELECT subject, payload FROM audit_entries WHERE action = 'state.changed' "
                "AND subject >= ? AND subject < ? AND at <= ? ORDER BY seq DESC LIMIT 1",
                (f"{model}@", f"{model}A", when.isoformat()),
            ).fetchall(),
            runs,
        )
        ours_walk = in_process(lambda: (spine.upstream(node), spine.downstream(node)), runs)
        walk_sql = """
            WITH RECURSIVE
              up(id) AS (SELECT id FROM lineage_nodes WHERE kind = ? AND key = ?
                         UNION SELECT e.src_id FROM lineage_edges e JOIN up ON e.dst_id = up.id),
              down(id) AS (SELECT id FROM lineage_nodes WHERE kind = ? AND key = ?
                         UNION SELECT e.dst_id FROM lineage_edges e JOIN down ON e.src_id = down.id)
            SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM down)"""
        anchor_walk = in_process(
            lambda: db.execute(walk_sql, (node.kind.value, node.key) * 2).fetchall(), runs
        )
        edges = db.execute("SELECT count(*) FROM lineage_edges").fetchone()[0]
    finally:
        db.close()
        spine.close()
    print(
        f"  served at T: {ours_served * 1000:.1f} ms (SQL {anchor_served * 1000:.1f} ms); "
        f"lineage walk at {edges} edges: {ours_walk * 1000:.1f} ms "
        f"(SQL {anchor_walk * 1000:.1f} ms)",
        flush=True,
    )
    return [
        Comparison(
            "query s: what served at T",
            "served_at(spine, M, T)",
            "sqlite3: the last state.changed to serving",
            ours_served,
            anchor_served,
            higher_is_better=False,
            goal=QUERY_GOAL_S,
            goal_on="ours",
        ),
        Comparison(
            f"query s: lineage walk @{edges} edges",
            "spine.upstream + downstream",
            "sqlite3: recursive CTE",
            ours_walk,
            anchor_walk,
            higher_is_better=False,
            goal=QUERY_GOAL_S,
            goal_on="ours",
        ),
    ]


def _python(script: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    """Run `script` in a fresh process; its one JSON line, or {"failed": why}."""
    code = script.replace("REFERENCE_ROWS", str(REFERENCE_ROWS))
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"over {timeout:.0f} s"}
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"failed": f"exit {done.returncode}: {' '.join(lines[-1:])}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _window(rows: int, sizes: store.Sizes) -> list[str]:
    since = store.YEAR_START
    until = since + timedelta(hours=rows / store.rows_per_file(sizes))
    return [since.isoformat(), until.isoformat()]


def monitoring_checks(folder: Path, sizes: store.Sizes) -> tuple[list[Comparison], list[str]]:
    """`monitor run`'s streamed check over the whole log (time and peak RSS against a
    pyarrow scan; its verdicts against Evidently's report on the same sample), then against
    Evidently's default report on windows of 10k rows up, x10, until Evidently fails."""
    log = store.log_folder(folder)
    limit = str(MONITOR_LIMIT_BYTES)
    features = str(sizes.features)
    found: list[Comparison] = []
    notes: list[str] = []
    whole = _window(sizes.rows, sizes)
    ours = _python(MONITOR_CHECK, str(log), *whole, limit, features, "compare", timeout=900)
    if "failed" in ours:
        notes.append(f"monitor run's check of {sizes.rows} rows failed: {ours['failed']}")
        print(f"  {notes[-1]}", flush=True)
    else:
        scan = subprocess.run(
            [sys.executable, "-c", DATASET_SCAN, str(log), *whole],
            env=ENV,
            capture_output=True,
            text=True,
            check=True,
        )
        scanned, scan_seconds, scan_kb = scan.stdout.split()
        same = ours["drifted"] == ours["evidently"]
        notes.append(
            f"monitor run over {ours['requests']} requests judged a sample of "
            f"{ours['sampled']}: drifted {ours['drifted']}; Evidently's report on the same "
            f"sample: {ours['evidently']} ({'the same' if same else 'DIFFERENT'})"
        )
        print(
            f"  monitor run @{ours['requests']} rows: {float(ours['seconds']):.2f} s, "
            f"{int(ours['rss_kb']) / 1024:.0f} MB; pyarrow scan ({scanned} rows) "
            f"{float(scan_seconds):.2f} s, {int(scan_kb) / 1024:.0f} MB; {notes[-1]}",
            flush=True,
        )
        found += [
            Comparison(
                f"monitor run s @{sizes.rows} rows",
                "streamed check (stream_window + drift + quality)",
                "pyarrow dataset scan",
                float(ours["seconds"]),
                float(scan_seconds),
                higher_is_better=False,
                goal=MONITOR_GOAL_S,
                goal_on="ours",
            ),
            Comparison(
                f"monitor run peak RSS MB @{sizes.rows} rows",
                "streamed check (stream_window + drift + quality)",
                "pyarrow dataset scan",
                int(ours["rss_kb"]) / 1024,
                int(scan_kb) / 1024,
                higher_is_better=False,
                goal=MONITOR_GOAL_MB,
                goal_on="ours",
            ),
        ]
    against: list[Comparison] = []
    rows = 10_000
    while rows <= sizes.rows:
        window = _window(rows, sizes)
        evidently = _python(EVIDENTLY_REPORT, str(log), *window, limit, features)
        if "failed" in evidently:
            notes.append(
                f"Evidently's report did not complete at {rows} rows: {evidently['failed']}"
            )
            print(f"  {notes[-1]}", flush=True)
            break
        check = _python(MONITOR_CHECK, str(log), *window, limit, features, "-")
        if "failed" in check:
            notes.append(f"monitor run's check failed at {rows} rows: {check['failed']}")
            break
        print(
            f"  @{rows} rows: monitor run {float(check['seconds']):.2f} s, Evidently's "
            f"report {float(evidently['seconds']):.2f} s",
            flush=True,
        )
        against.append(
            Comparison(
                f"monitor run vs Evidently s @{rows} rows",
                "streamed check",
                "Evidently DataDriftPreset report",
                float(check["seconds"]),
                float(evidently["seconds"]),
                higher_is_better=False,
            )
        )
        rows *= 10
    if against:  # the goal is judged on the largest window Evidently completed
        against[-1] = replace(against[-1], goal=MONITOR_EVIDENTLY_GOAL_RATIO)
    return found + against, notes


#: The sections of the benchmark, in the order they run and are written, and the start of
#: the metric names each writes (`--only` re-measures some and keeps the others' results).
SECTIONS = {
    "read": "read s: ",
    "write": "write s: ",
    "audit": "audit verify ",
    "queries": "query s: ",
    "monitor": "monitor run ",
}


def section_of(metric: str) -> str:
    return next(name for name, start in SECTIONS.items() if metric.startswith(start))


def merged(
    previous: dict[str, Any], comparisons: list[Comparison], notes: list[str], run: set[str]
) -> tuple[list[Comparison], list[str]]:
    """`comparisons` of the sections in `run`, the `previous` results file's of the others,
    in section order; `notes`, with the previous run's monitoring notes when monitoring was
    not run."""
    kept = [
        Comparison(**{k: v for k, v in c.items() if k not in ("ratio", "met")})
        for c in previous.get("comparisons", [])
        if section_of(c["metric"]) not in run
    ]
    every = comparisons + kept
    ordered = [c for name in SECTIONS for c in every if section_of(c.metric) == name]
    if "monitor" not in run:
        notes = [n for n in previous.get("notes", []) if _monitoring_note(n)] + notes
    return ordered, notes


def _monitoring_note(note: str) -> bool:
    return note.startswith(("monitor run", "Evidently's report"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="a smoke run on a tiny store")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per figure")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "mlstack-scale",
        help="where built stores are kept, one folder per version and size",
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="folder of the results file, scale.json"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to measure, of {', '.join(SECTIONS)} (default: all); "
        "the results file keeps the other sections' figures from its last run",
    )
    args = parser.parse_args(argv)
    run = set(args.only.split(","))
    if not run or run - set(SECTIONS):
        parser.error(f"--only takes sections of {', '.join(SECTIONS)}, not {args.only!r}")
    sizes = store.SMALL if args.small else store.FULL
    runs = args.runs or (1 if args.small else 5)
    folder = prepared(sizes, args.cache)

    comparisons: list[Comparison] = []
    notes: list[str] = []
    if "read" in run:
        comparisons += read_commands(folder, sizes, runs)
    if "write" in run:
        comparisons += write_commands(folder, sizes, runs)
    if "audit" in run:
        comparisons += audit_verify(folder, runs)
    if "queries" in run:
        comparisons += queries(folder, sizes, runs)
    if "monitor" in run:
        monitoring, notes = monitoring_checks(folder, sizes)
        comparisons += monitoring
    notes += [
        f"store: {sizes.models} models x {sizes.versions} versions on the embedded stack "
        f"(MLflow on SQLite), {sizes.audit} audit entries, {sizes.edges} lineage edges, "
        f"{sizes.runs} pipeline runs, {sizes.rows} logged requests x {sizes.features} features",
        "not measured: MLflow server + PostgreSQL (not built by this bench yet); `rollout "
        "status` (needs a running endpoint)",
    ]
    if run != set(SECTIONS):
        previous = args.results / "scale.json"
        if previous.is_file():
            comparisons, notes = merged(json.loads(previous.read_text()), comparisons, notes, run)
    print_table("mlstack at scale", comparisons, "")
    print(f"results: {write_results('scale', comparisons, notes, args.results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
