"""`mlstack labels ingest FILE` on files a spreadsheet or a hand writes: each fault refused
naming the file, line, column and value, storing nothing; a request id's label stored once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from stack.errors import StackError
from stack.monitoring.labels import read_labels
from stack.spine.records import GroundTruth
from stack.spine.store import SpineStore
from tests.support.cli import cli_in

BAD_FILES = {
    "nan": (b"request_id,label\nr1,1\nr2,NaN\n", ":3: column 'label' is 'NaN', not a finite"),
    "inf": (b"request_id,label\nr1,0.5\nr2,-inf\n", ":3: column 'label' is '-inf', not a finite"),
    "text among numbers": (
        b"request_id,label\nr1,1\nr2,N/A\n",
        ":3: column 'label' is 'N/A', not a number like the column's other labels",
    ),
    "empty": (b"request_id,label\nr1,1\nr2, \n", ":3: column 'label' is empty"),
    "conflict": (
        b"request_id,label\nr1,1\nr2,0\nr1,0\n",
        ":4: request 'r1' (row 0) is labelled 0 in column 'label', but 1 on line 2",
    ),
    "negative row": (
        b"request_id,row,label\nr1,-5,1\n",
        ":2: column 'row' is '-5'; it must be a whole number, 0 or more",
    ),
    "latin-1": (b"request_id,label\nr1,caf\xe9\n", ": not UTF-8 text"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_label_file_is_refused_by_name_not_by_traceback(tmp_path: Path, case: str) -> None:
    content, expected = BAD_FILES[case]
    file = tmp_path / "labels.csv"
    file.write_bytes(content)
    result = cli_in(tmp_path)("labels", "ingest", str(file), "--model", "churn")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{file}{expected}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".mlstack").exists()  # refused before the stack was opened


def test_a_file_with_a_byte_order_mark_reads_as_utf8(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a byte-order mark: its first column is `request_id`."""
    file = tmp_path / "labels.csv"
    file.write_bytes("request_id,label\r\nr1,oui\r\nr2,café\r\n".encode("utf-8-sig"))
    labels = read_labels(file, model="churn")
    assert [(g.request_id, g.label) for g in labels] == [("r1", "oui"), ("r2", "café")]


def test_identical_repeats_of_a_request_id_count_once(tmp_path: Path) -> None:
    file = tmp_path / "labels.csv"
    file.write_text("request_id,label\nr1,1\nr2,0\nr1,1.0\n")
    assert [(g.request_id, g.label) for g in read_labels(file, model="churn")] == [
        ("r1", 1),
        ("r2", 0),
    ]
    with pytest.raises(StackError, match=r"labels.csv:3: request 'r1' .* labelled 1 .* line 2"):
        file.write_text("request_id,label\nr1,true\nr1,1\n")
        read_labels(file, model="churn")


def test_a_later_ingest_replaces_a_request_ids_label(tmp_path: Path) -> None:
    """Ingesting a file twice stores its labels once; a corrected file's label wins. Labels
    by entity key are kept as they arrive."""
    store = SpineStore.open(f"sqlite:///{tmp_path / 'spine.db'}")
    try:
        at = datetime(2026, 11, 1, tzinfo=UTC)
        first = [
            GroundTruth("churn", 1, at, "a.csv", request_id="r1"),
            GroundTruth("churn", 0, at, "a.csv", request_id="r1", row=1),
            GroundTruth("churn", 1, at, "a.csv", entity={"customer": "7"}),
        ]
        assert store.record_labels(first) == 3
        assert store.record_labels(first) == 3
        store.record_labels([GroundTruth("churn", 0, at, "b.csv", request_id="r1")])
        store.record_labels([GroundTruth("other", 5, at, "c.csv", request_id="r1")])
        stored = [(g.request_id, g.row, g.label, g.source) for g in store.labels("churn")]
        assert sorted(stored, key=str) == sorted(
            [
                ("r1", 1, 0, "a.csv"),
                (None, 0, 1, "a.csv"),
                (None, 0, 1, "a.csv"),
                ("r1", 0, 0, "b.csv"),
            ],
            key=str,
        )
        assert [g.label for g in store.labels("other")] == [5]
    finally:
        store.close()
