"""A run's lease: whose process drives it, judged alive, dead (pid reuse included) or stale,
and the spine's record of a run abandoned when its process died."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from stack.orchestration.lease import (
    STALE_AFTER,
    Heartbeat,
    Liveness,
    ProcessIdentity,
    judge,
    process_started,
)
from stack.spine import SpineStore
from stack.spine.records import RunLease
from stack.spine.timeutil import now_utc

HERE = socket.gethostname()


@pytest.fixture
def store(spine_url: str) -> Iterator[SpineStore]:
    store = SpineStore.open(spine_url)
    yield store
    store.close()


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_this_process_holds_a_live_lease() -> None:
    lease = ProcessIdentity.current().lease(now_utc() - timedelta(hours=1))
    assert judge(lease, now_utc()) is Liveness.ALIVE  # on its own host, age does not matter


def test_a_lease_whose_process_exited_is_dead() -> None:
    lease = RunLease(_exited_pid(), HERE, "", now_utc())
    assert judge(lease, now_utc()) is Liveness.DEAD


def test_a_pid_reused_by_another_process_does_not_pass_for_the_runs() -> None:
    me = ProcessIdentity.current()
    assert me.started  # read from /proc on Linux
    reused = RunLease(me.pid, HERE, me.started + "-earlier-process", now_utc())
    assert judge(reused, now_utc()) is Liveness.DEAD


def test_the_start_time_is_stable_for_a_process_and_differs_between_processes() -> None:
    assert process_started(os.getpid()) == process_started(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_started(child.pid) not in (None, process_started(os.getpid()))
    finally:
        child.kill()
        child.wait()
    assert process_started(child.pid) is None


def test_another_hosts_lease_is_judged_by_its_age_only() -> None:
    now = now_utc()
    exited = _exited_pid()  # a pid dead here says nothing about a process there
    fresh = RunLease(exited, "another-host", "", now - timedelta(seconds=5))
    old = RunLease(exited, "another-host", "", now - STALE_AFTER - timedelta(seconds=1))
    assert judge(fresh, now) is Liveness.ALIVE
    assert judge(old, now) is Liveness.STALE
    assert judge(None, now) is Liveness.UNKNOWN


def test_a_run_records_its_lease_and_renews_it_while_running(store: SpineStore) -> None:
    holder = ProcessIdentity.current()
    store.start_pipeline_run("r1", recipe="q", orchestrator="local", lease=holder.lease(now_utc()))
    later = holder.lease(now_utc() + timedelta(seconds=30))
    assert store.renew_lease("r1", later)
    record = store.pipeline_run("r1")
    assert record is not None and record.lease == later
    store.finish_pipeline_run("r1", state="succeeded")
    assert not store.renew_lease("r1", holder.lease(now_utc()))  # ended: the heartbeat stops


def test_another_process_cannot_renew_a_lease_it_does_not_hold(store: SpineStore) -> None:
    store.start_pipeline_run(
        "r1", recipe="q", orchestrator="local", lease=ProcessIdentity.current().lease(now_utc())
    )
    other = RunLease(_exited_pid(), HERE, "x", now_utc())
    assert not store.renew_lease("r1", other)


def test_abandoning_fails_the_running_step_and_audits_once(store: SpineStore) -> None:
    lease = RunLease(_exited_pid(), HERE, "", now_utc())
    store.start_pipeline_run("r1", recipe="q", orchestrator="local", lease=lease)
    store.record_step("r1", "prepare", status="succeeded", started_at=now_utc())
    store.record_step("r1", "train", status="running", started_at=now_utc())

    assert store.abandon_pipeline_run("r1", lease=lease, reason="abandoned: died", actor="ops")
    assert not store.abandon_pipeline_run("r1", lease=lease, reason="again", actor="ops")

    record = store.pipeline_run("r1")
    assert record is not None
    assert record.state == "abandoned" and record.error == "train: abandoned: died"
    assert {s.step: s.status for s in record.steps} == {"prepare": "succeeded", "train": "failed"}
    [entry] = store.audit_entries(action="run.abandoned")
    assert entry.subject == "run:r1" and entry.payload["interrupted_steps"] == ["train"]
    assert store.verify_audit().ok


def test_a_run_taken_over_meanwhile_is_not_abandoned(store: SpineStore) -> None:
    lease = RunLease(_exited_pid(), HERE, "", now_utc())
    store.start_pipeline_run("r1", recipe="q", orchestrator="local", lease=lease)
    store.finish_pipeline_run("r1", state="failed", error="x")
    assert not store.abandon_pipeline_run("r1", lease=lease, reason="r", actor="ops")
    assert store.audit_entries(action="run.abandoned") == []


def test_the_heartbeat_renews_until_the_run_is_no_longer_running() -> None:
    renewals: list[int] = []
    finished = threading.Event()

    def renew() -> bool:
        renewals.append(1)
        if len(renewals) == 3:
            finished.set()
            return False  # the run ended: the spine refused the renewal
        return True

    heartbeat = Heartbeat(renew, interval=0.01).start()
    assert finished.wait(30)
    heartbeat._thread.join(30)
    assert not heartbeat._thread.is_alive() and len(renewals) == 3


def test_a_failed_renewal_does_not_stop_the_heartbeat(capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[int] = []
    recovered = threading.Event()

    def renew() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("spine unreachable")
        recovered.set()
        return False

    heartbeat = Heartbeat(renew, interval=0.01).start()
    assert recovered.wait(30)
    heartbeat._thread.join(30)
    assert capsys.readouterr().err.count("could not renew the run's lease: spine unreachable") == 1
