"""bench/scale.py keeps working: a smoke run on a tiny store builds it, measures every
figure against its anchor, and writes a well-formed results file; the store it built is
reused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(1200)  # a dozen CLI and MLflow process starts, on a busy machine too
def test_the_scale_bench_runs_end_to_end_and_writes_its_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = [
        sys.executable,
        str(ROOT / "bench" / "scale.py"),
        "--small",
        "--runs",
        "1",
        "--cache",
        str(tmp_path / "cache"),
        "--results",
        str(tmp_path / "results"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "building the store" in done.stdout
    results = json.loads((tmp_path / "results" / "scale.json").read_text())
    assert results["name"] == "scale" and results["machine"] and results["notes"]
    comparisons = results["comparisons"]
    metrics = {c["metric"] for c in comparisons}
    for expected in (
        "read s: models",
        "read s: audit log --model M (<= 1 s)",
        "write s: reject (<= 2 s)",
        "audit verify s",
        "audit verify peak RSS MB",
        "query s: what served at T",
        "monitor run s @20000 rows",
        "monitor run peak RSS MB @20000 rows",
        "monitor run vs Evidently s @10000 rows",
    ):
        assert expected in metrics, sorted(metrics)
    for c in comparisons:
        assert c["ours_value"] > 0 and c["anchor_value"] > 0, c
        assert c["ratio"] == pytest.approx(c["ours_value"] / c["anchor_value"], rel=1e-3)
        assert c["met"] in (True, False, None)
        assert (c["goal"] is None) == (c["met"] is None)
    assert any(c["goal"] is not None for c in comparisons)
    # the streamed check's verdicts are Evidently's on the same sample: the drifted half
    assert any("the same" in note and "x13" in note for note in results["notes"])
    assert all(c["goal"] is not None for c in comparisons if c["metric"].startswith("read s"))

    # --only re-measures its sections and keeps every other figure, and the notes, as they were
    again = subprocess.run([*command, "--only", "audit"], capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    rerun = json.loads((tmp_path / "results" / "scale.json").read_text())
    assert [c["metric"] for c in rerun["comparisons"]] == [c["metric"] for c in comparisons]
    before = {c["metric"]: c for c in comparisons}
    for c in rerun["comparisons"]:
        assert c["metric"].startswith("audit verify") or c == before[c["metric"]], c
    assert rerun["notes"] == results["notes"]
    refused = subprocess.run([*command, "--only", "audit,bogus"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--only takes sections of" in refused.stderr

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import _scale_store
        import scale
    finally:
        sys.path.remove(str(ROOT / "bench"))
    folder = scale.prepared(_scale_store.SMALL, tmp_path / "cache")
    assert "reusing the store" in capsys.readouterr().out
    assert (folder / ".mlstack" / "spine.db").is_file()
