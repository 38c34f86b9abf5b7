"""The controller's own probes: failures outside the app reach the verdict, charged to a
version only when the champion's probes were answered."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

from stack.config.rollout import RolloutPlan, ServiceLevels
from stack.contract.capabilities import ServerCapability
from stack.contract.roles import Role
from stack.contract.serving import HealthReport, VersionHealth
from stack.rollout.judge import judge
from stack.rollout.probes import Probes, ProbeTally, probing

SLO = ServiceLevels(min_requests=10)
HEALTHY = HealthReport(
    "churn",
    True,
    100,
    0.0,
    5.0,
    {"churn@1": VersionHealth(50, 0, 5.0), "churn@2": VersionHealth(50, 0, 5.0)},
)


def tally(sent: int, **failures: int) -> ProbeTally:
    return ProbeTally(sent, {why.replace("_", " "): n for why, n in failures.items()})


def test_unanswered_probes_to_a_version_alone_break_it_naming_why() -> None:
    probes = {"churn@1": tally(20), "churn@2": tally(20, connection_reset=4, timeout=1)}
    verdict = judge(SLO, HEALTHY, "churn@2", final=False, probes=probes, champion="churn@1")
    assert verdict.breaches == (
        "5 of 20 probe requests to churn@2 got no answer (connection reset: 4, timeout: 1): "
        "failures outside the app",
    )


def test_unanswered_probes_to_every_version_hold_as_the_endpoints_fault() -> None:
    probes = {"churn@1": tally(20, connection_refused=6), "churn@2": tally(20, timeout=5)}
    verdict = judge(SLO, HEALTHY, "churn@2", final=True, probes=probes, champion="churn@1")
    assert not verdict.breaches
    assert verdict.holds == (
        "5 of 20 probe requests to churn@2 got no answer (timeout: 5), and 6 of 20 probe "
        "requests to churn@1 got no answer (connection refused: 6): the endpoint's fault, "
        "not churn@2's",
    )


def test_a_first_canary_whose_probes_go_unanswered_breaks() -> None:
    """Nothing serves beside it: its own failures are its own, even with no logged request."""
    empty = HealthReport("churn", True, 0, 0.0, None, {})
    verdict = judge(SLO, empty, "churn@2", final=True, probes={"churn@2": tally(9, timeout=9)})
    assert verdict.breaches and "9 of 9 probe requests" in verdict.breaches[0]
    assert not verdict.holds  # not 'only 0 requests reached it': it is judged


def test_a_stray_reset_or_a_rate_within_the_slo_is_no_breach() -> None:
    two = {"churn@2": tally(5, connection_reset=2)}
    assert judge(SLO, HEALTHY, "churn@2", final=True, probes=two).passed
    rare = {"churn@2": tally(400, connection_reset=3)}
    assert judge(SLO, HEALTHY, "churn@2", final=True, probes=rare).passed


class Scripted:
    """A Prober that answers churn@1 and never churn@2, and cannot probe churn@3."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.lock = threading.Lock()

    def probe(self, endpoint: str, ref: str, *, timeout_s: float) -> str | None:
        with self.lock:
            self.calls.append((ref, timeout_s))
        if ref == "churn@3":
            raise ValueError("no input example")
        return None if ref == "churn@1" else "connection reset"


def test_probes_count_each_version_apart_until_closed() -> None:
    prober = Scripted()
    probes = Probes(prober, "churn", ["churn@1", "churn@2", "churn@3"], every_s=0.01, timeout_s=2)
    probes.start()
    try:
        deadline = time.monotonic() + 60
        while min(probes.tally()[r].sent for r in ("churn@1", "churn@2")) < 5:
            assert time.monotonic() < deadline, probes.tally()
            time.sleep(0.01)
    finally:
        probes.close()
    found = probes.tally()
    assert found["churn@1"].failed == 0
    assert found["churn@2"].failures == {"connection reset": found["churn@2"].sent}
    assert found["churn@3"].sent == 0
    assert found["churn@3"].unprobed == "ValueError: no input example"
    assert {timeout for _, timeout in prober.calls} == {2}


def test_the_plan_sets_probing_and_a_server_that_cannot_probe_is_not_probed() -> None:
    plan = RolloutPlan(challenger_deadline_ms=1000)
    assert plan.probe_timeout_s() == 6.0  # the endpoint answers a missed deadline itself
    assert RolloutPlan(probe_timeout_ms=500).probe_timeout_s() == 0.5
    undeclared = stack_with(Scripted(), capabilities=frozenset())
    with probing(undeclared, "churn", ["churn@1"], plan) as probes:
        assert probes is None
    declared = stack_with(Scripted(), capabilities=frozenset({ServerCapability.PROBE}))
    with probing(declared, "churn", ["churn@1"], RolloutPlan(probe_seconds=None)) as probes:
        assert probes is None
    with probing(declared, "churn", ["churn@1"], plan) as probes:
        assert probes is not None


def stack_with(server: object, capabilities: frozenset[ServerCapability]) -> Any:
    """What `probing` reads of a session: the server's declared capabilities, and the server."""
    resolved = {Role.SERVER: SimpleNamespace(capabilities=capabilities)}
    return SimpleNamespace(resolved=resolved, server=server)
