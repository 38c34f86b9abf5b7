"""stack.atomic: a file is replaced whole or not at all, and a failed write leaves no trace."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from stack.atomic import atomic_path, write_atomic


def test_a_write_replaces_the_file_whole_with_the_umasks_mode(tmp_path: Path) -> None:
    target = tmp_path / "stack.yaml"
    target.write_text("old\n")
    write_atomic(target, "name: prod\n")
    assert target.read_text() == "name: prod\n"
    write_atomic(target, b"\x00bytes")
    assert target.read_bytes() == b"\x00bytes"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.yaml"]


def test_a_write_that_fails_keeps_the_old_file_and_leaves_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "spec.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as partial:
        partial.write_text("half")
        raise RuntimeError("the writer died")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]


def test_the_partial_is_hidden_and_each_thread_has_its_own(tmp_path: Path) -> None:
    """Readers that glob `*.parquet` or `*.prom` never see a write in progress, and two
    threads writing the same file never write into one temporary file."""
    seen: list[Path] = []
    barrier = threading.Barrier(2)

    def write(text: str) -> None:
        with atomic_path(tmp_path / "a.parquet") as partial:
            partial.write_text(text)
            seen.append(partial)
            barrier.wait(timeout=10)  # both partials exist at once

    threads = [threading.Thread(target=write, args=(t,)) for t in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 2
    assert all(p.name.startswith(".a.parquet.") for p in seen)
    assert (tmp_path / "a.parquet").read_text() in {"one", "two"}
    assert list(tmp_path.glob("*.parquet")) == [tmp_path / "a.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet"]
