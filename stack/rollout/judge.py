"""Whether a version held its service levels in a window: a list of reasons, empty if so."""

from __future__ import annotations

from stack.config.rollout import ServiceLevels
from stack.contract.serving import HealthReport, VersionHealth


def breaches(
    slo: ServiceLevels, report: HealthReport, ref: str, *, shadow: bool = False, final: bool
) -> list[str]:
    """The SLOs `ref` broke in `report`. Too few requests only counts at the end of a window
    (`final`): until then there is simply not enough to judge yet."""
    key = f"{ref} (shadow)" if shadow else ref
    health = report.versions.get(key, VersionHealth(requests=0, errors=0, p99_latency_ms=None))
    reasons: list[str] = []
    if health.requests and health.error_rate > slo.max_error_rate:
        reasons.append(
            f"error rate {health.error_rate:.1%} over {slo.max_error_rate:.1%} "
            f"({health.errors} of {health.requests} requests)"
        )
    if (
        slo.max_p99_ms is not None
        and health.p99_latency_ms is not None
        and health.p99_latency_ms > slo.max_p99_ms
    ):
        reasons.append(f"p99 latency {health.p99_latency_ms:.1f} ms over {slo.max_p99_ms:g} ms")
    if (
        shadow
        and slo.max_disagreement is not None
        and health.disagreement is not None
        and health.disagreement > slo.max_disagreement
    ):
        reasons.append(
            f"disagrees with live on {health.disagreement:.1%} of requests "
            f"(bound {slo.max_disagreement:.1%})"
        )
    if final and health.requests < slo.min_requests:
        reasons.append(
            f"only {health.requests} requests reached {ref} (at least {slo.min_requests} "
            "are needed to judge it)"
        )
    return reasons
