"""Whether a version held its service levels in a window: breaches, or why it cannot tell.

A verdict rests on evidence: the requests first routed to the version (health reports count
a fallback answer and a request every version failed apart). When the evidence is missing —
too few requests, a health report that could not be read — the judge holds and says why; it
never promotes or rolls back on missing data (the controller bounds how long it may hold)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stack.config.rollout import ServiceLevels
from stack.contract.serving import HealthReport, VersionHealth
from stack.rollout.probes import ProbeTally

#: Requests a version needs before its p99 is compared with the champion's: the p99 of fewer
#: than 100 is simply their slowest one, and one cold call, a collection or a busy machine's
#: scheduling would read as a regression (a healthy canary was rolled back for the slowest of
#: 36 requests on a loaded machine). A stall is still caught: a call past the challenger
#: deadline is a miss, counted as an error.
LATENCY_SAMPLE = 100
#: Probes without an answer a version needs before they count against it (with a rate over
#: the SLO's max_error_rate): one reset is a worker restarted for any reason.
PROBE_FAILURES = 3


@dataclass(frozen=True, slots=True)
class Verdict:
    """`breaches`: the SLOs broken (the rollout stops on them); `holds`: why the version
    cannot be judged yet (missing evidence: neither a pass nor a breach)."""

    breaches: tuple[str, ...] = ()
    holds: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.breaches and not self.holds


def judge(
    slo: ServiceLevels,
    report: HealthReport,
    ref: str,
    *,
    champion_p99_ms: float | None = None,
    shadow: bool = False,
    final: bool,
    probes: Mapping[str, ProbeTally] | None = None,
    champion: str | None = None,
) -> Verdict:
    """`ref`'s verdict in `report`. `champion_p99_ms`: the serving version's p99 latency in
    ms (in the same window, or the last window where it had traffic) for the relative
    latency rule; None skips that rule, as do fewer than `slo.min_requests` (and fewer than
    LATENCY_SAMPLE) requests. Too
    few requests only holds at the end of a window (`final`): until then there is simply
    not enough to judge yet. `probes`: the controller's own requests by version (probes.py):
    `ref`'s going unanswered break the error rate too, unless `champion`'s went unanswered
    alike (the endpoint failed, not `ref`: the verdict holds). A version the report names
    `failing` (its pods crash, its image never pulls, its readiness fails) is in breach."""
    key = f"{ref} (shadow)" if shadow else ref
    health = report.versions.get(key, VersionHealth(requests=0, errors=0, p99_latency_ms=None))
    found: list[str] = []
    if ref in report.failing:  # outside the app (pods, image, readiness): no log row says it
        found.append(f"{ref} fails outside the app: {report.failing[ref]}")
    if health.requests and health.error_rate > slo.max_error_rate:
        faults = ""
        if health.input_faults:
            faults = f"; {health.input_faults} more failed on every version: input faults"
        kinds = ", ".join(
            f"{n} {kind}" for kind, n in sorted(health.error_kinds.items(), key=lambda k: -k[1])
        )
        found.append(
            f"error rate {health.error_rate:.1%} over {slo.max_error_rate:.1%} "
            f"({health.errors} of {health.requests} requests{': ' + kinds if kinds else ''}"
            f"{faults})"
        )
    p99 = health.p99_latency_ms
    if slo.max_p99_ms is not None and p99 is not None and p99 > slo.max_p99_ms:
        found.append(f"p99 latency {p99:.1f} ms over {slo.max_p99_ms:g} ms")
    if (
        not shadow  # a shadow's copy is answered off the request path
        # the p99 of a handful is its slowest call (a cold cache, one long answer)
        and health.requests >= max(slo.min_requests, LATENCY_SAMPLE)
        and slo.max_p99_ratio is not None
        and p99 is not None
        and champion_p99_ms is not None
        and p99 > slo.max_p99_ratio * champion_p99_ms
        and p99 - champion_p99_ms > slo.p99_ratio_floor_ms
    ):
        found.append(
            f"p99 latency {p99:.1f} ms over {slo.max_p99_ratio:g}x the champion's "
            f"{champion_p99_ms:.1f} ms"
        )
    if (
        shadow
        and slo.max_disagreement is not None
        and health.disagreement is not None
        and health.disagreement > slo.max_disagreement
    ):
        found.append(
            f"disagrees with live on {health.disagreement:.1%} of requests "
            f"(bound {slo.max_disagreement:.1%})"
        )
    holds: list[str] = []
    unanswered = _unanswered(slo, probes or {}, ref)
    if unanswered is not None:
        theirs = _unanswered(slo, probes or {}, champion) if champion != ref else None
        if theirs is None:
            found.append(f"{unanswered}: failures outside the app")
        else:
            holds.append(f"{unanswered}, and {theirs}: the endpoint's fault, not {ref}'s")
    if final and not found and health.requests < slo.min_requests:
        outside = ""
        if health.fallbacks:
            outside = f" (and {health.fallbacks} it answered for another version)"
        holds.append(
            f"only {health.requests} requests reached {ref}{outside}: at least "
            f"{slo.min_requests} are needed to judge it"
        )
    return Verdict(tuple(found), tuple(holds))


def _unanswered(
    slo: ServiceLevels, probes: Mapping[str, ProbeTally], ref: str | None
) -> str | None:
    """What `ref`'s probes say when too many went unanswered, else None."""
    tally = probes.get(ref) if ref is not None else None
    if tally is None or tally.failed < PROBE_FAILURES or tally.rate() <= slo.max_error_rate:
        return None
    return f"{tally.failed} of {tally.sent} probe requests to {ref} got no answer ({tally.why()})"


def breaches(
    slo: ServiceLevels, report: HealthReport, ref: str, *, shadow: bool = False, final: bool
) -> list[str]:
    """The SLOs `ref` broke in `report` (see `judge`, which also says when it must hold)."""
    return list(judge(slo, report, ref, shadow=shadow, final=final).breaches)
