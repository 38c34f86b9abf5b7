"""Who acts: a signed CI token, else MLSTACK_USER, else the OS user; groups from the stack."""

from __future__ import annotations

import pytest

from stack.identity import IdentityError, mint_token, resolve_actor

GROUPS = {"ml-leads": ("lead",), "auditors": ("lead", "ci-bot")}


def test_user_from_the_environment_with_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLSTACK_TOKEN", raising=False)
    monkeypatch.setenv("MLSTACK_USER", "lead")
    actor = resolve_actor(GROUPS, None)
    assert (actor.name, actor.source) == ("lead", "MLSTACK_USER")
    assert actor.groups == {"ml-leads", "auditors"}


def test_signed_token_wins_over_the_user_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_USER", "lead")
    monkeypatch.setenv("MLSTACK_TOKEN", mint_token("ci-bot", "s3cret"))
    actor = resolve_actor(GROUPS, "s3cret")
    assert (actor.name, actor.source, actor.groups) == ("ci-bot", "token", {"auditors"})


def test_forged_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_TOKEN", mint_token("lead", "not-the-secret"))
    with pytest.raises(IdentityError, match="bad signature"):
        resolve_actor(GROUPS, "s3cret")


def test_edited_token_payload_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _, signature = mint_token("ci-bot", "s3cret").split(".")
    other_body = mint_token("lead", "s3cret").split(".")[0]
    monkeypatch.setenv("MLSTACK_TOKEN", f"{other_body}.{signature}")
    with pytest.raises(IdentityError, match="bad signature"):
        resolve_actor(GROUPS, "s3cret")


def test_expired_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_TOKEN", mint_token("ci-bot", "s3cret", ttl_seconds=-1))
    with pytest.raises(IdentityError, match="expired"):
        resolve_actor(GROUPS, "s3cret")


def test_token_without_a_secret_to_check_it_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_TOKEN", mint_token("ci-bot", "s3cret"))
    with pytest.raises(IdentityError, match=r"no identity\.token_secret"):
        resolve_actor(GROUPS, None)
