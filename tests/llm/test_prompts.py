"""Prompts in MLflow's prompt registry under mlstack's lifecycle: registered, diffed, and
promoted through a gate that reads the evaluation run's scores and wants an approval; the
`serving` alias names one version; every move is audited."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from tests.support.cli import Cli

RECIPE = """
name: qa-prompts
model:
  {name: qa-system, owner: llm-team, risk_tier: limited, intended_use: answers, limitations: none}
promotion:
  gates:
    serving:
      thresholds: {context_overlap: {min: 0.6}}
      approvals: {count: 1, group: reviewers}
steps:
  - {name: noop, run: "steps:noop"}
"""

STACK = """
name: llm
home: .mlstack
tracker: {adapter: mlflow}
registry: {adapter: mlflow}
spine: {url: "sqlite:///.mlstack/spine.db"}
identity: {groups: {reviewers: [rita]}}
"""


@pytest.fixture
def project(workdir: Path) -> Path:
    (workdir / "stack.yaml").write_text(STACK)
    recipe = workdir / "qa"
    recipe.mkdir()
    (recipe / "recipe.yaml").write_text(RECIPE)
    (recipe / "steps.py").write_text("def noop():\n    return None\n")
    (workdir / "v1.txt").write_text("Answer the question.\nQuestion: {{question}}\n")
    (workdir / "v2.txt").write_text(
        "Answer only from the context.\nContext: {{context}}\nQuestion: {{question}}\n"
    )
    return workdir


def evaluation_run(project: Path, overlap: float) -> str:
    """An evaluation run with the score the gate reads (as stack.llm.evaluation logs it)."""
    from stack.llm.evaluation import evaluate
    from stack.llm.scorers import ContextOverlap, Example
    from stack.session import StackSession

    words = "paris is the capital of france"
    answer = words if overlap == 1.0 else "paris is lovely in spring"
    with StackSession.open(project / "stack.yaml", base_dir=project) as session:
        result = evaluate(
            session,
            [Example("capital of France?", answer, context=(words,))],
            [ContextOverlap()],
            experiment="qa-evaluations",
            name="qa",
        )
    return result.run.run_id


def test_prompt_versions_follow_the_lifecycle(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weak, strong = evaluation_run(project, 0.4), evaluation_run(project, 1.0)
    first = cli(
        "prompts",
        "register",
        "qa-system",
        "--file",
        "v1.txt",
        "--run",
        weak,
        "--recipe",
        "qa",
        check=True,
    )
    assert "registered prompt qa-system@1 as candidate" in first.stdout
    cli(
        "prompts",
        "register",
        "qa-system",
        "--file",
        "v2.txt",
        "--run",
        strong,
        "--message",
        "ground answers in the context",
        "--recipe",
        "qa",
        check=True,
    )

    changed = cli("prompts", "diff", "qa-system", "1", "2", check=True).stdout
    assert "-Answer the question." in changed and "+Answer only from the context." in changed

    # the weak version fails its gate on the score; the strong one needs its approval first
    cli("prompts", "promote", "qa-system@1", "--to", "approved", check=True)
    weak_gate = cli("prompts", "promote", "qa-system@1", "--to", "serving", "--dry-run")
    assert weak_gate.returncode == 1  # --dry-run of a gate that would fail exits 1
    assert "FAIL threshold context_overlap" in weak_gate.stdout
    cli("prompts", "promote", "qa-system@2", "--to", "approved", check=True)
    refused = cli("prompts", "promote", "qa-system@2", "--to", "serving")
    assert refused.returncode == 1 and "approvals: 0 of 1 from reviewers" in refused.stderr
    monkeypatch.setenv("MLSTACK_USER", "rita")
    cli("prompts", "approve", "qa-system@2", "--to", "serving", "--reason", "reviewed", check=True)
    monkeypatch.setenv("MLSTACK_USER", "tester")
    promoted = cli("prompts", "promote", "qa-system@2", "--to", "serving", check=True)
    assert "prompt qa-system@2 is now serving" in promoted.stdout

    listed = cli("prompts", "list", "qa-system", check=True).stdout
    assert "qa-system@2" in listed and "serving" in listed
    assert (
        "Answer only from the context."
        in cli("prompts", "show", "qa-system@serving", check=True).stdout
    )

    # MLflow's own client: the alias, and the template loadable by its URI
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / '.mlstack' / 'mlflow.db'}")
    assert int(client.get_prompt_version_by_alias("qa-system", "serving").version) == 2
    mlflow.set_tracking_uri(f"sqlite:///{project / '.mlstack' / 'mlflow.db'}")
    assert "{{context}}" in mlflow.genai.load_prompt("prompts:/qa-system@serving").template

    # lineage: the evaluation run produced the prompt version (a prompt_version node)
    lineage = json.loads(cli("lineage", "prompt_version:qa-system@2", "--json", check=True).stdout)
    assert lineage["node"] == "prompt_version:qa-system@2"
    assert [e["source"] for e in lineage["upstream"]] == [f"run:{strong}"]

    audit = cli("audit", "log", "--jsonl", check=True).stdout
    assert '"subject":"qa-system@2"' in audit.replace(" ", "") and "approval.approved" in audit
    assert cli("audit", "verify", check=True).returncode == 0
