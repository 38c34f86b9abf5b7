"""`mlstack audit log|verify` on the stack's spine."""

from __future__ import annotations

import json
from pathlib import Path

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
    assert "entry 2: its content was changed" in result.stderr


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


def test_log_rejects_a_bad_date(cli: Cli, workdir: Path) -> None:
    seed(workdir).close()
    result = cli("audit", "log", "--since", "last tuesday")
    assert result.returncode == 2
    assert "not an ISO date" in result.stderr
