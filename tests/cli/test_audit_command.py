"""`mlstack audit log|verify|keygen|anchor` on the stack's spine."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from stack.spine import SpineStore
from tests.cli.conftest import Cli


def seed(workdir: Path) -> SpineStore:
    store = SpineStore.open(f"sqlite:///{workdir / '.mlstack' / 'spine.db'}")
    store.audit(actor="alice", action="model.registered", subject="churn@1", reason="trained")
    store.record_approval(
        subject="churn@1", target_state="serving", actor="bob", decision="approved", reason="ok"
    )
    store.audit(actor="alice", action="model.registered", subject="fraud@1")
    return store


def test_verify_passes_on_an_intact_log(cli: Cli, workdir: Path) -> None:
    seed(workdir).close()
    result = cli("audit", "verify", check=True)
    assert "3 entries, chain intact" in result.stdout


def test_verify_fails_naming_the_tampered_entry(cli: Cli, workdir: Path) -> None:
    store = seed(workdir)
    with store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_entries SET reason='x' WHERE seq=2"))
    store.close()
    result = cli("audit", "verify")
    assert result.returncode == 1
    assert "entry 2: edited: its content was changed" in result.stderr


def test_log_filters_and_exports_json_lines(cli: Cli, workdir: Path) -> None:
    seed(workdir).close()
    lines = cli("audit", "log", "--model", "churn", "--jsonl", check=True).stdout.splitlines()
    entries = [json.loads(line) for line in lines]
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("alice", "model.registered"),
        ("bob", "approval.approved"),
    ]
    assert all(len(e["hash"]) == 64 for e in entries)
    by_bob = cli("audit", "log", "--actor", "bob", check=True).stdout
    assert "approval.approved" in by_bob and "fraud" not in by_bob


def test_log_of_a_model_nothing_knows_says_so(cli: Cli, workdir: Path) -> None:
    """A misspelt --model names no model and matches no entry: an error, not an empty log
    (a model deleted from the registry keeps its entries: they are still shown)."""
    seed(workdir).close()
    missing = cli("audit", "log", "--model", "chrun")
    assert missing.returncode == 1 and missing.stdout == ""
    assert "no model 'chrun' in the registry" in missing.stderr
    none = cli("audit", "log", "--model", "churn", "--action", "state.changed", check=True)
    assert none.stdout == "" and "chrun" not in none.stderr  # churn has entries: no error


def test_rollout_history_of_a_model_nothing_knows_says_so(cli: Cli, workdir: Path) -> None:
    """Read from the same log: a misspelt model is an error, not an empty history."""
    seed(workdir).close()
    missing = cli("rollout", "history", "chrun")
    assert missing.returncode == 1 and "no model 'chrun' in the registry" in missing.stderr


def test_log_rejects_a_bad_date(cli: Cli, workdir: Path) -> None:
    seed(workdir).close()
    result = cli("audit", "log", "--since", "last tuesday")
    assert result.returncode == 2
    assert "not an ISO date" in result.stderr


def cut_end_to(store: SpineStore, seq: int) -> None:
    """What a writer without the anchor key can do: delete the last entries and move the
    chain head back, leaving a shorter log consistent with itself."""
    with store.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM audit_entries WHERE seq > :s"), {"s": seq})
        connection.execute(
            sa.text(
                "UPDATE audit_head SET seq = :s, "
                "hash = (SELECT hash FROM audit_entries WHERE seq = :s)"
            ),
            {"s": seq},
        )
    store.close()


def test_anchors_catch_a_cut_end_the_chain_cannot(cli: Cli, workdir: Path) -> None:
    store = seed(workdir)
    created = cli("audit", "keygen", "keys/anchor.key", check=True).stdout
    assert "keys/anchor.key.pub" in created
    anchored = cli("audit", "anchor", "--private-key", "keys/anchor.key", check=True).stdout
    assert "anchored entry 3" in anchored
    assert (workdir / ".mlstack" / "audit-anchors.jsonl").is_file()
    cut_end_to(store, 1)

    unanchored = cli("audit", "verify", check=True)
    assert "1 entries, chain intact" in unanchored.stdout
    assert "holds signed anchors, not checked" in unanchored.stderr

    result = cli("audit", "verify", "--public-key", "keys/anchor.key.pub")
    assert result.returncode == 1
    assert "entries 2..3 missing: the log ends at entry 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_anchor_refuses_a_broken_log_and_writes_nothing(cli: Cli, workdir: Path) -> None:
    store = seed(workdir)
    with store.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM audit_entries WHERE seq = 2"))
    store.close()
    cli("audit", "keygen", "anchor.key", check=True)
    result = cli("audit", "anchor", "--private-key", "anchor.key", "--to", "out/anchors.jsonl")
    assert result.returncode == 1
    assert "nothing anchored" in result.stderr and "entry 2 missing: deleted" in result.stderr
    assert not (workdir / "out" / "anchors.jsonl").exists()


def test_verify_with_anchors_after_appends_says_what_holds(cli: Cli, workdir: Path) -> None:
    store = seed(workdir)
    cli("audit", "keygen", "anchor.key", "--public-key", "anchor.pub", check=True)
    cli("audit", "anchor", "--private-key", "anchor.key", "--to", "a.jsonl", check=True)
    store.audit(actor="alice", action="model.registered", subject="churn@2")
    store.close()
    result = cli("audit", "verify", "--anchors", "a.jsonl", "--public-key", "anchor.pub")
    assert result.returncode == 0, result.stderr
    assert "4 entries, chain intact, 1 signed anchor(s) hold (latest: entry 3" in result.stdout


def test_anchor_options_are_checked_with_clear_errors(cli: Cli, workdir: Path) -> None:
    seed(workdir).close()
    no_key = cli("audit", "verify", "--anchors", "a.jsonl")
    assert no_key.returncode == 2
    assert "--anchors needs --public-key" in no_key.stderr
    (workdir / "not-a-key.pem").write_text("hello")
    bad = cli("audit", "verify", "--public-key", "not-a-key.pem")
    assert bad.returncode == 1
    assert "not-a-key.pem: not a PEM public key" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_keys_made_with_openssl_as_documented_sign_and_verify(cli: Cli, workdir: Path) -> None:
    seed(workdir).close()
    for command in (
        "openssl genpkey -algorithm ed25519 -out audit-anchor.key",
        "openssl pkey -in audit-anchor.key -pubout -out audit-anchor.key.pub",
    ):
        subprocess.run(command.split(), cwd=workdir, check=True, capture_output=True)
    cli("audit", "anchor", "--private-key", "audit-anchor.key", check=True)
    result = cli("audit", "verify", "--public-key", "audit-anchor.key.pub", check=True)
    assert "1 signed anchor(s) hold (latest: entry 3" in result.stdout


def test_log_of_a_model_includes_the_endpoints_that_served_it(cli: Cli, workdir: Path) -> None:
    """An endpoint is audited under `endpoint:NAME`, and NAME need not be the model's."""
    store = seed(workdir)
    store.audit(
        actor="ci",
        action="endpoint.routed",
        subject="endpoint:eu-churn",
        payload={"weights": {"churn@1": 1.0}},
    )
    store.audit(actor="ci", action="endpoint.undeployed", subject="endpoint:eu-churn")
    store.audit(
        actor="ci",
        action="endpoint.routed",
        subject="endpoint:fraud",
        payload={"weights": {"fraud@1": 1.0}},
    )
    store.close()
    lines = cli("audit", "log", "--model", "churn", "--jsonl", check=True).stdout.splitlines()
    assert [(e["action"], e["subject"]) for e in map(json.loads, lines)] == [
        ("model.registered", "churn@1"),
        ("approval.approved", "churn@1"),
        ("endpoint.routed", "endpoint:eu-churn"),
        ("endpoint.undeployed", "endpoint:eu-churn"),
    ]


def test_audit_and_doctor_in_a_folder_with_no_spine_say_so(cli: Cli, workdir: Path) -> None:
    """Run from the wrong folder, they created an empty log there and called it intact."""
    for command in (["audit", "verify"], ["audit", "log"], ["doctor"]):
        result = cli(*command)
        assert result.returncode == 1, command
        assert "no spine at" in result.stderr and "--stack" in result.stderr
    assert not (workdir / ".mlstack" / "spine.db").exists()
