"""Per-version health from the prediction log: what the rollout's SLOs are judged on.

The log is the one record every worker writes, so the figures cover all workers and survive
a restart; `since` is the start of a rollout step's bake window."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from stack.contract.serving import VersionHealth
from stack_bentoml.traffic import NOT_JUDGED


def version_health(rows: Iterable[dict[str, Any]]) -> dict[str, VersionHealth]:
    """Per version (and per shadow): requests, 5xx, p99 latency, shadow disagreement."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row["role"] == "feedback" or row.get("traffic") in NOT_JUDGED:
            continue  # `test` traffic is no version's evidence; `bake` traffic is (traffic.py)
        role = "shadow" if row["role"] == "shadow" else "live"
        grouped.setdefault((str(row["model_version"]), role), []).append(row)
    report: dict[str, VersionHealth] = {}
    for (ref, role), entries in grouped.items():
        latencies = sorted(float(e["latency_ms"]) for e in entries)
        errors = sum(1 for e in entries if int(e["status"]) >= 500)
        disagreement = None
        if role == "shadow":
            compared = [e for e in entries if e["output"] is not None]
            differing = sum(
                1
                for e in compared
                if json.loads(str(e["output"])) != json.loads(str(e["live_output"]))
            )
            disagreement = differing / len(compared) if compared else None
        key = ref if role == "live" else f"{ref} (shadow)"
        report[key] = VersionHealth(
            requests=len(entries),
            errors=errors,
            p99_latency_ms=_percentile(latencies, 0.99),
            role=role,
            disagreement=disagreement,
        )
    return report


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _parsed(value: object) -> object:
    return json.loads(str(value)) if value is not None else None
