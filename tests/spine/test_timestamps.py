"""The spine's timestamps compare as text in time order, whatever the year: an "as of"
query for year 1, 999 or 1000 selects what the spine held then (nothing written today)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from stack.spine import SpineStore
from stack.spine.timeutil import from_text, now_utc, to_text

YEARS = (1, 999, 1000, 2026, 9999)


def test_timestamps_sort_as_text_in_time_order_and_read_back() -> None:
    moments = [datetime(year, 6, 1, 12, 0, 0, 5, tzinfo=UTC) for year in YEARS]
    texts = [to_text(m) for m in moments]
    assert sorted(texts) == texts
    assert [from_text(t) for t in texts] == moments
    assert texts[1] == "0999-06-01T12:00:00.000005Z"
    assert texts[3] == "2026-06-01T12:00:00.000005Z"  # years from 1000 on: as always written


def test_an_unpadded_year_written_before_still_reads_back() -> None:
    assert from_text("999-06-01T12:00:00.000000Z") == datetime(999, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("year", [1, 999, 1000])
def test_audit_entries_until_an_early_year_are_none_of_todays(tmp_path: Path, year: int) -> None:
    store = SpineStore.open(f"sqlite:///{tmp_path / 'spine.db'}")
    try:
        store.audit(actor="ana", action="note.added", subject="churn@1", payload={})
        then = datetime(year, 6, 1, tzinfo=UTC)
        assert store.audit_entries(until=then) == []
        assert len(store.audit_entries(since=then)) == 1
        assert store.audit_entries(since=now_utc()) == []
    finally:
        store.close()
