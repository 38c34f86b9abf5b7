"""Spine locks: one holder per name across processes, other names free, released by death."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from stack.errors import LockTimeout
from stack.spine.store import SpineStore

HOLDER = """
import sys
from stack.spine.store import SpineStore
store = SpineStore.open(sys.argv[1])
with store.locks.hold(sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin (or kills us)
"""


@contextmanager
def held_elsewhere(url: str, name: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding `name` for the block."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "held\n"
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def store(spine_url: str) -> Iterator[SpineStore]:
    opened = SpineStore.open(spine_url)
    yield opened
    opened.close()


def test_a_name_held_by_another_process_is_refused_after_the_wait(
    store: SpineStore, spine_url: str
) -> None:
    refused = pytest.raises(LockTimeout, match="promotions of eta: another mlstack process")
    with (
        held_elsewhere(spine_url, "promotions of eta"),
        refused,
        store.locks.hold("promotions of eta", wait_s=0.2),
    ):
        pytest.fail("two holders of one name")


def test_other_names_are_not_blocked_and_a_thread_may_hold_a_name_twice(
    store: SpineStore, spine_url: str
) -> None:
    with held_elsewhere(spine_url, "promotions of eta"):
        with (
            store.locks.hold("promotions of churn", wait_s=5),
            store.locks.hold("promotions of churn", wait_s=0),
        ):
            pass
        store.audit(actor="a", action="x", subject="churn")  # spine writes go on meanwhile


def test_a_thread_holding_a_name_through_one_store_may_take_it_through_another(
    store: SpineStore, spine_url: str
) -> None:
    other = SpineStore.open(spine_url)  # as a hook opening its own session would
    try:
        with (
            store.locks.hold("promotions of eta", wait_s=5),
            other.locks.hold("promotions of eta", wait_s=0),
        ):
            pass
    finally:
        other.close()


def test_a_holder_killed_mid_hold_releases_the_name(store: SpineStore, spine_url: str) -> None:
    with held_elsewhere(spine_url, "promotions of eta") as holder:
        holder.kill()
        holder.wait()
        with store.locks.hold("promotions of eta", wait_s=60):
            pass
