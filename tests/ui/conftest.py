"""A small real stack for the console's HTTP tests: MLflow and the spine on SQLite, a gated
recipe (serving needs one approval from ml-leads), a few versions, a check, a rollout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from starlette.testclient import TestClient

from stack.config.recipe_file import load_recipe
from stack.contract.states import LifecycleState
from stack.contract.tracking import DatasetFingerprint
from stack.governance.service import Governance
from stack.lifecycle import Lifecycle
from stack.session import StackSession
from stack.spine.lineage import NodeKind, NodeRef
from stack.ui.app import create_app
from tests.support.logged_models import signed_logged_model

PORT = 8765
#: The console's own origin, as a browser on its pages names it.
CONSOLE = f"http://127.0.0.1:{PORT}"
RECIPE = """
name: console
model: {name: churn, owner: data-science, risk_tier: limited, intended_use: Rank churn risk.}
promotion:
  gates:
    approved:
      thresholds: {auc: {min: 0.7}}
    serving:
      thresholds: {auc: {min: 0.7}}
      approvals: {count: 1, group: ml-leads}
steps:
  - {name: noop, run: "steps:noop"}
"""


def write_stack(folder: Path, extra: str = "") -> Path:
    path = folder / "stack.yaml"
    path.write_text(
        dedent(f"""
        name: console-test
        home: {folder / ".mlstack"}
        tracker: {{adapter: mlflow, tracking_uri: 'sqlite:///{folder / "mlflow.db"}'}}
        registry: {{adapter: mlflow, tracking_uri: 'sqlite:///{folder / "mlflow.db"}'}}
        features: none
        server: none
        monitor: none
        spine: {{url: 'sqlite:///{folder / "spine.db"}'}}
        identity:
          groups: {{ml-leads: [lead, lead2]}}
        """)
        + extra
    )
    return path


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("console")
    write_stack(folder)
    recipe_dir = folder / "recipe"
    recipe_dir.mkdir()
    (recipe_dir / "recipe.yaml").write_text(RECIPE)
    (recipe_dir / "steps.py").write_text("def noop():\n    return None\n")
    return folder


@pytest.fixture(scope="module")
def session(stack_dir: Path) -> Iterator[StackSession]:
    recipe = load_recipe(stack_dir / "recipe")
    with StackSession.open(stack_dir / "stack.yaml", base_dir=stack_dir, recipe=recipe) as opened:
        governance = Governance(opened)
        for auc, author in ((0.8, "ana"), (0.82, "ana")):
            new_version(opened, author, auc)
        # churn@1 serves: approved by a lead, then promoted
        governance.approve("churn@1", LifecycleState.SERVING, reason="ok", as_actor="lead")
        governance.promote("churn@1", LifecycleState.SERVING, as_actor="ana")
        spine = opened.spine
        for weights in ({"churn@1": 1.0}, {"churn@1": 0.5, "churn@2": 0.5}, {"churn@1": 1.0}):
            spine.audit(
                actor="ana",
                action="endpoint.routed",
                subject="endpoint:churn",
                payload={"weights": weights, "shadows": [], "sticky": False},
            )
        for ref in ("fraud@1", "alpha@1"):  # models known to the spine only
            spine.audit(
                actor="bob", action="model.registered", subject=ref, payload={"state": "candidate"}
            )
        spine.audit(  # a prompt's version, as the prompt registry's view registers it
            actor="bob",
            action="model.registered",
            subject="qa-system@1",
            payload={"state": "candidate", "kind": "prompt_version"},
        )
        now = datetime.now(UTC)
        for hours, score in ((3, 0.6), (2, 0.3), (1, 0.01)):
            check = spine.record_check(
                model="churn",
                version="churn@1",
                endpoint="churn",
                window=(now - timedelta(hours=hours + 1), now - timedelta(hours=hours)),
                status="breach" if score < 0.05 else "ok",
                result={
                    "drift": {
                        "columns": [
                            {"column": "usage_drop", "score": score, "threshold": 0.05},
                            {"column": "tenure", "score": 0.9, "threshold": 0.05},
                        ]
                    },
                    "performance": {"metrics": {"accuracy": 0.7}, "label_coverage": 0.5},
                    "breaches": ["watched feature drifted: usage_drop"] if score < 0.05 else [],
                },
            )
            spine.link(
                NodeRef(NodeKind.MODEL_VERSION, "churn@1"),
                NodeRef(NodeKind.REPORT, f"monitoring/{check}"),
                "monitored_by",
            )
        yield opened


def new_version(session: StackSession, author: str, auc: float = 0.8) -> str:
    """A version of churn trained (metrics only), registered by `author`, approved: its
    next gate, serving, waits for one approval from ml-leads. Returns its ref."""
    run = session.tracker.start_run("console")
    session.tracker.log_metrics(run, {"auc": auc, "accuracy": auc - 0.1})
    session.tracker.log_dataset(run, DatasetFingerprint("holdout", "sha256:h", 50, ("x",)))
    uri = signed_logged_model(session.tracker.client, run.run_id)  # type: ignore[attr-defined]
    session.tracker.finish_run(run)
    version = Lifecycle(session).register(
        "churn", uri, run_id=run.run_id, actor=author, recipe=session.recipe
    )
    Governance(session).promote(version, LifecycleState.APPROVED, as_actor=author)
    return version.ref


def browser(app: Any, **options: Any) -> TestClient:
    """A client as a browser on the console's own pages (its Host, its Origin)."""
    return TestClient(app, base_url=CONSOLE, headers={"Origin": CONSOLE}, **options)


@pytest.fixture
def client(session: StackSession, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The console as `lead` (a member of ml-leads), the local user."""
    monkeypatch.delenv("MLSTACK_TOKEN", raising=False)
    monkeypatch.setenv("MLSTACK_USER", "lead")
    with browser(create_app(session, port=PORT), raise_server_exceptions=False) as test_client:
        yield test_client


def csrf_token(client: TestClient, page: str = "/inbox") -> str:
    """The form token the page gave (and its cookie is now in the client)."""
    import re

    html = client.get(page).text
    found = re.search(r'name="csrf-token" content="([0-9a-f]+)"', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)
