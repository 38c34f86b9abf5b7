"""The approvals inbox: what waits for the user's group, approvals and rejections through
the governance code `mlstack approve`/`reject` run (same refusals, same audit entries), and
CSRF: a write without the page's token is refused and writes nothing."""

from __future__ import annotations

import re
from html import unescape

import pytest
from starlette.testclient import TestClient

from stack.contract.states import LifecycleState
from stack.governance.service import Governance
from stack.session import StackSession
from tests.ui.conftest import browser, csrf_token, new_version


def waiting(client: TestClient, query: str = "") -> list[tuple[str, str]]:
    html = client.get(f"/inbox{query}").text
    return re.findall(r'<article class="waiting" data-ref="([^"]+)" data-target="([^"]+)">', html)


def written(session: StackSession) -> tuple[int, int]:
    """(audit entries, approvals of churn's versions): what a refused write must not change."""
    entries = session.spine.audit_entries()
    approvals = sum(len(session.spine.approvals(f"churn@{n}")) for n in range(1, 20))
    return len(entries), approvals


def test_the_inbox_lists_what_waits_for_the_users_group(
    client: TestClient, session: StackSession
) -> None:
    ref = new_version(session, "ana")
    assert (ref, "serving") in waiting(client)
    assert ("churn@1", "serving") not in waiting(client)  # serving: nothing to approve


def test_approving_in_the_page_records_the_approval_and_its_audit_entry(
    client: TestClient, session: StackSession
) -> None:
    ref = new_version(session, "ana")
    token = csrf_token(client)
    answer = client.post(
        "/inbox/approve",
        data={"csrf": token, "ref": ref, "target": "serving", "reason": "read the card"},
        follow_redirects=True,
    )
    assert answer.status_code == 200
    notice = shown_notice(answer.text)
    assert notice.startswith(f"You approved {ref} for serving (audit entry #")
    [entry] = session.spine.audit_entries(subject=ref, action="approval.approved")
    assert (entry.actor, entry.reason, entry.payload["target_state"]) == (
        "lead",
        "read the card",
        "serving",
    )
    # the gate counts it, exactly as an approval from `mlstack approve`
    governance = Governance(session)
    assert governance.eligible_approvers(governance.version(ref), LifecycleState.SERVING) == (
        "lead",
    )
    assert (ref, "serving") not in waiting(client)


def test_self_approval_is_refused_in_the_page_and_audited(
    client: TestClient, session: StackSession
) -> None:
    ref = new_version(session, "lead")
    page = client.get("/inbox").text
    assert "You registered this version" in page
    answer = client.post(
        "/inbox/approve",
        data={"csrf": csrf_token(client), "ref": ref, "target": "serving"},
        follow_redirects=True,
    )
    assert f"Refused: lead registered {ref} and cannot approve it" in unescape(answer.text)
    assert session.spine.approvals(ref) == []
    [refused] = session.spine.audit_entries(subject=ref, action="approval.refused")
    assert refused.actor == "lead"


def test_someone_outside_the_group_sees_nothing_waiting_and_is_refused(
    session: StackSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stack.ui.app import create_app

    ref = new_version(session, "ana")
    monkeypatch.setenv("MLSTACK_USER", "mallory")
    with browser(create_app(session)) as outsider:
        assert ref not in dict(waiting(outsider))
        assert "you are not in it" in outsider.get("/inbox?all=1").text
        answer = outsider.post(
            "/inbox/approve",
            data={"csrf": csrf_token(outsider), "ref": ref, "target": "serving"},
            follow_redirects=True,
        )
    assert "Refused: mallory is not in group 'ml-leads'" in unescape(answer.text)
    assert session.spine.approvals(ref) == []


def test_rejecting_needs_a_reason_and_moves_the_version_to_rejected(
    client: TestClient, session: StackSession
) -> None:
    ref = new_version(session, "ana")
    token = csrf_token(client)
    without = client.post("/inbox/reject", data={"csrf": token, "ref": ref})
    assert without.status_code == 400 and "reason is required" in without.text
    answer = client.post(
        "/inbox/reject",
        data={"csrf": token, "ref": ref, "reason": "leaks the label"},
        follow_redirects=True,
    )
    assert f"{ref} is now rejected" in answer.text
    assert Governance(session).version(ref).state is LifecycleState.REJECTED
    [entry] = [
        e
        for e in session.spine.audit_entries(subject=ref, action="state.changed")
        if e.payload["to"] == "rejected"
    ]
    assert (entry.actor, entry.reason) == ("lead", "leaks the label")


@pytest.mark.parametrize("token", [None, "", "0" * 64, "wrong"])
@pytest.mark.parametrize("form", ["/inbox/approve", "/inbox/reject"])
def test_a_post_without_the_pages_token_is_403_and_writes_nothing(
    client: TestClient, session: StackSession, form: str, token: str | None
) -> None:
    ref = new_version(session, "ana")
    csrf_token(client)  # the browser has its cookie
    before = written(session)
    data = {"ref": ref, "target": "serving", "reason": "forged"}
    if token is not None:
        data["csrf"] = token
    answer = client.post(form, data=data)
    assert answer.status_code == 403
    assert "security token is missing or wrong" in answer.text
    assert written(session) == before
    assert Governance(session).version(ref).state is LifecycleState.APPROVED


def test_a_token_is_no_use_without_its_cookie_or_to_another_user(
    client: TestClient, session: StackSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stack.ui.app import create_app

    ref = new_version(session, "ana")
    token = csrf_token(client)
    before = written(session)
    client.cookies.clear()  # another site's form: the token copied, no cookie sent
    data = {"csrf": token, "ref": ref, "target": "serving"}
    assert client.post("/inbox/approve", data=data).status_code == 403
    app = create_app(session)
    with browser(app) as lead_browser:
        lead_token = csrf_token(lead_browser)
        cookies = dict(lead_browser.cookies)
    monkeypatch.setenv("MLSTACK_USER", "lead2")  # the same cookie and token, another user
    with browser(app, cookies=cookies) as other:
        data = {"csrf": lead_token, "ref": ref, "target": "serving"}
        assert other.post("/inbox/approve", data=data).status_code == 403
    assert written(session) == before


def shown_notice(page: str) -> str:
    """The notice's text as a reader sees it (its links' words, no tags)."""
    found = re.search(r'<p class="notice[^>]*>(.*?)</p>', page, re.S)
    assert found, "the page shows no notice"
    return unescape(re.sub(r"<[^>]+>", "", found.group(1)))


def test_after_an_approval_the_notice_says_whats_next_and_links_the_entry(
    client: TestClient, session: StackSession
) -> None:
    ref = new_version(session, "ana")
    answer = client.post(
        "/inbox/approve",
        data={"csrf": csrf_token(client), "ref": ref, "target": "serving", "reason": "ok"},
        follow_redirects=True,
    )
    [entry] = session.spine.audit_entries(subject=ref, action="approval.approved")
    assert shown_notice(answer.text) == (
        f"You approved {ref} for serving (audit entry #{entry.seq}). "
        f"Next: mlstack promote {ref} --to serving"
    )
    link = re.search(r'<p class="notice[^>]*>.*?<a href="([^"]+)"', answer.text, re.S)
    assert link is not None
    audit = client.get(unescape(link.group(1)))
    assert audit.status_code == 200 and f"<td>{entry.seq}</td>" in audit.text


def test_a_notice_is_shown_once_and_never_from_the_url(
    client: TestClient, session: StackSession
) -> None:
    ref = new_version(session, "ana")
    client.post(
        "/inbox/approve",
        data={"csrf": csrf_token(client), "ref": ref, "target": "serving", "reason": "ok"},
        follow_redirects=True,
    )
    again = client.get("/inbox")
    assert 'class="notice' not in again.text  # shown once
    for outcome in ("approved", "refused", "rejected", "failed"):
        replayed = client.get("/inbox", params={"ref": ref, "outcome": outcome})
        assert 'class="notice' not in replayed.text, outcome


def test_a_version_the_user_registered_offers_no_approve_button(
    client: TestClient, session: StackSession
) -> None:
    ref = new_version(session, "lead")
    page = client.get("/inbox").text
    card = re.search(rf'<article class="waiting" data-ref="{ref}".*?</article>', page, re.S)
    assert card is not None
    button = re.search(r'<button type="submit" class="approve"([^>]*)>', card.group(0))
    assert button is not None and " disabled" in button.group(1)
    assert "the gate does not count its author's approval" in unescape(card.group(0))
