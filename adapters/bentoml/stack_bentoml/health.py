"""Per-version health from the prediction log: what the rollout's SLOs are judged on.

The log is the one record every worker writes, so the figures cover all workers and survive
a restart; `since` is the start of a rollout step's bake window."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from stack.contract.serving import HealthReport, VersionHealth
from stack_bentoml.traffic import NOT_JUDGED


def version_health(rows: Iterable[dict[str, Any]]) -> dict[str, VersionHealth]:
    """Per version (and per shadow): requests, 5xx, p99 latency, shadow disagreement.

    Each version is judged on the requests first routed to it (role `live`): an answer it
    gave for another that failed (role `fallback`) is counted apart (`fallbacks`), never as
    its request, and a request that every version failed (the one it was routed to, then
    the fallback) is an input fault (`input_faults`), an error of no version. A version in
    its own process that missed its deadline (status 504) is charged with the miss."""
    entries = [  # `test` traffic is no version's evidence; `bake` traffic is (traffic.py)
        row for row in rows if row["role"] != "feedback" and row.get("traffic") not in NOT_JUDGED
    ]
    failed_everywhere = {
        str(row["request_id"])
        for row in entries
        if row["role"] == "fallback" and int(row["status"]) >= 500
    }
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in entries:
        role = str(row["role"]) if row["role"] in ("shadow", "fallback") else "live"
        grouped.setdefault((str(row["model_version"]), role), []).append(row)
    report: dict[str, VersionHealth] = {}
    for (ref, role), group in grouped.items():
        if role == "fallback":
            continue
        # a request every version failed is the input's fault, not its first version's
        input_fault = [
            int(e["status"]) == 500 and str(e["request_id"]) in failed_everywhere for e in group
        ]
        input_faults = sum(input_fault)
        latencies = sorted(float(e["latency_ms"]) for e in group)
        failed = [
            e
            for e, fault in zip(group, input_fault, strict=True)
            if int(e["status"]) >= 500 and not fault
        ]
        errors = len(failed)
        disagreement = None
        if role == "shadow":
            compared = [e for e in group if e["output"] is not None]
            differing = sum(
                1
                for e in compared
                if json.loads(str(e["output"])) != json.loads(str(e["live_output"]))
            )
            disagreement = differing / len(compared) if compared else None
        key = ref if role == "live" else f"{ref} (shadow)"
        report[key] = VersionHealth(
            requests=len(group),
            errors=errors,
            p99_latency_ms=_percentile(latencies, 0.99),
            role=role,
            disagreement=disagreement,
            fallbacks=len(grouped.get((ref, "fallback"), [])) if role == "live" else 0,
            input_faults=input_faults,
            error_kinds=dict(
                Counter(k for k in (error_kind(e.get("error")) for e in failed) if k is not None)
            ),
        )
    for (ref, role), group in grouped.items():  # a version that only stood in for others
        if role == "fallback" and ref not in report:
            report[ref] = VersionHealth(0, 0, None, fallbacks=len(group))
    return report


def error_kind(error: object) -> str | None:
    """The exception's name in a logged error: a traceback's last line, `Name: message` (a
    challenger's own traceback follows the worker's, so its exception is the last); None
    when the row holds no traceback."""
    lines = [line for line in str(error or "").splitlines() if line.strip()]
    name = lines[-1].split(":", 1)[0].strip() if lines and ":" in lines[-1] else ""
    return name.rsplit(".", 1)[-1] if all(p.isidentifier() for p in name.split(".")) else None


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _parsed(value: object) -> object:
    return json.loads(str(value)) if value is not None else None


def health_report(
    endpoint: str,
    rows: Iterable[dict[str, Any]],
    *,
    ready: bool,
    degraded: Iterable[str] = (),
    failing: Mapping[str, str] | None = None,
) -> HealthReport:
    """An endpoint's report from its logged `rows` (version_health): totals over the live
    versions, the p99 the slowest of theirs. `ready`, `degraded` and `failing` are what its
    router found outside the log (processes here, pods on a cluster)."""
    versions = version_health(rows)
    live = [v for v in versions.values() if v.role == "live"]
    requests = sum(v.requests for v in live)
    errors = sum(v.errors for v in live)
    p99 = max((v.p99_latency_ms for v in live if v.p99_latency_ms is not None), default=None)
    return HealthReport(
        endpoint,
        ready=ready,
        requests=requests,
        error_rate=errors / requests if requests else 0.0,
        p99_latency_ms=p99,
        versions=versions,
        degraded=tuple(degraded),
        failing=dict(failing or {}),
    )
