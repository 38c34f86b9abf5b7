"""The store `bench/scale.py` measures: a real team's registry, a year of audit, a million
lineage edges, runs, and a prediction log in the endpoint's Parquet layout.

Built with bulk inserts (the registry through MLflow's own client, the spine's tables with
`executemany` in one transaction, the log with pyarrow), so a full build takes minutes. The
audit chain is computed with the spine's own `entry_hash`, so `mlstack audit verify` passes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

#: Bump when what is built changes: a cached store of another version is rebuilt.
VERSION = "2"  # 2: the log's requests answered as `live` (what monitoring reads)

STACK_YAML = """name: scale-bench
home: .mlstack
spine: {url: "sqlite:///.mlstack/spine.db"}
"""

#: The year the audit log spans (entries evenly spread over it).
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Sizes:
    models: int
    versions: int
    audit: int
    edges: int
    runs: int
    rows: int
    features: int = 20

    @property
    def key(self) -> str:
        return (
            f"v{VERSION}-m{self.models}x{self.versions}-a{self.audit}-e{self.edges}"
            f"-r{self.runs}-p{self.rows}x{self.features}"
        )


FULL = Sizes(models=200, versions=10, audit=1_000_000, edges=1_000_000, runs=5_000, rows=10_000_000)
SMALL = Sizes(models=3, versions=2, audit=3_000, edges=3_000, runs=20, rows=20_000)


def model_name(index: int) -> str:
    return f"m{index:03d}"


def build(folder: Path, sizes: Sizes, *, log: bool = True) -> dict[str, float]:
    """Build the store under `folder` (created); returns seconds per part."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stack.yaml").write_text(STACK_YAML)
    took: dict[str, float] = {}
    for part, step in (
        ("registry", _registry),
        ("spine", _spine),
        ("prediction log", _prediction_log),
    ):
        started = time.perf_counter()
        step(folder, sizes)
        took[part] = time.perf_counter() - started
        if log:
            print(f"  built {part} in {took[part]:.1f} s", flush=True)
    (folder / "built").write_text(json.dumps(took))
    return took


def _registry(folder: Path, sizes: Sizes) -> None:
    """`models x versions` versions through the stack's registry (MLflow's client); the last
    version of each model serving (the `serving` alias and state tag, as a promotion sets)."""
    from stack.contract.states import LifecycleState
    from stack.session import StackSession

    with StackSession.open(folder / "stack.yaml", base_dir=folder) as session:
        session.spine.pipeline_runs(limit=1)  # creates the spine's tables
        registry = session.registry
        for index in range(sizes.models):
            model = model_name(index)
            for number in range(1, sizes.versions + 1):
                registry.register(
                    model,
                    f"s3://scale-bench/{model}/{number}",
                    tags={"mlstack.owner": f"team-{index % 7}", "mlstack.risk_tier": "medium"},
                )
            for state in (LifecycleState.APPROVED, LifecycleState.SERVING):
                registry.set_state(model, sizes.versions, state)


def _spine(folder: Path, sizes: Sizes) -> None:
    from stack.spine.audit import GENESIS_HASH, entry_hash
    from stack.spine.timeutil import to_text

    db = sqlite3.connect(folder / ".mlstack" / "spine.db")
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        with db:
            _audit(db, sizes, entry_hash, to_text, GENESIS_HASH)
            _lineage(db, sizes, to_text)
            _runs(db, sizes, to_text)
        db.execute("ANALYZE")
    finally:
        db.close()


def audit_subjects(sizes: Sizes) -> list[tuple[str, str, str, dict[str, object]]]:
    """The entries that tell each model's story: versions promoted up to serving, the
    endpoint routed to it. The rest of the log is monitoring checks spread over models."""
    story: list[tuple[str, str, str, dict[str, object]]] = []
    for index in range(sizes.models):
        model = model_name(index)
        for number in range(1, sizes.versions + 1):
            ref = f"{model}@{number}"
            story.append(("ci-bot", "state.changed", ref, {"from": "candidate", "to": "approved"}))
            story.append(("ml-lead", "approval.approved", ref, {"state": "serving"}))
            story.append(
                (
                    "ml-lead",
                    "state.changed",
                    ref,
                    {"from": "approved", "to": "serving", "serving": ref},
                )
            )
            story.append(
                (
                    "ml-lead",
                    "endpoint.routed",
                    f"endpoint:{model}",
                    {"weights": {ref: 1.0}, "shadows": []},
                )
            )
    return story


def _audit(db, sizes, entry_hash, to_text, genesis):  # type: ignore[no-untyped-def]
    story = audit_subjects(sizes)
    total = max(sizes.audit, len(story))
    # The story's entries spread evenly through the year, the checks in between.
    every = max(1, total // max(1, len(story)))
    step = timedelta(days=365) / total
    prev = genesis
    rows = []
    told = 0
    for seq in range(1, total + 1):
        if told < len(story) and (seq % every == 0 or total - seq < len(story) - told):
            actor, action, subject, payload = story[told]
            told += 1
        else:
            model = model_name(seq % sizes.models)
            actor, action, subject = "monitor", "monitoring.checked", model
            payload = {"window": seq, "status": "ok", "drifted": []}
        at = to_text(YEAR_START + step * seq)
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        digest = entry_hash(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            reason="",
            payload=text,
            prev_hash=prev,
        )
        rows.append((seq, at, actor, action, subject, "", text, prev, digest))
        prev = digest
        if len(rows) >= 50_000:
            _insert_audit(db, rows)
            rows = []
    _insert_audit(db, rows)
    db.execute("DELETE FROM audit_head")
    db.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)", (total, prev))


def _insert_audit(db: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    db.executemany(
        "INSERT INTO audit_entries (seq, at, actor, action, subject, reason, payload, "
        "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _lineage(db, sizes, to_text):  # type: ignore[no-untyped-def]
    """Per version: data snapshot -> feature view -> run -> version -> endpoint revision,
    then monitoring reports off the revision until `edges` edges are written."""
    at = to_text(YEAR_START)
    nodes: list[tuple[int, str, str, str, str]] = []
    edges: list[tuple[int, int, str, str]] = []
    revisions: list[int] = []

    def node(kind: str, key: str) -> int:
        nodes.append((len(nodes) + 1, kind, key, "{}", at))
        return len(nodes)

    for index in range(sizes.models):
        model = model_name(index)
        view = node("feature_view", f"{model}_features")
        for number in range(1, sizes.versions + 1):
            data = node("data_snapshot", f"s3://scale-bench/{model}/data/{number}")
            run = node("run", f"{model}-run-{number}")
            version = node("model_version", f"{model}@{number}")
            revision = node("endpoint_revision", f"{model}#{number}")
            edges += [
                (data, view, "materialized_into", at),
                (view, run, "trained_on", at),
                (run, version, "produced", at),
                (version, revision, "deployed_as", at),
            ]
            revisions.append(revision)
    reports = 0
    while len(edges) < sizes.edges:
        revision = revisions[reports % len(revisions)]
        report = node("report", f"check-{reports}")
        edges.append((revision, report, "checked_by", at))
        reports += 1
    db.executemany(
        "INSERT INTO lineage_nodes (id, kind, key, attributes, created_at) VALUES (?,?,?,?,?)",
        nodes,
    )
    db.executemany(
        "INSERT INTO lineage_edges (src_id, dst_id, relation, created_at) VALUES (?,?,?,?)",
        edges,
    )


def _runs(db, sizes, to_text):  # type: ignore[no-untyped-def]
    steps = ("load", "features", "train", "evaluate", "register")
    runs, step_rows = [], []
    for number in range(sizes.runs):
        started = YEAR_START + timedelta(hours=number)
        run_id = f"run-{number:06d}"
        runs.append(
            (
                run_id,
                model_name(number % sizes.models),
                "local",
                "succeeded",
                to_text(started),
                to_text(started + timedelta(minutes=5)),
            )
        )
        step_rows += [
            (run_id, step, "succeeded", to_text(started), to_text(started + timedelta(minutes=1)))
            for step in steps
        ]
    db.executemany(
        "INSERT INTO pipeline_runs (run_id, recipe, orchestrator, state, started_at, "
        "finished_at) VALUES (?,?,?,?,?,?)",
        runs,
    )
    db.executemany(
        "INSERT INTO step_runs (run_id, step, status, started_at, finished_at) VALUES (?,?,?,?,?)",
        step_rows,
    )


#: Rows per Parquet file (one file per hour, as the endpoint's sink partitions them).
ROWS_PER_FILE = 500_000


def rows_per_file(sizes: Sizes) -> int:
    """Requests per file, one file an hour: at least two files, so the drifted second half
    of the log exists in the smoke run too."""
    return max(1, min(ROWS_PER_FILE, sizes.rows // 2))


def log_folder(folder: Path) -> Path:
    return folder / ".mlstack" / "predictions" / model_name(0)


def _prediction_log(folder: Path, sizes: Sizes) -> None:
    """`rows` requests of one record of `features` numbers each, in the ParquetSink layout
    (`date=YYYY-MM-DD/hour=HH/<file>.parquet`, its schema), built column-wise with pyarrow:
    `inputs` is the JSON text the endpoint writes, assembled by pyarrow's string kernels."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from stack_bentoml.predictlog import schema

    directory = log_folder(folder)
    rng = np.random.default_rng(0)
    start = int(YEAR_START.timestamp())
    per_file = rows_per_file(sizes)
    for first in range(0, sizes.rows, per_file):
        n = min(per_file, sizes.rows - first)
        hour = first // per_file
        moment = YEAR_START + timedelta(hours=hour)
        values = rng.normal(size=(sizes.features, n)).round(4)
        if first >= sizes.rows // 2:  # the second half drifts on three features
            values[[0, 7, 13]] = values[[0, 7, 13]] * 1.3 + 0.4
        parts: list[object] = []
        for f in range(sizes.features):
            parts.append(("{" if f == 0 else ",") + f'"x{f}":')
            parts.append(pc.cast(pa.array(values[f]), pa.string()))
        parts.append("}")
        inputs = pc.binary_join_element_wise(
            *[pa.array([p] * n, pa.string()) if isinstance(p, str) else p for p in parts], ""
        )
        inputs = pc.binary_join_element_wise(
            pa.array(["["] * n, pa.string()), inputs, pa.array(["]"] * n, pa.string()), ""
        )
        ids = pc.cast(pa.array(np.arange(first, first + n)), pa.string())
        ts = pa.array(
            (start + hour * 3600) * 1_000_000 + np.arange(n) * (3_600_000_000 // n),
            pa.timestamp("us", tz="UTC"),
        )
        outputs = pc.cast(pa.array(rng.integers(0, 2, n)), pa.string())
        ref = f"{model_name(0)}@{sizes.versions}"
        table = pa.table(
            [
                ids,
                ts,
                pa.array([model_name(0)] * n, pa.string()),
                pa.array([ref] * n, pa.string()),
                pa.array(["live"] * n, pa.string()),
                pa.array(np.full(n, 200, np.int16)),
                pa.array(rng.gamma(2.0, 3.0, n)),
                inputs,
                pc.binary_join_element_wise(
                    pa.array(["["] * n, pa.string()), outputs, pa.array(["]"] * n, pa.string()), ""
                ),
                pa.nulls(n, pa.string()),
                pa.nulls(n, pa.string()),
                pa.array(["live"] * n, pa.string()),
            ],
            schema=schema(),
        )
        target = directory / f"date={moment:%Y-%m-%d}" / f"hour={moment:%H}"
        target.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target / f"bench-{hour:05d}.parquet")
