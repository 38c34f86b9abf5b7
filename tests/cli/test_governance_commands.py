"""The governance commands as a user drives them on the quickstart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import ROOT, Cli
from tests.support.cli import cli_in


def candidate_recipe(workdir: Path) -> Path:
    """The quickstart up to its registration (no approval, no deploy): a candidate."""
    recipe = workdir / "quickstart"
    shutil.copytree(ROOT / "recipes" / "quickstart", recipe, ignore=shutil.ignore_patterns("data"))
    text = (recipe / "recipe.yaml").read_text().replace("customers: 2000", "customers: 600")
    (recipe / "recipe.yaml").write_text(text.split("  - name: approve")[0])
    return recipe


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The candidate run once (a minute of the quickstart), in `project`, and kept in
    `saved`: (project, saved)."""
    root = tmp_path_factory.mktemp("governance")
    project, saved = root / "project", root / "saved"
    project.mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLSTACK_USER", "tester")
        env.delenv("MLSTACK_STACK", raising=False)
        cli_in(project)("run", str(candidate_recipe(project)), "-q", check=True)
    shutil.copytree(project, saved)
    return project, saved


@pytest.fixture
def candidate(registered: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder where `mlstack run` registered churn@1 as a candidate, put back as the run
    left it before each test (at the same path: the version's tags and MLflow's artifact
    locations name it), the test's working folder."""
    project, saved = registered
    shutil.rmtree(project)
    shutil.copytree(saved, project)
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLSTACK_USER", "tester")
    monkeypatch.delenv("MLSTACK_STACK", raising=False)
    return project


def test_promote_approve_inventory_lineage_and_card(candidate: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    workdir, cli = candidate, cli_in(candidate)

    refused = cli("promote", "churn@1", "--to", "serving")
    assert refused.returncode == 1
    assert "churn@1 is candidate; it cannot move to serving" in refused.stderr
    dry = cli("promote", "churn@1", "--to", "serving", "--dry-run")  # says the same, exit 1
    assert (dry.returncode, "churn@1 is candidate; it cannot move to serving" in dry.stderr) == (
        1,
        True,
    )

    cli("promote", "churn@1", "--to", "approved", "--reason", "auc ok", check=True)
    dry = cli("promote", "churn@1", "--to", "serving", "--dry-run")
    assert dry.returncode == 1  # a gate that would fail is a failure to a script
    assert "FAIL approvals: 0 of 1 from ml-leads" in dry.stdout

    monkeypatch.setenv("MLSTACK_USER", "ml-lead")
    cli("approve", "churn@1", "--to", "serving", "--reason", "reviewed", check=True)
    monkeypatch.setenv("MLSTACK_USER", "tester")
    assert (
        "churn@1 is now serving" in cli("promote", "churn@1", "--to", "serving", check=True).stdout
    )

    [row] = json.loads(cli("models", "--format", "json", check=True).stdout)
    assert (row["model"], row["serving"], row["owner"], row["risk_tier"]) == (
        "churn",
        "churn@1",
        "data-science",
        "limited",
    )
    assert row["last_evaluation"]["auc"] > 0.7

    lineage = json.loads(cli("lineage", "churn@serving", "--json", check=True).stdout)
    assert lineage["node"] == "model_version:churn@1"
    kinds = [edge["source"].split(":")[0] for edge in lineage["upstream"]]
    # the run; what it trained on, the feature view that fed it, its monitoring reference
    assert kinds == ["run", "data_snapshot", "feature_view", "data_snapshot"]
    [run_note] = lineage["runs"].values()
    assert "commit" in run_note
    exported = cli("lineage", "churn@serving", "--openlineage", check=True)
    assert "sent 1 OpenLineage events" in exported.stderr  # the training run
    events = (workdir / ".mlstack" / "openlineage.jsonl").read_text().splitlines()
    assert {json.loads(e)["eventType"] for e in events} == {"COMPLETE"}

    audit = cli("audit", "log", "--model", "churn", "--jsonl", check=True).stdout.splitlines()
    actions = [json.loads(line)["action"] for line in audit]
    assert actions == [
        "model.registered",
        "gate.passed",
        "state.changed",
        "approval.approved",
        "gate.passed",
        "state.changed",
    ]
    assert cli("audit", "verify", check=True).returncode == 0
    card = cli("card", "churn@1", check=True).stdout.split()
    assert Path(card[0]).read_text().startswith("# Model card: churn@1")


def test_a_rejected_version_comes_back_as_a_candidate_and_goes_on_through_its_gates(
    candidate: Path,
) -> None:
    """`rejected → candidate` (and `retired → candidate`) is a documented move: `promote --to
    candidate` makes it, audited like any other, and a refusal of a rejected version says so."""
    cli = cli_in(candidate)
    cli("reject", "churn@1", "--reason", "wrong window", check=True)

    refused = cli("promote", "churn@1", "--to", "approved")
    assert refused.returncode == 1
    assert "churn@1 is rejected; it cannot move to approved" in refused.stderr
    assert "bring it back with `mlstack promote churn@1 --to candidate`" in refused.stderr
    dry = cli("promote", "churn@1", "--to", "approved", "--dry-run")
    assert "mlstack promote churn@1 --to candidate" in dry.stderr

    back = cli("promote", "churn@1", "--to", "candidate", "--reason", "window fixed", check=True)
    assert "churn@1 is now candidate" in back.stdout
    cli("promote", "churn@1", "--to", "approved", check=True)  # through its gate again

    audit = cli("audit", "log", "--model", "churn", "--jsonl", check=True).stdout.splitlines()
    moves = [
        (entry["payload"].get("from"), entry["payload"].get("to"))
        for entry in map(json.loads, audit)
        if entry["action"] == "state.changed"
    ]
    assert moves == [
        ("candidate", "rejected"),
        ("rejected", "candidate"),
        ("candidate", "approved"),
    ]
    assert cli("audit", "verify", check=True).returncode == 0


FREEZE = """
from stack.hooks import Veto, hookimpl


@hookimpl
def on_promotion_requested(version, target_state):
    return Veto(f"release freeze: {version.ref} stays {version.state.value}")
"""


def test_nothing_served_yet_and_a_recipe_veto_holds_outside_run(candidate: Path) -> None:
    """The hooks of the recipe that built a version are asked by `promote` and `reject` as by
    `mlstack run` (they were registered only inside `run`, so the CLI bypassed a veto)."""
    recipe, cli = candidate / "quickstart", cli_in(candidate)
    result = cli("lineage", "churn", "--as-of", "2000-01-01T00:00:00")  # nothing served yet
    assert result.returncode == 1
    assert "no version of 'churn' was serving at 2000-01-01" in result.stderr

    (recipe / "freeze.py").write_text(FREEZE)
    (recipe / "recipe.yaml").write_text("hooks: [freeze]\n" + (recipe / "recipe.yaml").read_text())

    for command in (["promote", "churn@1", "--to", "approved"], ["reject", "churn@1"]):
        refused = cli(*command, "--reason", "try")
        assert refused.returncode == 1, refused.stdout
        assert "release freeze: churn@1 stays candidate" in refused.stderr
    [row] = json.loads(cli("models", "--format", "json", check=True).stdout)
    assert (row["latest_version"], row["latest_state"], row["serving"]) == (1, "candidate", None)
    audit = cli("audit", "log", "--model", "churn", "--jsonl", check=True).stdout.splitlines()
    assert [json.loads(line)["action"] for line in audit].count("state.vetoed") == 2


def test_a_malformed_version_is_refused_before_anything_opens(cli: Cli, workdir: Path) -> None:
    """MODEL@VERSION is parsed once, by the command line: a malformed one is a usage error
    naming the form, and no spine is created for it."""
    for args in (
        ("promote", "churn", "--to", "approved"),
        ("deploy", "churn@", "--strategy", "direct"),
        ("lineage", "churn@nowhere"),
    ):
        refused = cli(*args)
        assert refused.returncode == 2, refused.stderr
        assert "MODEL@STATE (e.g. churn@serving) or MODEL@VERSION" in refused.stderr or (
            "unknown state 'nowhere'" in refused.stderr
        )
    assert not (workdir / ".mlstack").exists()
