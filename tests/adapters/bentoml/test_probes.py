"""The rollout controller's own probes against a real `bentoml serve`: pinned to a version,
tagged `probe` (no health or monitoring window counts them), and failures outside the app —
a worker that stops answering — reach the verdict."""

from __future__ import annotations

from typing import Any

import httpx

from stack.config.rollout import RolloutPlan
from stack.contract.registry import ModelVersion
from stack.contract.serving import TrafficSplit
from stack.contract.states import LifecycleState as S
from stack.governance.service import Governance
from stack.rollout import RolloutController
from stack.session import StackSession
from stack_bentoml.predictlog import read_log
from tests.adapters.bentoml.conftest import Stack, Traffic, row
from tests.adapters.bentoml.models import FEATURES
from tests.adapters.bentoml.test_endpoint_processes import until
from tests.adapters.bentoml.test_rollout import FAST, stack  # noqa: F401  (the fixture)


def test_a_probe_is_answered_by_its_version_and_counted_by_no_window(stack: Stack) -> None:  # noqa: F811
    champion, challenger = stack.versions.champion, stack.versions.challenger
    with stack.session() as session:
        session.server.add_version(challenger, endpoint="churn")
        split = TrafficSplit({champion.ref: 1.0, challenger.ref: 0.0}, champion=champion.ref)
        url = session.server.route("churn", split).url
        # a version at weight 0 answers a probe that names it, and only a probe
        assert session.server.probe("churn", challenger.ref, timeout_s=10) is None
        probe = {"x-mlstack-traffic": "probe", "x-mlstack-version": challenger.ref}
        answer = httpx.post(f"{url}/predict", json=row(), headers=probe)
        assert answer.status_code == 200
        assert answer.headers["x-model-version"] == challenger.ref
        live = httpx.post(
            f"{url}/predict", json=row(), headers={"x-mlstack-version": challenger.ref}
        )
        assert live.status_code == 400
        assert "x-mlstack-version is taken only with x-mlstack-traffic: probe" in live.text
        unknown = httpx.post(
            f"{url}/predict", json=row(), headers={**probe, "x-mlstack-version": "churn@99"}
        )
        assert unknown.status_code == 400 and "'churn@99' is not routed here" in unknown.text
        folder = session.adapter_context().home / "predictions" / "churn"

        def probes() -> list[dict[str, Any]]:  # the log is written off the request path
            if not any(folder.rglob("*.parquet")):
                return []
            return [r for r in read_log(folder).to_pylist() if r["traffic"] == "probe"]

        until(lambda: len(probes()) >= 2, "both probes logged")  # the server's and ours
        assert {r["model_version"] for r in probes()} == {challenger.ref}
        assert session.server.health("churn").versions == {}  # probes are no version's figures


def test_a_healthy_canary_under_probes_is_promoted(stack: Stack) -> None:  # noqa: F811
    champion, challenger = stack.versions.champion, stack.versions.challenger
    with stack.session() as session:
        Governance(session).promote(challenger.ref, S.APPROVED)
        url = session.server.endpoints()[0].url
        plan = RolloutPlan(
            steps=(0.5, 1.0), bake_seconds=3, check_seconds=0.5, probe_seconds=0.2, slo=FAST
        )
        with Traffic(url, row()):
            result = RolloutController(session).deploy(challenger.ref, plan)
        assert result.outcome == "promoted", result.reasons
        logged = read_log(session.adapter_context().home / "predictions" / "churn").to_pylist()
    probed = {r["model_version"] for r in logged if r["traffic"] == "probe"}
    assert probed == {champion.ref, challenger.ref}  # both versions were probed, both answered


def test_a_first_canary_that_stalls_its_worker_is_rolled_back_for_unanswered_probes(
    stack: Stack,  # noqa: F811
) -> None:
    """The canary serves alone, in the worker; after a few calls its model stops the
    process (SIGSTOP). Nothing it fails is logged — no request is answered — so the log
    alone would hold for lack of requests; the probes that get no answer break it."""
    with stack.session() as session:
        stalling = _register_stalling(session, after=10)
        Governance(session).promote(stalling.ref, S.APPROVED)
        plan = RolloutPlan(
            strategy="canary",
            endpoint="stalls",
            steps=(1.0,),
            bake_seconds=30,
            check_seconds=0.5,
            max_hold_seconds=120,
            probe_seconds=0.2,
            probe_timeout_ms=1500,
            slo=FAST,
        )
        controller = RolloutController(session)
        result = controller.deploy(stalling.ref, plan)
        assert result.outcome == "rolled_back", result.reasons
        [reason] = result.reasons
        assert f"probe requests to {stalling.ref} got no answer (no answer within 1.5 s" in reason
        assert reason.endswith("failures outside the app")
        assert controller.find("stalls") is None
        assert Governance(session).version(stalling.ref).state is S.REJECTED
        entries = session.spine.audit_entries(subject="endpoint:stalls")
        rolled = [e for e in entries if e.action == "rollout.rolled_back"]
        assert rolled and "failures outside the app" in rolled[-1].reason


def _register_stalling(session: StackSession, *, after: int) -> ModelVersion:
    """A pyfunc whose `after`-th call in a process stops that process (once)."""
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    class Stalls(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        calls = 0

        def predict(self, context: object, model_input: Any, params: Any = None) -> Any:
            import os
            import signal

            Stalls.calls += 1
            if Stalls.calls == after:
                os.kill(os.getpid(), signal.SIGSTOP)
            return [0] * len(model_input)

    frame = pd.DataFrame(np.zeros((3, len(FEATURES))), columns=FEATURES)
    run = session.tracker.start_run("probe-tests")
    uri = session.tracker.log_model(
        run, Stalls(), name="stalls", framework="python", requirements=[], input_example=frame
    )
    # a model of its own: churn serves on `churn`, and a model has one serving version
    version = session.registry.register("stalls", uri, run_id=run.run_id)
    session.tracker.finish_run(run)
    return version
