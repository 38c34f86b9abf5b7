"""What a rollout ends with and reports while it bakes, as `mlstack deploy` shows them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stack.contract.serving import Endpoint, HealthReport


@dataclass(frozen=True, slots=True)
class RolloutResult:
    endpoint: Endpoint
    outcome: str  # deployed | promoted | rolled_back | undecided | ab_running | unchanged
    version: str
    reasons: tuple[str, ...] = ()
    #: What a rollout whose process died had left on the endpoint, put back first.
    repaired: tuple[str, ...] = ()
    #: The endpoint was stopped at the end (a first canary rolled back or left undecided:
    #: nothing to fall back to): `endpoint` is what it served before; nothing answers now.
    stopped: bool = False


@dataclass(frozen=True, slots=True)
class BakeTick:
    """One health check of a bake, as `mlstack deploy` shows it while it waits.

    `stage`: what the traffic is (`canary: 10% to churn@3`); `elapsed_s`/`bake_s`: seconds
    into the bake and its length; `report`: the endpoint's health since the stage began;
    `reasons`: the breaches found (the rollout stops on them); `holds`: why the version
    cannot be judged yet (missing evidence: past the bake the rollout waits, up to the
    plan's max_hold_seconds); `final`: the bake's time is up (checks go on while it holds).
    """

    endpoint: str
    version: str
    stage: str
    elapsed_s: float
    bake_s: float
    report: HealthReport
    reasons: tuple[str, ...]
    final: bool
    holds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Baked:
    """How one bake ended, with the reasons and the last health read."""

    outcome: str  # held | breached | undecided (evidence missing too long) | died
    reasons: list[str]
    report: HealthReport


def first_line(exc: BaseException) -> str:
    """An error's first line (a server's errors go on with its log)."""
    return str(exc).partition("\n")[0]


def health_json(report: HealthReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "requests": report.requests,
        "error_rate": report.error_rate,
        "p99_latency_ms": report.p99_latency_ms,
        "versions": {
            ref: {
                "requests": v.requests,
                "errors": v.errors,
                "p99_latency_ms": v.p99_latency_ms,
                "role": v.role,
                "disagreement": v.disagreement,
            }
            for ref, v in report.versions.items()
        },
    }
