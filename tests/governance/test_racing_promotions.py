"""Promotions of one model racing from eight processes are decided and applied one at a time:
the audit's order is MLflow's, every displaced version is retired with its own entry, each
caller's answer was true when it was decided, and "what served at T" is MLflow's alias.

Latency is injected around the real MLflow adapter's registry writes (a slow registry, not a
fake one), on a spine on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent

import pytest
from mlflow import MlflowClient

from stack.config.recipe_file import Recipe, load_recipe
from stack.contract.states import LifecycleState as S
from stack.governance.history import served_at, serving_history
from stack.lifecycle import Lifecycle
from stack.session import StackSession
from stack.spine.audit import AuditEntry
from stack.spine.timeutil import now_utc
from tests.support.logged_models import signed_logged_model

RACERS = 8
MODEL = "eta"

RECIPE = f"""
name: racing
model: {{name: {MODEL}, owner: ana}}
promotion:
  gates:
    serving:
      champion: {{metric: score, max_regression: 1.0}}
steps:
  - {{name: noop, run: "steps:noop"}}
"""

# The racers: one process imports mlstack and MLflow once, then (told to) forks one racer per
# version. Each racer opens the stack itself, slows the registry down (sleeps inside
# set_state, around the alias move and the tidy-up's reads), says ready, and on the start
# promotes its version and prints its answer.
RACERS_SCRIPT = """
import json, os, random, sys, time
from pathlib import Path
from stack.contract.states import LifecycleState
from stack.config.recipe_file import load_recipe
from stack.governance.service import Governance
from stack.session import StackSession
# Imported once, before the fork (no connection is opened before it).
import mlflow.store.model_registry.sqlalchemy_store, mlflow.store.tracking.sqlalchemy_store
import alembic.command, stack_mlflow.registry, stack_mlflow.tracker

folder = Path(sys.argv[1])


def slowed(call, pause, before=False):
    def slow(*args, **kwargs):
        if before:
            time.sleep(pause(0, 0.04))
        answer = call(*args, **kwargs)
        if not before:
            time.sleep(pause(0, 0.04))
        return answer
    return slow


def say(line):
    os.write(1, (line + "\\n").encode())  # one write: lines of racers never interleave


def racer(version, start):
    pause = random.Random(version).uniform
    session = StackSession.open(
        folder / "stack.yaml", base_dir=folder, recipe=load_recipe(folder / "recipe")
    )
    registry, client = session.registry, session.registry.client
    session.spine.verify_audit()  # connected before the start
    registry.set_state = slowed(registry.set_state, pause, before=True)
    # the alias is written without MLflow's client on this store (stack_mlflow/light/writes.py)
    registry.writes.set_alias = slowed(registry.writes.set_alias, pause)
    client.search_model_versions = slowed(client.search_model_versions, pause, before=True)
    client.get_model_version_by_alias = slowed(client.get_model_version_by_alias, pause)
    governance = Governance(session)
    say("ready")
    if not os.read(start, 1):  # the parent died before the start: no race, no orphan
        sys.exit(1)
    try:
        change = governance.promotion(f"eta@{version}", LifecycleState.SERVING, reason="race")
        answer = {"ref": change.version.ref, "state": change.version.state.value,
                  "displaced": list(change.displaced)}
    except Exception as exc:
        answer = {"ref": f"eta@{version}", "error": f"{type(exc).__name__}: {exc}"}
    say(json.dumps(answer))
    session.close()


versions = [int(v) for v in sys.stdin.readline().split()]
start, release = os.pipe()
children = []
for version in versions:
    pid = os.fork()
    if pid == 0:
        os.close(release)
        code = 0
        try:
            racer(version, start)
        except BaseException:
            import traceback
            say("failed: " + traceback.format_exc().replace("\\n", " | "))
            code = 1
        finally:
            os._exit(code)
    children.append(pid)
sys.stdin.readline()
os.write(release, b"x" * len(versions))  # one byte each: all start together
failed = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]
sys.exit(1 if failed else 0)
"""


@dataclass(frozen=True)
class Stack:
    folder: Path
    session: StackSession
    recipe: Recipe
    mlflow_uri: str


@pytest.fixture
def stack(tmp_path: Path, spine_url: str) -> Iterator[Stack]:
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "stack.yaml").write_text(
        dedent(f"""
        name: racing
        home: {tmp_path / ".mlstack"}
        tracker: {{adapter: mlflow, tracking_uri: '{mlflow_uri}'}}
        registry: {{adapter: mlflow, tracking_uri: '{mlflow_uri}'}}
        spine: {{url: '{spine_url}'}}
        """)
    )
    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "recipe.yaml").write_text(RECIPE)
    (tmp_path / "recipe" / "steps.py").write_text("def noop():\n    return None\n")
    with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as session:
        yield Stack(tmp_path, session, load_recipe(tmp_path / "recipe"), mlflow_uri)


def approved_versions(stack: Stack, count: int) -> list[str]:
    """`count` approved versions of MODEL from one run scoring them (the champion rule's)."""
    tracker, registry = stack.session.tracker, stack.session.registry
    run = tracker.start_run("racing")
    tracker.log_metrics(run, {"score": 0.5})
    refs = []
    for _ in range(count):
        uri = signed_logged_model(tracker.client, run.run_id)  # type: ignore[attr-defined]
        version = Lifecycle(stack.session).register(
            MODEL, uri, run_id=run.run_id, actor="ana", recipe=stack.recipe
        )
        registry.set_state(MODEL, version.version, S.APPROVED)  # setup: no gate, no card
        refs.append(version.ref)
    tracker.finish_run(run)
    return refs


@pytest.fixture
def racers(stack: Stack) -> Iterator[subprocess.Popen[str]]:
    """The racers' process, started first: it imports while the test makes the versions."""
    process = subprocess.Popen(
        [sys.executable, "-c", RACERS_SCRIPT, str(stack.folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    process.kill()  # with its racers, were it stopped early: they end when it ends
    process.communicate()


def race(racers: subprocess.Popen[str], refs: list[str]) -> dict[str, dict[str, object]]:
    """Every ref promoted to serving by its own process, all started at once; each one's
    answer by ref."""
    assert racers.stdin is not None and racers.stdout is not None
    racers.stdin.write(" ".join(ref.split("@")[1] for ref in refs) + "\n")
    racers.stdin.flush()
    for _ in refs:
        assert racers.stdout.readline() == "ready\n", racers.communicate()[1]
    out, err = racers.communicate("go\n")
    assert racers.returncode == 0, err
    answers = [json.loads(line) for line in out.splitlines()]
    return {answer["ref"]: answer for answer in answers}


def moves_into_serving(entries: list[AuditEntry]) -> list[AuditEntry]:
    return [e for e in entries if e.action == "state.changed" and e.payload["to"] == "serving"]


def test_eight_racing_promotions_leave_the_audit_in_the_registrys_order(
    stack: Stack, racers: subprocess.Popen[str]
) -> None:
    refs = approved_versions(stack, RACERS)

    answers = race(racers, refs)

    assert all(answer.get("state") == "serving" for answer in answers.values()), answers
    # MLflow: one alias holder, tagged serving; every other racer tagged retired (its UI).
    client = MlflowClient(stack.mlflow_uri)
    holder = f"{MODEL}@{client.get_model_version_by_alias(MODEL, 'serving').version}"
    tags = {ref: client.get_model_version(MODEL, ref.split("@")[1]).tags for ref in refs}
    assert {ref: t["mlstack.state"] for ref, t in tags.items()} == {
        ref: "serving" if ref == holder else "retired" for ref in refs
    }
    # The audit: each move into serving displaced the one before it, the last is MLflow's.
    spine = stack.session.spine
    entries = spine.audit_entries(subject=MODEL)
    moves = moves_into_serving(entries)
    order = [e.subject for e in moves]
    assert sorted(order) == sorted(refs)
    assert [e.payload["displaced"] for e in moves] == [[], *([ref] for ref in order[:-1])]
    assert order[-1] == holder
    # ... and each displaced version was retired with its own entry, after its displacer's.
    for displacer, displaced in zip(order[1:], order[:-1], strict=True):
        [retired] = [
            e for e in entries if e.subject == displaced and e.payload.get("from") == "serving"
        ]
        assert retired.payload == {"from": "serving", "to": "retired", "displaced_by": displacer}
        assert retired.seq > next(e.seq for e in moves if e.subject == displacer)
    # Each caller was told what was true when its promotion was decided: one of them that
    # its version is now serving, each other whom it displaced; and each gate compared with
    # the champion of that moment.
    assert {ref: answers[ref]["displaced"] for ref in refs} == {
        ref: [] if i == 0 else [order[i - 1]] for i, ref in enumerate(order)
    }
    champions = {
        e.subject: _champion(e)
        for e in entries
        if e.action == "gate.passed" and e.payload["target"] == "serving"
    }
    assert champions == {ref: None if i == 0 else order[i - 1] for i, ref in enumerate(order)}
    # "What served at T" agrees with MLflow after the race, and its history is the audit's.
    assert served_at(spine, MODEL, now_utc()) == holder
    assert [c.version for c in serving_history(spine, MODEL)] == order
    assert spine.verify_audit().ok


def _champion(gate_entry: AuditEntry) -> str | None:
    """The champion a gate compared with, from its champion rule's detail."""
    [rule] = [r for r in gate_entry.payload["rules"] if r["rule"].startswith("champion")]
    found = re.search(r" for (\S+@\d+) ", rule["detail"])
    return found.group(1) if found else None
